"""MIDI out in time: the playing loop as drum notes on a (virtual) MIDI port.

Two clocks:
- internal: a scheduler with real-time priority (where allowed) sleeps until `HOLD` before each
  step, then waits out the rest *holding the GIL* (`hold_until`) and sends. By default it runs
  in a child process that owns the port (`IsolatedMidiPlayer`): in one process, a thread
  holding the GIL (critic training, candidate search) can be descheduled for tens of ms on a
  loaded machine, and the scheduler would wait for it. The parent decides which loop plays from
  which bar (`Deck`) a little ahead of each bar line and sends it down a pipe. `MidiPlayer`
  is the player itself, which that process runs (and tests may run as a thread);
- MIDI clock in (24 ppqn, start / stop / continue / song position pointer): every sixth tick is
  a step, played from the input's callback as the tick arrives, so the loop stays on the
  master's grid whatever its tempo. In `IsolatedMidiPlayer` the child owns the clock input
  too, reports each bar line to the parent and plays the deck's next loop from the next one.

Ports: on Linux the JACK API is used when a JACK server runs (ALSA needs a sound card), else
ALSA; CoreMIDI on macOS, WinMM on Windows (no virtual ports there: name an existing port such
as loopMIDI's). Without a port name we open a virtual port: JACK client `DeepDrummer`, port
`out`. A new loop starts only on a bar line; all notes are switched off on stop, on every loop
change and on close.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rtmidi

from .child import ChildStartError, spawn

log = logging.getLogger("deepdrummer_live.midi")

# as in render.py; repeated so that the scheduler process never imports torch
DEFAULT_NOTES = (36, 38, 42, 46)
GM_DRUM_CHANNEL = 9
CLIENT_NAME = "DeepDrummer"
NOTE_ON, NOTE_OFF, CONTROL = 0x90, 0x80, 0xB0
ALL_NOTES_OFF = 123
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
PPQN = 24
TICKS_PER_STEP = PPQN // 4  # a step is a sixteenth note
HOLD = 0.010  # the scheduler wakes this long before an event and keeps the GIL until it
LEAD = 0.1  # the first bar starts this long after start(): time to settle
DECIDE_AHEAD = 0.004  # the loop for a bar is chosen this long before its bar line
SWITCH_INTERVAL = 0.0005  # Python's GIL hand-over interval while a player runs (default 5 ms)
RT_PRIORITY = 20  # SCHED_FIFO priority asked for the scheduler thread (below JACK's)
APIS = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA,
        "coremidi": rtmidi.API_MACOSX_CORE, "winmm": rtmidi.API_WINDOWS_MM}


class MidiError(RuntimeError):
    """A MIDI port could not be opened; the message says which and why."""


def choose_api(name: str = "auto") -> int:
    """The rtmidi API for `name` (auto: JACK on Linux when a JACK server runs)."""
    if name != "auto":
        if name not in APIS:
            raise MidiError(f"unknown MIDI API {name!r}; choose auto, {', '.join(APIS)}")
        api = APIS[name]
        if api not in rtmidi.get_compiled_api():
            raise MidiError(f"this python-rtmidi has no {name} support")
        return api
    if sys.platform == "darwin":
        return rtmidi.API_MACOSX_CORE
    if sys.platform == "win32":
        return rtmidi.API_WINDOWS_MM
    from .jackd import jack_server_running

    if jack_server_running():
        return rtmidi.API_UNIX_JACK
    return rtmidi.API_LINUX_ALSA


def _open(kind: type, port: str | None, api: str, client: str, port_name: str) -> Any:
    rtapi = choose_api(api)
    try:
        midi = kind(rtapi=rtapi, name=client)
    except Exception as exc:
        raise MidiError(f"cannot open MIDI ({rtmidi.get_api_name(rtapi)}): {exc}; on Linux "
                        "without a sound card start a JACK server "
                        "(python -m deepdrummer_live.jackd)") from None
    try:
        if port is None:
            if rtapi == rtmidi.API_WINDOWS_MM:
                raise MidiError("Windows has no virtual MIDI ports: name an existing port "
                                "(e.g. one made with loopMIDI)")
            midi.open_virtual_port(port_name)
        else:
            names = midi.get_ports()
            matches = [i for i, n in enumerate(names) if n == port]
            matches = matches or [i for i, n in enumerate(names) if port.lower() in n.lower()]
            if not matches:
                raise MidiError(f"no MIDI port matching {port!r}; ports: "
                                f"{', '.join(names) or '(none)'}")
            midi.open_port(matches[0], port_name)
    except BaseException:
        close_port(midi)
        raise
    return midi


def open_output(port: str | None = None, api: str = "auto", client: str = CLIENT_NAME,
                port_name: str = "out") -> Any:
    """A MIDI output: a virtual port `client:port_name`, or connected to the named port."""
    return _open(rtmidi.MidiOut, port, api, client, port_name)


def open_input(port: str | None = None, api: str = "auto", client: str = CLIENT_NAME + "-in",
               port_name: str = "in", timing: bool = False) -> Any:
    """A MIDI input (virtual or connected to `port`); `timing` lets clock messages through."""
    midi = _open(rtmidi.MidiIn, port, api, client, port_name)
    midi.ignore_types(sysex=False, timing=not timing, active_sense=True)
    return midi


def list_ports(api: str = "auto") -> tuple[list[str], list[str]]:
    """(inputs, outputs) visible through `api`."""
    rtapi = choose_api(api)
    midi_in, midi_out = rtmidi.MidiIn(rtapi=rtapi), rtmidi.MidiOut(rtapi=rtapi)
    try:
        return midi_in.get_ports(), midi_out.get_ports()
    finally:
        close_port(midi_in)
        close_port(midi_out)


def close_port(midi: Any) -> None:
    """Close at once: under a synchronous JACK server a lingering client stalls it ~5 s."""
    with contextlib.suppress(Exception):
        if isinstance(midi, rtmidi.MidiIn):
            midi.cancel_callback()
    with contextlib.suppress(Exception):
        midi.close_port()
    with contextlib.suppress(Exception):
        midi.delete()


class MidiRecorder:
    """Records what arrives at a MIDI input as (message, time in s), for checking timing
    (the live tests, `benchmarks/bench_midi.py`). Connected to `source`, or a virtual port
    `client:in` when `source` is None. It polls instead of taking a callback, which keeps
    Python out of JACK's process thread; RtMidi stamps each message with the time of the
    cycle that delivered it."""

    def __init__(self, source: str | None, client: str = "DDTest", api: str = "jack") -> None:
        self.port = open_input(source, api=api, client=client, timing=True)
        self.messages: list[tuple[tuple[int, ...], float]] = []
        self._time = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.port.get_message()
            if item is None:
                time.sleep(0.0005)
                continue
            message, delta = item
            self._time += delta
            self.messages.append((tuple(message), self._time))

    def wait_for(self, count: int, timeout: float) -> list[tuple[tuple[int, ...], float]]:
        """What has arrived once `count` messages have, or when `timeout` s have passed."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.messages)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        close_port(self.port)


