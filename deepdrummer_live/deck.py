"""Which loop plays from which bar: the one place players, keys and controllers agree on.

Why a separate object: the MIDI player, the audio player, the terminal keys and a MIDI
controller all act on "the loop that is playing", and a change of loop must land on the same
bar line everywhere. Timing threads only ever call `loop_for_bar` and `bar_line`, which never
block: fetching a loop from the engine (up to seconds when its queue is cold), rating, locking
and telling the engine where the bar lines are all happen on the deck's own worker thread.

The engine side is a small protocol (`next_loop`, `playing`, `rate`, `lock`, `set_transport`,
`status`, optionally `current`), so players can be tested against any object that has it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("deepdrummer_live.deck")
FIRST_LOOP_TIMEOUT = 60.0  # a cold engine may need a while for its first candidates


class EngineLike(Protocol):
    def next_loop(self, timeout: float = ...) -> Any: ...
    def playing(self, handed: Any, bar: int) -> None: ...
    def rate(self, loop_id: str, liked: bool, source: str = ...) -> tuple[int, int]: ...
    def lock(self, track: int, grid: bool, sample: bool) -> None: ...
    def set_transport(self, bar: int, bpm: float | None = None) -> None: ...
    def status(self) -> Any: ...


@dataclass(frozen=True)
class DeckEvent:
    """What listeners (LEDs, the status line) hear about: kind is one of
    'loop' (a loop starts at `bar`), 'rated' (liked True/False), 'lock', 'busy', 'error'."""

    kind: str
    handed: Any = None
    bar: int = 0
    liked: bool | None = None
    text: str = ""


class Deck:
    """The playing loop, the loop queued for the next bar line, and the user's actions."""

    def __init__(self, engine: EngineLike, source: str = "player",
                 advance_on_rating: bool = True, tracks: int = 4) -> None:
        self.engine = engine
        self.source = source
        self.advance_on_rating = advance_on_rating
        self.locks = [False] * tracks
        self.playing_handed: Any = None
        self.playing_since = 0
        self.bar = -1
        self.bpm: float | None = None
        self._pending: Any = None
        self._fetching = False
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._listeners: list[Callable[[DeckEvent], None]] = []
        self._preparers: list[Callable[[Any], None]] = []
        self._adopting: str | None = None
        self._worker: threading.Thread | None = None
        self._last_transport_bar = -1

    # -- life cycle ------------------------------------------------------------------------
    def start(self, first_timeout: float = FIRST_LOOP_TIMEOUT) -> Deck:
        """Fetch the first loop (waiting for a cold engine), then start the worker thread."""
        if self._pending is None and self.playing_handed is None:
            self._pending = self._fetch_blocking(first_timeout)
        self._worker = threading.Thread(target=self._work, name="deck", daemon=True)
        self._worker.start()
        return self

    def close(self) -> None:
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join(timeout=5)
            self._worker = None

    def _fetch_blocking(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.engine.next_loop(timeout=min(2.0, max(0.1, timeout)))
            except Exception as exc:  # EngineBusy: the candidate queue is still warming up
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no loop from the engine within {timeout:g} s: "
                                       f"{exc}") from None

    def add_preparer(self, prepare: Callable[[Any], None]) -> None:
        """`prepare(handed)` runs on the worker before a loop can start (the audio player
        renders it there), so a bar line never waits for it. The first loop is prepared
        here at once."""
        self._preparers.append(prepare)
        first = self._pending or self.playing_handed
        if first is not None:
            prepare(first)

    def _prepare(self, handed: Any) -> None:
        for prepare in list(self._preparers):
            try:
                prepare(handed)
            except Exception:
                log.exception("preparing loop %s failed", getattr(handed, "loop_id", "?"))

    def on_event(self, listener: Callable[[DeckEvent], None]) -> None:
        self._listeners.append(listener)

    def _emit(self, event: DeckEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("a deck listener failed")

    # -- called from timing threads: never blocks ------------------------------------------
    def loop_for_bar(self, bar: int) -> tuple[Any, bool]:
        """The loop to play from bar line `bar`, and whether it starts there.

        The first player to reach a bar decides; every other player asking for the same bar
        gets the same answer. A loop handed out by someone else (OSC `/dd/next`) also starts at
        the next bar line.
        """
        with self._lock:
            if bar <= self.bar and self.playing_handed is not None:
                return self.playing_handed, bar == self.playing_since
            self.bar = bar
            handed = self._pending
            self._pending = None
            if handed is None:
                self._check_handed_elsewhere()
            if handed is None or (self.playing_handed is not None
                                  and handed.loop_id == self.playing_handed.loop_id):
                return self.playing_handed, False
            self.playing_handed, self.playing_since = handed, bar
        self._jobs.put(("playing", handed, bar))
        return handed, True

    def bar_line(self, bar: int, bpm: float) -> None:
        """A player crossed bar line `bar` at `bpm`: the engine may train until the next one."""
        with self._lock:
            if bar <= self._last_transport_bar:
                return
            self._last_transport_bar = bar
            self.bpm = bpm
        self._jobs.put(("transport", bar, bpm))

    def stopped(self) -> None:
        """The transport stopped (MIDI clock stop): the next start re-announces the loop."""
        with self._lock:
            self._last_transport_bar = -1
            self.bar = -1
            if self.playing_handed is not None and self._pending is None:
                self._pending, self.playing_handed = self.playing_handed, None

    def _check_handed_elsewhere(self) -> None:
        """A loop handed out by someone else (OSC `/dd/next` makes it the engine's current
        loop) is prepared on the worker, then starts at the next bar line. Holds _lock."""
        current = getattr(self.engine, "current", None)
        playing = self.playing_handed
        if (current is not None and playing is not None and self._pending is None
                and not self._fetching
                and current.loop_id not in (playing.loop_id, self._adopting)):
            self._adopting = current.loop_id
            self._jobs.put(("adopt", current))

    # -- user actions: return at once, done on the worker ----------------------------------
    def next(self) -> None:
        """Move to a fresh loop at the next bar line."""
        self._jobs.put(("next",))

    def like(self) -> None:
        self._jobs.put(("rate", True))

    def dislike(self) -> None:
        self._jobs.put(("rate", False))

    def toggle_lock(self, track: int) -> None:
        """Keep (or release) this track's grid and sample in the loops that follow."""
        self._jobs.put(("lock", track))

    def status(self) -> Any:
        return self.engine.status()

    @property
    def pending(self) -> Any:
        return self._pending

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every action queued so far has been carried out (for tests)."""
        done = threading.Event()
        self._jobs.put(("mark", done))
        return done.wait(timeout)

    # -- the worker ------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=0.05)
            except queue.Empty:  # meanwhile, watch for loops handed out by others
                with self._lock:
                    self._check_handed_elsewhere()
                continue
            if job is None:
                return
            try:
                self._do(job)
            except Exception as exc:
                log.exception("deck action %s failed", job[0])
                self._emit(DeckEvent("error", text=f"{type(exc).__name__}: {exc}"))

    def _do(self, job: tuple) -> None:
        kind = job[0]
        if kind == "playing":
            _, handed, bar = job
            self.engine.playing(handed, bar)
            self._emit(DeckEvent("loop", handed, bar))
        elif kind == "transport":
            self.engine.set_transport(job[1], job[2])
        elif kind == "next":
            self._fetch_next()
        elif kind == "adopt":  # a loop handed out by someone else (OSC /dd/next)
            self._prepare(job[1])
            with self._lock:
                if self._pending is None and not self._fetching:
                    self._pending = job[1]
                self._adopting = None
        elif kind == "rate":
            self._rate(job[1])
        elif kind == "lock":
            track = job[1]
            if 0 <= track < len(self.locks):
                self.locks[track] = not self.locks[track]
                on = self.locks[track]
                self.engine.lock(track, on, on)
                self._emit(DeckEvent("lock", self.playing_handed, text=str(track)))
        elif kind == "mark":
            job[1].set()

    def _fetch_next(self) -> None:
        with self._lock:
            self._fetching = True
        try:
            handed = self.engine.next_loop()
        except Exception as exc:
            self._emit(DeckEvent("busy", text=str(exc)))
            return
        else:
            self._prepare(handed)
            with self._lock:
                self._pending = handed
        finally:
            with self._lock:
                self._fetching = False

    def _rate(self, liked: bool) -> None:
        handed = self.playing_handed
        if handed is None:
            return
        try:
            self.engine.rate(handed.loop_id, liked, self.source)
        except Exception as exc:  # AlreadyRated: the first rating stands
            self._emit(DeckEvent("error", handed, text=f"not rated: {type(exc).__name__} {exc}"))
            return
        self._emit(DeckEvent("rated", handed, liked=liked))
        if self.advance_on_rating:
            self._fetch_next()
