"""Batched renderer: many loops → audio in one call, plus WAV and MIDI export.

A loop's track is a train of impulses (its hits) convolved with its sample. In the frequency
domain that is a product, and the impulse train's spectrum is the grid times a fixed matrix of
phases, so a whole batch renders as one matrix product, one gather-multiply and one inverse FFT:
no Python loop over loops or steps.

Two forms, as in the paper:
- `bar`: one bar as heard inside a repeating loop (tails of the previous repetition wrap into
  its start), which is what the critic hears, in training and in scoring alike;
- `listening`: 4 bars plus 1 s of tail, which is what a person hears.
"""

from __future__ import annotations

import math
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
import torch

from .library import SampleBank
from .loop import DEFAULT_BPM, STEPS_PER_BEAT, Loop, LoopBatch

LISTEN_BARS = 4
TAIL_SECONDS = 1.0
MIX_GAIN = 0.5  # headroom for four tracks summed
GM_DRUM_CHANNEL = 9  # channel 10, counted from 1
DEFAULT_NOTES = (36, 38, 42, 46)  # GM kick, snare, closed hat, open hat
DEFAULT_VELOCITY = 100


def step_seconds(bpm: float) -> float:
    return 60.0 / bpm / STEPS_PER_BEAT


def step_offsets(steps: int, bpm: float, sample_rate: int) -> list[int]:
    """Sample index where each step starts; rounding is shared by every render path."""
    return [round(s * step_seconds(bpm) * sample_rate) for s in range(steps)]


def bar_length(steps: int, bpm: float, sample_rate: int) -> int:
    return round(steps * step_seconds(bpm) * sample_rate)


def listening_length(steps: int, bpm: float, sample_rate: int) -> int:
    return LISTEN_BARS * bar_length(steps, bpm, sample_rate) + round(TAIL_SECONDS * sample_rate)