def realtime_thread(priority: int = RT_PRIORITY) -> bool:
    """Ask for SCHED_FIFO for the calling thread (Linux, with the right to): a busy machine then
    cannot delay the wake-up. The thread only sleeps and sends, so it cannot starve anything.
    """
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return False
    return True


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _gil_holding_sleep() -> Any:
    """libc's clock_nanosleep called through ctypes.PyDLL, which keeps the GIL during the call
    (ctypes.CDLL would release it). None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6")
        function = libc.clock_nanosleep
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Timespec), ctypes.c_void_p]
    return function


_CLOCK_NANOSLEEP = _gil_holding_sleep()
_CLOCK_MONOTONIC, _TIMER_ABSTIME = 1, 1


def hold_until(when: float) -> None:
    """Wait until perf_counter() reaches `when` without giving up the GIL.

    Why: on a loaded machine a thread that holds the GIL (critic training, candidate search)
    can be preempted by other processes for several milliseconds; a note sent after
    re-acquiring the GIL would wait for it. Keeping the GIL for the last few milliseconds
    makes the send instant. perf_counter is CLOCK_MONOTONIC on Linux, so the absolute sleep
    ends on time; elsewhere this spins.
    """
    if _CLOCK_NANOSLEEP is not None and when - time.perf_counter() > 0.0002:
        spec = _Timespec(int(when), int((when - int(when)) * 1e9))
        _CLOCK_NANOSLEEP(_CLOCK_MONOTONIC, _TIMER_ABSTIME, ctypes.byref(spec), None)
    while time.perf_counter() < when:
        pass


def parse_notes(text: str) -> tuple[int, ...]:
    """'36,38,42,46' → (36, 38, 42, 46), each a MIDI note 0–127."""
    try:
        notes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"notes must be comma-separated numbers, got {text!r}") from None
    if not notes or any(not 0 <= n <= 127 for n in notes):
        raise ValueError(f"notes must be 0–127, got {text!r}")
    return notes


class MidiPlayer:
    """Plays the deck's loop on `out`, on the internal clock or following `clock_in`.

    `notes` overrides the loop's own note map (HandedLoop.notes, General MIDI by sample role);
    `channel` counts from 0 (9 is GM drums, channel 10). With `record=True` every message sent
    is logged as (ideal time, actual time, bytes) in `sent`, for tests and benchmarks.
    """

    def __init__(self, deck: Any, out: Any, notes: Sequence[int] | None = None,
                 channel: int = GM_DRUM_CHANNEL, bpm: float = 120.0, clock_in: Any = None,
                 record: bool = False, lead: float = LEAD, hold: float = HOLD,
                 switch_interval: float | None = SWITCH_INTERVAL) -> None:
        if not 0 <= channel <= 15:
            raise ValueError(f"MIDI channel must be 1–16, got {channel + 1}")
        self.deck = deck
        self.out = out
        self.notes = tuple(notes) if notes else None
        self.channel = channel
        self.bpm = float(bpm)
        self.clock_in = clock_in
        self.lead = lead
        self.hold = hold
        self.switch_interval = switch_interval
        self.sent: collections.deque | None = collections.deque(maxlen=200_000) if record else None
        self.realtime = False  # whether the scheduler thread got real-time priority
        self.late_steps = 0  # steps dropped because the scheduler woke far too late
        self.started_at: float | None = None  # perf_counter time of bar 0 (internal clock)
        self._sounding: set[int] = set()
        self._handed: Any = None
        self._events: dict[str, list[list[tuple[int, int]]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_interval: float | None = None
        self._out_lock = threading.Lock()
        # clock follower state (only touched by the input's callback thread)
        self._running = False
        self._position = 0  # MIDI clock ticks since the start of the song
        self._clock_time = 0.0
        self._tick_times: collections.deque = collections.deque(maxlen=PPQN + 1)

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> MidiPlayer:
        if self.switch_interval is not None:
            self._saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval)
        if self.clock_in is None:
            self._thread = threading.Thread(target=self._run_internal, name="midi-clock",
                                            daemon=True)
            self._thread.start()
        else:
            self.clock_in.ignore_types(sysex=False, timing=False, active_sense=True)
            self.clock_in.set_callback(self._on_clock)
        return self

    def close(self) -> None:
        """Stop, switch every note off (no stuck notes), restore the GIL switch interval."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self.clock_in is not None:
            with contextlib.suppress(Exception):
                self.clock_in.cancel_callback()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.all_notes_off(every_note=True)
        if self._saved_interval is not None:
            sys.setswitchinterval(self._saved_interval)
            self._saved_interval = None

    def __enter__(self) -> MidiPlayer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- messages --------------------------------------------------------------------------
    def _send(self, message: list[int], ideal: float) -> None:
        with self._out_lock:
            self.out.send_message(message)
        if self.sent is not None:
            self.sent.append((ideal, time.perf_counter(), tuple(message)))

    def all_notes_off(self, ideal: float | None = None, every_note: bool = False) -> None:
        """Note-offs for every sounding note (every mapped note too with `every_note`), then
        All Notes Off (CC 123) on our channel."""
        ideal = time.perf_counter() if ideal is None else ideal
        notes = set(self._sounding)
        if every_note:
            notes |= set(self.notes or DEFAULT_NOTES)
            if self._handed is not None:
                notes |= set(self._notes_of(self._handed))
        for note in sorted(notes):
            self._send([NOTE_OFF | self.channel, note, 0], ideal)
        self._sounding.clear()
        self._send([CONTROL | self.channel, ALL_NOTES_OFF, 0], ideal)

    def _notes_of(self, handed: Any) -> tuple[int, ...]:
        notes = self.notes or tuple(getattr(handed, "notes", ()) or DEFAULT_NOTES)
        if len(notes) < handed.loop.tracks:
            raise ValueError(f"{handed.loop.tracks} tracks but only {len(notes)} notes mapped")
        return notes

    def step_events(self, handed: Any) -> list[list[tuple[int, int]]]:
        """Per step, the (note, velocity) pairs to play, in track order (cached per loop)."""
        if handed.loop_id not in self._events:
            notes = self._notes_of(handed)
            velocities = getattr(handed, "velocities", None) or tuple(
                tuple(100 if on else 0 for on in row) for row in handed.loop.grid)
            events = []
            for step in range(handed.loop.steps):
                loudest: dict[int, int] = {}  # two tracks on one note: one note-on, the louder
                for track in range(handed.loop.tracks):
                    velocity = min(127, int(velocities[track][step]))
                    if velocity > 0:
                        note = notes[track]
                        loudest[note] = max(velocity, loudest.get(note, 0))
                events.append(list(loudest.items()))
            if len(self._events) > 64:
                self._events.clear()
            self._events[handed.loop_id] = events
        return self._events[handed.loop_id]

    def _play_step(self, step: int, ideal: float, change: bool, late: bool = False) -> None:
        """Note-offs for the previous step (or all notes off on a loop change), then note-ons."""
        if change:
            self.all_notes_off(ideal)
        else:
            for note in sorted(self._sounding):
                self._send([NOTE_OFF | self.channel, note, 0], ideal)
            self._sounding.clear()
        if self._handed is None or late:
            return
        for note, velocity in self.step_events(self._handed)[step]:
            self._send([NOTE_ON | self.channel, note, velocity], ideal)
            self._sounding.add(note)

    # -- internal clock --------------------------------------------------------------------
    def _wait_until(self, when: float) -> bool:
        """Sleep until `hold` before `when`, then wait out the rest holding the GIL; False
        when stopped meanwhile."""
        left = when - time.perf_counter()
        if left > self.hold and self._stop.wait(left - self.hold):
            return False
        hold_until(when)
        return not self._stop.is_set()

    def _run_internal(self) -> None:
        self.realtime = realtime_thread()
        try:
            self._internal_loop()
        except Exception:
            log.exception("the MIDI player stopped")

    def _internal_loop(self) -> None:
        bar = 0
        bar_time = time.perf_counter() + self.lead
        self.started_at = bar_time
        while not self._stop.is_set():
            bpm = self.bpm
            step_seconds = 60.0 / bpm / 4
            if not self._wait_until(bar_time - DECIDE_AHEAD):
                return
            handed, started = self.deck.loop_for_bar(bar)
            change = started or (handed is not self._handed)
            self._handed = handed
            steps = handed.loop.steps if handed is not None else 16
            for step in range(steps):
                ideal = bar_time + step * step_seconds
                if not self._wait_until(ideal):
                    return
                late = time.perf_counter() - ideal > step_seconds / 2
                if late:
                    self.late_steps += 1
                self._play_step(step, ideal, change and step == 0, late)
                if step == 0:
                    self.deck.bar_line(bar, bpm)
            bar += 1
            bar_time += steps * step_seconds

    # -- MIDI clock follower ---------------------------------------------------------------
    @property
    def clock_bpm(self) -> float | None:
        """The master's tempo over the last beat of clock ticks (None before a beat)."""
        times = self._tick_times
        if len(times) < 2:
            return None
        span = times[-1] - times[0]
        return 60.0 * (len(times) - 1) / PPQN / span if span > 0 else None

    def _on_clock(self, event: tuple[list[int], float], data: Any = None) -> None:
        message, delta = event
        self._clock_time += delta
        status = message[0]
        try:
            if status == CLOCK:
                self._tick()
            elif status == START:
                self._position, self._running = 0, True
                self._tick_times.clear()
            elif status == CONTINUE:
                self._running = True
            elif status == STOP:
                self._running = False
                self.all_notes_off()
                self._handed = None
                self.deck.stopped()
            elif status == SONG_POSITION and len(message) >= 3:
                self._position = (message[1] | (message[2] << 7)) * TICKS_PER_STEP
        except Exception:
            log.exception("MIDI clock message %s failed", message)

    def _tick(self) -> None:
        self._tick_times.append(self._clock_time)
        if not self._running:
            return
        position = self._position
        self._position += 1
        if position % TICKS_PER_STEP:
            return
        now = time.perf_counter()
        index = position // TICKS_PER_STEP
        steps = self._handed.loop.steps if self._handed is not None else 16
        bar, step = divmod(index, steps)
        change = False
        if step == 0 or self._handed is None:
            handed, started = self.deck.loop_for_bar(bar)
            change = started or handed is not self._handed
            self._handed = handed
        self._play_step(step, now, change)
        if step == 0:
            self.deck.bar_line(bar, self.clock_bpm or self.bpm)


