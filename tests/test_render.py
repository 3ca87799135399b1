"""Batched renderer == the obvious hit-by-hit render, at any rate and tempo; WAV and MIDI export."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import torch

from deepdrummer_live.library import SampleBank
from deepdrummer_live.loop import STEPS, TRACKS, Loop, LoopBatch, random_batch
from deepdrummer_live.render import (
    DEFAULT_NOTES,
    DEFAULT_VELOCITY,
    GM_DRUM_CHANNEL,
    LISTEN_BARS,
    MIX_GAIN,
    Renderer,
    bar_length,
    listening_length,
    loop_to_midi,
    phase_period,
    reference_render,
    step_offsets,
    write_midi,
    write_wav,
)

ATOL = 5e-6  # float32 rounding of sums of a few dozen unit-peak samples


def _subset(bank: SampleBank, rows: list[int]) -> SampleBank:
    index = torch.tensor(rows)
    return SampleBank([bank.names[i] for i in rows], bank.audio[index].clone(),
                      bank.lengths[index].clone(), bank.sample_rate, bank.root)


@pytest.fixture(scope="module")
def small(kit_bank: SampleBank) -> dict[int, SampleBank]:
    """A 16-sample slice of the kit (its four longest included, 2 s each: tails that span
    many steps and, at fast tempos, whole bars), resampled on demand per rate."""
    longest = kit_bank.lengths.argsort(descending=True)[:4].tolist()
    rows = sorted(set(longest) | set(range(0, len(kit_bank), len(kit_bank) // 12)))[:16]
    base = _subset(kit_bank, rows)
    return {kit_bank.sample_rate: base} | {r: base.resampled(r) for r in (16000, 22050, 48000)}


def _loops(bank: SampleBank, n: int, bpm: float, seed: int, tracks: int = TRACKS,
           steps: int = STEPS) -> LoopBatch:
    """Random loops plus the extremes: an empty grid and a full one."""
    batch = random_batch(n, len(bank), torch.Generator().manual_seed(seed), tracks, steps, 0.4)
    batch.grid[0] = False
    batch.grid[1] = True
    return batch


@pytest.mark.parametrize("form", ["bar", "listening"])
@pytest.mark.parametrize(("rate", "bpm"), [
    (16000, 120.0), (44100, 120.0), (48000, 97.0),  # the cases
    (44100, 133.7), (22050, 61.3), (16000, 400.0), (48000, 20.0),  # odd, fastest, slowest
])
def test_batched_equals_reference(small: dict[int, SampleBank], rate: int, bpm: float,
                                  form: str) -> None:
    bank = small[rate]
    batch = _loops(bank, 4, bpm, seed=rate + int(bpm))
    renderer = Renderer(bank)
    audio = (renderer.bar if form == "bar" else renderer.listening)(batch, bpm).numpy()
    length = (bar_length if form == "bar" else listening_length)(STEPS, bpm, rate)
    assert audio.shape == (4, length) and audio.dtype == np.float32
    for got, loop in zip(audio, batch.to_loops(bank, bpm), strict=True):
        np.testing.assert_allclose(got, reference_render(bank, loop, form), rtol=0, atol=ATOL)
    assert not audio[0].any() and np.abs(audio[1]).max() > 0.5  # empty grid silent, full loud


@pytest.mark.parametrize(("tracks", "steps", "bpm"), [(1, 1, 120.0), (3, 12, 90.0),
                                                       (2, 32, 140.0), (6, 7, 120.0)])
def test_other_grid_shapes(small: dict[int, SampleBank], tracks: int, steps: int,
                           bpm: float) -> None:
    bank = small[16000]
    batch = _loops(bank, 3, bpm, seed=steps, tracks=tracks, steps=steps)
    renderer = Renderer(bank)
    for form, render in (("bar", renderer.bar), ("listening", renderer.listening)):
        audio = render(batch, bpm).numpy()
        for got, loop in zip(audio, batch.to_loops(bank, bpm), strict=True):
            np.testing.assert_allclose(got, reference_render(bank, loop, form), atol=ATOL)


def test_batch_equals_one_at_a_time(small: dict[int, SampleBank]) -> None:
    """Chunking never changes a loop's audio: many loops at once (3 chunks) == each alone."""
    bank = small[16000]
    batch = _loops(bank, 37, 120.0, seed=5)
    renderer = Renderer(bank, chunk=16)
    for render, loops in ((renderer.bar, batch), (renderer.listening, batch[:5])):
        if render == renderer.listening:
            renderer.chunk = 2
        together = render(loops, 120.0)
        alone = torch.cat([render(loops[i:i + 1], 120.0) for i in range(len(loops))])
        torch.testing.assert_close(together, alone, rtol=0, atol=ATOL)
    assert renderer.bar(batch[:0]).shape == (0, bar_length(STEPS, 120.0, 16000))
    assert renderer.listening(batch[:0]).shape == (0, listening_length(STEPS, 120.0, 16000))


