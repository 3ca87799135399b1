"""Batched renderer: many loops → audio in one call, plus WAV and MIDI export.

No Python loop over loops, steps or hits: a batch renders as a few tensor operations per
chunk of loops (chunks keep the working set in the CPU's cache).

Two forms, as in the paper:
- `bar`: one bar as heard inside a repeating loop (tails of the previous repetition wrap into
  its start), which is what the critic hears, in training and in scoring alike. Rendered in the
  time domain: on the CPU, where steps fall on a grid of whole blocks, as a sum of sample
  blocks picked per hit (`Renderer._render_blocks`); otherwise as one dense matrix product
  per chunk of loops (`Renderer._render_bar`);
- `listening`: 4 bars plus 1 s of tail, which is what a person hears: the dense product over
  a period long enough that no tail wraps, overlap-added once per bar.
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
    """Sample index where each step starts, rounded down as the paper's code did; shared by
    every render path. (Rounding half to even would make a 44.1 kHz, 120 bpm bar, 5512.5
    samples a step, alternate 11026 and 11024 samples between odd steps.)"""
    per_step = 60.0 * sample_rate / (bpm * STEPS_PER_BEAT)
    return [math.floor(s * per_step + 1e-7) for s in range(steps)]


def bar_length(steps: int, bpm: float, sample_rate: int) -> int:
    return round(steps * step_seconds(bpm) * sample_rate)


def listening_length(steps: int, bpm: float, sample_rate: int) -> int:
    return LISTEN_BARS * bar_length(steps, bpm, sample_rate) + round(TAIL_SECONDS * sample_rate)


def phase_period(offsets: list[int], n: int) -> int:
    """Smallest P such that step s + P starts exactly n·P/steps samples after step s.

    1 when steps are a whole number of samples apart (16 or 48 kHz at 120 bpm); 2 at 44.1 kHz
    and 120 bpm (a step is 5512.5 samples, two are 11025); `steps` (always true) otherwise.
    """
    steps = len(offsets)
    for period in range(1, steps):
        blocks = steps // period
        if steps % period or n % blocks:
            continue
        if all(offsets[s + period] - offsets[s] == n // blocks for s in range(steps - period)):
            return period
    return steps


class Renderer:
    """Renders `LoopBatch`es over one `SampleBank`, on the bank's device and at its rate."""

    CACHE_BYTES = 12 << 20  # working set per chunk of the bar path: stays in the CPU's cache
    MIN_BLOCK = 1000  # samples: blocks of the block path are cut about this fine
    BLOCK_PERIODS = 2  # most phases for the block path (its bank holds P copies of the samples)
    FOLDED_KEEP = 2  # bar lengths whose folded bank is kept (the current tempo, the last one)

    def __init__(self, bank: SampleBank, device: torch.device | str | None = None,
                 chunk: int = 16) -> None:
        self.bank = bank
        self.device = torch.device(device or "cpu")
        self.audio = bank.audio.to(self.device)
        self.sample_rate = bank.sample_rate
        self.chunk = chunk  # most loops per inner step: bounds memory
        self._folded: dict[object, object] = {}  # banks cut for one bar length (and phases)

    def bar(self, batch: LoopBatch, bpm: float = DEFAULT_BPM) -> torch.Tensor:
        """[B, bar_length] float32: one bar of each loop in steady state (circular)."""
        steps = batch.grid.shape[-1]
        n = bar_length(steps, bpm, self.sample_rate)
        return self._render_bar(batch, n, step_offsets(steps, bpm, self.sample_rate))

    def listening(self, batch: LoopBatch, bpm: float = DEFAULT_BPM) -> torch.Tensor:
        """[B, listening_length] float32: 4 bars and 1 s of tail, as a person hears it.

        One bar's hits rendered without wrapping (a period of one bar plus room for the longest
        tail, so nothing wraps around), then overlap-added at each of the 4 bars.
        """
        loops, tracks, steps = batch.grid.shape
        n_bar = bar_length(steps, bpm, self.sample_rate)
        out_len = listening_length(steps, bpm, self.sample_rate)
        bars = 1 + -(-self.audio.shape[1] // n_bar)
        silent = torch.zeros(loops, tracks, (bars - 1) * steps, dtype=torch.bool,
                             device=batch.grid.device)
        offsets = step_offsets(steps, bpm, self.sample_rate)
        once = self._render_bar(LoopBatch(torch.cat([batch.grid, silent], dim=2), batch.samples),
                                bars * n_bar, [b * n_bar + o for b in range(bars) for o in offsets],
                                sparse=False)  # rendered once per loop: no bank kept for it
        out = torch.zeros(loops, out_len, device=self.device)
        for bar in range(LISTEN_BARS):
            start = bar * n_bar
            span = min(once.shape[1], out_len - start)
            out[:, start:start + span] += once[:, :span]
        return out

    def _render_bar(self, batch: LoopBatch, n: int, offsets: list[int],
                    sparse: bool = True) -> torch.Tensor:
        """Time domain, as one batched matrix product per chunk of loops (or `_render_blocks`).

        Each sample is first wrapped into one bar (`_folded_bank`; or only zero-padded where
        every sample fits in one bar). When steps repeat every P steps,
        M = n/K samples apart (K = steps/P), step q + P·k starts at offsets[q] + k·M. The
        k part is a circular shift by whole blocks: with the bar cut into K blocks of M samples,
        it is a K×K circulant matrix of grid cells acting on the sample's blocks. So one product
        [P·K, T·K] @ [T·K, M] per loop sums every track's hits for each phase q, and the P phases
        are then added in at their offsets. Work per loop: T·steps·n multiply-adds (dense), no
        FFT, and the sum is exact up to float32 rounding.
        """
        loops, tracks, steps = batch.grid.shape
        period = phase_period(offsets, n)
        if sparse and period <= self.BLOCK_PERIODS and self.device.type == "cpu":
            return self._render_blocks(batch, n, offsets[:period])
        blocks = steps // period
        width = n // blocks
        k = torch.arange(blocks, device=self.device)
        circulant = (k[:, None] - k[None, :]) % blocks  # [k_out, k_in] → grid block k_out - k_in
        grid = batch.grid.to(self.device, torch.float32).reshape(loops, tracks, blocks, period)
        mats = (grid * MIX_GAIN)[:, :, circulant, :]  # [B, T, K_out, K_in, P]
        mats = mats.permute(0, 4, 2, 1, 3).reshape(loops, period * blocks, tracks * blocks)
        rows = batch.samples.to(self.device).reshape(-1)
        length = self.audio.shape[1]
        padded = n >= length  # nothing to wrap: gather rows straight into zero-padded buffers
        source = self.audio if padded else self._folded_bank(n)
        chunk = max(1, min(self.chunk, self.CACHE_BYTES // ((tracks + period) * n * 4)))
        # Buffers reused from chunk to chunk: fresh large tensors cost page faults every time.
        gathered = (torch.zeros if padded else torch.empty)(chunk * tracks, n, device=self.device)
        raw = torch.empty(chunk * tracks, length, device=self.device) if padded else gathered
        phases = torch.empty(chunk, period * blocks, width, device=self.device)
        out = torch.empty(loops, n, device=self.device)
        for start in range(0, loops, chunk):
            c = min(chunk, loops - start)
            samples = torch.index_select(source, 0, rows[start * tracks:(start + c) * tracks],
                                         out=raw[:c * tracks])
            if padded:
                samples = gathered[:c * tracks]
                samples[:, :length].copy_(raw[:c * tracks])
            parts = torch.bmm(mats[start:start + c], samples.view(c, tracks * blocks, width),
                              out=phases[:c]).view(c, period, n)
            mix = out[start:start + c]
            mix.copy_(parts[:, 0])  # offsets[0] == 0
            for q in range(1, period):
                d = offsets[q]
                mix[:, d:] += parts[:, q, :n - d]
                mix[:, :d] += parts[:, q, n - d:]
        return out

    def _render_blocks(self, batch: LoopBatch, n: int, phases: list[int]) -> torch.Tensor:
        """The same sum, on the CPU, when steps come in P ≤ BLOCK_PERIODS phases (P = 1 at 16
        or 48 kHz and 120 bpm, what the critic hears; P = 2 at 44.1 kHz and 120 bpm).

        With the bar cut into K = steps/P blocks of M samples, step q + P·k starts k blocks
        after phase q's start. Each sample is stored once per phase, already delayed by that
        phase's start (`_phase_bank`), so output block j of a loop is the sum, over its hits
        at step q + P·k, of block j - k (mod K) of the hit's sample in phase q. A list with
        one entry per (hit, sample block) sums those blocks straight from the bank (an
        `embedding_bag`): the work is the hits' audio and no more. Empty cells and the silence
        after a short sample cost nothing, where the dense product pays for the whole grid
        (several times faster here; the GPU, which prefers dense work, keeps the dense one).
        """
        loops, _, steps = batch.grid.shape
        period = len(phases)
        width = n // (steps // period)  # samples from step q to step q + P
        split = max(d for d in range(1, max(1, width // self.MIN_BLOCK) + 1) if width % d == 0)
        width //= split  # finer blocks: less silence read after a short sample
        blocks = n // width
        bank, first, end = self._phase_bank(n, width, phases)
        per_row = bank.shape[0] // (period * len(self.audio))
        k = torch.arange(per_row, device=self.device)
        grid = batch.grid.to(self.device)
        b, t, s = grid.nonzero(as_tuple=True)
        rows = batch.samples.to(self.device)[b, t]
        q, shift = s % period, s // period * split
        keep = (k[None, :] >= first[q, rows][:, None]) & (k[None, :] < end[q, rows][:, None])
        target = (b[:, None] * blocks + (k[None, :] + shift[:, None]) % blocks)[keep]
        column = (((q * len(self.audio) + rows) * per_row)[:, None] + k[None, :])[keep]
        if loops == 0:
            return torch.empty(0, n, device=self.device)
        counts = torch.bincount(target, minlength=loops * blocks)
        starts = torch.cumsum(counts, 0) - counts
        # Each output block is a "bag": the sum of the bank blocks listed for it, streamed
        # straight from the bank (no gathered copy, no sparse matrix format to convert).
        picks = column[torch.argsort(target, stable=True)]
        return torch.nn.functional.embedding_bag(picks, bank, starts, mode="sum").view(loops, n)

    def _phase_bank(self, n: int, width: int,
                    phases: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each sample delayed by each phase's start, scaled by MIX_GAIN and cut into blocks
        of `width`: folded into one bar of n where a delayed sample would run past it, else
        only zero-padded to whole blocks. Returns the blocks [P·N·KB, width] and, per phase
        and sample [P, N], the first block with sound and the one after its last. Cached like
        `_folded_bank`."""
        key = (n, width, tuple(phases))
        cached = self._folded.get(key)
        if cached is None:
            length = self.audio.shape[1]
            span = min(n, -(-(phases[-1] + length) // width) * width)
            delays = torch.tensor(phases, device=self.device)[:, None]
            ends = self.bank.lengths.to(self.device)[None, :] + delays
            wraps = ends > n  # a folded sample may sound anywhere in the bar
            first = torch.where(wraps, 0, delays // width)
            end = torch.where(wraps, n // width, -(-ends // width))
            delayed = [torch.nn.functional.pad(self.audio, (d, 0)) for d in phases]
            rows = [_wrap(x, n) if x.shape[1] > n else x for x in delayed]
            bank = torch.cat([torch.nn.functional.pad(x, (0, span - x.shape[1])) for x in rows])
            cached = ((bank * MIX_GAIN).reshape(-1, width).contiguous(), first, end)
            self._remember(key, cached)
        return cached

    def _folded_bank(self, n: int) -> torch.Tensor:
        """[N, n]: each sample wrapped into one bar (its tail re-enters at the start).

        Kept for the last FOLDED_KEEP bar lengths only: a live tempo change makes a new one,
        and each is as large as the bank.
        """
        folded = self._folded.get(n)
        if folded is None:
            folded = _wrap(self.audio, n).contiguous()
            self._remember(n, folded)
        return folded

    def _remember(self, key: object, bank: object) -> None:
        """Keep `bank`, dropping the oldest beyond FOLDED_KEEP (safe for threads sharing
        this renderer: nothing here raises when another thread got there first)."""
        for old in list(self._folded)[:max(0, len(self._folded) + 1 - self.FOLDED_KEEP)]:
            self._folded.pop(old, None)
        self._folded[key] = bank


def _wrap(audio: torch.Tensor, n: int) -> torch.Tensor:
    """[N, L] → [N, n]: each row cut into pieces of n summed, a tail re-entering at the start."""
    padded = torch.nn.functional.pad(audio, (0, (-audio.shape[1]) % n))
    return padded.reshape(len(audio), -1, n).sum(1)


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
                        out[idx] += piece  # a piece is at most a bar: indices are distinct
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