# -- the internal clock in a process of its own ------------------------------------------------
FEED_AHEAD = 0.08  # the parent picks the loop for a bar this long before its bar line
CHILD_LEAD = 0.4  # bar 0 starts this long after the child is ready


@dataclass(frozen=True)
class _Shape:
    steps: int
    tracks: int


@dataclass(frozen=True)
class PlayedLoop:
    """What the scheduler process needs of a loop: plain values, no torch."""

    loop_id: str
    notes: tuple[int, ...]
    velocities: tuple[tuple[int, ...], ...]
    loop: _Shape

    @classmethod
    def of(cls, handed: Any) -> PlayedLoop:
        velocities = getattr(handed, "velocities", None) or tuple(
            tuple(100 if on else 0 for on in row) for row in handed.loop.grid)
        return cls(handed.loop_id, tuple(getattr(handed, "notes", ()) or DEFAULT_NOTES),
                   tuple(tuple(int(v) for v in row) for row in velocities),
                   _Shape(handed.loop.steps, handed.loop.tracks))


class _PipeDeck:
    """The scheduler process's deck: plays the newest loop sent for a bar at or before this
    (-1: from the next bar line); with a clock, reports bar lines and stops to the parent."""

    def __init__(self, report: Any = None) -> None:
        self.schedule: list[tuple[int, PlayedLoop]] = []
        self.lock = threading.Lock()
        self.current: PlayedLoop | None = None
        self.report = report
        self._restart = False

    def add(self, from_bar: int, played: PlayedLoop) -> None:
        with self.lock:
            self.schedule.append((from_bar, played))

    def loop_for_bar(self, bar: int) -> tuple[Any, bool]:
        with self.lock:
            due = [item for item in self.schedule if item[0] <= bar]
            self.schedule = [item for item in self.schedule if item[0] > bar]
        restart, self._restart = self._restart, False
        if due:
            played = due[-1][1]
            if self.current is None or played.loop_id != self.current.loop_id:
                self.current = played
                return played, True
        return self.current, restart and self.current is not None

    def bar_line(self, bar: int, bpm: float) -> None:
        if self.report is not None:
            self.report(("bar", bar, bpm))

    def stopped(self) -> None:
        self._restart = True
        if self.report is not None:
            self.report(("stopped",))