@pytest.mark.parametrize(("rate", "bpm"), [(16000, 120.0), (44100, 120.0), (48000, 50.0)])
def test_block_path_equals_dense_path(small: dict[int, SampleBank], rate: int,
                                      bpm: float) -> None:
    """The CPU's block path (steps on whole blocks) and the dense product (any tempo, and
    the GPU's path) agree, both on random loops and on a batch with no hit at all."""
    bank = small[rate]
    renderer = Renderer(bank)
    n, offsets = bar_length(STEPS, bpm, rate), step_offsets(STEPS, bpm, rate)
    assert phase_period(offsets, n) <= Renderer.BLOCK_PERIODS  # so bar() takes the block path
    batch = _loops(bank, 20, bpm, seed=rate)
    dense = renderer._render_bar(batch, n, offsets, sparse=False)
    torch.testing.assert_close(renderer.bar(batch, bpm), dense, rtol=0, atol=ATOL)
    silent = LoopBatch(torch.zeros_like(batch.grid[:3]), batch.samples[:3])
    assert renderer.bar(silent, bpm).shape == (3, n) and not renderer.bar(silent, bpm).any()


def test_kept_banks_are_bounded(small: dict[int, SampleBank]) -> None:
    """A live tempo change prepares a new bank; only the last FOLDED_KEEP stay in memory."""
    renderer = Renderer(small[16000])
    batch = _loops(small[16000], 2, 120.0, seed=3)
    for bpm in (120.0, 140.0, 90.0, 97.0, 120.0):
        renderer.bar(batch, bpm)
        assert len(renderer._folded) <= Renderer.FOLDED_KEEP


def test_bar_is_the_steady_state_of_the_listening_form(small: dict[int, SampleBank]) -> None:
    """Two independent paths agree: with one-shots no longer than a bar, the 4th bar heard
    (tails of the 3rd ringing into it) is exactly the circular one-bar render."""
    bank = small[16000]
    n = bar_length(STEPS, 120.0, 16000)
    assert int(bank.lengths.max()) <= n
    batch = _loops(bank, 8, 120.0, seed=8)
    renderer = Renderer(bank)
    listening = renderer.listening(batch, 120.0)
    assert listening.shape[1] == LISTEN_BARS * n + 16000  # 4 bars and 1 s of tail
    torch.testing.assert_close(listening[:, 3 * n:4 * n], renderer.bar(batch, 120.0),
                               rtol=0, atol=ATOL)


def test_reference_by_hand() -> None:
    """The reference itself, on numbers worked out by hand: 16 kHz, 120 bpm, a step is 2000
    samples; a 5000-sample ramp at step 15 rings 3000 samples past the bar's end."""
    ramp = torch.linspace(1.0, 0.0, 5000)
    bank = SampleBank(["ramp.wav"], ramp[None].clone(), torch.tensor([5000]), 16000)
    row = (False,) * 4 + (True,) + (False,) * 10 + (True,)
    loop = Loop((row,), ("ramp.wav",))
    expected = np.zeros(32000, dtype=np.float32)
    expected[8000:13000] += ramp.numpy()
    expected[30000:] += ramp.numpy()[:2000]
    expected[:3000] += ramp.numpy()[2000:]
    np.testing.assert_allclose(reference_render(bank, loop, "bar"), expected * MIX_GAIN,
                               atol=1e-7)
    heard = reference_render(bank, loop, "listening")
    assert heard.shape == (4 * 32000 + 16000,)
    assert not heard[:8000].any()  # nothing wraps into the first bar
    assert heard[4 * 32000 - 2000] == pytest.approx(MIX_GAIN)  # the last hit's start
    np.testing.assert_allclose(Renderer(bank).bar(LoopBatch.from_loops([loop], bank))[0],
                               expected * MIX_GAIN, atol=1e-6)


