"""The learner process: it learns what it is sent, resumes from a checkpoint training only the
ratings the checkpoint had not learned, hands out loops that obey the constraints and never
twice, and reports a broken start or a lost child clearly."""

import threading

import pytest

from deepdrummer_live.candidates import loop_key, obeys
from deepdrummer_live.critic import read_checkpoint
from deepdrummer_live.learner import Preset
from deepdrummer_live.loop import Constraints, Loop, random_loop
from deepdrummer_live.worker import LearnerProcess, WorkerError, bar_deadline

WAIT = 60.0  # generous: the child imports torch and the machine is shared
SMALL = Preset("small", batches_per_rating=2, chains=4, mh_steps=4, threshold_budget=20)


def rated(bank, n: int, first_seq: int = 1) -> list[tuple[Loop, bool, int]]:
    return [(random_loop(bank, 100 + i), i % 2 == 0, first_seq + i) for i in range(n)]


@pytest.fixture(scope="module")
def bank(kit_bank):
    return kit_bank


def test_resume_trains_only_what_the_checkpoint_had_not_learned(bank, tmp_path):
    path = tmp_path / "critic.pt"
    first = LearnerProcess(bank, SMALL, device="cpu", ratings=rated(bank, 6)).start()
    try:
        assert first.owed == 6 * SMALL.batches_per_rating  # reported as soon as it is up
        assert first.wait_idle(WAIT)
        assert first.learned == 6 and first.version >= 6
        extra = (random_loop(bank, 999), True)
        first.add_rating(*extra, seq=7)
        assert first.training  # at once, before the child has even read it
        assert first.wait_idle(WAIT) and first.learned == 7
        first.save(path)
    finally:
        first.close()
    assert read_checkpoint(path)["extra"]["rating_seq"] == 7

    ratings = [*rated(bank, 6), (extra[0], extra[1], 7), *rated(bank, 3, first_seq=8)]
    again = LearnerProcess(bank, SMALL, device="cpu", checkpoint=path, ratings=ratings).start()
    try:
        assert again.owed == 3 * SMALL.batches_per_rating
        assert again.wait_idle(WAIT) and again.learned == 10
    finally:
        again.close(checkpoint=path)  # closing saves
    assert read_checkpoint(path)["extra"]["rating_seq"] == 10


def test_loops_obey_constraints_and_never_come_twice(bank):
    ratings = rated(bank, 4)
    worker = LearnerProcess(bank, SMALL, device="cpu", ratings=ratings).start()
    try:
        seen = {loop_key(loop) for loop, _, _ in ratings}
        for _ in range(6):
            candidate = worker.get(timeout=WAIT)
            assert candidate is not None and loop_key(candidate.loop) not in seen
            seen.add(loop_key(candidate.loop))
        reference = random_loop(bank, 5)
        constraints = Constraints((True, False, False, False), (True, False, False, False),
                                  reference, four_on_the_floor=False)
        worker.set_constraints(constraints)
        assert all(obeys([c.loop for c in worker.ready()], constraints, bank))
        for _ in range(4):
            candidate = worker.get(timeout=WAIT)
            assert candidate is not None and loop_key(candidate.loop) not in seen
            assert candidate.loop.grid[0] == reference.grid[0]
            assert candidate.loop.samples[0] == reference.samples[0]
            seen.add(loop_key(candidate.loop))
        with pytest.raises(KeyError, match="not in the library"):
            worker.add_rating(Loop(reference.grid, ("nope.wav",) * 4), True)
    finally:
        worker.close()


def test_a_child_that_cannot_start_says_why(bank):
    with pytest.raises(WorkerError, match="could not start.*no-such-device"):
        LearnerProcess(bank, SMALL, device="no-such-device").start()


def test_a_lost_child_is_reported_not_waited_for(bank):
    lost = threading.Event()
    worker = LearnerProcess(bank, SMALL, device="cpu", on_lost=lost.set).start()
    worker._process.kill()  # as the OOM killer would
    assert lost.wait(WAIT) and worker.gone
    while worker.get(timeout=0) is not None:  # what was ready may still be handed out
        pass
    with pytest.raises(WorkerError, match="gone"):
        worker.add_rating(random_loop(bank, 1), True)
    assert not worker.wait_idle(1)
    worker.close()


def test_training_slices_end_before_the_next_bar_line():
    assert bar_deadline(None) is None
    when = 100.0  # a bar line at 120 bpm: bars last 2 s
    assert bar_deadline((when, 4, 120.0), now=100.5) == pytest.approx(101.95)
    assert bar_deadline((when, 4, 120.0), now=101.97) == pytest.approx(103.95)
    assert bar_deadline((when, 4, 120.0), now=100 + 17) is None  # the host went quiet
