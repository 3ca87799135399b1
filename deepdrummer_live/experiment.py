"""The paper's two-phase protocol, as one object that the CLI, the browser study and the tests
all drive the same way: ask for the next item, answer it, repeat until done.

Phase I: `phase1` loops, each sampled from the latest critic, which trains after every rating.
Phase II: the critic is frozen; `phase2` new loops from the initial (untrained) critic and
`phase2` from the final one, each found by threshold sampling (f ≥ preset.threshold), none
recycled from Phase I, shuffled so the rater cannot tell them apart. θ_init and θ_final are the
shares liked of each half; Δθ = θ_final − θ_init.

The protocol's state is plain JSON (`state_dict`/`from_state`), so a study survives a restart:
the critic is not stored but rebuilt by replaying the Phase I ratings (training is seeded, so
the replay gives the same critic), and Phase II's loops are stored once chosen.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from .critic import CriticConfig, LoopScorer
from .learner import PRESETS, Learner, Preset
from .library import SampleBank
from .loop import DEFAULT_BPM, Loop, LoopBatch
from .render import Renderer
from .sampler import Sampler

STATE_VERSION = 1


class ProtocolError(ValueError):
    """A request the protocol cannot honour (unknown item, a changed answer, …)."""


@dataclass(frozen=True)
class Item:
    """One loop to rate. `phase` is 1 or 2; in Phase II nothing says which critic chose it."""

    item_id: str
    phase: int
    index: int  # position within its phase, from 0
    total: int  # items in this phase
    loop: Loop

    def to_dict(self) -> dict:
        return {"item_id": self.item_id, "phase": self.phase, "index": self.index,
                "total": self.total, "loop": self.loop.to_dict()}


def preset_to_dict(preset: Preset) -> dict:
    data = asdict(preset)
    data["critic"] = preset.critic.to_dict()
    return data


def preset_from_dict(data: dict) -> Preset:
    own = {f.name for f in fields(Preset)}
    unknown = set(data) - own
    if unknown:
        raise ProtocolError(f"unknown preset settings in state: {sorted(unknown)}")
    values = dict(data)
    values["critic"] = CriticConfig.from_dict(values["critic"])
    return Preset(**values)


def _generator_state(generator: torch.Generator) -> str:
    return base64.b64encode(generator.get_state().numpy().tobytes()).decode()


def _set_generator_state(generator: torch.Generator, text: str) -> None:
    raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy()
    generator.set_state(torch.from_numpy(raw))


class Protocol:
    """One user's run of the two-phase protocol. Not thread-safe: one caller at a time.

    `next_item()` returns the item waiting for an answer (the same one until it is answered),
    or None when done; `answer(item_id, liked)` records it (answering again with the same
    verdict is a no-op; a different verdict is refused). Items never say which critic chose a
    Phase II loop, but `state_dict()` does: keep it on the server side.
    """

    def __init__(self, bank: SampleBank, preset: Preset | str = "default", seed: int = 0,
                 phase1: int = 80, phase2: int = 30, bpm: float = DEFAULT_BPM,
                 device: torch.device | str | None = "cpu") -> None:
        if isinstance(preset, str):
            if preset not in PRESETS:
                raise ProtocolError(f"unknown preset {preset!r}; choose one of "
                                    f"{', '.join(PRESETS)}")
            preset = PRESETS[preset]
        if phase1 < 0 or phase2 < 1:
            raise ProtocolError("phase1 must be ≥ 0 and phase2 ≥ 1")
        self.bank, self.preset, self.seed = bank, preset, seed
        self.phase1, self.phase2, self.bpm = phase1, phase2, bpm
        self.learner = Learner(bank, preset, device=device, seed=seed)
        self.initial: LoopScorer = self.learner.scorer()  # frozen copy of the untrained critic
        self.generator = torch.Generator().manual_seed(seed * 2 + 1)
        self.sampler = Sampler(bank, self.initial, preset, self.generator)
        self.phase1_items: list[dict] = []  # {item_id, loop, score, version, liked}
        self.phase2_items: list[dict] = []  # {item_id, loop, source, score, reached, proposals}
        self.seconds = {"train": 0.0, "sample": 0.0, "threshold": 0.0}

    # -- the step-by-step API ------------------------------------------------------------
    @property
    def phase(self) -> int:
        """1 during Phase I, 2 during Phase II, 3 when done."""
        if len(self.phase1_items) < self.phase1 or (
                self.phase1_items and self.phase1_items[-1]["liked"] is None):
            return 1
        if not self.phase2_items or any(i["liked"] is None for i in self.phase2_items):
            return 2
        return 3

    @property
    def done(self) -> bool:
        return self.phase == 3

    @property
    def answered(self) -> int:
        return sum(i["liked"] is not None for i in self.phase1_items + self.phase2_items)

    @property
    def total(self) -> int:
        return self.phase1 + 2 * self.phase2

    def next_item(self) -> Item | None:
        """The item to rate now (created on first ask; the same one until answered)."""
        phase = self.phase
        if phase == 1:
            if not self.phase1_items or self.phase1_items[-1]["liked"] is not None:
                self.phase1_items.append(self._new_phase1_item())
            return self._item(1, len(self.phase1_items) - 1)
        if phase == 2:
            if not self.phase2_items:
                self._build_phase2()
            index = next(i for i, item in enumerate(self.phase2_items) if item["liked"] is None)
            return self._item(2, index)
        return None

    def answer(self, item_id: str, liked: bool) -> bool:
        """Record a verdict. Returns True if it was new, False if it repeated the stored one."""
        if not isinstance(liked, (bool, np.bool_)):
            raise ProtocolError(f"a verdict must be True or False, not {liked!r}")
        liked = bool(liked)
        item = self._find(item_id)
        if item["liked"] is not None:
            if item["liked"] == liked:
                return False
            raise ProtocolError(f"item {item_id} was already rated "
                                f"{'like' if item['liked'] else 'dislike'}")
        item["liked"] = liked
        if item_id.startswith("1-"):
            self.learner.add_rating(Loop.from_dict(item["loop"]), liked, train=True)
        return True

    def _find(self, item_id: str) -> dict:
        for item in (self.phase1_items if str(item_id).startswith("1-") else self.phase2_items):
            if item["item_id"] == item_id:
                return item
        raise ProtocolError(f"no item {item_id!r} has been handed out")

    def _item(self, phase: int, index: int) -> Item:
        items = self.phase1_items if phase == 1 else self.phase2_items
        total = self.phase1 if phase == 1 else 2 * self.phase2
        data = items[index]
        return Item(data["item_id"], phase, index, total, Loop.from_dict(data["loop"]))

    # -- sampling ------------------------------------------------------------------------
    def _seen(self) -> set[str]:
        return {Loop.from_dict(i["loop"]).loop_id for i in self.phase1_items + self.phase2_items}

    def _new_phase1_item(self) -> dict:
        started = time.perf_counter()
        self.learner.train_pending()
        trained = time.perf_counter()
        scorer = self.learner.scorer()
        self.sampler.set_scorer(scorer)
        found = self.sampler.sample(1, exclude=self._seen(), bpm=self.bpm)
        if not found:
            raise ProtocolError("the sampler found no new loop")
        self.seconds["train"] += trained - started
        self.seconds["sample"] += time.perf_counter() - trained
        index = len(self.phase1_items)
        return {"item_id": f"1-{index:03d}", "loop": found[0].loop.to_dict(),
                "score": found[0].score, "version": scorer.version, "liked": None}

    def _build_phase2(self) -> None:
        """Threshold-sample the initial and the final critic, excluding everything seen."""
        started = time.perf_counter()
        self.learner.train_pending()
        self.seconds["train"] += time.perf_counter() - started
        started = time.perf_counter()
        final = self.learner.scorer()
        chosen: list[dict] = []
        exclude = self._seen()
        for source, scorer in (("init", self.initial), ("final", final)):
            self.sampler.set_scorer(scorer)
            results = self.sampler.threshold(self.phase2, exclude=exclude, bpm=self.bpm)
            if len(results) < self.phase2:
                raise ProtocolError(f"threshold sampling found {len(results)} of "
                                    f"{self.phase2} loops for the {source} critic")
            for r in results:
                exclude.add(r.candidate.loop.loop_id)
                chosen.append({"loop": r.candidate.loop.to_dict(), "source": source,
                               "score": r.candidate.score, "reached": r.reached,
                               "proposals": r.proposals, "liked": None})
        order = np.random.default_rng([self.seed, 31337]).permutation(len(chosen))
        self.phase2_items = [dict(chosen[i], item_id=f"2-{k:03d}") for k, i in enumerate(order)]
        self.seconds["threshold"] += time.perf_counter() - started

    # -- results -------------------------------------------------------------------------
    def results(self) -> dict:
        """θ_init, θ_final, Δθ and the details behind them (None for θ until Phase II ends)."""
        def theta(source: str) -> float | None:
            answers = [i["liked"] for i in self.phase2_items if i["source"] == source]
            if not answers or any(a is None for a in answers):
                return None
            return float(np.mean(answers))

        init, final = theta("init"), theta("final")
        reached = {s: [i["reached"] for i in self.phase2_items if i["source"] == s]
                   for s in ("init", "final")}
        proposals = {s: [i["proposals"] for i in self.phase2_items if i["source"] == s]
                     for s in ("init", "final")}
        phase1 = [i["liked"] for i in self.phase1_items if i["liked"] is not None]
        return {
            "seed": self.seed,
            "theta_init": init,
            "theta_final": final,
            "delta": None if init is None or final is None else final - init,
            "phase1_likes": [bool(x) for x in phase1],
            "phase1_like_rate": float(np.mean(phase1)) if phase1 else None,
            "reached_init": float(np.mean(reached["init"])) if reached["init"] else None,
            "reached_final": float(np.mean(reached["final"])) if reached["final"] else None,
            "proposals_init": float(np.mean(proposals["init"])) if proposals["init"] else None,
            "proposals_final": float(np.mean(proposals["final"])) if proposals["final"] else None,
            "seconds": dict(self.seconds),
        }

    # -- persistence ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume, as plain JSON-serialisable values."""
        return {"version": STATE_VERSION, "seed": self.seed, "phase1": self.phase1,
                "phase2": self.phase2, "bpm": self.bpm, "preset": preset_to_dict(self.preset),
                "phase1_items": [dict(i) for i in self.phase1_items],
                "phase2_items": [dict(i) for i in self.phase2_items],
                "generator": _generator_state(self.generator), "seconds": dict(self.seconds)}

    @classmethod
    def from_state(cls, bank: SampleBank, state: dict,
                   device: torch.device | str | None = "cpu") -> Protocol:
        """Resume from `state_dict()`: replays Phase I's ratings to rebuild the same critic."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ProtocolError("not a protocol state (or from another version)")
        try:
            protocol = cls(bank, preset_from_dict(state["preset"]), int(state["seed"]),
                           int(state["phase1"]), int(state["phase2"]), float(state["bpm"]),
                           device)
            protocol.phase1_items = [dict(i) for i in state["phase1_items"]]
            protocol.phase2_items = [dict(i) for i in state["phase2_items"]]
            protocol.seconds.update(state.get("seconds", {}))
            for item in protocol.phase1_items:  # loops must exist in this bank
                LoopBatch.from_loops([Loop.from_dict(item["loop"])], bank)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"bad protocol state: {exc}") from None
        if not protocol.phase2_items:  # the critic is still needed: rebuild it rating by rating
            for item in protocol.phase1_items:
                if item["liked"] is not None:
                    protocol.learner.train_pending()
                    protocol.learner.add_rating(Loop.from_dict(item["loop"]), item["liked"])
        _set_generator_state(protocol.generator, state["generator"])
        return protocol


# -- running simulated users -------------------------------------------------------------
Progress = Callable[[int, int], None]  # (answered, total) for the current user


def run_user(spec: str, rater: Callable[[np.ndarray, int], bool], bank: SampleBank,
             preset: Preset | str = "default", seed: int = 0, phase1: int = 80,
             phase2: int = 30, renderer: Renderer | None = None,
             progress: Progress | None = None, device: torch.device | str | None = "cpu"
             ) -> dict:
    """One simulated user through the whole protocol: each loop is rendered in listening form
    and handed to `rater`. A misbehaving rater raises `raters.RaterError` naming `spec`."""
    from .raters import ask

    started = time.perf_counter()
    renderer = renderer or Renderer(bank)
    protocol = Protocol(bank, preset, seed, phase1, phase2, device=device)
    rating_seconds = 0.0
    while (item := protocol.next_item()) is not None:
        t = time.perf_counter()
        audio = renderer.listening(LoopBatch.from_loops([item.loop], bank), item.loop.bpm)[0]
        liked = ask(spec, rater, audio.numpy(), bank.sample_rate)
        rating_seconds += time.perf_counter() - t
        protocol.answer(item.item_id, liked)
        if progress is not None:
            progress(protocol.answered, protocol.total)
    out = protocol.results()
    out["seconds"]["render_and_rate"] = rating_seconds
    out["seconds"]["total"] = time.perf_counter() - started
    return out


def bootstrap_ci(values: list[float], level: float = 0.95, resamples: int = 10000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, (resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2
    return (float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))


def summarise(users: list[dict]) -> dict:
    """Across users: means, the shares improved (Δθ > 0) and by ≥ 0.2, a 95 % bootstrap CI."""
    init = [u["theta_init"] for u in users]
    final = [u["theta_final"] for u in users]
    delta = [u["delta"] for u in users]
    n = len(users)
    low, high = bootstrap_ci(delta)
    p1 = [u["phase1_likes"] for u in users if u.get("phase1_likes")]
    first = [np.mean(x[:20]) for x in p1]
    last = [np.mean(x[-20:]) for x in p1]
    return {
        "n_users": n,
        "mean_theta_init": float(np.mean(init)) if n else None,
        "mean_theta_final": float(np.mean(final)) if n else None,
        "mean_delta": float(np.mean(delta)) if n else None,
        "median_delta": float(np.median(delta)) if n else None,
        "share_improved": float(np.mean([d > 0 for d in delta])) if n else None,
        "share_delta_ge_0_2": float(np.mean([d >= 0.2 - 1e-9 for d in delta])) if n else None,
        "share_worse": float(np.mean([d < 0 for d in delta])) if n else None,
        "delta_ci95": [low, high],
        "phase1_first20_like_rate": float(np.mean(first)) if first else None,
        "phase1_last20_like_rate": float(np.mean(last)) if last else None,
    }
