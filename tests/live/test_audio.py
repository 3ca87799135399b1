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
    periodic, so a cross-correlation peaks at every bar alike); checked by cross-correlation
    over a window of one bar around it."""
    heard, sound = int(np.argmax(recorded != 0)), int(np.argmax(expected != 0))
    window = expected[sound:sound + 4096]
    lo = max(0, heard - len(window))
    corr = np.correlate(recorded[lo:heard + 2 * len(window)], window, mode="valid")
    assert lo + int(np.argmax(corr)) == heard, "the recording does not start like the loop"
    return heard - sound


def test_audio_recorded_through_jack_equals_the_renderers_output(
        jack_server, sounddevice_module, engine, bank):
    import jack

    saved_bpm, engine.bpm = engine.bpm, 180.0  # shorter bars: a shorter test
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
