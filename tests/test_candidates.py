"""The candidate queue: ready loops at once, refreshed when the critic changes, never repeated,
obeying the current constraints, and a producer that survives its own errors."""

import logging

import pytest
import torch

from deepdrummer_live.candidates import CandidateQueue, loop_key, obeys
from deepdrummer_live.learner import PRESETS, Learner, Preset
from deepdrummer_live.library import SampleBank
from deepdrummer_live.loop import Constraints, Loop, LoopBatch, random_loop
from deepdrummer_live.sampler import Sampler

WAIT = 30.0  # generous: the machine is shared; the queue is usually ready in well under 1 s


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(chains: int = 8, mh_steps: int = 8, temperature: float = 0.1) -> Preset:
    return Preset("test", chains=chains, mh_steps=mh_steps, temperature=temperature)


def bank_of(n: int) -> SampleBank:
    audio = torch.zeros(n, 64)
    audio[:, 0] = 1.0
    return SampleBank([f"s{i}.wav" for i in range(n)], audio, torch.full((n,), 64), 16000)


class DensityScorer:
    """A frozen critic of one version: even versions like sparse loops, odd ones dense loops."""

    def __init__(self, version: int) -> None:
        self.version = version

    def __call__(self, batch: LoopBatch) -> torch.Tensor:
        density = batch.grid.float().mean((1, 2))
        return density if self.version % 2 else 1.0 - density


class VersionedCritic:
    """What the queue reads from a learner: a version and a scorer of that version.
    `fail` makes the next scorer() calls raise, as a broken critic would."""

    def __init__(self) -> None:
        self.version = 0
        self.fail = 0
        self.calls = 0

    def scorer(self) -> DensityScorer:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise RuntimeError("critic unavailable")
        return DensityScorer(self.version)


def make_queue(critic, bank: SampleBank, depth: int = 4, **values) -> CandidateQueue:
    sampler = Sampler(bank, critic.scorer(), settings(**values),
                      torch.Generator().manual_seed(0))
    return CandidateQueue(critic, sampler, depth=depth)


def test_get_answers_at_once_when_warm_and_refreshes_on_a_new_critic():
    critic = VersionedCritic()
    queue = make_queue(critic, bank_of(8), mh_steps=24).start()
    try:
        assert queue.wait_ready(WAIT)
        assert queue.depth == 4
        first = queue.get(timeout=0)  # no waiting at all: it is ready
        assert first is not None and first.critic_version == 0
        assert first.score == pytest.approx(float(DensityScorer(0)(
            LoopBatch.from_loops([first.loop], queue.sampler.bank))[0]))
        critic.version = 1  # the critic learned something: dense loops are liked now
        stale = queue.get(timeout=0)  # the old candidates stay until replacements exist
        assert stale is not None
        assert queue.wait_ready(WAIT)
        fresh = [queue.get(timeout=WAIT) for _ in range(4)]
        assert all(c.critic_version == 1 for c in fresh)
        hits = [sum(map(sum, c.loop.grid)) for c in fresh]  # dense now
        assert min(hits) > sum(map(sum, first.loop.grid))
    finally:
        queue.close()


def test_no_loop_is_handed_out_twice():
    # One track of four steps and one sample: sixteen loops in all, and a hill-climbing critic
    # that sends every chain to the empty one. The queue hands out each loop once, then none.
    critic = VersionedCritic()
    sampler = Sampler(bank_of(1), critic.scorer(), settings(chains=4, mh_steps=32,
                                                           temperature=0.0),
                      torch.Generator().manual_seed(0), tracks=1, steps=4)
    queue = CandidateQueue(critic, sampler, depth=3)
    queue.error_pause = 0.05
    queue.remember([Loop(((True, True, True, True),), ("s0.wav",), bpm=90.0)])  # played before
    queue.start()
    try:
        got = [queue.get(timeout=WAIT) for _ in range(15)]
        assert None not in got
        keys = {loop_key(c.loop) for c in got}
        assert len(keys) == 15
        assert got[0].loop.grid == ((False,) * 4,)  # the best loop came first
        assert queue.get(timeout=0.3) is None  # all sixteen are used up
    finally:
        queue.close()


