"""A few loops from the current critic, always ready, so "next loop" is answered at once.

A background producer watches the learner's version. When the critic changes it takes a fresh
scorer and samples replacements; until they exist the older candidates stay (a slightly stale
loop now beats a fresh one in a second). Handed-out loops are remembered so none comes twice.

What keeps "a rating → a loop chosen by a critic that learned it" short on a small CPU: while
the learner owes training the producer waits (and abandons a round that could only give stale
loops) unless nothing is ready; after a critic change it first samples one loop from a quarter
of the chains, then fills up with full rounds. A lock or four-on-the-floor change repairs the
ready loops at once (made to obey, rescored) so a loop is ready while proper ones are sampled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Protocol

from .devices import run_in_background
from .library import SampleBank
from .loop import DEFAULT_BPM, Constraints, Loop, LoopBatch
from .sampler import Candidate, Sampler

log = logging.getLogger("deepdrummer_live.candidates")
POLL_S = 0.02  # how often a full, up-to-date producer looks at the learner's version
ERROR_PAUSE_S = 1.0  # after a failed round, so a persistent error does not spin the CPU
MEMORY = 10_000  # handed-out loop ids remembered


class CriticSource(Protocol):
    """What the queue needs from a learner: a version that bumps when the critic changes and a
    frozen scorer of the current critic."""

    @property
    def version(self) -> int: ...

    def scorer(self): ...

    # Optional: `owed` > 0 while training is pending (the producer then yields the CPU).


def loop_key(loop: Loop) -> str:
    """The id a loop has at the reference tempo: the same grid and samples at another tempo are
    the same loop for "never hand out twice"."""
    return loop.loop_id if loop.bpm == DEFAULT_BPM else loop.with_bpm(DEFAULT_BPM).loop_id


def obeys(loops: list[Loop], constraints: Constraints | None, bank: SampleBank) -> list[bool]:
    """Whether each loop already satisfies `constraints` (applying them changes nothing)."""
    if not loops or constraints is None or not constraints.active:
        return [True] * len(loops)
    batch = LoopBatch.from_loops(loops, bank)
    forced = constraints.apply(batch, bank)
    same = (forced.grid == batch.grid).flatten(1).all(1) & (forced.samples == batch.samples).all(1)
    return same.tolist()


class ReadyCandidates:
    """Ready candidates behind a condition, handed out best first, each loop once. Shared by
    the queue that samples them and by the engine's mirror of the learner process's queue;
    each says what handing one out means (`_hand_out`) and when no more will come
    (`_stopped`)."""

    _cond: threading.Condition
    _ready: list[Candidate]

    def _hand_out(self, candidate: Candidate) -> bool:
        """Record `candidate` as handed out; False if its loop was handed out already."""
        raise NotImplementedError

    def _stopped(self) -> bool:
        raise NotImplementedError

    @property
    def depth(self) -> int:
        """How many candidates are ready now."""
        with self._cond:
            return len(self._ready)

    def ready(self) -> list[Candidate]:
        """A copy of the ready candidates, in the order `get` would hand them out."""
        with self._cond:
            return list(self._ready)

    def get(self, timeout: float | None = 2.0) -> Candidate | None:
        """Pop the best ready candidate; wait up to `timeout` s if none is ready (None: wait
        for ever). Returns None on timeout or once stopped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                while self._ready:
                    candidate = self._ready.pop(0)
                    if self._hand_out(candidate):
                        return candidate
                left = None if deadline is None else deadline - time.monotonic()
                if self._stopped() or (left is not None and left <= 0):
                    return None
                self._cond.wait(left)


