"""Drum loops: a tracks × steps grid, one sample per track, a tempo.

`Loop` is a plain value (what is stored, sent and shown: samples by name); `LoopBatch` is the
same thing for many loops as tensors (samples by bank row), which the generator, the mutation
and the renderer work on without a Python loop over loops or steps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import torch

from .library import SampleBank

TRACKS = 4
STEPS = 16
DEFAULT_BPM = 120.0
DEFAULT_DENSITY = 0.25
P_FLIP = 0.05  # the paper's proposal: each cell flips with this probability…
P_SAMPLE = 0.15  # …and each track's sample is replaced with this one
FOTF_TRACK = 0  # four on the floor puts a hit on every beat of this track
STEPS_PER_BEAT = 4


@dataclass(frozen=True)
class Loop:
    """One loop. `grid[t][s]` is True when track t plays on step s."""

    grid: tuple[tuple[bool, ...], ...]
    samples: tuple[str, ...]
    bpm: float = DEFAULT_BPM

    def __post_init__(self) -> None:
        if len(self.grid) != len(self.samples):
            raise ValueError(f"{len(self.grid)} grid rows but {len(self.samples)} samples")
        if not self.grid or not self.grid[0]:
            raise ValueError("a loop needs at least one track and one step")
        if len({len(row) for row in self.grid}) > 1:
            raise ValueError("grid rows differ in length")
        if not 20.0 <= self.bpm <= 400.0:
            raise ValueError(f"bpm {self.bpm} is outside 20–400")

    @property
    def tracks(self) -> int:
        return len(self.grid)

    @property
    def steps(self) -> int:
        return len(self.grid[0]) if self.grid else 0

    @property
    def loop_id(self) -> str:
        """A short stable id: the same grid, samples and tempo always get the same id."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return {"bpm": float(self.bpm), "samples": list(self.samples),
                "grid": ["".join("x" if on else "." for on in row) for row in self.grid]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Loop:
        try:
            rows, samples = data["grid"], data["samples"]
            if isinstance(rows, str) or isinstance(samples, str):
                raise TypeError("grid and samples must be lists")
            if any(not isinstance(row, str) or set(row) - {"x", "."} for row in rows):
                raise TypeError("grid rows must be strings of 'x' and '.'")
            grid = tuple(tuple(ch == "x" for ch in row) for row in rows)
            return cls(grid, tuple(str(s) for s in samples), float(data.get("bpm", DEFAULT_BPM)))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a loop: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> Loop:
        return cls.from_dict(json.loads(text))

    def with_bpm(self, bpm: float) -> Loop:
        return Loop(self.grid, self.samples, bpm)


@dataclass
class LoopBatch:
    """Many loops of one shape: `grid` [B, T, S] bool, `samples` [B, T] long bank rows."""

    grid: torch.Tensor
    samples: torch.Tensor

    def __len__(self) -> int:
        return self.grid.shape[0]

    def __getitem__(self, index) -> LoopBatch:
        return LoopBatch(self.grid[index], self.samples[index])

    @classmethod
    def cat(cls, batches: list[LoopBatch]) -> LoopBatch:
        return cls(torch.cat([b.grid for b in batches]), torch.cat([b.samples for b in batches]))

    @classmethod
    def from_loops(cls, loops: list[Loop], bank: SampleBank) -> LoopBatch:
        """Loops of one shape → tensors; a sample missing from `bank` is a KeyError naming it."""
        if not loops:
            return cls(torch.zeros((0, TRACKS, STEPS), dtype=torch.bool),
                       torch.zeros((0, TRACKS), dtype=torch.long))
        if len({(loop.tracks, loop.steps) for loop in loops}) > 1:
            raise ValueError("loops in one batch must have the same tracks × steps")
        grid = torch.tensor([loop.grid for loop in loops], dtype=torch.bool)
        rows = torch.tensor([[bank.index(s) for s in loop.samples] for loop in loops],
                            dtype=torch.long)
        return cls(grid.reshape(len(loops), -1, grid.shape[-1]), rows.reshape(len(loops), -1))

    def to_loops(self, bank: SampleBank, bpm: float = DEFAULT_BPM) -> list[Loop]:
        grids = self.grid.cpu().tolist()
        rows = self.samples.cpu().tolist()
        return [Loop(tuple(tuple(r) for r in g), tuple(bank.names[i] for i in s), bpm)
                for g, s in zip(grids, rows, strict=True)]

    def keys(self) -> list[bytes]:
        """Hashable identity per loop (grid + samples), for keeping handed-out loops distinct."""
        grid = self.grid.reshape(len(self), -1).to(torch.uint8).cpu().numpy()
        rows = self.samples.cpu().numpy()
        return [g.tobytes() + r.tobytes() for g, r in zip(grid, rows, strict=True)]


