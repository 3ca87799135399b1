"""Loops: JSON round trips, the paper's mutation rates, random density, and live constraints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from deepdrummer_live.library import SampleBank
from deepdrummer_live.loop import (
    FOTF_TRACK,
    P_FLIP,
    P_SAMPLE,
    STEPS,
    TRACKS,
    Constraints,
    Loop,
    LoopBatch,
    mutate_batch,
    random_batch,
    random_loop,
)


def _within(observed: float, p: float, trials: int, sigmas: float = 5.0) -> bool:
    """`observed` is a binomial rate of `trials` draws of probability `p`, within `sigmas`."""
    return abs(observed - p) <= sigmas * math.sqrt(p * (1 - p) / trials)


# --- values and JSON ---------------------------------------------------------------------------


def test_json_round_trip(kit_bank: SampleBank) -> None:
    for seed in range(20):
        loop = random_loop(kit_bank, seed, bpm=90.0 + seed, density=seed / 19)
        text = loop.to_json()
        assert Loop.from_json(text) == loop
        assert Loop.from_json(text).loop_id == loop.loop_id
        assert Loop.from_dict(json.loads(text)) == loop
    data = loop.to_dict()
    assert set(data) == {"bpm", "samples", "grid"}
    assert all(len(row) == STEPS and set(row) <= {"x", "."} for row in data["grid"])
    assert loop.tracks == TRACKS and loop.steps == STEPS


def test_loop_id_is_stable_and_distinct(kit_bank: SampleBank) -> None:
    loop = random_loop(kit_bank, 3)
    assert random_loop(kit_bank, 3) == loop and random_loop(kit_bank, 3).loop_id == loop.loop_id
    assert loop.with_bpm(100.0).loop_id != loop.loop_id  # tempo is part of the loop
    assert loop.with_bpm(100.0).with_bpm(loop.bpm) == loop
    ids = {random_loop(kit_bank, seed).loop_id for seed in range(200)}
    assert len(ids) == 200
    assert hash(loop) == hash(Loop.from_json(loop.to_json()))  # usable as a dict key


@pytest.mark.parametrize("text", [
    "[]", "null", '"x..."', "{}", '{"grid": ["x..."]}',
    '{"grid": "x...", "samples": ["a"]}',
    '{"grid": ["x..o"], "samples": ["a"]}',
    '{"grid": ["x...", "x.."], "samples": ["a", "b"]}',
    '{"grid": ["x..."], "samples": ["a", "b"]}',
    '{"grid": [], "samples": []}',
    '{"grid": ["x..."], "samples": ["a"], "bpm": 1000}',
    '{"grid": ["x..."], "samples": ["a"], "bpm": "fast"}',
    '{"grid": ["x..."], "samples": ["a"], "bpm": NaN}',
    "not json",
])
def test_bad_json_is_a_clear_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        Loop.from_json(text)


def test_batch_round_trip(kit_bank: SampleBank) -> None:
    loops = [random_loop(kit_bank, seed, bpm=100.0) for seed in range(10)]
    batch = LoopBatch.from_loops(loops, kit_bank)
    assert batch.grid.shape == (10, TRACKS, STEPS) and batch.grid.dtype == torch.bool
    assert batch.samples.shape == (10, TRACKS) and batch.samples.dtype == torch.long
    assert batch.to_loops(kit_bank, 100.0) == loops
    assert batch[3:5].to_loops(kit_bank, 100.0) == loops[3:5]
    assert LoopBatch.cat([batch[:4], batch[4:]]).to_loops(kit_bank, 100.0) == loops
    assert len(set(batch.keys())) == 10 and batch[2:3].keys() == [batch.keys()[2]]
    empty = LoopBatch.from_loops([], kit_bank)
    assert len(empty) == 0 and empty.to_loops(kit_bank) == []
    foreign = Loop(loops[0].grid, ("kick/not_in_the_kit.wav",) * TRACKS)
    with pytest.raises(KeyError, match="not_in_the_kit"):
        LoopBatch.from_loops([foreign], kit_bank)


# --- random generation and mutation ------------------------------------------------------------


@pytest.mark.parametrize("density", [0.0, 0.1, 0.25, 0.6, 1.0])
def test_random_density(density: float) -> None:
    n, n_samples = 4000, 50
    batch = random_batch(n, n_samples, torch.Generator().manual_seed(1), density=density)
    cells = n * TRACKS * STEPS
    assert _within(batch.grid.float().mean().item(), density, cells)
    per_step = batch.grid.float().mean(dim=(0, 1))  # no step or track is favoured
    assert all(_within(p, density, n * TRACKS) for p in per_step.tolist())
    counts = torch.bincount(batch.samples.reshape(-1), minlength=n_samples).double()
    assert _within_counts(counts, n * TRACKS / n_samples)


def _within_counts(counts: torch.Tensor, expected: float) -> bool:
    """Uniform counts: a chi-square statistic well within its 5-sigma bound."""
    dof = len(counts) - 1
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    return chi2 < dof + 5 * math.sqrt(2 * dof)


def test_mutation_rates_match_the_paper() -> None:
    n, n_samples = 20000, 40
    generator = torch.Generator().manual_seed(7)
    before = random_batch(n, n_samples, generator, density=0.3)
    kept = before.grid.clone(), before.samples.clone()
    after = mutate_batch(before, n_samples, generator)
    flipped = before.grid ^ after.grid
    on, off = before.grid, ~before.grid
    assert _within(flipped.float().mean().item(), P_FLIP, flipped.numel())
    # Symmetric: an off cell turns on exactly as often as an on cell turns off.
    assert _within(flipped[on].float().mean().item(), P_FLIP, int(on.sum()))
    assert _within(flipped[off].float().mean().item(), P_FLIP, int(off.sum()))
    # A redrawn sample may draw the one it had: the observed change rate is p·(1 − 1/N).
    changed = before.samples != after.samples
    assert _within(changed.float().mean().item(), P_SAMPLE * (1 - 1 / n_samples), changed.numel())
    assert all(_within(p, P_SAMPLE * (1 - 1 / n_samples), n)
               for p in changed.float().mean(dim=0).tolist())  # every track alike
    fresh = after.samples[changed]
    counts = torch.bincount(fresh, minlength=n_samples).double()
    assert _within_counts(counts, len(fresh) / n_samples)
    assert torch.equal(before.grid, kept[0]) and torch.equal(before.samples, kept[1])


def test_mutation_is_reproducible_and_custom_rates() -> None:
    batch = random_batch(64, 10, torch.Generator().manual_seed(0))
    one = mutate_batch(batch, 10, torch.Generator().manual_seed(5))
    two = mutate_batch(batch, 10, torch.Generator().manual_seed(5))
    assert torch.equal(one.grid, two.grid) and torch.equal(one.samples, two.samples)
    same = mutate_batch(batch, 10, torch.Generator().manual_seed(5), p_flip=0.0, p_sample=0.0)
    assert torch.equal(same.grid, batch.grid) and torch.equal(same.samples, batch.samples)
    every = mutate_batch(batch, 10, torch.Generator().manual_seed(5), p_flip=1.0)
    assert torch.equal(every.grid, ~batch.grid)


# --- constraints -------------------------------------------------------------------------------


def test_locks_keep_the_reference_tracks(kit_bank: SampleBank) -> None:
    reference = random_loop(kit_bank, 11, density=0.5)
    ref = LoopBatch.from_loops([reference], kit_bank)
    constraints = Constraints(locked_grid=(True, False, False, True),
                              locked_sample=(False, True, False, True), reference=reference)
    assert constraints.active
    generator = torch.Generator().manual_seed(2)
    batch = random_batch(500, len(kit_bank), generator)
    fixed = constraints.apply(batch, kit_bank)
    assert torch.equal(batch.grid, random_batch(500, len(kit_bank),
                                                torch.Generator().manual_seed(2)).grid)
    for track in range(TRACKS):
        grid_kept = (fixed.grid[:, track] == ref.grid[0, track]).all(dim=1)
        sample_kept = fixed.samples[:, track] == ref.samples[0, track]
        if constraints.locked_grid[track]:
            assert grid_kept.all()
        else:
            assert torch.equal(fixed.grid[:, track], batch.grid[:, track])
        if constraints.locked_sample[track]:
            assert sample_kept.all()
        else:
            assert torch.equal(fixed.samples[:, track], batch.samples[:, track])
    mutated = constraints.apply(mutate_batch(fixed, len(kit_bank), generator), kit_bank)
    assert torch.equal(mutated.grid[:, 0], fixed.grid[:, 0])  # locks survive the proposal
    assert torch.equal(mutated.samples[:, 3], fixed.samples[:, 3])


def test_four_on_the_floor(kit_bank: SampleBank) -> None:
    batch = random_batch(300, len(kit_bank), torch.Generator().manual_seed(4), density=0.2)
    fixed = Constraints(four_on_the_floor=True).apply(batch, kit_bank)
    beats = torch.zeros(STEPS, dtype=torch.bool)
    beats[::4] = True
    assert fixed.grid[:, FOTF_TRACK, beats].all()
    off_beats = fixed.grid[:, FOTF_TRACK, ~beats]
    assert torch.equal(off_beats, batch.grid[:, FOTF_TRACK, ~beats])  # the rest is free
    others = [t for t in range(TRACKS) if t != FOTF_TRACK]
    assert torch.equal(fixed.grid[:, others], batch.grid[:, others])
    assert torch.equal(fixed.samples, batch.samples)


def test_locks_with_four_on_the_floor_and_inactive(kit_bank: SampleBank) -> None:
    reference = Loop(((False,) * STEPS,) * TRACKS, tuple(kit_bank.names[:TRACKS]))
    batch = random_batch(50, len(kit_bank), torch.Generator().manual_seed(9))
    both = Constraints(locked_grid=(True, True, False, False), reference=reference,
                       four_on_the_floor=True).apply(batch, kit_bank)
    assert not both.grid[:, 1].any()  # locked empty
    assert both.grid[:, 0, ::4].all() and not both.grid[:, 0, 1::4].any()  # 4/4 wins over lock
    idle = Constraints(locked_grid=(True,) * TRACKS)  # no reference: nothing to keep
    assert not idle.active and idle.apply(batch, kit_bank) is batch
    short = Constraints(locked_sample=(True,), reference=reference)  # fewer flags than tracks
    assert (short.apply(batch, kit_bank).samples[:, 0] == 0).all()
