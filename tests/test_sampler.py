"""The batched Metropolis–Hastings sampler: it samples f^(1/s), climbs at s = 0, reaches a
threshold when it can and says so when it cannot, repeats with a seed, obeys constraints and
hands out distinct loops."""


import pytest
import torch

from deepdrummer_live.critic import Critic, CriticConfig, LoopFeatures, LoopScorer
from deepdrummer_live.learner import Preset
from deepdrummer_live.library import SampleBank
from deepdrummer_live.loop import Constraints, Loop, LoopBatch, random_batch, random_loop
from deepdrummer_live.sampler import Candidate, Sampler, metropolis_hastings

# The tiny space: 1 track × 2 steps × 2 samples = 8 states, f a fixed table over them.
TABLE = torch.tensor([0.05, 0.10, 0.20, 0.15, 0.30, 0.45, 0.60, 0.90])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(**values) -> Preset:
    """Small runs: 16 chains × 16 steps unless a test says otherwise."""
    return Preset("test", **{"chains": 16, "mh_steps": 16, **values})


def tiny_bank(n: int) -> SampleBank:
    """A bank of `n` short clicks (the sampler needs only its size and names)."""
    audio = torch.zeros(n, 64)
    audio[:, 0] = 1.0
    return SampleBank([f"s{i}.wav" for i in range(n)], audio, torch.full((n,), 64), 16000)


class TableScorer:
    """f(state) from TABLE; state = 4·cell0 + 2·cell1 + sample."""

    version = 3

    def __call__(self, batch: LoopBatch) -> torch.Tensor:
        grid = batch.grid.long()
        return TABLE[4 * grid[:, 0, 0] + 2 * grid[:, 0, 1] + batch.samples[:, 0]]


class PatternScorer:
    """On 4×16 loops: f rises steeply with how many of track 0's cells match a pattern, capped
    at `cap`; ties broken by nothing (the other tracks are free)."""

    version = 7

    def __init__(self, cap: float = 1.0) -> None:
        self.pattern = torch.zeros(16, dtype=torch.bool)
        self.pattern[::4] = True
        self.cap = cap

    def __call__(self, batch: LoopBatch) -> torch.Tensor:
        matches = (batch.grid[:, 0] == self.pattern).float().mean(1)
        return (matches ** 4).clamp(max=self.cap)


class SparseScorer:
    """Prefers empty grids: without constraints the sampler drops every hit."""

    version = 1

    def __call__(self, batch: LoopBatch) -> torch.Tensor:
        return 1.0 - batch.grid.float().mean((1, 2))


def tiny_start(n: int, generator: torch.Generator) -> LoopBatch:
    return random_batch(n, 2, generator, tracks=1, steps=2, density=0.5)


def state_counts(batch: LoopBatch) -> torch.Tensor:
    grid = batch.grid.long()
    index = 4 * grid[:, 0, 0] + 2 * grid[:, 0, 1] + batch.samples[:, 0]
    return torch.bincount(index, minlength=8).float()


def chi_square_p(observed: torch.Tensor, expected_p: torch.Tensor) -> float:
    """p-value of Pearson's chi-square test (survival of χ² with k-1 degrees of freedom)."""
    expected = expected_p * observed.sum()
    stat = ((observed - expected) ** 2 / expected).sum()
    dof = torch.tensor((len(observed) - 1) / 2.0, dtype=torch.float64)
    return float(torch.special.gammaincc(dof, stat.double() / 2))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_visit_frequencies_follow_f_to_the_one_over_s(temperature):
    generator = torch.Generator().manual_seed(11)
    # Final states of many independent chains, long enough to forget their uniform start.
    result = metropolis_hastings(TableScorer(), tiny_start(6000, generator), 2, generator,
                                 steps=300, temperature=temperature)
    target = TABLE ** (1 / temperature)
    target = target / target.sum()
    observed = state_counts(result.batch)
    assert chi_square_p(observed, target) > 1e-3
    # …and the test can tell: another temperature's law, or the uniform start, is far off.
    wrong = TABLE ** (1 / (1.5 * temperature))
    assert chi_square_p(observed, wrong / wrong.sum()) < 1e-6
    start = state_counts(tiny_start(6000, torch.Generator().manual_seed(11)))
    assert chi_square_p(start, target) < 1e-6
    assert (result.proposals == 300).all()
    assert torch.equal(result.scores, TableScorer()(result.batch))


