"""The learner: keeps every rated loop and trains the same critic a little after each rating.

The paper found incremental training (a few minibatches after each rating, never retraining
from scratch) far more sample-efficient, so that is what runs here. What makes it live:

- each rated loop's MFCC features are computed once, when the rating arrives, and kept;
- the training owed for each rating runs in a background thread in short slices, ending before
  the next bar line when a host says where bar lines are, so nothing audible ever waits on it;
- scoring never touches the training critic: `scorer()` hands out a frozen, BatchNorm-folded
  copy taken between two minibatches, so a rating arriving mid-training is simply queued.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .critic import (
    CheckpointError,
    Critic,
    CriticConfig,
    FoldedCritic,
    LoopFeatures,
    LoopScorer,
    load_critic,
    save_critic,
)
from .devices import pick_device, run_in_background
from .library import SampleBank
from .loop import Loop, LoopBatch, random_batch

SLICE_SECONDS = 0.25  # longest training slice without a host's bar lines to fit in
INPUT_STATS_LOOPS = 128  # random loops whose features set the critic's input scaling


@dataclass(frozen=True)
class Preset:
    """Every hyperparameter of learning and sampling, by name."""

    name: str
    critic: CriticConfig = field(default_factory=CriticConfig)
    lr: float = 5e-4
    weight_decay: float = 5.9e-6
    batches_per_rating: int = 12
    batch_size: int = 16
    augment: bool = True  # gain and noise jitter on the cached features
    gain_db: float = 6.0  # ± range of the gain jitter
    noise: float = 0.05  # feature noise, in units of each coefficient's spread
    temperature: float = 0.1  # MH acceptance (f'/f)^(1/s); s → 0 is hill climbing
    chains: int = 64
    mh_steps: int = 24
    threshold: float = 0.95
    threshold_budget: int = 2000  # proposals per chain in threshold mode

    def with_overrides(self, **values) -> Preset:
        """A copy with fields replaced; `critic.NAME` keys set critic settings."""
        critic = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("critic.")}
        own = {k: v for k, v in values.items() if not k.startswith("critic.")}
        known = {f.name for f in fields(self)}
        unknown = sorted(set(own) - known)
        if unknown:
            raise ValueError(f"unknown preset settings: {', '.join(unknown)}")
        return replace(self, critic=replace(self.critic, **critic), **own)


PRESETS: dict[str, Preset] = {
    # Tuned with the proxy users (docs/results.md): 8 minibatches per rating, 16 chains of
    # 16 steps, threshold budget 200 learned as much as more work did, 6–11× faster.
    # The critic also sees where the hits fall (critic.StepEnvelope, 8 bands).
    "default": Preset("default", critic=CriticConfig(step_bands=8), batches_per_rating=8,
                      chains=16, mh_steps=16, threshold_budget=200),
    # The original: 44.1 kHz features, 40 minibatches of 16 per rating, Adam 5.7e-5.
    "paper": Preset("paper", critic=CriticConfig.paper(), lr=5.7e-5, weight_decay=5.9e-6,
                    batches_per_rating=40, batch_size=16, augment=False, temperature=1.0,
                    chains=1, mh_steps=100),
}


class Learner:
    """The critic and everything it learned from. Thread-safe."""

    def __init__(self, bank: SampleBank, preset: Preset | str = "default",
                 device: torch.device | str | None = None, seed: int = 0) -> None:
        self.preset = PRESETS[preset] if isinstance(preset, str) else preset
        self.device = torch.device(device) if device is not None else pick_device()
        self.bank = bank
        self.features = LoopFeatures(bank, self.preset.critic, self.device)
        self.seed = seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.critic = Critic(self.preset.critic).to(self.device)
        self.critic.set_input_stats(self.features(random_batch(
            INPUT_STATS_LOOPS, len(bank), torch.Generator().manual_seed(seed))))
        self.critic.to(self.device).eval()
        self.optimizer = self._new_optimizer()
        self._generator = torch.Generator().manual_seed(seed + 7919)
        self._inputs: list[torch.Tensor] = []  # one [1, n_mfcc, frames] per rated loop
        self._unfeatured: list[LoopBatch] = []  # rated loops whose features are not made yet
        self._featuring = threading.Lock()
        self._labels: list[int] = []
        self._owed = 0  # minibatches still to train for the ratings received
        self._steps = 0
        self._trained_on = 0  # ratings whose training is complete
        self.version = 0  # bumps whenever the critic's weights change
        self._lock = threading.RLock()  # the critic and optimizer
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._deadline: Callable[[], float | None] | None = None
        self._scorer: LoopScorer | None = None
        self.update_seconds: list[float] = []  # wall time of each rating's whole update

    def _new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.critic.parameters(), lr=self.preset.lr,
                                weight_decay=self.preset.weight_decay)

    # -- ratings -------------------------------------------------------------------------
    @property
    def n_ratings(self) -> int:
        return len(self._labels)

    def add_rating(self, loop: Loop, liked: bool, train: bool = True) -> None:
        """Keep the loop and owe it a round of training. Returns at once: its features are
        computed by the training thread, so a rating's reply never waits for a render.

        Raises KeyError when the loop uses a sample that is not in the bank.
        """
        batch = LoopBatch.from_loops([loop], self.bank)
        with self._wake:
            self._unfeatured.append(batch)
            self._labels.append(int(bool(liked)))
            if train:
                self._owed += self.preset.batches_per_rating
                self._rating_started = time.perf_counter()
            else:
                self._trained_on = len(self._labels) if self._owed == 0 else self._trained_on
            self._wake.notify_all()

    def _compute_features(self) -> None:
        """MFCC of the loops rated since last time, in one batch, in rating order."""
        with self._featuring:
            with self._wake:
                batches, self._unfeatured = self._unfeatured, []
            if batches:
                features = self.features(LoopBatch.cat(batches))
                with self._wake:
                    self._inputs.extend(features)

    @property
    def learned(self) -> int:
        """Ratings whose training is complete (the rest are still owed)."""
        return self._trained_on

    @property
    def owed(self) -> int:
        return self._owed

    @property
    def training(self) -> bool:
        """Training is owed or under way (what status lines and `/dd/status` report)."""
        return self._owed > 0

    # -- training ------------------------------------------------------------------------
    def train_pending(self) -> int:
        """Train every owed minibatch now, in this thread. Returns how many ran."""
        done = 0
        while self._train_one():
            done += 1
        return done

    def _train_one(self) -> bool:
        """One minibatch, if one is owed. Balanced likes/dislikes, jittered features."""
        if self._owed <= 0:
            return False
        self._compute_features()
        with self._wake:
            if self._owed <= 0:
                return False
            inputs = torch.stack(self._inputs)
            labels = torch.tensor(self._labels[:len(inputs)])
        batch = self._minibatch(labels)
        x = inputs[batch].to(self.device)
        y = labels[batch].to(self.device)
        if self.preset.augment:
            x = self._augment(x)
        with self._lock:
            self.critic.train()
            with torch.random.fork_rng(devices=[]):  # dropout, reproducibly
                torch.manual_seed(self.seed * 1_000_003 + self._steps)
                loss = F.cross_entropy(self.critic(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.critic.eval()
            self._steps += 1
        with self._wake:
            self._owed -= 1
            per = self.preset.batches_per_rating
            if self._owed % per == 0:  # one more rating's round is complete: publish
                self._trained_on = len(self._labels) - self._owed // per
                if self._owed == 0:
                    self.update_seconds.append(time.perf_counter() - self._rating_started)
                self._publish()
                self._wake.notify_all()
        return True

    def _minibatch(self, labels: torch.Tensor) -> torch.Tensor:
        """Indices of one minibatch: half likes, half dislikes when both exist."""
        size = self.preset.batch_size
        likes = torch.nonzero(labels == 1).flatten()
        dislikes = torch.nonzero(labels == 0).flatten()
        if len(likes) and len(dislikes):
            half = size // 2
            pick = [likes[torch.randint(len(likes), (half,), generator=self._generator)],
                    dislikes[torch.randint(len(dislikes), (size - half,),
                                           generator=self._generator)]]
            return torch.cat(pick)
        return torch.randint(len(labels), (size,), generator=self._generator)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """A random gain (a shift of c0, the log-energy coefficient) and a little noise, so
        the critic learns the pattern and the sounds rather than one loudness."""
        p = self.preset
        g = torch.Generator().manual_seed(self.seed * 7_368_787 + self._steps)
        gain = (torch.rand(len(x), generator=g) * 2 - 1) * p.gain_db
        scale = math.sqrt(self.preset.critic.n_mels)  # ortho DCT: c0 = sum(dB) / sqrt(n_mels)
        x = x.clone()
        x[:, 0, 0, :] += (gain * scale).to(x.device)[:, None]
        spread = x.std(dim=(0, 3), keepdim=True).clamp(min=1e-3)
        noise = torch.randn(x.shape, generator=g).to(x.device)
        return x + noise * spread * p.noise

    def _publish(self) -> None:
        """New weights are ready for scoring."""
        self.version += 1

    def start(self, deadline: Callable[[], float | None] | None = None) -> Learner:
        """Train in a background thread from now on; `deadline()` gives the time.monotonic()
        by which the current slice must end (the next bar line) or None."""
        self._deadline = deadline
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="deepdrummer-learner",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        run_in_background()
        while True:
            with self._wake:
                while self._owed <= 0 and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
            end = time.monotonic() + SLICE_SECONDS
            limit = self._deadline() if self._deadline else None
            if limit is not None:
                if limit - time.monotonic() < 0.03:  # too close to a bar line: wait past it
                    time.sleep(max(0.0, limit - time.monotonic()) + 0.1)
                    continue
                end = min(end, limit)
            while time.monotonic() < end and not self._stop and self._train_one():
                pass
            time.sleep(0)  # let scoring and I/O threads in between slices

    def stop(self) -> None:
        """Stop the thread after its current minibatch. Owed training stays owed."""
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is owed (True) or the timeout passes (False)."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._wake:
            while self._owed > 0:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._wake.wait(left if left is not None else 0.5)
        return True

    # -- scoring and persistence ---------------------------------------------------------
    def scorer(self) -> LoopScorer:
        """A frozen copy of the current critic for scoring: cheap when nothing changed."""
        with self._lock:
            current = self._scorer
            if current is not None and current.version == self.version:
                return current
            version, learned = self.version, self._trained_on
            folded = FoldedCritic(self.critic)
        scorer = LoopScorer(self.features, folded, version=version, learned=learned)
        self._scorer = scorer
        return scorer

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        with self._lock:
            data = dict(extra or {})
            data.update(preset=self.preset.name, steps=self._steps, ratings=self.n_ratings)
            return save_critic(path, self.critic, data)

    def load(self, path: str | Path) -> dict:
        """Take the weights of a checkpoint made with the same critic settings."""
        critic, extra = load_critic(path, self.device)
        if critic.config != self.preset.critic:
            raise CheckpointError(f"{path} was made with other critic settings "
                                  f"(preset {extra.get('preset', '?')!r}); not loaded")
        with self._lock:
            self.critic.load_state_dict(critic.state_dict())
            self.critic.eval()
            self.optimizer = self._new_optimizer()
            self._steps = int(extra.get("steps", 0))
            self._publish()
        return extra
