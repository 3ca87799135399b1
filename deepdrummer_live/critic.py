"""The critic f(loop) = P(like): an MFCC front end and the paper's small CNN.

The critic hears one bar in steady state at its own rate (16 kHz by default) and the reference
tempo, so every input has one shape. Choices made by measurement on the 2-core CPU (see
docs/benchmarks-core.md):

- 16 kHz and a 200-sample hop: a step at 120 bpm is exactly 2000 samples, so the renderer takes its
  fast path and a hop covers a tenth of a step. The bar repeats, so frames are taken
  circularly: 160 frames, the fewest for which the paper's three (4, 8)/(2, 4) convolutions still
  fit (≥ 148), and no edge effects.
- 32 MFCC from 64 mel bands: the CNN's cost is mostly its second convolution, whose output
  grows with the number of coefficients; 32 learn as fast as 60 here and cost half as much.
- Inference uses a copy with BatchNorm folded into the next layer, channels-last memory and no
  autograd (`FoldedCritic`). Large temporary tensors make glibc mmap and unmap pages on every
  call, which costs more than the arithmetic on these VMs: `tune_allocator()` keeps them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchaudio.functional as AF

from .devices import pick_device
from .library import SampleBank
from .loop import STEPS, LoopBatch
from .render import Renderer

CRITIC_RATE = 16000
REFERENCE_BPM = 120.0
FORMAT = "deepdrummer-live critic"
FORMAT_VERSION = 1
SCORE_CHUNK = 128  # loops per inner step when scoring: bounds memory, near-best speed


class CheckpointError(ValueError):
    """A critic checkpoint that cannot be used; the message names the file and says why."""


@dataclass(frozen=True)
class CriticConfig:
    """Everything that fixes the critic's input and shape (saved with its weights)."""

    sample_rate: int = CRITIC_RATE
    bar_seconds: float = 2.0  # one bar of 16 steps at the reference tempo
    n_fft: int = 256
    hop: int = 200
    n_mels: int = 40
    n_mfcc: int = 32
    f_min: float = 0.0
    f_max: float | None = None
    top_db: float | None = 80.0
    circular: bool = True  # frames wrap around the bar (it repeats); else centre + reflect
    channels: tuple[int, ...] = (64, 64, 64, 8)
    kernel: tuple[int, int] = (4, 8)
    stride: tuple[int, int] = (2, 4)
    dense: int = 128
    step_bands: int = 0  # > 0: also where hits fall, in this many bands (StepEnvelope)
    dropout: float = 0.167
    leak: float = 0.01

    @classmethod
    def paper(cls) -> CriticConfig:
        """The original: 44.1 kHz, torchaudio's MFCC defaults, 60 coefficients, 442 frames."""
        return cls(sample_rate=44100, n_fft=400, n_mels=128, n_mfcc=60, circular=False)

    @property
    def bar_samples(self) -> int:
        return round(self.sample_rate * self.bar_seconds)

    @property
    def frames(self) -> int:
        if self.circular:
            return -(-self.bar_samples // self.hop)
        return self.bar_samples // self.hop + 1

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        return (1, self.n_mfcc, self.frames)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> CriticConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown critic settings: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def tune_allocator() -> bool:
    """Keep freed large blocks in the heap instead of returning them to the OS.

    Every batch allocates tens of MB of temporaries; with glibc's defaults each one is a fresh
    mmap and every page faults on first touch. Measured here: STFT 3.3× and CNN 2.2× faster.
    Idempotent; a no-op (False) off glibc or when `DEEPDRUMMER_NO_MALLOPT` is set.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED is not None:
        return _ALLOCATOR_TUNED
    _ALLOCATOR_TUNED = False
    if sys.platform.startswith("linux") and not os.environ.get("DEEPDRUMMER_NO_MALLOPT"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
            ok = libc.mallopt(m_mmap_max, 0)
            ok &= libc.mallopt(m_trim_threshold, 512 << 20)
            ok &= libc.mallopt(m_top_pad, 64 << 20)
            _ALLOCATOR_TUNED = bool(ok)
        except (OSError, AttributeError):
            pass
    return _ALLOCATOR_TUNED


_ALLOCATOR_TUNED: bool | None = None


class MfccFrontEnd(nn.Module):
    """Audio [B, n] (or [B, 1, n]) → MFCC [B, 1, n_mfcc, frames].

    Same maths as torchaudio's MFCC (power spectrogram, HTK mel, dB with a per-example top_db
    clamp, orthonormal DCT-II) with the mel scale at the audio's own rate, |X|² as re² + im²,
    and optional circular framing.
    """

    def __init__(self, config: CriticConfig = CriticConfig()) -> None:
        super().__init__()
        self.config = config
        n_freqs = config.n_fft // 2 + 1
        with warnings.catch_warnings():  # the paper's 128 bands leave some low ones empty
            warnings.simplefilter("ignore")
            fb = AF.melscale_fbanks(n_freqs, config.f_min,
                                    config.f_max or config.sample_rate / 2, config.n_mels,
                                    config.sample_rate)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.register_buffer("mel_fb", fb.contiguous(), persistent=False)
        self.register_buffer("dct", AF.create_dct(config.n_mfcc, config.n_mels, "ortho"),
                             persistent=False)

    def power(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, n] → power spectrogram [B, frames, n_fft // 2 + 1]."""
        c = self.config
        if c.circular:
            half = c.n_fft // 2
            padded = torch.cat([audio[:, -half:], audio, audio[:, :half]], dim=1)
            frames = padded.unfold(1, c.n_fft, c.hop)[:, :c.frames]
            spec = torch.fft.rfft(frames * self.window)
        else:
            spec = torch.stft(audio, c.n_fft, c.hop, window=self.window, center=True,
                              pad_mode="reflect", return_complex=True).transpose(1, 2)
        return spec.real.square() + spec.imag.square()  # 3× faster than abs() or view_as_real

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 3:
            audio = audio[:, 0]
        mel = self.power(audio) @ self.mel_fb  # [B, frames, n_mels]
        db = torch.log10(mel.clamp_(min=1e-10)).mul_(10.0)
        if self.config.top_db is not None:  # per example, as torchaudio does for [B, 1, n]
            floor = db.amax(dim=(1, 2), keepdim=True) - self.config.top_db
            db = torch.maximum(db, floor)
        return (db @ self.dct).transpose(1, 2).unsqueeze(1)