def test_hill_climbing_never_accepts_worse_but_sampling_does():
    for temperature in (0.0, 1.0):
        generator = torch.Generator().manual_seed(5)
        batch = tiny_start(500, generator)
        scores = TableScorer()(batch)
        fell = False
        for _ in range(60):
            result = metropolis_hastings(TableScorer(), batch, 2, generator, steps=1,
                                         temperature=temperature)
            fell |= bool((result.scores < scores).any())
            batch, scores = result.batch, result.scores
        assert fell == (temperature > 0)
        if temperature == 0:  # …and it climbs: most chains are on the top by now
            assert (scores == TABLE.max()).float().mean() > 0.9


def test_threshold_mode_reaches_when_it_can():
    bank = tiny_bank(8)
    sampler = Sampler(bank, PatternScorer(), settings(), torch.Generator().manual_seed(2))
    results = sampler.threshold(6, threshold=0.95, budget=2000)
    assert len(results) == 6
    for r in results:
        assert r.reached and r.candidate.score >= 0.95
        assert 0 < r.proposals <= 2000
        assert r.candidate.critic_version == 7
        assert list(r.candidate.loop.grid[0]) == PatternScorer().pattern.tolist()
    assert len({r.candidate.loop.loop_id for r in results}) == 6


def test_threshold_mode_says_when_it_cannot():
    bank = tiny_bank(8)
    sampler = Sampler(bank, PatternScorer(cap=0.9), settings(), torch.Generator().manual_seed(2))
    results = sampler.threshold(3, threshold=0.95, budget=150)
    assert len(results) == 3
    for r in results:
        assert not r.reached
        assert r.proposals == 150
        assert r.candidate.score <= 0.9


def test_stop_at_stops_each_chain_separately():
    generator = torch.Generator().manual_seed(4)
    start = random_batch(32, 8, generator)
    start.grid[:4, 0] = PatternScorer().pattern  # these four start above the threshold
    result = metropolis_hastings(PatternScorer(), start, 8, generator, steps=500,
                                 temperature=0.05, stop_at=0.95)
    assert (result.proposals[:4] == 0).all()
    assert torch.equal(result.reached, result.scores >= 0.95)
    done = result.reached.nonzero().reshape(-1)
    assert len(done) > 4 and (result.proposals[done] < 500).any()


def test_seeded_runs_repeat_exactly():
    bank = tiny_bank(8)

    def run(seed: int) -> tuple[list[Candidate], list]:
        sampler = Sampler(bank, PatternScorer(), settings(), torch.Generator().manual_seed(seed))
        return sampler.sample(5), sampler.threshold(2, budget=300)

    assert run(9) == run(9)
    assert run(9) != run(10)


def test_sample_returns_distinct_best_loops_not_in_exclude():
    bank = tiny_bank(8)

    def sampler() -> Sampler:
        return Sampler(bank, PatternScorer(), settings(), torch.Generator().manual_seed(3))

    first = sampler().sample(5)
    ids = [c.loop.loop_id for c in first]
    assert len(set(ids)) == 5
    assert [c.score for c in first] == sorted((c.score for c in first), reverse=True)
    assert all(c.critic_version == 7 for c in first)
    # The same run with the best loop excluded falls back to the next best one.
    again = sampler().sample(5, exclude={ids[0]})
    assert [c.loop.loop_id for c in again[:4]] == ids[1:]
    assert again[4].loop.loop_id not in ids
    assert again[4].score <= first[4].score
    # Loop ids depend on the tempo asked for.
    assert all(c.loop.bpm == 96.0 for c in sampler().sample(3, bpm=96.0))


