"""MIDI out through a real JACK server: notes in order and on time, and MIDI clock following."""

from __future__ import annotations

import statistics
import time

import pytest

from deepdrummer_live.deck import Deck
from deepdrummer_live.midi import (
    ALL_NOTES_OFF,
    CLOCK,
    CONTINUE,
    SONG_POSITION,
    START,
    STOP,
    IsolatedMidiPlayer,
    MidiRecorder,
    close_port,
    open_output,
)

from .conftest import PERIOD, RATE, Trainer

TOLERANCE = PERIOD / RATE + 0.003  # one JACK period + 3 ms
# Following a clock, a step can only answer a tick the player has seen: JACK hands the tick
# to the player in one cycle and the notes go out in the next one at the earliest, or one
# later when the player's reaction misses that cycle (or the dummy backend wakes late).
FOLLOW_TOLERANCE = 2 * PERIOD / RATE + 0.003
CH = 9  # GM drums, channel 10


def expected_messages(handed, bars: int) -> list[tuple[tuple[int, ...], int]]:
    """(message, step index) for `bars` bars of `handed` from a standing start, written out
    independently of the player: all notes off at the start, then per step the previous
    step's notes off (ascending) and this step's notes on (track order, one per note)."""
    grid, notes = handed.loop.grid, handed.notes
    out: list[tuple[tuple[int, ...], int]] = [((0xB0 | CH, ALL_NOTES_OFF, 0), 0)]
    sounding: set[int] = set()
    steps = handed.loop.steps
    for index in range(bars * steps):
        step = index % steps
        out += [((0x80 | CH, n, 0), index) for n in sorted(sounding)]
        sounding = set()
        for track, row in enumerate(grid):
            if row[step] and notes[track] not in sounding:
                out.append(((0x90 | CH, notes[track], 100), index))
                sounding.add(notes[track])
    return out


def timing_errors(received: list, expected: list, step_seconds: float) -> list[float]:
    """Arrival minus ideal grid time, against the grid's median phase (JACK's cycles start at
    an arbitrary phase of our clock)."""
    offsets = [t - index * step_seconds for (_, t), (_, index) in zip(received, expected,
                                                                     strict=True)]
    phase = statistics.median(offsets)
    return [o - phase for o in offsets]


@pytest.fixture
def deck(engine):
    deck = Deck(engine, source="test").start()
    yield deck
    deck.close()


def play_four_bars(engine, trainer, bpm: float) -> tuple[list, list, IsolatedMidiPlayer]:
    """Four bars of the engine's next loop, played while the critic trains, as received by an
    independent JACK input; returns (received, expected, player)."""
    deck = Deck(engine, source="test").start()
    receiver = MidiRecorder(None)  # a virtual input DDTest:in, which the player connects to
    player = IsolatedMidiPlayer(deck, port="DDTest:in", api="jack", bpm=bpm, record=True)
    expected = expected_messages(deck.pending, bars=4)
    try:
        with trainer:
            time.sleep(0.5)  # training under way before the first note
            player.start()
            received = receiver.wait_for(len(expected), timeout=4 * 240 / bpm + 5)
            player.close()
    finally:
        player.close()
        receiver.close()
        deck.close()
    return received[:len(expected)], expected, player


def test_four_bars_arrive_in_order_and_on_time_while_the_critic_trains(
        jack_server, engine, bank):
    """Our scheduler must send every note within 3 ms of the grid, every time. What arrives
    must be within one JACK period + 3 ms of the grid, but the dummy backend's cycles
    sometimes wake late on a loaded machine (which a real sound card never does): the arrival
    check gets a second run when the first one misses it while the sending was on time."""
    bpm = 150.0
    for attempt in (1, 2):
        trainer = Trainer(engine, bank)
        received, expected, player = play_four_bars(engine, trainer, bpm)
        assert trainer.seen_training > 0, "the critic never trained during the test"
        assert [m for m, _ in received] == [m for m, _ in expected]
        late = [actual - ideal for ideal, actual, _ in player.sent]
        assert max(late) <= 0.003 and player.late_steps == 0
        errors = timing_errors(received, expected, 60.0 / bpm / 4)
        worst = max(abs(e) for e in errors)
        print(f"run {attempt}: sent at most {max(late) * 1e3:.2f} ms late; arrival error p50 "
              f"{statistics.median(map(abs, errors)) * 1e3:.2f} ms, max {worst * 1e3:.2f} ms "
              f"(limit {TOLERANCE * 1e3:.2f} ms)")
        if worst <= TOLERANCE:
            return
    pytest.fail(f"notes arrived up to {worst * 1e3:.2f} ms off the grid in two runs "
                f"(limit {TOLERANCE * 1e3:.2f} ms)")


