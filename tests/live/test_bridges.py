"""`start_bridges` (what `serve --midi-out` runs): plays at once, follows a loop handed out
over OSC at the next bar line, tells listeners which loop plays from which bar."""

from __future__ import annotations

import argparse
import time

import pytest

from deepdrummer_live.cli import CliError
from deepdrummer_live.commands.play import start_bridges
from deepdrummer_live.midi import MidiRecorder


def _args(**overrides) -> argparse.Namespace:
    values = dict(command="serve", midi_out="", midi_api="jack", bpm=240.0, midi_clock_in=None,
                  midi_channel=10, notes=None, audio_out=None, controller=None)
    return argparse.Namespace(**{**values, **overrides})


def test_bridges_play_at_once_and_switch_on_a_bar_line(jack_server, engine):
    heard: list[tuple[str, int]] = []
    engine.on_playing(lambda handed, bar: heard.append((handed.loop_id, bar)))
    saved_bpm, engine.bpm = engine.bpm, 240.0
    bridges = start_bridges(engine, _args())
    receiver = MidiRecorder("DeepDrummer:out")
    try:
        deadline = time.monotonic() + 5
        while not heard and time.monotonic() < deadline:
            time.sleep(0.01)
        assert heard and heard[0][1] == 0  # playing from bar 0 at once
        time.sleep(0.4)
        other = engine.next_loop()  # what /dd/next does for an OSC client
        while other.loop_id not in dict(heard) and time.monotonic() < deadline + 5:
            time.sleep(0.01)
        time.sleep(0.5)  # announced just before its bar line: let that bar begin
    finally:
        for bridge in bridges:
            bridge.close()
        receiver.close()
        engine.bpm = saved_bpm
    bar = dict(heard)[other.loop_id]
    assert 1 <= bar <= 2  # the next bar line (or the one after, if it came too close)
    # the new loop's notes begin with all-notes-off, on the downbeat of that bar
    messages = [m for m, _ in receiver.messages]
    cc_offs = [i for i, m in enumerate(messages) if m == (0xB9, 123, 0)]
    assert len(cc_offs) >= 2  # the start, the change
    first_on = next((m for m in messages[cc_offs[1]:] if m[0] == 0x99), None)
    step0 = [other.notes[t] for t, row in enumerate(other.loop.grid) if row[0]]
    if step0:
        assert first_on is not None and first_on[1] in step0


def test_bad_ports_are_a_one_line_error(jack_server, engine):
    with pytest.raises(CliError, match="no MIDI port matching"):
        start_bridges(engine, _args(midi_out="NoSuchSynth"))
    with pytest.raises(CliError, match="notes must be"):
        start_bridges(engine, _args(notes="36,x"))
    assert start_bridges(engine, _args(midi_out=None)) == []