def test_sample_runs_more_chains_when_too_few_are_distinct():
    # One track, one step, two samples: four loops in all; ask for three, exclude one.
    bank = tiny_bank(2)
    sampler = Sampler(bank, SparseScorer(), settings(chains=2, mh_steps=4),
                      torch.Generator().manual_seed(0), tracks=1, steps=1)
    off = Loop(((False,),), ("s0.wav",))
    got = sampler.sample(3, exclude={off.loop_id})
    ids = {c.loop.loop_id for c in got}
    assert len(got) == 3 and len(ids) == 3 and off.loop_id not in ids


def test_constraints_hold_on_every_output():
    bank = tiny_bank(8)
    reference = random_loop(bank, seed=1)
    constraints = Constraints(locked_grid=(False, True, False, False),
                              locked_sample=(False, True, False, True),
                              reference=reference, four_on_the_floor=True)
    sampler = Sampler(bank, SparseScorer(), settings(temperature=0.01),
                      torch.Generator().manual_seed(6))
    loops = [c.loop for c in sampler.sample(8, constraints)]
    loops += [r.candidate.loop for r in sampler.threshold(4, budget=50, constraints=constraints)]
    for loop in loops:
        assert loop.grid[1] == reference.grid[1]
        assert (loop.samples[1], loop.samples[3]) == (reference.samples[1], reference.samples[3])
        assert all(loop.grid[0][step] for step in (0, 4, 8, 12))
    # Without them the sparse critic empties the kick track.
    free = [c.loop for c in sampler.sample(8)]
    assert any(not all(loop.grid[0][step] for step in (0, 4, 8, 12)) for loop in free)


def test_a_run_can_be_cancelled_between_steps():
    generator = torch.Generator().manual_seed(0)
    asked = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) > 3

    result = metropolis_hastings(TableScorer(), tiny_start(8, generator), 2, generator,
                                 steps=100, temperature=1.0, cancel=cancel)
    assert result.cancelled and (result.proposals == 3).all()
    sampler = Sampler(tiny_bank(8), PatternScorer(), settings(), generator)
    assert sampler.sample(4, cancel=lambda: True) == []
    assert len(sampler.sample(4, cancel=lambda: False)) == 4


def test_bad_arguments_are_refused():
    generator = torch.Generator().manual_seed(0)
    start = tiny_start(4, generator)
    with pytest.raises(ValueError, match="temperature"):
        metropolis_hastings(TableScorer(), start, 2, generator, steps=3, temperature=-1)
    with pytest.raises(ValueError, match="steps"):
        metropolis_hastings(TableScorer(), start, 2, generator, steps=-1, temperature=1)
    with pytest.raises(ValueError, match="bank"):
        metropolis_hastings(TableScorer(), start, 2, generator, steps=1, temperature=1,
                            constraints=Constraints(four_on_the_floor=True))
    with pytest.raises(ValueError, match="scores"):
        metropolis_hastings(lambda b: torch.zeros(1), start, 2, generator, steps=1,
                            temperature=1)


def test_sampler_with_the_real_critic_on_our_kit(kit_bank):
    torch.manual_seed(0)
    bank = kit_bank
    config = CriticConfig()
    critic = Critic(config).eval()
    scorer = LoopScorer(LoopFeatures(bank, config, "cpu"), critic, version=2)
    sampler = Sampler(bank, scorer, settings(chains=8, mh_steps=3),
                      torch.Generator().manual_seed(1))
    got = sampler.sample(4, Constraints(four_on_the_floor=True))
    assert len({c.loop.loop_id for c in got}) == 4
    rescored = scorer(LoopBatch.from_loops([c.loop for c in got], bank))
    assert torch.allclose(rescored, torch.tensor([c.score for c in got]), atol=1e-5)
    assert all(c.critic_version == 2 and 0.0 <= c.score <= 1.0 for c in got)
    assert all(c.loop.samples[0] in bank.names for c in got)