class ClockMaster:
    """A MIDI clock master on its own JACK port: Start, 24 ticks a beat at `bpm`, Stop."""

    def __init__(self) -> None:
        self.port = open_output(api="jack", client="DDClock")

    def send(self, message: list[int]) -> None:
        self.port.send_message(message)

    def ticks(self, bpm: float, count: int) -> None:
        interval = 60.0 / bpm / 24
        start = time.perf_counter()
        for i in range(count):
            when = start + i * interval
            while time.perf_counter() < when:
                time.sleep(min(0.001, max(0.0, when - time.perf_counter())))
            self.send([CLOCK])

    def close(self) -> None:
        close_port(self.port)


def _connect(jack, *pairs: tuple[str, str]):
    client = jack.Client("DDConnect", no_start_server=True)
    for source, destination in pairs:
        client.connect(source, destination)
    return client


@pytest.mark.parametrize("bpm", [90.0, 120.0, 174.0])
def test_following_midi_clock_stays_on_the_grid_and_starts_on_a_bar(jack_module, deck, bpm):
    master = ClockMaster()
    monitor = MidiRecorder(None)  # DDTest:in: one timeline for the clock and the notes
    # the player's own process opens DeepDrummer:out and follows DDClock:out
    player = IsolatedMidiPlayer(deck, api="jack", bpm=60.0, clock_in="DDClock:out").start()
    connections = _connect(jack_module, ("DDClock:out", "DDTest:in"),
                           ("DeepDrummer:out", "DDTest:in"))
    handed = deck.pending
    ticks = 96 + 1  # a bar and the downbeat of the next
    try:
        time.sleep(0.3)
        master.send([START])
        master.ticks(bpm, ticks)
        master.send([STOP])
        time.sleep(0.3)
        clock_bpm = player.clock_bpm
    finally:
        player.close()
        monitor.close()
        connections.deactivate()
        connections.close()
        master.close()
    received = monitor.messages

    tick_times = [t for m, t in received if m == (CLOCK,)]
    assert len(tick_times) == ticks
    start_at = next(i for i, (m, _) in enumerate(received) if m == (START,))
    notes = [(m, t) for m, t in received[start_at:] if m[0] & 0xF0 in (0x80, 0x90, 0xB0)]
    # exactly the loop from its first step, a bar, then the next bar's first step
    expected = expected_messages(handed, bars=2)
    n_expected = sum(1 for _, index in expected if index <= 16)
    played = notes[:n_expected]
    assert [m for m, _ in played] == [m for m, _ in expected[:n_expected]]
    # each step's messages arrive right behind the tick that marks it
    lags = [when - tick_times[index * 6]
            for (_, when), (_, index) in zip(played, expected, strict=False)]
    print(f"lag behind the tick: p50 {statistics.median(lags) * 1e3:.2f} ms, "
          f"max {max(lags) * 1e3:.2f} ms (limit {FOLLOW_TOLERANCE * 1e3:.2f} ms)")
    assert all(-0.0005 <= lag <= FOLLOW_TOLERANCE for lag in lags), lags
    # the stop switched every note off
    after_stop = [m for m, _ in received if m[0] & 0xF0 in (0x80, 0xB0)][-1]
    assert after_stop == (0xB0 | CH, ALL_NOTES_OFF, 0)
    assert clock_bpm == pytest.approx(bpm, rel=0.03)


def test_song_position_and_continue_resume_mid_loop(jack_module, deck):
    master = ClockMaster()
    monitor = MidiRecorder(None)  # DDTest:in, which the player connects to
    player = IsolatedMidiPlayer(deck, port="DDTest:in", api="jack", clock_in="").start()
    connections = _connect(jack_module, ("DDClock:out", "DeepDrummer-in:in"))  # virtual input
    handed = deck.pending
    try:
        time.sleep(0.3)
        master.send([SONG_POSITION, 4, 0])  # the fifth sixteenth (0-based 4)
        master.send([CONTINUE])
        master.ticks(200.0, 6 * 4 + 1)  # steps 4..8
        master.send([STOP])
        received = monitor.wait_for(1, timeout=2.0)
        time.sleep(0.3)
        received = list(monitor.messages)
    finally:
        player.close()
        connections.deactivate()
        connections.close()
        master.close()
        monitor.close()
    played = [m for m, _ in received if m[0] & 0xF0 == 0x90]
    expected = [m for m, index in expected_messages(handed, bars=1)
                if m[0] & 0xF0 == 0x90 and 4 <= index <= 8]
    assert played == expected