class Renderer:
    """Renders `LoopBatch`es over one `SampleBank`, on the bank's device and at its rate."""

    def __init__(self, bank: SampleBank, device: torch.device | str | None = None,
                 chunk: int = 16) -> None:
        self.bank = bank
        self.device = torch.device(device or "cpu")
        self.audio = bank.audio.to(self.device)
        self.sample_rate = bank.sample_rate
        self.chunk = chunk  # loops per inner step: bounds memory, not speed
        self._bar_spectra: dict[int, torch.Tensor] = {}
        self._phases: dict[tuple, torch.Tensor] = {}
        self._tiled: dict[tuple, torch.Tensor] = {}

    def bar(self, batch: LoopBatch, bpm: float = DEFAULT_BPM) -> torch.Tensor:
        """[B, bar_length] float32: one bar of each loop in steady state (circular)."""
        steps = batch.grid.shape[-1]
        n = bar_length(steps, bpm, self.sample_rate)
        spectra = self._folded_spectra(n)
        offsets = step_offsets(steps, bpm, self.sample_rate)
        if n % steps == 0 and offsets == [s * (n // steps) for s in range(steps)]:
            return self._render_even(batch, n, spectra)
        phases = self._phase_matrix(tuple(offsets), n)
        return self._render(batch, n, phases, lambda rows: spectra[rows])

    def listening(self, batch: LoopBatch, bpm: float = DEFAULT_BPM) -> torch.Tensor:
        """[B, listening_length] float32: 4 bars and 1 s of tail, as a person hears it."""
        steps = batch.grid.shape[-1]
        n_bar = bar_length(steps, bpm, self.sample_rate)
        out_len = listening_length(steps, bpm, self.sample_rate)
        n_fft = out_len + self.audio.shape[1]  # room for the last tails: nothing wraps around
        offsets = [bar * n_bar + o for bar in range(LISTEN_BARS)
                   for o in step_offsets(steps, bpm, self.sample_rate)]
        phases = self._phase_matrix(tuple(offsets), n_fft)
        repeated = LoopBatch(batch.grid.repeat(1, 1, LISTEN_BARS), batch.samples)
        audio = self._render(repeated, n_fft, phases,
                             lambda rows: torch.fft.rfft(self.audio[rows], n=n_fft))
        return audio[:, :out_len]

    def _render(self, batch: LoopBatch, n: int, phases: torch.Tensor, spectra_of) -> torch.Tensor:
        """Any step offsets: impulse spectra = grid @ phases. Small chunks stay in cache."""
        grid = batch.grid.to(self.device, torch.float32)
        rows = batch.samples.to(self.device)
        real, imag = phases.real.contiguous(), phases.imag.contiguous()
        out = []
        for start in range(0, len(batch), self.chunk):
            g, r = grid[start:start + self.chunk], rows[start:start + self.chunk]
            hits = torch.complex(g @ real, g @ imag)  # [b, T, F]
            mix = (hits * spectra_of(r)).sum(dim=1)
            out.append(torch.fft.irfft(mix, n=n) * MIX_GAIN)
        return torch.cat(out) if out else torch.zeros(0, n, device=self.device)

    def _render_even(self, batch: LoopBatch, n: int, spectra: torch.Tensor) -> torch.Tensor:
        """Steps an exact number of samples apart: an impulse train's spectrum repeats every
        `steps` bins, so it is a length-`steps` DFT of the grid, tiled: no big matrix product."""
        steps = batch.grid.shape[-1]
        bins = spectra.shape[1]
        padded_bins = -(-bins // steps) * steps
        tiled = self._tiled_spectra(n, steps, padded_bins)  # [N, bins/steps, steps]
        dft = self._phase_matrix(tuple(s * (n // steps) for s in range(steps)), n)[:, :steps]
        grid = batch.grid.to(self.device, torch.complex64)
        rows = batch.samples.to(self.device)
        out = []
        for start in range(0, len(batch), self.chunk):
            hits = grid[start:start + self.chunk] @ dft  # [b, T, steps]
            mix = (hits[:, :, None, :] * tiled[rows[start:start + self.chunk]]).sum(dim=1)
            mix = mix.reshape(len(hits), padded_bins)[:, :bins]
            out.append(torch.fft.irfft(mix, n=n) * MIX_GAIN)
        return torch.cat(out) if out else torch.zeros(0, n, device=self.device)

    def _tiled_spectra(self, n: int, steps: int, padded_bins: int) -> torch.Tensor:
        key = (n, steps, padded_bins)
        if key not in self._tiled:
            spectra = self._folded_spectra(n)
            padded = torch.nn.functional.pad(spectra, (0, padded_bins - spectra.shape[1]))
            self._tiled[key] = padded.reshape(len(spectra), padded_bins // steps, steps)
        return self._tiled[key]

    def _folded_spectra(self, n: int) -> torch.Tensor:
        """Each sample wrapped into one bar (its tail re-enters at the start), as spectra."""
        if n not in self._bar_spectra:
            audio = self.audio
            pad = (-audio.shape[1]) % n
            folded = torch.nn.functional.pad(audio, (0, pad)).reshape(len(audio), -1, n).sum(1)
            self._bar_spectra[n] = torch.fft.rfft(folded)
        return self._bar_spectra[n]

    def _phase_matrix(self, offsets: tuple[int, ...], n: int) -> torch.Tensor:
        """[S, F] complex: the spectrum of a unit impulse at each step's offset."""
        key = (offsets, n)
        if key not in self._phases:
            freqs = torch.arange(n // 2 + 1, dtype=torch.float64)
            starts = torch.tensor(offsets, dtype=torch.float64)
            angle = -2 * math.pi * torch.outer(starts, freqs) / n
            self._phases[key] = torch.polar(torch.ones_like(angle), angle).to(
                self.device, torch.complex64)
        return self._phases[key]


def reference_render(bank: SampleBank, loop: Loop, form: str = "bar") -> np.ndarray:
    """The obvious render, one hit at a time: the batched renderer must equal it."""
    steps, sr = loop.steps, bank.sample_rate
    offsets = step_offsets(steps, loop.bpm, sr)
    n_bar = bar_length(steps, loop.bpm, sr)
    length = n_bar if form == "bar" else listening_length(steps, loop.bpm, sr)
    bars = 1 if form == "bar" else LISTEN_BARS
    out = np.zeros(length, dtype=np.float64)
    for track, name in enumerate(loop.samples):
        row = bank.index(name)
        sample = bank.audio[row, :int(bank.lengths[row])].numpy().astype(np.float64)
        for bar in range(bars):
            for step, on in enumerate(loop.grid[track]):
                if not on:
                    continue
                start = bar * n_bar + offsets[step]
                if form == "bar":  # wrap the tail into the start of the bar
                    for i in range(0, len(sample), length):
                        piece = sample[i:i + length]
                        idx = (start + i + np.arange(len(piece))) % length
                        np.add.at(out, idx, piece)
                else:
                    piece = sample[:max(0, length - start)]
                    out[start:start + len(piece)] += piece
    return (out * MIX_GAIN).astype(np.float32)


def write_wav(path: str | Path, audio: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write mono float audio as 24-bit WAV, scaled down only if it would clip."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    path = Path(path)
    sf.write(str(path), audio, sample_rate, subtype="PCM_24")
    return path


def loop_to_midi(loop: Loop, notes: tuple[int, ...] = DEFAULT_NOTES, bars: int = LISTEN_BARS,
                 channel: int = GM_DRUM_CHANNEL, velocity: int = DEFAULT_VELOCITY,
                 ticks_per_beat: int = 480) -> mido.MidiFile:
    """A standard MIDI file of the loop: each track's hits as one drum note, note-offs included."""
    if len(notes) < loop.tracks:
        raise ValueError(f"{loop.tracks} tracks but only {len(notes)} notes")
    step_ticks = ticks_per_beat // STEPS_PER_BEAT
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message): offs before ons
    for bar in range(bars):
        for track, row in enumerate(loop.grid):
            for step, on in enumerate(row):
                if on:
                    tick = (bar * loop.steps + step) * step_ticks
                    note = notes[track]
                    events.append((tick, 1, mido.Message("note_on", channel=channel, note=note,
                                                         velocity=velocity)))
                    events.append((tick + step_ticks - 1, 0, mido.Message(
                        "note_off", channel=channel, note=note, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("track_name", name="DeepDrummer", time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(loop.bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    end = bars * loop.steps * step_ticks
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    return midi


def write_midi(path: str | Path, loop: Loop, notes: tuple[int, ...] = DEFAULT_NOTES,
               bars: int = LISTEN_BARS) -> Path:
    path = Path(path)
    loop_to_midi(loop, notes, bars).save(str(path))
    return path
