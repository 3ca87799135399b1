"""Teach the critic to hear *what sounds when* before it meets anyone's taste.

A critic trained from scratch on 80 answers has to learn, from those answers alone, where the
hits are and what they sound like. Any taste in drum loops is mostly a function of exactly that,
so we teach it first, without anybody's answers: on random loops of our kit, the critic's body
(its convolutions and dense layer) learns to predict the energy in 8 frequency bands at each of
the 16 steps of the bar. No rater, no label, no taste goes into it. Ratings then only have to
teach a readout of features that already exist, which takes far fewer of them.

The result ships as `weights/critic-pretrained.pt` and is rebuilt, identically for a seed, by
`deepdrummer-live pretrain`. A learner starts from it when its preset says `pretrained=True`;
its final (like / dislike) layer always starts fresh.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .critic import Critic, CriticConfig, LoopFeatures, load_critic, save_critic
from .library import SampleBank
from .loop import STEPS, LoopBatch, random_batch

WEIGHTS = Path(__file__).parent / "weights" / "critic-pretrained.pt"
BAND_GROUPS = 8


def step_profile(features: LoopFeatures, batch: LoopBatch) -> torch.Tensor:
    """[B, STEPS * BAND_GROUPS]: log energy per step and band group of each loop's bar."""
    with torch.inference_mode():
        front = features.front
        mel = front.power(features.audio(batch)) @ front.mel_fb  # [B, frames, n_mels]
        b, frames, mels = mel.shape
        per_step = frames // STEPS
        mel = mel[:, :per_step * STEPS].reshape(b, STEPS, per_step, mels).sum(2)
        groups = mel[..., :mels // BAND_GROUPS * BAND_GROUPS].reshape(b, STEPS, BAND_GROUPS, -1)
        return torch.log10(groups.sum(-1) + 1e-6).reshape(b, -1)


def random_loops(n: int, bank: SampleBank, generator: torch.Generator) -> LoopBatch:
    """Random loops from sparse to busy, so every density is heard."""
    parts = [random_batch(64, len(bank), generator, density=float(d))
             for d in torch.linspace(0.05, 0.6, max(1, n // 64))]
    return LoopBatch.cat(parts)[:n]


def pretrain(bank: SampleBank, config: CriticConfig = CriticConfig(), loops: int = 8192,
             epochs: int = 4, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
             log=print) -> Critic:
    """The critic's body trained to predict `step_profile` from MFCC; its head left fresh."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    features = LoopFeatures(bank, config, "cpu")
    batch = random_loops(loops, bank, generator)
    inputs = torch.cat([features(batch[i:i + 256]) for i in range(0, len(batch), 256)])
    targets = torch.cat([step_profile(features, batch[i:i + 256])
                         for i in range(0, len(batch), 256)])
    targets = (targets - targets.mean(0)) / targets.std(0).clamp(min=1e-3)
    critic = Critic(config)
    critic.set_input_stats(inputs)
    head = nn.Linear(config.dense, targets.shape[1])
    params = [p for name, p in critic.named_parameters() if not name.startswith("out.")]
    optimizer = torch.optim.Adam(params + list(head.parameters()), lr=lr)
    held = max(256, loops // 16)
    train_x, train_y = inputs[held:], targets[held:]
    start = time.perf_counter()
    for epoch in range(epochs):
        critic.train()
        order = torch.randperm(len(train_x), generator=generator)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            rows = order[i:i + batch_size]
            loss = F.mse_loss(head(body(critic, train_x[rows])), train_y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        critic.eval()
        with torch.no_grad():
            held_loss = F.mse_loss(head(body(critic, inputs[:held])), targets[:held]).item()
        log(f"epoch {epoch + 1}/{epochs}: held-out error {held_loss:.3f} of the targets' "
            f"variance ({time.perf_counter() - start:.0f} s)")
    return critic


def body(critic: Critic, features: torch.Tensor) -> torch.Tensor:
    """The dense layer's activations: what the like / dislike readout sees."""
    x = critic.conv((features - critic.input_shift) * critic.input_scale).flatten(1)
    return F.leaky_relu(critic.dense(x), critic.config.leak)


def load_pretrained(critic: Critic, path: Path = WEIGHTS) -> bool:
    """Copy the pretrained body into `critic` (same settings only); False when none fits."""
    if not path.exists():
        return False
    trained, _ = load_critic(path, "cpu")
    if trained.config != critic.config:
        return False
    state = {k: v for k, v in trained.state_dict().items() if not k.startswith("out.")}
    critic.load_state_dict(state, strict=False)
    return True


def save_pretrained(critic: Critic, path: Path = WEIGHTS, **extra) -> Path:
    return save_critic(path, critic, {"pretrained": True, **extra})