class StepEnvelope(nn.Module):
    """MFCC [B, 1, n_mfcc, frames] → where the hits fall: per step and band, the largest rise
    in level and the peak level below the bar's loudest, in dB [B, 2 × bands × steps].

    Handed to the dense layer beside the convolutions: the paper's CNN squeezes a bar into a
    few numbers (16 here), so a taste for rhythm (a kick on each beat, a backbeat, sparseness)
    had to be found through that bottleneck, and 80 ratings rarely sufficed (offline AUC of
    rhythm tastes ≈ 0.5; with this, 0.56–0.71: docs/results.md). The log-mel spectrum is
    recovered from the MFCC (the DCT is orthonormal) and averaged into `step_bands` bands. Both
    measures ignore the overall gain, so the critic's gain augmentation leaves them alone.
    """

    def __init__(self, config: CriticConfig, steps: int = STEPS) -> None:
        super().__init__()
        self.steps = steps
        self.circular = config.circular
        dct = AF.create_dct(config.n_mfcc, config.n_mels, "ortho")  # [n_mels, n_mfcc]
        edges = torch.linspace(0, config.n_mels, config.step_bands + 1).round().long()
        average = torch.zeros(config.n_mels, config.step_bands)
        for band, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            average[lo:hi, band] = 1.0 / max(1, int(hi - lo))
        self.register_buffer("to_bands", dct.T @ average, persistent=False)  # [n_mfcc, bands]
        self.groups = 2 * config.step_bands  # rise and level of each band
        self.size = steps * self.groups

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        bands = features[:, 0].transpose(1, 2) @ self.to_bands  # [B, frames, bands] in dB
        previous = bands.roll(1, dims=1) if self.circular else F.pad(
            bands[:, :-1], (0, 0, 1, 0), mode="replicate")
        rise = (bands - previous).clamp(min=0)
        level = bands - bands.amax(dim=1, keepdim=True)
        both = torch.cat([rise, level], dim=2).transpose(1, 2)  # [B, 2 × bands, frames]
        return F.adaptive_max_pool1d(both, self.steps).flatten(1)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class Critic(nn.Module):
    """MFCC [B, 1, n_mfcc, frames] → logits [B, 2] (index 1 = like). The paper's CNN:
    conv → LeakyReLU → dropout → BatchNorm, three times (4, 8)/(2, 4) and one 1×1 to 8 channels,
    then dense 128 → 2."""

    def __init__(self, config: CriticConfig = CriticConfig()) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in, height, width = 1, config.n_mfcc, config.frames
        for i, c_out in enumerate(config.channels):
            last = i == len(config.channels) - 1
            kernel, stride = ((1, 1), (1, 1)) if last else (config.kernel, config.stride)
            height = _conv_out(height, kernel[0], stride[0])
            width = _conv_out(width, kernel[1], stride[1])
            if height < 1 or width < 1:
                raise ValueError(f"input {config.n_mfcc}×{config.frames} is too small for "
                                 f"{len(config.channels)} convolutions")
            layers += [nn.Conv2d(c_in, c_out, kernel, stride), nn.LeakyReLU(config.leak)]
            if not last:
                layers.append(nn.Dropout(config.dropout))
            layers.append(nn.BatchNorm2d(c_out))
            c_in = c_out
        self.conv = nn.Sequential(*layers)
        # Per-coefficient standardisation of the input (c0 is in the hundreds, the rest near
        # one): set once from random loops by `set_input_stats`, saved with the weights.
        self.register_buffer("input_shift", torch.zeros(1, 1, config.n_mfcc, 1))
        self.register_buffer("input_scale", torch.ones(1, 1, config.n_mfcc, 1))
        self.flat = c_in * height * width
        self.envelope = StepEnvelope(config) if config.step_bands else None
        extra = self.envelope.size if self.envelope is not None else 0
        if self.envelope is not None:
            self.register_buffer("envelope_shift", torch.zeros(1, extra))
            self.register_buffer("envelope_scale", torch.ones(1, extra))
        self.dense = nn.Linear(self.flat + extra, config.dense)
        self.out = nn.Linear(config.dense, 2)

    def set_input_stats(self, features: torch.Tensor) -> None:
        """Standardise inputs with the mean and spread of `features` [B, 1, n_mfcc, frames]."""
        with torch.no_grad():
            mean = features.mean(dim=(0, 3), keepdim=True)
            std = features.std(dim=(0, 3), keepdim=True).clamp(min=1e-3)
            self.input_shift.copy_(mean.to(self.input_shift))
            self.input_scale.copy_((1.0 / std).to(self.input_scale))
            if self.envelope is not None:  # per band and measure, pooled over steps
                steps = self.envelope(features.to(self.input_shift.device))
                per_band = steps.view(len(steps), self.envelope.groups, self.envelope.steps)
                mean = per_band.mean(dim=(0, 2), keepdim=True).expand_as(per_band[:1])
                std = per_band.std(dim=(0, 2), keepdim=True).clamp(min=1e-3)
                self.envelope_shift.copy_(mean.reshape(1, -1))
                self.envelope_scale.copy_((1.0 / std).expand_as(per_band[:1]).reshape(1, -1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.conv((features - self.input_shift) * self.input_scale).flatten(1)
        if self.envelope is not None:
            steps = (self.envelope(features) - self.envelope_shift) * self.envelope_scale
            x = torch.cat([x, steps], dim=1)
        return self.out(F.leaky_relu(self.dense(x), self.config.leak))

    def probability(self, features: torch.Tensor) -> torch.Tensor:
        """P(like) [B] in the module's current mode (call .eval() for inference)."""
        return self.forward(features).softmax(-1)[:, 1]

    @property
    def device(self) -> torch.device:
        return self.out.weight.device


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class FoldedCritic(nn.Module):
    """Inference-only copy of a `Critic`: each BatchNorm (which follows a LeakyReLU) folded into
    the next layer's weights, dropout dropped, channels-last. Same output as `Critic.eval()`."""

    def __init__(self, critic: Critic) -> None:
        super().__init__()
        self.leak = critic.config.leak
        convs = [m for m in critic.conv if isinstance(m, nn.Conv2d)]
        norms = [m for m in critic.conv if isinstance(m, nn.BatchNorm2d)]
        self.convs = nn.ModuleList()
        scale = shift = None  # the previous BatchNorm as y = x * scale + shift per channel
        with torch.no_grad():
            for conv, norm in zip(convs, norms, strict=True):
                folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                   conv.stride).to(conv.weight.device)
                weight, bias = conv.weight.clone(), conv.bias.clone()
                if scale is not None:
                    bias += (weight * shift[None, :, None, None]).sum((1, 2, 3))
                    weight *= scale[None, :, None, None]
                folded.weight.copy_(weight)
                folded.bias.copy_(bias)
                self.convs.append(folded)
                scale, shift = _bn_affine(norm)
            dense = nn.Linear(critic.dense.in_features, critic.dense.out_features)
            dense = dense.to(critic.dense.weight.device)
            spatial = critic.flat // len(scale)
            scale_f, shift_f = scale.repeat_interleave(spatial), shift.repeat_interleave(spatial)
            conv_part = critic.dense.weight[:, :critic.flat]  # the step envelope passes unscaled
            dense.weight.copy_(critic.dense.weight)
            dense.weight[:, :critic.flat] *= scale_f[None, :]
            dense.bias.copy_(critic.dense.bias + conv_part @ shift_f)
            self.dense = dense
            self.out = nn.Linear(critic.out.in_features, 2).to(critic.out.weight.device)
            self.out.load_state_dict(critic.out.state_dict())
        self.register_buffer("input_shift", critic.input_shift.detach().clone())
        self.register_buffer("input_scale", critic.input_scale.detach().clone())
        self.envelope = critic.envelope
        if self.envelope is not None:
            self.register_buffer("envelope_shift", critic.envelope_shift.detach().clone())
            self.register_buffer("envelope_scale", critic.envelope_scale.detach().clone())
        self.requires_grad_(False)
        self.eval()
        self.to(memory_format=torch.channels_last)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """MFCC [B, 1, n_mfcc, frames] → P(like) [B]."""
        x = ((features - self.input_shift) * self.input_scale
             ).contiguous(memory_format=torch.channels_last)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.leak, inplace=True)
        x = x.flatten(1)
        if self.envelope is not None:
            steps = (self.envelope(features) - self.envelope_shift) * self.envelope_scale
            x = torch.cat([x, steps], dim=1)
        x = F.leaky_relu(self.dense(x), self.leak, inplace=True)
        logits = self.out(x)
        return torch.sigmoid(logits[:, 1] - logits[:, 0])  # = softmax(logits)[:, 1]


