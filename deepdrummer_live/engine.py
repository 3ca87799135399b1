"""The engine: one thread-safe object that every bridge (OSC, MIDI, audio, web) talks to.

It owns the session store, the learner (training in the background, between bar lines when a
host tells us where they are), the sampler and the queue of ready candidates. A rating is
stored durably first, then handed to the learner; the critic is checkpointed every few ratings
and on shutdown, and a resumed session retrains on the ratings its checkpoint had not seen.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .candidates import CandidateQueue
from .critic import CheckpointError
from .devices import run_in_background
from .learner import PRESETS, Learner
from .library import SampleBank
from .loop import DEFAULT_BPM, TRACKS, Constraints, Loop, LoopBatch
from .render import DEFAULT_NOTES, DEFAULT_VELOCITY, Renderer, write_wav
from .sampler import Sampler
from .session import Session

log = logging.getLogger("deepdrummer_live.engine")
NEXT_TIMEOUT = 2.0  # seconds a request for a loop may wait before it is answered "busy"
BAR_MARGIN = 0.05  # training slices end this long before a bar line


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
    """DeepDrummer behind one object. `start()` it, `close()` it; everything else is safe
    to call from any thread."""

    tracks = TRACKS

    def __init__(self, session: Session, bank: SampleBank, preset: str = "default",
                 device: str | torch.device | None = None, seed: int = 0,
                 queue_depth: int = 4, checkpoint_every: int = 5) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.session = session
        self.bank = bank
        self.preset = PRESETS[preset]
        self.checkpoint_every = checkpoint_every
        self.bpm = DEFAULT_BPM
        share_cores()
        self.learner = Learner(bank, self.preset, device=device, seed=seed)
        self.device = str(self.learner.device)
        self._resume()
        generator = torch.Generator().manual_seed(seed + 1)
        self.sampler = Sampler(bank, self.learner.scorer(), self.preset, generator=generator)
        self.queue = CandidateQueue(self.learner, self.sampler, depth=queue_depth)
        self.queue.remember(r.loop for r in self.session.ratings())  # never offered twice
        self.constraints = Constraints()
        self.notes_of = _note_mapper(bank)
        self._handed: dict[str, HandedLoop] = {}
        self._current: HandedLoop | None = None
        self._lock = threading.RLock()
        self._transport: tuple[float, int, float] | None = None  # (when, bar, bpm)
        self._playing_listeners: list[Callable[[HandedLoop, int], None]] = []
        self._renderer: Renderer | None = None
        self._closed = False

    # -- life cycle ----------------------------------------------------------------------
    def _resume(self) -> None:
        """Load the last checkpoint, then owe training for every rating it had not seen."""
        trained_seq = 0
        if self.session.checkpoint_path.exists():
            try:
                extra = self.learner.load(self.session.checkpoint_path)
                trained_seq = int(extra.get("rating_seq", 0))
            except CheckpointError as exc:
                log.warning("%s; retraining the critic from every stored rating", exc)
        skipped = 0
        for rating in self.session.ratings():
            try:
                self.learner.add_rating(rating.loop, rating.liked,
                                        train=rating.seq > trained_seq)
            except KeyError:  # a sample that is no longer in the library
                skipped += 1
        if skipped:
            log.warning("%d stored ratings use samples missing from %s; they are kept in the "
                        "session but not used for training", skipped, self.bank.root)
        self._checkpointed = self.session.counts()[0]

    def start(self) -> Engine:
        self.learner.start(deadline=self.training_deadline)
        self.queue.start()
        return self

    def close(self) -> None:
        """Stop the threads, save the critic, close the store. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.queue.close()
        self.learner.stop()
        self.checkpoint()
        self.session.close()

    def checkpoint(self) -> None:
        """Save the critic with the id of the last rating it has seen (atomic rename)."""
        ratings = self.session.ratings()
        seq = ratings[-1].seq if ratings else 0
        self.learner.save(self.session.checkpoint_path, {"rating_seq": seq})
        self._checkpointed = len(ratings)

    # -- loops ---------------------------------------------------------------------------
    def next_loop(self, timeout: float = NEXT_TIMEOUT) -> HandedLoop:
        """The best ready loop from the current critic (answered at once when the queue is warm)."""
        candidate = self.queue.get(timeout=timeout)
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
        counts = self.session.rate(loop_id, liked, source)  # raises AlreadyRated
        try:
            self.learner.add_rating(loop, liked)
        except KeyError:
            log.warning("loop %s uses samples missing from the library: stored, not learned",
                        loop_id)
        if counts[0] - self._checkpointed >= self.checkpoint_every:
            threading.Thread(target=self._checkpoint_quietly, daemon=True).start()
        return counts

    def _checkpoint_quietly(self) -> None:
        run_in_background()  # saving must not delay the next reply
        try:
            self.checkpoint()
        except Exception:
            log.exception("checkpoint failed; ratings are safe in the session store")

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
            self.queue.set_constraints(self.constraints)

    def set_four_on_the_floor(self, on: bool) -> None:
        with self._lock:
            c = self.constraints
            self.constraints = Constraints(c.locked_grid, c.locked_sample, c.reference, on)
            self.queue.set_constraints(self.constraints)

    def set_transport(self, bar: int, bpm: float | None = None) -> None:
        """The host says a bar line is now: training slices will end before the next one."""
        if bpm:
            self.bpm = float(bpm)
        self._transport = (time.monotonic(), bar, self.bpm)

    def training_deadline(self) -> float | None:
        """When the current training slice must end: just before the next bar line, if a host
        has told us where they are recently; None lets the learner use its own slice length."""
        transport = self._transport
        if transport is None:
            return None
        when, _, bpm = transport
        bar_seconds = 240.0 / bpm
        now = time.monotonic()
        if now - when > 8 * bar_seconds:  # the host went quiet: stop guessing
            return None
        bars_ahead = int((now - when + BAR_MARGIN) // bar_seconds) + 1
        return when + bars_ahead * bar_seconds - BAR_MARGIN

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
        return EngineStatus(n, likes, self.queue.depth, bool(self.learner.training),
                            int(self.learner.version), self.device)


def share_cores() -> None:
    """Training and the candidate producer run side by side: give each its share of the
    cores. torch's default (every core per op, in each thread) oversubscribes the machine,
    and tiny ops then wait on spinning threads (measured 70× slower on 2 cores)."""
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))


def _note_mapper(bank: SampleBank) -> Callable[[Loop], tuple[int, ...]]:
    """Each track's GM drum note from its sample's role, so a Drum Rack plays what was judged."""
    try:
        from .roles import classify_bank, track_notes
    except ImportError:
        return lambda loop: DEFAULT_NOTES[:loop.tracks]
    roles = dict(zip(bank.names, classify_bank(bank), strict=True))
    return lambda loop: tuple(track_notes([roles[name] for name in loop.samples]))