def test_constraints_apply_to_every_loop_after_they_are_set():
    critic = VersionedCritic()
    bank = bank_of(8)
    queue = make_queue(critic, bank, depth=4).start()
    try:
        assert queue.wait_ready(WAIT)
        reference = random_loop(bank, seed=2)
        constraints = Constraints(locked_grid=(False, False, True, False),
                                  locked_sample=(False, False, True, False),
                                  reference=reference, four_on_the_floor=True)
        queue.set_constraints(constraints)
        assert queue.constraints is constraints
        # The ready loops broke the rules: they were made to obey and rescored, so one is
        # ready at once, while the sampler chooses proper replacements.
        got = [queue.get(timeout=0)]
        got += [queue.get(timeout=WAIT) for _ in range(12)]
        assert None not in got
        assert all(obeys([c.loop for c in got], constraints, queue.sampler.bank))
        assert all(c.loop.grid[2] == reference.grid[2] for c in got)
        queue.set_constraints(None)  # lifted: the sparse critic empties the kick again
        assert queue.wait_ready(WAIT)
        free = [queue.get(timeout=WAIT) for _ in range(8)]
        assert not all(obeys([c.loop for c in free], constraints, queue.sampler.bank))
    finally:
        queue.close()


def test_the_producer_logs_errors_and_keeps_going(caplog):
    critic = VersionedCritic()
    queue = make_queue(critic, bank_of(8))
    queue.error_pause = 0.0
    critic.version, critic.fail = 1, 1
    with caplog.at_level(logging.ERROR, logger="deepdrummer_live.candidates"):
        queue.start()
        try:
            assert queue.wait_ready(WAIT)
        finally:
            queue.close()
    assert queue.errors == 1
    assert "critic unavailable" in caplog.text
    assert queue.get(timeout=0).critic_version == 1


def test_the_producer_leaves_the_cpu_to_pending_training():
    critic = VersionedCritic()
    critic.owed = 0  # minibatches of training pending, as the Learner says
    queue = make_queue(critic, bank_of(8)).start()
    try:
        assert queue.wait_ready(WAIT)
        critic.owed = 5
        critic.version = 1  # (a slice of training published already)
        assert queue.get(timeout=0).critic_version == 0
        assert not queue.wait_ready(0.3)  # it waits for the training instead of sampling…
        assert all(c.critic_version == 0 for c in queue.ready())
        critic.owed = 0
        assert queue.wait_ready(WAIT)  # …and refills once it is done
        assert [c.critic_version for c in queue.ready()] == [1] * 4
        while queue.get(timeout=0) is not None:  # with nothing ready it samples anyway
            pass
        critic.owed = 5
        assert queue.get(timeout=WAIT) is not None
    finally:
        queue.close()


def test_close_stops_the_producer_and_get_times_out():
    critic = VersionedCritic()
    queue = make_queue(critic, bank_of(8)).start()
    producer = queue._thread
    queue.close()
    queue.close()
    assert producer is not None and not producer.is_alive()
    while queue.get(timeout=0) is not None:
        pass
    assert queue.get(timeout=0.05) is None
    with pytest.raises(ValueError, match="depth"):
        CandidateQueue(critic, queue.sampler, depth=0)


def test_with_the_real_learner(kit_bank):
    bank = kit_bank
    preset = PRESETS["default"].with_overrides(chains=8, mh_steps=3, batches_per_rating=2)
    learner = Learner(bank, preset, device="cpu", seed=0)
    sampler = Sampler(bank, learner.scorer(), preset, torch.Generator().manual_seed(1))
    queue = CandidateQueue(learner, sampler, depth=2).start()
    try:
        assert queue.wait_ready(WAIT)
        before = queue.get(timeout=0)
        assert before.critic_version == learner.version == 0
        learner.add_rating(before.loop, liked=True)
        learner.train_pending()
        assert learner.version == 1
        assert queue.wait_ready(WAIT)
        after = queue.get(timeout=0)
        assert after.critic_version == 1
        assert loop_key(after.loop) != loop_key(before.loop)
    finally:
        queue.close()