class CandidateQueue(ReadyCandidates):
    """Keeps `depth` candidates from the learner's current critic ready (see module doc)."""

    def __init__(self, learner: CriticSource, sampler: Sampler, depth: int = 4,
                 memory: int = MEMORY, poll: float = POLL_S, quick: bool = True) -> None:
        if depth < 1:
            raise ValueError(f"depth must be ≥ 1, not {depth}")
        self.learner = learner
        self.sampler = sampler
        self.capacity = depth
        self.poll = poll
        self.quick = quick  # after a critic change, first one loop from a quarter of the chains
        self.error_pause = ERROR_PAUSE_S
        self.errors = 0  # producer rounds that failed (logged)
        self._ready: list[Candidate] = []  # newest critic first, then MH-chosen, best first
        self._provisional: set[str] = set()  # keys of ready loops repaired, not MH-chosen
        self._handed: deque[str] = deque(maxlen=memory)
        self._handed_set: set[str] = set()
        self._constraints: Constraints | None = None
        self._seen_version: int | None = None  # learner version whose scorer the sampler holds
        self._current = sampler.version  # that scorer's own version (stamped on candidates)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> CandidateQueue:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._produce, name="candidates",
                                                daemon=True)
                self._thread.start()
        return self

    def close(self) -> None:
        """Stop the producer and wait for it (it finishes the round it is in). Safe twice."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    # -- consumers -----------------------------------------------------------------------
    @property
    def constraints(self) -> Constraints | None:
        return self._constraints

    def _hand_out(self, candidate: Candidate) -> bool:
        key = loop_key(candidate.loop)
        self._provisional.discard(key)
        if key in self._handed_set:  # produced before a twin was handed out
            return False
        self._remember(key)
        self._cond.notify_all()
        return True

    def _stopped(self) -> bool:
        return self._closed

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the queue is full of candidates from the learner's current critic."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._up_to_date():
                left = None if deadline is None else deadline - time.monotonic()
                if self._closed or (left is not None and left <= 0):
                    return False
                self._cond.wait(self.poll if left is None else min(left, self.poll))
            return True

    def set_constraints(self, constraints: Constraints | None) -> None:
        """Use these constraints from now on. Ready loops that break them are dropped and
        replaced at once by themselves made to obey (rescored: a few ms), so a loop is ready
        right after a lock; those stand in only until the sampler has chosen proper ones."""
        with self._cond:
            self._constraints = constraints
            keep = obeys([c.loop for c in self._ready], constraints, self.sampler.bank)
            broken = [c.loop for c, ok in zip(self._ready, keep, strict=True) if not ok]
            self._ready = [c for c, ok in zip(self._ready, keep, strict=True) if ok]
            scorer = self.sampler.scorer
            self._cond.notify_all()
        if broken and constraints is not None:
            try:
                self._add(self._repair(broken, constraints, scorer), constraints,
                          provisional=True)
            except Exception:
                log.exception("could not repair the ready loops; the producer will refill")

    def _repair(self, loops: list[Loop], constraints: Constraints, scorer) -> list[Candidate]:
        bank = self.sampler.bank
        batch = constraints.apply(LoopBatch.from_loops(loops, bank), bank)
        scores = scorer(batch).tolist()
        version = int(getattr(scorer, "version", 0))
        return [Candidate(loop, float(score), version)
                for loop, score in zip(batch.to_loops(bank, DEFAULT_BPM), scores, strict=True)]

    def remember(self, loops: Iterable[Loop]) -> None:
        """Never hand out these loops (e.g. those a resumed session already played)."""
        with self._cond:
            for loop in loops:
                self._remember(loop_key(loop))
            self._ready = [c for c in self._ready if loop_key(c.loop) not in self._handed_set]
            self._provisional &= {loop_key(c.loop) for c in self._ready}

    # -- producer ------------------------------------------------------------------------
    def _remember(self, key: str) -> None:
        if key in self._handed_set:
            return
        if len(self._handed) == self._handed.maxlen:
            self._handed_set.discard(self._handed[0])
        self._handed.append(key)
        self._handed_set.add(key)

    def _fresh(self) -> int:
        """Ready loops the sampler chose with the current critic."""
        return sum(c.critic_version == self._current and loop_key(c.loop) not in self._provisional
                   for c in self._ready)

    def _up_to_date(self) -> bool:
        return (self._seen_version == self.learner.version
                and self._fresh() >= self.capacity)

    def _refresh_scorer(self) -> None:
        version = self.learner.version
        if version == self._seen_version:
            return
        self.sampler.set_scorer(self.learner.scorer())
        with self._cond:
            self._seen_version = version
            self._current = self.sampler.version

    def _produce(self) -> None:
        run_in_background()
        while True:
            with self._cond:
                if self._closed:
                    return
            try:
                self._refresh_scorer()
                with self._cond:
                    fresh = self._fresh()
                    missing = self.capacity - fresh
                    if missing <= 0 or (self._ready and self._learner_busy()):
                        self._cond.wait(self.poll)  # full, or training will soon change it
                        continue
                    chains = None
                    if fresh == 0 and self.quick:
                        missing, chains = 1, max(1, self.sampler.preset.chains // 4)
                    constraints = self._constraints
                    exclude = self._handed_set | {loop_key(c.loop) for c in self._ready}
                made = self.sampler.sample(missing, constraints, exclude,
                                           cancel=partial(self._stale, constraints),
                                           chains=chains)
                if made:
                    self._add(made, constraints)
                elif not self._stale(constraints):  # the allowed space is used up: no spinning
                    with self._cond:
                        self._cond.wait(self.error_pause)
            except Exception:
                self.errors += 1
                log.exception("the candidate producer failed; trying again")
                with self._cond:
                    self._cond.wait(self.error_pause)

    def _stale(self, constraints: Constraints | None) -> bool:
        """Whether a round under way can only produce stale loops, so it should be abandoned;
        not when the queue is empty (a slightly stale loop beats none while the critic keeps
        changing)."""
        return self._closed or self._constraints is not constraints or bool(self._ready) and (
            self.learner.version != self._seen_version or self._learner_busy())

    def _learner_busy(self) -> bool:
        """Training is owed: the critic will change soon, and the CPU is better spent on it."""
        return getattr(self.learner, "owed", 0) > 0

    def _add(self, made: list[Candidate], constraints: Constraints | None,
             provisional: bool = False) -> None:
        with self._cond:
            if self._constraints is not constraints:  # changed while we were sampling
                keep = obeys([c.loop for c in made], self._constraints, self.sampler.bank)
                made = [c for c, ok in zip(made, keep, strict=True) if ok]
            taken = self._handed_set | {loop_key(c.loop) for c in self._ready}
            made = [c for c in made if loop_key(c.loop) not in taken]
            if provisional:
                self._provisional.update(loop_key(c.loop) for c in made)
            ready = sorted(self._ready + made, key=lambda c: (
                -c.critic_version, loop_key(c.loop) in self._provisional, -c.score))
            self._ready = ready[:self.capacity]
            self._provisional &= {loop_key(c.loop) for c in self._ready}
            self._cond.notify_all()
