"""The learner learns from audio, keeps every rating, repeats when seeded, saves safely."""

from __future__ import annotations

import threading

import pytest
import torch

from deepdrummer_live.critic import CheckpointError
from deepdrummer_live.kit import default_kit_dir
from deepdrummer_live.learner import PRESETS, Learner
from deepdrummer_live.library import load_library
from deepdrummer_live.loop import LoopBatch, random_batch


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return load_library(default_kit_dir(), use_cache=False)


def rule_batch(bank, n: int, target: int, generator: torch.Generator):
    """Random loops, half of them using sample `target` on some track; liked iff they use it."""
    batch = random_batch(n, len(bank), generator)
    samples = torch.where(batch.samples == target, (target + 1) % len(bank), batch.samples)
    use = torch.rand(n, generator=generator) < 0.5
    track = torch.randint(0, samples.shape[1], (n,), generator=generator)
    samples[torch.arange(n)[use], track[use]] = target
    batch = LoopBatch(batch.grid, samples)
    return batch, use


def test_learns_a_rule_from_audio_within_60_ratings(bank):
    generator = torch.Generator().manual_seed(3)
    target = bank.names.index(next(n for n in bank.names if "cowbell" in n.lower()))
    train, liked = rule_batch(bank, 60, target, generator)
    held_out, truth = rule_batch(bank, 300, target, generator)
    learner = Learner(bank, "default", device="cpu", seed=0)
    for loop, like in zip(train.to_loops(bank), liked.tolist(), strict=True):
        learner.add_rating(loop, like)
        learner.train_pending()
    accuracy = ((learner.scorer()(held_out) > 0.5) == truth).float().mean().item()
    assert accuracy >= 0.8, f"held-out accuracy {accuracy:.2f} after 60 ratings"


def test_a_rating_sent_while_training_runs_is_kept(bank):
    learner = Learner(bank, "default", device="cpu", seed=1).start()
    loops = random_batch(12, len(bank), torch.Generator().manual_seed(5)).to_loops(bank)
    try:
        def rate_all():
            for i, loop in enumerate(loops):
                learner.add_rating(loop, i % 3 == 0)

        threads = [threading.Thread(target=rate_all) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert learner.wait_idle(timeout=120)
    finally:
        learner.stop()
    assert learner.n_ratings == 24
    assert learner.owed == 0
    assert learner.scorer().learned == 24
    assert learner.version >= 1


def _trained(bank, seed: int) -> Learner:
    learner = Learner(bank, "default", device="cpu", seed=seed)
    loops = random_batch(6, len(bank), torch.Generator().manual_seed(9)).to_loops(bank)
    for i, loop in enumerate(loops):
        learner.add_rating(loop, i % 2 == 0)
        learner.train_pending()
    return learner


def test_seeded_training_repeats_exactly(bank):
    probe = random_batch(32, len(bank), torch.Generator().manual_seed(11))
    a, b = _trained(bank, 4).scorer()(probe), _trained(bank, 4).scorer()(probe)
    assert torch.equal(a, b)
    assert not torch.equal(a, _trained(bank, 5).scorer()(probe))


def test_checkpoint_round_trip_and_clear_errors(bank, tmp_path):
    learner = _trained(bank, 2)
    path = learner.save(tmp_path / "critic.pt", {"rating_seq": 6})
    fresh = Learner(bank, "default", device="cpu", seed=99)
    extra = fresh.load(path)
    assert extra["rating_seq"] == 6
    probe = random_batch(16, len(bank), torch.Generator().manual_seed(1))
    assert torch.allclose(fresh.scorer()(probe), learner.scorer()(probe), atol=1e-6)

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        fresh.load(corrupt)
    not_torch = tmp_path / "text.pt"
    not_torch.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable critic checkpoint"):
        fresh.load(not_torch)
    paper = Learner(bank, PRESETS["paper"], device="cpu")
    with pytest.raises(CheckpointError, match="other critic settings"):
        paper.load(path)


def test_unknown_sample_is_a_key_error(bank):
    loop = random_batch(1, len(bank), torch.Generator().manual_seed(0)).to_loops(bank)[0]
    bad = type(loop)(loop.grid, ("no-such-sample.wav",) * loop.tracks, loop.bpm)
    learner = Learner(bank, "default", device="cpu")
    with pytest.raises(KeyError, match="no-such-sample"):
        learner.add_rating(bad, True)
    assert learner.n_ratings == 0