def test_step_grid_timing() -> None:
    assert step_offsets(STEPS, 120.0, 44100)[:5] == [0, 5512, 11025, 16537, 22050]  # floor
    assert bar_length(STEPS, 120.0, 44100) == 88200
    assert listening_length(STEPS, 120.0, 44100) == 9 * 44100  # the paper's 9 s
    assert phase_period(step_offsets(STEPS, 120.0, 16000), 32000) == 1
    assert phase_period(step_offsets(STEPS, 120.0, 44100), 88200) == 2
    assert phase_period(step_offsets(STEPS, 97.0, 48000), bar_length(STEPS, 97.0, 48000)) == 16


# --- export ------------------------------------------------------------------------------------


def test_write_wav_round_trip(tmp_path: Path, kit_bank: SampleBank) -> None:
    batch = _loops(kit_bank, 3, 120.0, seed=1)
    audio = Renderer(kit_bank).listening(batch[2:3], 120.0)[0]
    path = write_wav(tmp_path / "loop.wav", audio, 44100)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_24")
    back, _ = sf.read(str(path), dtype="float32")
    peak = float(audio.abs().max())
    scale = 0.99 / peak if peak > 0.99 else 1.0  # scaled down only if it would clip
    np.testing.assert_allclose(back, audio.numpy() * scale, atol=2 ** -22)
    quiet = write_wav(tmp_path / "quiet.wav", np.full(100, 0.25, dtype=np.float32), 16000)
    np.testing.assert_allclose(sf.read(str(quiet))[0], 0.25, atol=2 ** -22)  # left as it is
    assert sf.info(str(write_wav(tmp_path / "empty.wav", np.zeros(0), 8000))).frames == 0


def test_midi_round_trip(tmp_path: Path, kit_bank: SampleBank) -> None:
    loop = Loop(((True,) + (False,) * 15, (False,) * 15 + (True,), (True, False) * 8,
                 (False,) * 16), tuple(kit_bank.names[:4]), 97.0)
    midi = mido.MidiFile(str(write_midi(tmp_path / "loop.mid", loop)))
    assert midi.type in (0, 1) and len(midi.tracks) == 1
    tempo = next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo) == pytest.approx(97.0, abs=1e-3)
    assert midi.length == pytest.approx(LISTEN_BARS * 4 * 60 / 97.0, rel=1e-4)
    step_ticks = midi.ticks_per_beat // 4
    now, ons, offs = 0, [], []
    for message in midi.tracks[0]:
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            ons.append((now // step_ticks, message.note, message.channel, message.velocity))
        elif message.type in ("note_off", "note_on"):
            offs.append((now, message.note))
    expected = sorted((bar * STEPS + step, DEFAULT_NOTES[track], GM_DRUM_CHANNEL,
                       DEFAULT_VELOCITY)
                      for bar in range(LISTEN_BARS) for track, row in enumerate(loop.grid)
                      for step, on in enumerate(row) if on)
    assert sorted(ons) == expected
    assert len(offs) == len(ons)  # every note ends
    assert max(tick for tick, _ in offs) < LISTEN_BARS * STEPS * step_ticks
    custom = loop_to_midi(loop, notes=(60, 61, 62, 63), bars=1)
    assert {m.note for m in custom.tracks[0] if m.type == "note_on"} == {60, 61, 62}
    with pytest.raises(ValueError, match="notes"):
        loop_to_midi(loop, notes=(36,))