def _scheduler_main(conn: Any, spec: dict) -> None:
    """Entry point of the scheduler process: open the ports, play what the parent sends."""
    ports: list[Any] = []
    try:
        out = open_output(spec["port"], spec["api"], spec["client"])
        ports.append(out)
        clock_in = None
        if spec["clock_in"] is not None:
            clock_in = open_input(spec["clock_in"] or None, spec["api"], timing=True)
            ports.append(clock_in)
    except Exception as exc:
        for port in ports:
            close_port(port)
        conn.send(("error", str(exc)))
        return
    deck = _PipeDeck(conn.send if clock_in is not None else None)
    player = MidiPlayer(deck, out, notes=spec["notes"], channel=spec["channel"],
                        bpm=spec["bpm"], record=spec["record"], lead=spec["lead"],
                        hold=spec["hold"], clock_in=clock_in, switch_interval=None).start()
    while clock_in is None and player.started_at is None:
        time.sleep(0.001)
    conn.send(("ready", player.started_at))
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the parent is gone: stop, notes off
                break
            if message[0] == "loop":
                deck.add(message[1], message[2])
            elif message[0] == "bpm":
                player.bpm = message[1]
            elif message[0] == "stop":
                break
    finally:
        player.close()
        for port in ports:
            close_port(port)
        with contextlib.suppress(Exception):
            conn.send(("done", list(player.sent or ()), player.late_steps, player.realtime))


