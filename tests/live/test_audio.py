"""Audio out through JACK, recorded by an independent JACK client, equals the renderer."""

from __future__ import annotations

import time

import numpy as np
import torch

from deepdrummer_live.audio import AudioPlayer
from deepdrummer_live.deck import Deck
from deepdrummer_live.loop import LoopBatch
from deepdrummer_live.render import Renderer, bar_length

from .conftest import RATE


def align(recorded: np.ndarray, expected: np.ndarray) -> int:
    """Offset of `expected` in `recorded`: the first sound of each lines them up (a loop is
    periodic, so a cross-correlation peaks at every bar alike); checked by normalised
    cross-correlation around it (a raw one can peak wherever the recording is loudest)."""
    heard, sound = int(np.argmax(recorded != 0)), int(np.argmax(expected != 0))
    window = expected[sound:sound + 4096].astype(np.float64)
    lo = max(0, heard - len(window))
    around = recorded[lo:heard + 2 * len(window)].astype(np.float64)
    corr = np.correlate(around, window, mode="valid")
    norms = np.sqrt(np.convolve(around ** 2, np.ones(len(window)), mode="valid")) + 1e-12
    assert lo + int(np.argmax(corr / norms)) == heard, "the recording does not start like the loop"
    return heard - sound


def test_audio_recorded_through_jack_equals_the_renderers_output(
        jack_server, jack_module, sounddevice_module, engine, bank):
    jack = jack_module
    saved_bpm, engine.bpm = engine.bpm, 240.0  # shorter bars: a shorter test
    deck = Deck(engine, source="test").start()
    handed = deck.pending
    recorder = jack.Client("DDRecorder", no_start_server=True)
    port = recorder.inports.register("in")
    blocks: list[np.ndarray] = []
    recorder.set_process_callback(lambda frames: blocks.append(port.get_array().copy()))
    player = AudioPlayer(deck, bank)
    try:
        assert player.rate == RATE
        recorder.activate()
        source = recorder.get_ports("PortAudio", is_audio=True, is_output=True)[0]
        recorder.connect(source, port)
        player.start()
        n = bar_length(handed.loop.steps, handed.loop.bpm, RATE)
        time.sleep(0.3 + 5.5 * n / RATE)
    finally:
        player.close()
        recorder.deactivate()
        recorder.close()
        deck.close()
        engine.bpm = saved_bpm
    recorded = np.concatenate(blocks).astype(np.float32)
    renderer = Renderer(bank.resampled(RATE))
    batch = LoopBatch.from_loops([handed.loop], renderer.bank)
    with torch.inference_mode():
        listening = renderer.listening(batch, handed.loop.bpm)[0].numpy()
        steady = renderer.bar(batch, handed.loop.bpm)[0].numpy()
    assert player.switches[0] == (0, handed.loop_id)
    offset = align(recorded, listening[:4 * n])
    assert np.all(recorded[:offset] == 0)  # silence before the first bar
    heard = recorded[offset:offset + 5 * n]
    assert len(heard) == 5 * n, "recording too short"
    assert np.array_equal(heard[:4 * n], listening[:4 * n])  # float32 is bit-exact in JACK
    assert np.array_equal(heard[4 * n:], steady)  # then the loop in steady state


def test_a_new_loop_starts_on_the_bar_line_over_the_old_ones_tails(
        jack_server, sounddevice_module, engine, bank):
    """The writer's output, taken without a running stream: bar by bar, switching loops."""
    deck = Deck(engine, source="test").start()
    player = AudioPlayer(deck, bank)  # not started: we pull its output ourselves
    try:
        deck.add_preparer(player.prepare)
        first = player.prepare(deck.pending)
        n = first.bar_frames
        two_bars = player._take(2 * n)
        assert np.array_equal(two_bars, first.listening[:2 * n])
        deck.next()
        assert deck.wait_idle(10) and deck.pending is not None
        second = player.prepare(deck.pending)
        bar = player._take(n)
        ring = np.zeros(n, np.float32)
        ring[:min(n, len(first.ringout))] = first.ringout[:n]
        assert np.array_equal(bar, second.listening[:n] + ring)
        assert player.switches == [(0, first.loop_id), (2, second.loop_id)]
        assert np.abs(first.ringout[-1]) < 1e-6  # the ring-out fades to silence
    finally:
        player.close()
        deck.close()
