"""The engine: one thread-safe object that every bridge (OSC, MIDI, audio, web) talks to.

It owns the session store and the learner, which trains and searches for candidates in a child
process (`worker`) so that nothing it does can delay a reply here (and restarted from the
session should it die). A rating is stored durably first, then handed to the learner; the
critic is checkpointed every few ratings (at most every 30 s) and on shutdown, and a resumed
session retrains on the ratings its checkpoint had not learned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .learner import PRESETS
from .library import SampleBank
from .loop import DEFAULT_BPM, TRACKS, Constraints, Loop, LoopBatch
from .render import DEFAULT_NOTES, DEFAULT_VELOCITY, Renderer, write_wav
from .session import Session
from .worker import LearnerProcess, WorkerError

log = logging.getLogger("deepdrummer_live.engine")
NEXT_TIMEOUT = 2.0  # seconds a request for a loop may wait before it is answered "busy"
CHECKPOINT_MIN_S = 30.0  # between two checkpoints: each write competes with rating commits


class EngineBusy(Exception):
    """No loop could be produced in time; the caller may ask again."""


@dataclass(frozen=True)
class HandedLoop:
    """A loop as handed to a client: everything a bridge needs to show or play it."""

    loop_id: str
    loop: Loop
    score: float
    critic_version: int
    notes: tuple[int, ...]
    sample_paths: tuple[str, ...]

    @property
    def velocities(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(DEFAULT_VELOCITY if on else 0 for on in row) for row in self.loop.grid)


@dataclass(frozen=True)
class EngineStatus:
    n_ratings: int
    n_likes: int
    queue_depth: int
    training: bool
    critic_version: int
    device: str


class Engine:
    """DeepDrummer behind one object, running from construction until `close()`; everything
    else is safe to call from any thread."""

    tracks = TRACKS

    def __init__(self, session: Session, bank: SampleBank, preset: str = "default",
                 device: str | None = None, seed: int = 0,
                 queue_depth: int = 4, checkpoint_every: int = 5) -> None:
        """Starts the learner process at once (it resumes the session's ratings). As with any
        `multiprocessing` child, a script that builds an Engine needs `if __name__ ==
        "__main__":`."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.session = session
        self.bank = bank
        self.preset = PRESETS[preset]
        self.checkpoint_every = checkpoint_every
        self.bpm = DEFAULT_BPM
        self._learner_options = {"device": device, "seed": seed, "queue_depth": queue_depth}
        self.constraints = Constraints()
        self._lock = threading.RLock()
        self._closed = False
        ratings = session.ratings()
        self.learner = self._start_learner(ratings)
        self.device = self.learner.device
        self._checkpointed = len(ratings)
        self._checkpoint_time = time.monotonic()
        self.notes_of = _note_mapper(bank)
        self._handed: dict[str, HandedLoop] = {}
        self._current: HandedLoop | None = None
        self._playing_listeners: list[Callable[[HandedLoop, int], None]] = []
        self._renderer: Renderer | None = None

    # -- life cycle ----------------------------------------------------------------------
    def _start_learner(self, ratings: list) -> LearnerProcess:
        """A learner process that resumes the checkpoint and these stored ratings."""
        learner = LearnerProcess(self.bank, self.preset, **self._learner_options,
                                 checkpoint=self.session.checkpoint_path,
                                 ratings=[(r.loop, r.liked, r.seq) for r in ratings],
                                 on_lost=self._revive_learner)
        learner.start()
        for warning in learner.warnings:
            log.warning("%s", warning)
        return learner

    def _revive_learner(self) -> None:
        """The learner process died (out of memory, a driver crash…): start a new one from the
        session in the background. Ratings keep being stored meanwhile; none is lost to it."""
        def revive() -> None:
            ratings = self.session.ratings()
            try:
                learner = self._start_learner(ratings)
            except Exception as exc:
                log.error("could not restart the learner (%s); ratings are still stored", exc)
                return
            with self._lock:
                if self._closed:
                    learner.close()
                    return
                after = ratings[-1].seq if ratings else 0
                for rating in self.session.ratings(after_seq=after):  # stored while starting
                    learner.add_rating(rating.loop, rating.liked, seq=rating.seq)
                learner.set_constraints(self.constraints)
                self.learner = learner
            log.warning("the learner process was restarted")

        log.error("the learner process stopped; restarting it from the session")
        threading.Thread(target=revive, name="revive-learner", daemon=True).start()

    def close(self) -> None:
        """Stop the learner process (it saves the critic) and close the store. Safe twice."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
        self.learner.close(checkpoint=self.session.checkpoint_path)
        self.session.close()

    def checkpoint(self, wait: bool = True) -> None:
        """Save the critic with the id of the last rating it has learned (atomic rename)."""
        self._checkpointed = self.session.counts()[0]
        self._checkpoint_time = time.monotonic()
        self.learner.save(self.session.checkpoint_path, wait=wait)

    # -- loops ---------------------------------------------------------------------------
    def next_loop(self, timeout: float = NEXT_TIMEOUT) -> HandedLoop:
        """The best ready loop from the current critic (answered at once when the queue is warm)."""
        candidate = self.learner.get(timeout=timeout)
        if candidate is None:
            raise EngineBusy(f"no loop ready within {timeout:g} s; try again")
        loop = candidate.loop.with_bpm(self.bpm)
        handed = self._hand_out(loop, float(candidate.score), int(candidate.critic_version))
        return handed

    def _hand_out(self, loop: Loop, score: float, version: int) -> HandedLoop:
        loop_id = self.session.add_loop(loop, score, version)
        handed = HandedLoop(loop_id, loop, score, version, self.notes_of(loop),
                            tuple(str(self.bank.path(name)) for name in loop.samples))
        with self._lock:
            self._handed[loop_id] = handed
            self._current = handed
        return handed

    def handed_loop(self, loop_id: str) -> HandedLoop:
        """A loop handed out earlier (in this run or, from the store, a previous one)."""
        with self._lock:
            if loop_id in self._handed:
                return self._handed[loop_id]
        loop = self.session.loop(loop_id)  # raises UnknownLoop
        handed = HandedLoop(loop_id, loop, float("nan"), -1, self.notes_of(loop),
                            tuple(str(self.bank.path(name)) for name in loop.samples))
        with self._lock:
            self._handed[loop_id] = handed
        return handed

    @property
    def current(self) -> HandedLoop | None:
        return self._current

    def rate(self, loop_id: str, liked: bool, source: str = "") -> tuple[int, int]:
        """Store the rating durably, then let the critic learn from it. Returns (n, likes)."""
        loop = self.handed_loop(loop_id).loop  # raises UnknownLoop
        with self._lock:  # stored and sent as one step, should the learner be restarting
            counts = self.session.rate(loop_id, liked, source)  # raises AlreadyRated
            try:
                self.learner.add_rating(loop, liked, seq=self.session.seq_of(loop_id))
            except KeyError:
                log.warning("loop %s uses samples missing from the library: stored, not "
                            "learned", loop_id)
            except WorkerError:
                log.warning("loop %s: rating stored; the learner is restarting and will "
                            "learn it from the session", loop_id)
        if (counts[0] - self._checkpointed >= self.checkpoint_every
                and time.monotonic() - self._checkpoint_time >= CHECKPOINT_MIN_S):
            self.checkpoint(wait=False)  # the learner process saves it in the background
        return counts

    def render(self, loop_id: str) -> Path:
        """The loop in listening form as a WAV in the session folder."""
        handed = self.handed_loop(loop_id)
        path = self.session.folder / "renders" / f"{loop_id}.wav"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            with self._lock:
                if self._renderer is None:
                    self._renderer = Renderer(self.bank)
            batch = LoopBatch.from_loops([handed.loop], self.bank)
            audio = self._renderer.listening(batch, handed.loop.bpm)[0]
            tmp = path.with_suffix(".tmp.wav")
            write_wav(tmp, audio, self.bank.sample_rate)
            tmp.replace(path)
        return path

    # -- constraints and transport -------------------------------------------------------
    def lock(self, track: int, grid: bool, sample: bool) -> None:
        """Keep this track's grid and/or sample of the current loop in the loops that follow."""
        with self._lock:
            c = self.constraints
            locked_grid = list(c.locked_grid)
            locked_sample = list(c.locked_sample)
            locked_grid[track], locked_sample[track] = grid, sample
            reference = self._current.loop if self._current else c.reference
            self.constraints = Constraints(tuple(locked_grid), tuple(locked_sample), reference,
                                           c.four_on_the_floor)
            self.learner.set_constraints(self.constraints)

    def set_four_on_the_floor(self, on: bool) -> None:
        with self._lock:
            c = self.constraints
            self.constraints = Constraints(c.locked_grid, c.locked_sample, c.reference, on)
            self.learner.set_constraints(self.constraints)

    def set_transport(self, bar: int, bpm: float | None = None) -> None:
        """The host says a bar line is now: training slices will end before the next one."""
        if bpm:
            self.bpm = float(bpm)
        self.learner.set_transport((time.monotonic(), bar, self.bpm))

    # -- events for players --------------------------------------------------------------
    def on_playing(self, listener: Callable[[HandedLoop, int], None]) -> None:
        self._playing_listeners.append(listener)

    def playing(self, handed: HandedLoop, bar: int) -> None:
        """A player started `handed` at `bar`: it becomes the current loop; tell listeners."""
        with self._lock:
            self._current = handed
        for listener in list(self._playing_listeners):
            try:
                listener(handed, bar)
            except Exception:
                log.exception("a playing-loop listener failed")

    def status(self) -> EngineStatus:
        n, likes = self.session.counts()
        return EngineStatus(n, likes, self.learner.depth, bool(self.learner.training),
                            int(self.learner.version), self.device)


def _note_mapper(bank: SampleBank) -> Callable[[Loop], tuple[int, ...]]:
    """Each track's GM drum note from its sample's role, so a Drum Rack plays what was judged."""
    try:
        from .roles import classify_bank, track_notes
    except ImportError:
        return lambda loop: DEFAULT_NOTES[:loop.tracks]
    roles = dict(zip(bank.names, classify_bank(bank), strict=True))
    return lambda loop: tuple(track_notes([roles[name] for name in loop.samples]))