@dataclass
class Constraints:
    """What a live player pins down: locked tracks keep their grid and/or sample; 4/4 kick."""

    locked_grid: tuple[bool, ...] = (False,) * TRACKS
    locked_sample: tuple[bool, ...] = (False,) * TRACKS
    reference: Loop | None = None  # the loop whose locked tracks are kept
    four_on_the_floor: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.four_on_the_floor or (self.reference is not None
                                          and (any(self.locked_grid) or any(self.locked_sample)))

    def apply(self, batch: LoopBatch, bank: SampleBank) -> LoopBatch:
        """Force every loop of `batch` to obey the constraints (returns a new batch)."""
        if not self.active:
            return batch
        grid, rows = batch.grid.clone(), batch.samples.clone()
        if self.reference is not None:
            ref = LoopBatch.from_loops([self.reference], bank)
            tracks = min(grid.shape[1], ref.grid.shape[1])
            lock_g = _mask(self.locked_grid, tracks, grid.device)
            lock_s = _mask(self.locked_sample, tracks, grid.device)
            ref_grid = ref.grid[0, :tracks].to(grid.device)
            ref_rows = ref.samples[0, :tracks].to(rows.device)
            grid[:, :tracks][:, lock_g] = ref_grid[lock_g]
            rows[:, :tracks][:, lock_s] = ref_rows[lock_s]
        if self.four_on_the_floor:
            grid[:, FOTF_TRACK, ::STEPS_PER_BEAT] = True
        return LoopBatch(grid, rows)


def _mask(flags: tuple[bool, ...], tracks: int, device: torch.device) -> torch.Tensor:
    """Per-track lock flags as a mask of exactly `tracks` entries (missing ones unlocked)."""
    padded = (tuple(flags) + (False,) * tracks)[:tracks]
    return torch.tensor(padded, dtype=torch.bool, device=device)


def random_batch(n: int, n_samples: int, generator: torch.Generator, tracks: int = TRACKS,
                 steps: int = STEPS, density: float = DEFAULT_DENSITY) -> LoopBatch:
    """`n` loops with cells on with probability `density` and samples drawn uniformly."""
    grid = torch.rand((n, tracks, steps), generator=generator) < density
    rows = torch.randint(0, n_samples, (n, tracks), generator=generator)
    return LoopBatch(grid, rows)


def mutate_batch(batch: LoopBatch, n_samples: int, generator: torch.Generator,
                 p_flip: float = P_FLIP, p_sample: float = P_SAMPLE) -> LoopBatch:
    """The paper's symmetric proposal: flip cells with p_flip, redraw samples with p_sample.

    The random numbers come from `generator` on its own device (a CPU generator for a batch
    on the GPU too), so a seed gives the same proposals wherever the batch lives.
    """
    device = batch.grid.device
    flips = torch.rand(batch.grid.shape, generator=generator, device=generator.device) < p_flip
    redraw = torch.rand(batch.samples.shape, generator=generator,
                        device=generator.device) < p_sample
    fresh = torch.randint(0, n_samples, batch.samples.shape, generator=generator,
                          device=generator.device)
    flips, redraw, fresh = flips.to(device), redraw.to(device), fresh.to(device)
    return LoopBatch(batch.grid ^ flips, torch.where(redraw, fresh, batch.samples))


def random_loop(bank: SampleBank, seed: int, bpm: float = DEFAULT_BPM,
                density: float = DEFAULT_DENSITY, tracks: int = TRACKS,
                steps: int = STEPS) -> Loop:
    """One random loop, reproducible from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    batch = random_batch(1, len(bank), generator, tracks, steps, density)
    return batch.to_loops(bank, bpm)[0]
