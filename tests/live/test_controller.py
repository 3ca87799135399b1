"""A MIDI controller through JACK: a like stores a rating; the LEDs show exactly the loop."""

from __future__ import annotations

import json
import time

import pytest

from deepdrummer_live.controller import (
    LAUNCHPAD,
    Control,
    Controller,
    ControllerError,
    learn,
    load_profile,
    save_profile,
)
from deepdrummer_live.deck import Deck
from deepdrummer_live.midi import MidiRecorder, close_port, open_input, open_output

PROGRAMMER_MODE = (0xF0, 0x00, 0x20, 0x29, 0x02, 0x0C, 0x0E, 0x01, 0xF7)


def expected_launchpad_leds(loop, locks=(False,) * 4) -> list[tuple[int, ...]]:
    """Written out from the Launchpad manual: pad note = 10 × row + column, row 1 at the
    bottom; our top four rows are steps 1–8 of tracks 1–4, the bottom four steps 9–16."""
    colours = (5, 9, 13, 45)  # red, orange, yellow, blue
    out = []
    for track in range(4):
        for step in range(16):
            row = (8, 7, 6, 5)[track] if step < 8 else (4, 3, 2, 1)[track]
            column = step % 8 + 1
            out.append((0x90, 10 * row + column, colours[track] if loop.grid[track][step] else 0))
    out += [(0xB0, 89, 21), (0xB0, 79, 5), (0xB0, 69, 3)]  # like green, dislike red, next white
    out += [(0xB0, 91 + t, 13 if locks[t] else 1) for t in range(4)]
    return out


def test_like_on_the_controller_stores_a_rating_and_lights_exactly(jack_server, engine):
    deck = Deck(engine, source="controller").start()
    handed, _ = deck.loop_for_bar(0)  # what a player does at its first bar line
    deck.wait_idle()
    pad = open_output(api="jack", client="DDPad")
    midi_in = open_input("DDPad:out", api="jack", client="DeepDrummer-controller")
    leds_out = open_output(api="jack", client="DeepDrummer-leds")
    leds = MidiRecorder("DeepDrummer-leds:out")
    controller = Controller(deck, LAUNCHPAD, midi_in, leds_out).start()
    n_before = engine.session.counts()[0]
    try:
        at_start = expected_launchpad_leds(handed.loop)
        got = leds.wait_for(1 + len(at_start), timeout=5)
        assert [m for m, _ in got] == [PROGRAMMER_MODE, *at_start]

        pad.send_message([0xB0, 89, 127])  # like (right column, top)
        pad.send_message([0xB0, 89, 0])  # release: not an action
        deadline = time.monotonic() + 10
        while engine.session.counts()[0] == n_before and time.monotonic() < deadline:
            time.sleep(0.02)
        rating = engine.session.ratings()[-1]
        assert (rating.loop_id, rating.liked, rating.source) == (handed.loop_id, True,
                                                                 "controller")
        got = leds.wait_for(1 + len(at_start) + 2, timeout=5)
        assert [m for m, _ in got[1 + len(at_start):]] == [(0xB0, 89, 3), (0xB0, 89, 21)]

        pad.send_message([0x90, 36, 100])  # an unbound pad does nothing
        pad.send_message([0xB0, 92, 127])  # lock track 2
        deck.wait_idle()
        got = leds.wait_for(1 + len(at_start) + 3, timeout=5)
        assert [m for m, _ in got[1 + len(at_start) + 2:]] == [(0xB0, 92, 13)]
        assert engine.constraints.locked_grid[1] and engine.constraints.locked_sample[1]
        assert controller.actions == ["like", "lock2"]
        assert engine.session.counts()[0] == n_before + 1
    finally:
        controller.close()
        deck.toggle_lock(1)
        deck.close()
        leds.close()
        for port in (pad, midi_in, leds_out):
            close_port(port)


def test_config_files_rebind_and_bad_ones_say_why(tmp_path):
    path = tmp_path / "pads.toml"
    path.write_text('profile = "launchpad"\ninput = "LPX MIDI"\n\n[bindings]\nlike = "note:11"\n'
                    'next = "cc:20@2"\n')
    profile = load_profile(str(path))
    assert profile.grid and profile.input == "LPX MIDI"
    assert profile.action_for([0x90, 11, 64]) == "like"
    assert profile.action_for([0x90, 11, 0]) is None  # a note-off by velocity 0
    assert profile.action_for([0xB1, 20, 127]) == "next" and not profile.action_for([0xB0, 20, 1])
    saved = save_profile(profile, tmp_path / "copy.json")
    assert load_profile(str(saved)).bindings == profile.bindings
    assert json.loads(saved.read_text())["bindings"]["next"] == "cc:20@2"
    for text, bad in [('[bindings]\nlike = "pitch:3"\n', "pitch:3"),
                      ('[bindings]\njump = "cc:1"\n', "jump"),
                      ('profile = "mpc"\n', "profile"), ("like = [", "cannot read")]:
        path.write_text(text)
        with pytest.raises(ControllerError, match=bad):
            load_profile(str(path))
    with pytest.raises(ControllerError, match="no controller profile"):
        load_profile("nope")
    assert str(Control.parse("CC:7@16")) == "cc:7@16"


def test_midi_learn_binds_the_controls_pressed(jack_server, tmp_path):
    pad = open_output(api="jack", client="DDPad2")
    midi_in = open_input("DDPad2:out", api="jack", client="DeepDrummer-learn")
    presses = {
        "like": [[0x91, 60, 0], [0x91, 60, 90]],  # a release first: ignored
        "dislike": [[0x91, 60, 90], [0xB0, 21, 127]],  # already used for like: skipped
        "lock1": [[0xB9, 40, 1]],
    }
    prompts: list[str] = []

    def prompt(text: str) -> None:
        prompts.append(text)
        action = text.split()[4] if text.startswith("press the control for") else None
        for message in presses.get(action, []):
            pad.send_message(message)

    try:
        profile = learn(midi_in, ("like", "dislike", "next", "lock1"), prompt, timeout=1.0)
    finally:
        close_port(midi_in)
        close_port(pad)
    assert str(profile.bindings["like"]) == "note:60@2"
    assert str(profile.bindings["dislike"]) == "cc:21@1"
    assert str(profile.bindings["next"]) == "cc:22"  # nothing pressed: the default stays
    assert str(profile.bindings["lock1"]) == "cc:40@10"
    path = save_profile(profile, tmp_path / "learned.toml")
    assert load_profile(str(path)).bindings == profile.bindings