def _bn_affine(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


class LoopFeatures:
    """LoopBatch → critic input: render one bar at the reference tempo, at the critic's rate,
    then MFCC. Holds its own resampled bank and renderer, so it is cheap to call repeatedly."""

    def __init__(self, bank: SampleBank, config: CriticConfig = CriticConfig(),
                 device: torch.device | str | None = None) -> None:
        tune_allocator()
        self.config = config
        self.device = torch.device(device) if device is not None else pick_device()
        self.bank = bank.resampled(config.sample_rate)
        self.renderer = Renderer(self.bank, self.device)
        self.front = MfccFrontEnd(config).to(self.device)
        steps = STEPS
        bar = self.renderer.bar(LoopBatch(torch.zeros(1, 1, steps, dtype=torch.bool),
                                          torch.zeros(1, 1, dtype=torch.long)), REFERENCE_BPM)
        if bar.shape[1] != config.bar_samples:
            raise ValueError(f"a bar renders to {bar.shape[1]} samples, the critic expects "
                             f"{config.bar_samples}")

    def audio(self, batch: LoopBatch) -> torch.Tensor:
        """[B, bar_samples]: what the critic hears."""
        return self.renderer.bar(batch, REFERENCE_BPM)

    def __call__(self, batch: LoopBatch) -> torch.Tensor:
        with torch.inference_mode():
            return self.front(self.audio(batch))


class LoopScorer:
    """A callable LoopBatch → P(like) [B] on the CPU, from a frozen `FoldedCritic`.

    Thread-safe: it holds no mutable state beyond the renderer's caches (filled at creation).
    """

    def __init__(self, features: LoopFeatures, critic: Critic | FoldedCritic,
                 version: int = 0, learned: int = 0, chunk: int = SCORE_CHUNK) -> None:
        self.features = features
        self.critic = critic if isinstance(critic, FoldedCritic) else FoldedCritic(critic)
        self.critic.to(features.device)
        self.version = version  # the learner's version of the critic this scorer froze
        self.learned = learned  # ratings this critic had fully trained on
        self.chunk = chunk

    def __call__(self, batch: LoopBatch) -> torch.Tensor:
        out = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.chunk):
                part = batch[start:start + self.chunk]
                out.append(self.critic(self.features.front(self.features.audio(part))))
        if not out:
            return torch.zeros(0)
        return torch.cat(out).float().cpu()


def save_critic(path: str | Path, critic: Critic, extra: dict | None = None) -> Path:
    """Write weights + config (+ `extra`: plain values and tensors only) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "config": critic.config.to_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in critic.state_dict().items()},
               "extra": extra or {}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, loaded without unpickling code; CheckpointError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"critic checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, random bytes…
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable critic checkpoint "
                              f"(corrupt, truncated or not a torch file: {reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a DeepDrummer Live critic checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version "
                              f"{payload.get('format_version')}, expected {FORMAT_VERSION}")
    return payload


def load_critic(path: str | Path, device: torch.device | str | None = None
                ) -> tuple[Critic, dict]:
    """(critic in eval mode on `device`, the extra dict). Raises CheckpointError naming the file."""
    payload = read_checkpoint(path)
    try:
        config = CriticConfig.from_dict(payload["config"])
        critic = Critic(config)
        critic.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise CheckpointError(f"{path} does not hold a usable critic ({reason})") from None
    critic.to(torch.device(device) if device is not None else pick_device()).eval()
    return critic, dict(payload.get("extra") or {})


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