class IsolatedMidiPlayer:
    """The MIDI player in a child process that owns its ports (output, and clock input when
    `clock_in` is given: a port name, or "" for a virtual port `DeepDrummer-in:in`).

    Why: in one process, every Python thread shares the GIL; on a loaded machine a thread
    holding it (critic training, candidate search) can be descheduled for tens of ms, and the
    scheduler waits for it. The child has nothing but the scheduler, so the critic cannot touch
    the timing. This process still decides which loop plays from which bar (`Deck`), a little
    ahead of each bar line (`FEED_AHEAD`), and sends it down a pipe.
    """

    def __init__(self, deck: Any, port: str | None = None, api: str = "auto",
                 client: str = CLIENT_NAME, notes: Sequence[int] | None = None,
                 channel: int = GM_DRUM_CHANNEL, bpm: float = 120.0, record: bool = False,
                 hold: float = HOLD, clock_in: str | None = None) -> None:
        if not 0 <= channel <= 15:
            raise ValueError(f"MIDI channel must be 1–16, got {channel + 1}")
        choose_api(api)  # a bad API name fails here, in this process
        self.deck = deck
        self.bpm = float(bpm)
        self.spec = {"port": port, "api": api, "client": client,
                     "notes": tuple(notes) if notes else None, "channel": channel,
                     "bpm": self.bpm, "record": record, "lead": CHILD_LEAD, "hold": hold,
                     "clock_in": clock_in}
        self.clock_bpm: float | None = None  # the master's tempo, following a clock
        self.sent: list = []
        self.late_steps = 0
        self.realtime = False
        self.started_at: float | None = None
        self._process: Any = None
        self._conn: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> IsolatedMidiPlayer:
        try:
            self._process, self._conn, (_, value) = spawn(
                _scheduler_main, self.spec, "deepdrummer-midi", "the MIDI scheduler process",
                timeout)
        except ChildStartError as exc:
            raise MidiError(str(exc)) from None
        self.started_at = value
        follow = self.spec["clock_in"] is not None
        self._thread = threading.Thread(target=self._follow if follow else self._feed,
                                        name="midi-feed", daemon=True)
        self._thread.start()
        return self

    def _feed(self) -> None:
        """Before each bar line: the deck's loop for that bar, sent if it changes."""
        bar, bar_time, last = 0, self.started_at, None
        try:
            while not self._stop.wait(max(0.0, bar_time - FEED_AHEAD - time.perf_counter())):
                handed, started = self.deck.loop_for_bar(bar)
                if handed is not None and (started or last is None
                                           or handed.loop_id != last.loop_id):
                    self._conn.send(("loop", bar, PlayedLoop.of(handed)))
                    last = handed
                self.deck.bar_line(bar, self.bpm)
                steps = handed.loop.steps if handed is not None else 16
                bar, bar_time = bar + 1, bar_time + steps * 15.0 / self.bpm
        except (OSError, EOFError):
            log.warning("the MIDI scheduler process is gone")

    def _follow(self) -> None:
        """Following a clock, the child finds the bar lines: it plays the deck's next loop
        from the next one, and tells us where they are and which bar it started."""
        sent: str | None = None
        try:
            while not self._stop.is_set():
                pending = self.deck.pending
                if pending is not None and pending.loop_id != sent:
                    self._conn.send(("loop", -1, PlayedLoop.of(pending)))
                    sent = pending.loop_id
                if not self._conn.poll(0.02):
                    continue
                message = self._conn.recv()
                if message[0] == "bar":
                    _, bar, bpm = message
                    self.clock_bpm = bpm
                    self.deck.loop_for_bar(bar)
                    self.deck.bar_line(bar, bpm)
                elif message[0] == "stopped":
                    self.deck.stopped()
                    playing = self.deck.pending
                    sent = playing.loop_id if playing is not None else sent
                elif message[0] == "done":  # the child stopped on its own
                    _, self.sent, self.late_steps, self.realtime = message
                    return
        except (OSError, EOFError):
            log.warning("the MIDI scheduler process is gone")

    def close(self) -> None:
        """Stop the child (it switches every note off and closes its port)."""
        if self._process is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError, EOFError, BrokenPipeError):
            self._conn.send(("stop",))
            deadline = time.monotonic() + 10
            while self._conn.poll(max(0.0, deadline - time.monotonic())):
                message = self._conn.recv()  # late bar reports may come first
                if message[0] == "done":
                    _, self.sent, self.late_steps, self.realtime = message
                    break
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()
        self._process = None

    def __enter__(self) -> IsolatedMidiPlayer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
