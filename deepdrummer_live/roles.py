"""A one-shot's role (kick, snare, hat, …) from its audio, and the General MIDI note it plays.

The critic judges the sound; MIDI out sends notes. If a hat sample's pattern goes out on the kick
note, a standard Drum Rack plays something the critic never heard. So each sample is classified
by what it sounds like (never by its file name, which is often missing or wrong) and each track is
sent on the GM drum note of its sample's role.

The classifier is a small hand-built decision tree over a dozen hand-made features (decay, band
energies, spectral centroid, body pitch and its sweep, tonality, attack). Its structure comes from
how drum machines make these sounds (kicks are swept low sines, hats are short bright noise,
claps are noise bursts…); its thresholds are fitted by `fit_thresholds` on our own synthesised
kit (`samples/`, folder = truth), with degraded copies (overdrive, bit-crushing, low-pass) so that
they sit in the middle of the gaps rather than hugging the clean synthetic clusters. The fitted
numbers are frozen in `THRESHOLDS`, so classifying needs no kit. The paper's library is never
used for fitting: it is the test set (`benchmarks/bench_roles.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import torch

from .library import SampleBank

ROLES = ("kick", "snare", "clap", "rim", "hat_closed", "hat_open", "tom", "cymbal", "perc",
         "other")

# General MIDI level-1 percussion key map (channel 10).
GM_NOTES: dict[str, int] = {
    "kick": 36,  # Bass Drum 1
    "snare": 38,  # Acoustic Snare
    "clap": 39,  # Hand Clap
    "rim": 37,  # Side Stick
    "hat_closed": 42,  # Closed Hi-Hat
    "hat_open": 46,  # Open Hi-Hat
    "tom": 45,  # Low Tom (48 Hi-Mid, 50 High: chosen by pitch when it is known)
    "cymbal": 49,  # Crash Cymbal 1
    "perc": 56,  # Cowbell: the classic drum-machine percussion voice
    # Zaps, noises, odd hits: Tambourine is a short bright accent that most Drum Racks and GM
    # kits fill, and no other role uses it, so such a sample never takes over a core pad.
    "other": 54,
}

# Where a second (third, …) track of the same role goes, so that two tracks never share a pad.
# Each list starts with the role's own note and walks to the nearest GM sound; `track_notes`
# uses the first note not yet taken, then the shared FALLBACK_NOTES.
ALTERNATE_NOTES: dict[str, tuple[int, ...]] = {
    "kick": (36, 35),  # Bass Drum 1, Acoustic Bass Drum
    "snare": (38, 40),  # Acoustic Snare, Electric Snare
    "clap": (39, 40, 38),  # Hand Clap, then the snares (GM has one clap)
    "rim": (37, 75, 76),  # Side Stick, Claves, Hi Wood Block
    "hat_closed": (42, 44),  # Closed Hi-Hat, Pedal Hi-Hat
    "hat_open": (46, 44, 55),  # Open Hi-Hat, Pedal Hi-Hat, Splash Cymbal
    "tom": (45, 48, 50, 43, 47, 41),  # Low, Hi-Mid, High, High Floor, Low-Mid, Low Floor
    "cymbal": (49, 57, 51, 55, 52),  # Crash 1, Crash 2, Ride 1, Splash, Chinese
    "perc": (56, 63, 64, 75, 76, 70),  # Cowbell, Hi/Low Conga, Claves, Hi Wood Block, Maracas
    "other": (54, 39, 56, 70, 81),  # Tambourine, Hand Clap, Cowbell, Maracas, Open Triangle
}
FALLBACK_NOTES = (54, 56, 70, 75, 76, 69, 80, 81, 60, 61, 62, 65, 66, 67, 68, 73, 74, 77, 78, 79)

# Toms by body pitch (Hz): GM's low / hi-mid / high tom, as a drum machine's tom trio is tuned.
TOM_PITCH_EDGES = (110.0, 180.0)
TOM_NOTES_BY_PITCH = (45, 48, 50)


# --------------------------------------------------------------------------------------------
# Features

ANALYSIS_TOP_HZ = 11025.0  # band edges never above this, so 22.05 k and 44.1 k banks agree
FRAME_SECONDS = 1024 / 22050  # STFT frame (46 ms) and hop (11.6 ms), scaled to the bank's rate
HOP_SECONDS = 256 / 22050
FINE_HOP_SECONDS = 0.0025  # onset envelope frames: finer ones count a clap's noise fading
ATTACK_WINDOW_SECONDS = 0.05  # a clap's bursts are all within its first 50 ms
EARLY_SECONDS = (0.0, 0.03)  # window where a kick's pitch is still high
BODY_SECONDS = (0.03, 0.2)  # window of the settled body pitch
PITCH_TOP_HZ = 4000.0
CHUNK = 64  # rows per batch: bounds memory (an STFT of 64 two-second rows is ~60 MB)

FEATURES = ("decay", "attack", "bursts", "centroid", "low", "body", "high", "flatness",
            "tonality", "pitch", "sweep")


@dataclass(frozen=True)
class Features:
    """Per-sample features, each a float64 array of length N (see `features`)."""

    decay: np.ndarray  # s: last moment the frame energy is within DECAY_DB of its peak
    attack: np.ndarray  # s: start → loudest 2.5 ms (above 800 Hz) of the first 50 ms
    bursts: np.ndarray  # separate onsets (≥ BURST_DIP_DB dips between) in the first 50 ms
    centroid: np.ndarray  # Hz: power-weighted mean frequency (≤ 11 kHz)
    low: np.ndarray  # power fraction below 200 Hz: kicks and floor toms
    body: np.ndarray  # power fraction below 500 Hz: a snare's shell vs a clap's bare noise
    high: np.ndarray  # power fraction above 5 kHz: hats and cymbals
    flatness: np.ndarray  # energy-weighted spectral flatness of frames: 1 noise, 0 a pure tone
    tonality: np.ndarray  # body spectrum peak / mean (≤ 4 kHz): pitched vs noisy
    pitch: np.ndarray  # Hz: strongest partial 30–200 ms in
    sweep: np.ndarray  # octaves: strongest partial in the first 30 ms over `pitch`

    def row(self, i: int) -> dict[str, float]:
        return {name: float(getattr(self, name)[i]) for name in FEATURES}


DECAY_DB = 30.0
BURST_DIP_DB = 6.0  # a clap's bursts are separated by dips deeper than this…
BURST_FLOOR_DB = -15.0  # …and each burst comes within this of the loudest moment
BURST_HIGHPASS_HZ = 800.0


def features(audio: torch.Tensor | np.ndarray, lengths: torch.Tensor | np.ndarray | None,
             sample_rate: int) -> Features:
    """Features of a batch [N, L] of one-shots (zero-padded rows; `lengths` real samples).

    Computed in chunks of CHUNK rows with one STFT each: no Python loop over samples.
    """
    audio = torch.as_tensor(audio, dtype=torch.float32)
    if audio.dim() == 1:
        audio = audio[None]
    if lengths is None:
        lengths = torch.full((audio.shape[0],), audio.shape[1], dtype=torch.long)
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    parts = [_features_chunk(audio[i:i + CHUNK], lengths[i:i + CHUNK], sample_rate)
             for i in range(0, audio.shape[0], CHUNK)]
    return Features(**{name: np.concatenate([p[name] for p in parts]) for name in FEATURES})


def _features_chunk(audio: torch.Tensor, lengths: torch.Tensor, sr: int) -> dict[str, np.ndarray]:
    n = audio.shape[0]
    longest = int(lengths.max()) if n else 0
    audio = audio[:, :max(longest, 16)]
    audio = audio * (torch.arange(audio.shape[1]) < lengths[:, None])
    peak = audio.abs().amax(1, keepdim=True).clamp_min(1e-9)
    audio = audio / peak

    n_fft = _even(FRAME_SECONDS * sr)
    hop = max(1, round(HOP_SECONDS * sr))
    spec = torch.stft(audio, n_fft, hop, window=torch.hann_window(n_fft), center=True,
                      return_complex=True).abs().square()  # [n, F, T]
    freqs = torch.fft.rfftfreq(n_fft, 1 / sr)
    spec = spec[:, freqs <= ANALYSIS_TOP_HZ]
    freqs = freqs[freqs <= ANALYSIS_TOP_HZ]

    energy = spec.sum(1)  # [n, T]
    frames = energy.shape[1]
    level_db = 10 * torch.log10(energy / energy.amax(1, keepdim=True).clamp_min(1e-20) + 1e-20)
    index = torch.arange(frames).expand(n, frames)
    last = torch.where(level_db > -DECAY_DB, index, torch.zeros_like(index)).amax(1)
    decay = last.double() * hop / sr

    power = spec.sum(2)
    power = power / power.sum(1, keepdim=True).clamp_min(1e-20)
    centroid = (power * freqs).sum(1)
    low = power[:, freqs < 200].sum(1)
    body = power[:, freqs < 500].sum(1)
    high = power[:, freqs >= 5000].sum(1)

    band = (freqs >= 50) & (freqs <= ANALYSIS_TOP_HZ)
    s = spec[:, band] + 1e-12
    flat_frames = torch.exp(torch.log(s).mean(1)) / s.mean(1)
    weights = energy / energy.sum(1, keepdim=True).clamp_min(1e-20)
    flatness = (flat_frames * weights).sum(1)

    attack, bursts = _onsets(audio, sr)

    early, _ = _peak_partial(audio, sr, *EARLY_SECONDS)
    pitch, tonality = _peak_partial(audio, sr, *BODY_SECONDS)
    sweep = torch.log2(early.clamp_min(20.0) / pitch.clamp_min(20.0))

    out = {"decay": decay, "attack": attack, "bursts": bursts, "centroid": centroid, "low": low, "body": body,
           "high": high, "flatness": flatness, "tonality": tonality, "pitch": pitch,
           "sweep": sweep}
    return {k: v.double().numpy() for k, v in out.items()}


def _onsets(audio: torch.Tensor, sr: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Attack time (s) and number of separate bursts in the first ATTACK_WINDOW_SECONDS.

    Both read the Hilbert envelope of the signal above BURST_HIGHPASS_HZ, in FINE_HOP_SECONDS
    frames: high-passing keeps a kick's 50 Hz cycles from looking like bursts, and the analytic
    envelope does not dip at zero crossings as a short RMS window would.
    """
    head = audio[:, :round(ATTACK_WINDOW_SECONDS * sr)]
    n, m = head.shape
    n_fft = 1 << int(np.ceil(np.log2(2 * max(m, 16))))
    spec = torch.fft.fft(head, n_fft)
    freqs = torch.fft.fftfreq(n_fft, 1 / sr)
    spec = spec * (2.0 * (freqs >= BURST_HIGHPASS_HZ))  # analytic: positive frequencies only
    env = torch.fft.ifft(spec)[:, :m].abs().square()
    hop = max(1, round(FINE_HOP_SECONDS * sr))
    frames = max(1, m // hop)
    env = torch.nn.functional.pad(env, (0, frames * hop - m)) if m < hop else env
    fine = env[:, :frames * hop].reshape(n, frames, hop).mean(2)
    attack = fine.argmax(1).double() * hop / sr
    return attack, _count_bursts(fine)


def _count_bursts(fine: torch.Tensor) -> torch.Tensor:
    """Onsets in a fine energy envelope [n, frames]: rises to within BURST_FLOOR_DB of the peak
    after a dip of BURST_DIP_DB. One for most hits, three or four for a clap."""
    db = 10 * torch.log10(fine / fine.amax(1, keepdim=True).clamp_min(1e-20) + 1e-12)
    n = db.shape[0]
    count = torch.zeros(n, dtype=torch.float64)
    armed = torch.ones(n, dtype=torch.bool)
    low = torch.full((n,), -120.0)
    top = torch.full((n,), -120.0)
    for v in db.T:  # ~70 frames, vectorised over samples
        onset = armed & (v > BURST_FLOOR_DB) & (v >= low + BURST_DIP_DB)
        count += onset
        top = torch.where(onset, v, torch.maximum(top, v))
        armed = armed & ~onset
        rearm = ~armed & (v <= top - BURST_DIP_DB)
        armed = armed | rearm
        low = torch.where(rearm, v, torch.minimum(low, v))
    return count


def _peak_partial(audio: torch.Tensor, sr: int, start: float, stop: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequency (Hz) of the strongest partial below PITCH_TOP_HZ in [start, stop) seconds, and
    how much it stands out (peak / mean magnitude): high for a tuned body, low for noise."""
    i0, i1 = round(start * sr), round(stop * sr)
    seg = audio[:, i0:i1]
    if seg.shape[1] < 8:
        seg = torch.nn.functional.pad(seg, (0, 8 - seg.shape[1]))
    seg = seg * torch.hann_window(seg.shape[1], periodic=False)
    n_fft = 1 << int(np.ceil(np.log2(max(seg.shape[1] * 4, round(sr / 2.5)))))  # ≤ 2.5 Hz bins
    mag = torch.fft.rfft(seg, n_fft).abs()
    freqs = torch.fft.rfftfreq(n_fft, 1 / sr)
    keep = (freqs >= 25) & (freqs <= PITCH_TOP_HZ)
    mag, freqs = mag[:, keep], freqs[keep]
    top = mag.argmax(1)
    tonality = mag.amax(1) / mag.mean(1).clamp_min(1e-12)
    return freqs[top].double(), tonality.double()


def _even(x: float) -> int:
    return max(16, 2 * round(x / 2))
