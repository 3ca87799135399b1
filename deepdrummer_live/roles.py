"""A one-shot's role (kick, snare, hat, …) from its audio, and the General MIDI note it plays.

The critic judges the sound; MIDI out sends notes. If a hat sample's pattern goes out on the kick
note, a standard Drum Rack plays something the critic never heard. So each sample is classified
by what it sounds like (never by its file name, which is often missing or wrong) and each track is
sent on the GM drum note of its sample's role.

The classifier is a small hand-built decision tree over a dozen hand-made features (decay, band
energies, spectral centroid, body pitch and its sweep, tonality, attack). Its structure comes from
how drum machines make these sounds (kicks are swept low sines, hats are short bright noise,
claps are noise bursts…); its thresholds start from hand-set PRIORS and are fitted by
`fit_thresholds` on our own synthesised kit (`samples/`, folder = truth) and degraded copies of
it (overdrive, bit-crushing, low-pass), each in the middle of the gap between the classes it
separates. The fitted numbers are frozen in `THRESHOLDS`, so classifying needs no kit.

The paper's library is never used for fitting; it is the test set (`benchmarks/bench_roles.py`,
docs/benchmarks.md). It is not a blind one, though: the tree's rules were revised twice after
looking at its errors (a sweep counts only for a tonal body; a noisy hit defaults to snare; a
clap's bursts win over brightness), so its accuracy there is somewhat optimistic for a library
nobody has looked at. A k-nearest-neighbour classifier on the same features, trained on the same
kit, did worse on it (57 % against 67 %).
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

    out = {"decay": decay, "attack": attack, "bursts": bursts, "centroid": centroid, "low": low,
           "body": body, "high": high, "flatness": flatness, "tonality": tonality, "pitch": pitch,
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


# --------------------------------------------------------------------------------------------
# The decision tree

# Where each threshold starts, set by hand from how the sounds are made; `fit_thresholds` moves
# them where our kit says (and keeps them where the kit has nothing to say).
PRIORS: dict[str, float] = {
    "zap_sweep": 2.5, "zap_tonality": 6.0, "clap_bursts": 2.5, "clap_body": 0.05,
    "bass_body": 0.9, "kick_low": 0.5, "kick_pitch": 75.0, "tom_sweep": 0.08,
    "tom_pitch": 200.0, "metal_high": 0.3, "metal_body": 0.1, "shaker_attack": 0.005,
    "open_decay": 0.12, "cymbal_decay": 0.6, "noise_flatness": 0.035, "rim_decay": 0.05,
    "rim_centroid": 500.0, "perc_tonality": 20.0,
}

# Fitted by `fit_thresholds()` from PRIORS on our kit (samples/) and degraded copies of it; see
# the module docstring. Regenerate with `python -m deepdrummer_live.roles --fit`, paste here.
THRESHOLDS: dict[str, float] = {
    "zap_sweep": 4.804,  # octaves of pitch sweep beyond which a hit is a zap (other)
    "zap_tonality": 6.0,  # …of a tonal body: a noise's strongest partial wanders at random
    "clap_bursts": 2.5,  # separate bursts in the first 50 ms: a clap has three or four
    "clap_body": 0.04142,  # …and almost no power below 500 Hz
    "bass_body": 0.9221,  # power fraction below 500 Hz of a bass drum (kick, floor tom, conga)
    "kick_low": 0.5,  # power fraction below 200 Hz of a kick
    "kick_pitch": 73.2,  # Hz: a kick's settled body is lower than any tom's
    "tom_sweep": 0.1237,  # octaves: a tom's pitch drops, a conga's hardly moves…
    "tom_pitch": 170.6,  # Hz: …and a tom is tuned lower than a conga
    "metal_high": 0.06493,  # power fraction above 5 kHz of hats and cymbals
    "metal_body": 0.2462,  # …with almost nothing below 500 Hz (a bright snare has its shell)
    "shaker_attack": 0.02463,  # s: a shaker swells, a hat starts on its loudest moment
    "open_decay": 0.1163,  # s: a closed hat is choked sooner than this
    "cymbal_decay": 0.6425,  # s: a cymbal rings longer than an open hat
    "noise_flatness": 0.02726,  # spectral flatness of a noisy hit: a snare, if nothing above
    "rim_decay": 0.06359,  # s: a rim shot or a clave is over almost at once
    "rim_centroid": 500.0,  # Hz: …and is bright, unlike a short tom
    "perc_tonality": 20.0,  # peak / mean of the body spectrum: pitched percussion
}

# The feature each threshold cuts; those on positive features spread over decades are fitted in
# log space.
FEATURE_OF = {
    "zap_sweep": "sweep", "zap_tonality": "tonality", "clap_bursts": "bursts",
    "clap_body": "body", "bass_body": "body", "kick_low": "low", "kick_pitch": "pitch",
    "tom_sweep": "sweep", "tom_pitch": "pitch", "metal_high": "high", "metal_body": "body",
    "shaker_attack": "attack", "open_decay": "decay", "cymbal_decay": "decay",
    "noise_flatness": "flatness", "rim_decay": "decay", "rim_centroid": "centroid",
    "perc_tonality": "tonality",
}
LOG_SCALE = {"zap_tonality", "clap_body", "metal_body", "kick_pitch", "tom_pitch",
             "shaker_attack", "open_decay", "cymbal_decay", "noise_flatness", "rim_decay",
             "rim_centroid", "perc_tonality"}


def decide(f: Features, th: dict[str, float] | None = None) -> list[str]:
    """The tree: the first rule that holds names the role; 'other' when none does.

    Rules go from the most distinctive shape to the least: a zap's sweep, a clap's bursts, a
    bass drum's low body, a hat's bright noise, then what is left in the middle of the
    spectrum (snare, clap tail, rim, pitched percussion)."""
    th = THRESHOLDS if th is None else th
    # A sweep only means something for a tonal body (noise has no steady strongest partial).
    zap = (np.abs(f.sweep) >= th["zap_sweep"]) & (f.tonality >= th["zap_tonality"])
    bass = f.body >= th["bass_body"]  # most power below 500 Hz: kicks, toms, congas
    metal = (f.high >= th["metal_high"]) & (f.body < th["metal_body"])  # bright, no shell
    noisy = f.flatness >= th["noise_flatness"]
    rules = [
        (bass & (f.low >= th["kick_low"]) & (f.pitch < th["kick_pitch"]), "kick"),
        ((f.bursts >= th["clap_bursts"]) & (f.body < th["clap_body"]), "clap"),
        (bass & ((f.sweep >= th["tom_sweep"]) | (f.pitch < th["tom_pitch"])), "tom"),
        (metal & (f.attack >= th["shaker_attack"]) & (f.decay < th["cymbal_decay"]), "perc"),
        (metal & (f.decay >= th["cymbal_decay"]), "cymbal"),
        (metal & (f.decay >= th["open_decay"]), "hat_open"),
        (metal, "hat_closed"),
        (zap, "other"),
        (noisy, "snare"),
        ((f.decay < th["rim_decay"]) & (f.centroid >= th["rim_centroid"]), "rim"),
        (f.tonality >= th["perc_tonality"], "perc"),
    ]
    chosen = np.select([c for c, _ in rules], [ROLES.index(r) for _, r in rules],
                       default=ROLES.index("other"))
    return [ROLES[int(i)] for i in chosen]


def classify(audio: torch.Tensor | np.ndarray, lengths: torch.Tensor | np.ndarray | None,
             sample_rate: int) -> list[str]:
    """Role of each one-shot in a batch [N, L] (see `features`)."""
    if len(audio) == 0:
        return []
    return decide(features(audio, lengths, sample_rate))


def classify_bank(bank: SampleBank) -> list[str]:
    """Role of every sample in the bank, in `bank.names` order, from the audio alone."""
    return classify(bank.audio, bank.lengths, bank.sample_rate)


def track_notes(roles: Sequence[str], pitches: Sequence[float] | None = None) -> list[int]:
    """The GM drum note each track plays, from its sample's role.

    Tracks of the same role share their note (two kicks both play the kick pad, which a
    16-pad Drum Rack always has), except toms: several toms get distinct low / mid / high
    notes, ordered by body pitch when `pitches` is given, else by track order."""
    unknown = [r for r in roles if r not in GM_NOTES]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; roles are {', '.join(ROLES)}")
    notes = [GM_NOTES[r] for r in roles]
    toms = [i for i, r in enumerate(roles) if r == "tom"]
    if len(toms) == 1 and pitches is not None:
        notes[toms[0]] = tom_note(pitches[toms[0]])
    elif len(toms) > 1:
        if pitches is not None:
            toms.sort(key=lambda i: pitches[i])
        for i, note in zip(toms, TOM_SETS[min(len(toms), max(TOM_SETS))], strict=False):
            notes[i] = note
    return notes


# Several toms on one loop, low to high: GM's low, hi-mid and high toms, then the floor tom.
TOM_SETS = {2: (45, 48), 3: (45, 48, 50), 4: (43, 45, 48, 50)}


def tom_note(pitch: float) -> int:
    """GM tom note for a tom's body pitch (Hz)."""
    return TOM_NOTES_BY_PITCH[int(np.searchsorted(TOM_PITCH_EDGES, pitch))]


# --------------------------------------------------------------------------------------------
# Ground truth from file names (for measuring, never for classifying)

_NAME_RULES: tuple[tuple[str, str | None], ...] = (
    # Order matters: the first pattern found in the lower-cased file name wins.
    (r"kick|(^|[^a-z])bd([^a-z]|$)|bassdrum", "kick"),
    (r"snare|(^|[^a-z])sd([^a-z]|$)", "snare"),
    (r"clap", "clap"),
    (r"rim", "rim"),
    (r"open.?hat|hh.?open|(^|[^a-z])oh([^a-z]|$)", "hat_open"),
    (r"closed.?hat|hh.?closed|(^|[^a-z])ch([^a-z]|$)", "hat_closed"),
    (r"hi.?hat|(^|_)hat|fx", None),  # a hat that does not say open or closed, an effect
    (r"tom", "tom"),
    (r"cymbal|crash|ride", "cymbal"),
    (r"cow.?bell|bell|conga|bongo|clave|wood|maraca|shaker|perc", "perc"),
    (r"zapp?|wind|noise", "other"),
)


def truth_from_name(path: str | PurePosixPath) -> str | None:
    """The role a file's name states (the paper library's `Kick03.wav`, `DR110_OpenHat_…`),
    or None when the name does not say (`Vermona_Misc_07`, `HiHat`, `Bass Hit`)."""
    name = PurePosixPath(str(path).replace("\\", "/")).stem.lower()
    for pattern, role in _NAME_RULES:
        if re.search(pattern, name):
            return role
    return None


KIT_FOLDER_ROLES = {"kick": "kick", "snare": "snare", "clap": "clap", "rim": "rim",
                    "hat_closed": "hat_closed", "hat_open": "hat_open", "tom": "tom",
                    "cymbal": "cymbal", "cowbell": "perc", "perc": "perc", "shaker": "perc",
                    "zap": "other", "noise": "other", "harsh": "other"}


def accuracy(predicted: Sequence[str], truth: Iterable[str | None]
             ) -> dict[str, tuple[int, int]]:
    """{role: (correct, total)} over the samples whose truth is known, plus "all"."""
    counts: dict[str, list[int]] = {}
    for guess, true in zip(predicted, truth, strict=True):
        if true is None:
            continue
        for key in (true, "all"):
            cell = counts.setdefault(key, [0, 0])
            cell[0] += guess == true
            cell[1] += 1
    order = [r for r in ROLES if r in counts] + (["all"] if "all" in counts else [])
    return {r: (counts[r][0], counts[r][1]) for r in order}


def truth_from_kit(name: str) -> str | None:
    """The role of one of our kit's samples: its folder (`kick/kick_03_808.wav` → kick)."""
    return KIT_FOLDER_ROLES.get(PurePosixPath(name).parts[0])


# --------------------------------------------------------------------------------------------
# Fitting the thresholds (run once by hand; the result is frozen in THRESHOLDS)

def degraded(audio: torch.Tensor, sample_rate: int) -> list[torch.Tensor]:
    """Copies of a batch as other machines and mixers would have left it: overdriven,
    bit-crushed (6 bits, a quarter of the rate, held) and darkened (one-pole at 6 kHz).

    Fitting on these too keeps thresholds off the edges of our clean synthetic clusters."""
    drive = torch.tanh(6 * audio) / np.tanh(6)
    held = audio[:, ::4].repeat_interleave(4, 1)[:, :audio.shape[1]]
    crushed = torch.round(held * 32) / 32
    spec = torch.fft.rfft(audio)
    freqs = torch.fft.rfftfreq(audio.shape[1], 1 / sample_rate)
    dark = torch.fft.irfft(spec / (1 + 1j * freqs / 6000.0), audio.shape[1])
    return [drive, crushed, dark.float()]


def _score(predicted: Sequence[str], truth: Sequence[str]) -> float:
    """Balanced accuracy over the drum roles: the mean over roles of the fraction found.

    'other' is left out: it is what is left when no drum rule holds, and our kit's zaps and
    harsh noises are too few and too odd to place thresholds by (fitted to them, the tree
    learns our synthesiser's quirks and does worse on real drum machines)."""
    pred, true = np.asarray(predicted), np.asarray(truth)
    return float(np.mean([np.mean(pred[true == r] == r) for r in np.unique(true) if r != "other"]))


def _candidates(values: np.ndarray, log: bool, most: int = 160) -> np.ndarray:
    """Threshold values to try: midpoints between neighbouring feature values (at most `most`,
    spread by quantile), in log space for the log-scaled ones, plus one beyond each end."""
    v = np.log(np.clip(values, 1e-12, None)) if log else values
    v = np.unique(v)
    if len(v) > most:
        v = np.unique(np.quantile(v, np.linspace(0, 1, most)))
    mids = np.concatenate([[v[0] - 1.0], (v[1:] + v[:-1]) / 2, [v[-1] + 1.0]])
    return np.exp(mids) if log else mids


def _settle(cands: np.ndarray, scores: np.ndarray, prior: float, log: bool) -> float:
    """Where a threshold goes among candidate values: in the best-scoring range nearest the
    prior (the hand-set value); at the range's middle when data bound it on both sides (the
    middle of the gap between the classes it separates), else as near the prior as it can."""
    best = np.flatnonzero(scores == scores.max())
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    to = (lambda v: np.log(v)) if log else (lambda v: v)
    back = (lambda v: float(np.exp(v))) if log else float

    def distance(run: np.ndarray) -> float:
        lo, hi = to(cands[run[0]]), to(cands[run[-1]])
        return max(lo - to(prior), to(prior) - hi, 0.0)

    run = min(runs, key=distance)
    lo, hi = to(cands[run[0]]), to(cands[run[-1]])
    if run[0] > 0 and run[-1] < len(cands) - 1:
        return back((lo + hi) / 2)
    return back(min(max(to(prior), lo), hi))


def fit_thresholds(f: Features, truth: Sequence[str], start: dict[str, float] | None = None,
                   sweeps: int = 3) -> dict[str, float]:
    """Coordinate descent on the tree's thresholds, maximising balanced accuracy on (f, truth).

    Each threshold in turn takes the value that scores best with the others held (`_settle`
    says where in a range of equally good values), starting from `start` (PRIORS)."""
    prior = dict(PRIORS if start is None else start)
    th = dict(prior)
    truth = list(truth)
    for _ in range(sweeps):
        changed = False
        for name in th:
            values = getattr(f, FEATURE_OF[name])
            values = np.abs(values) if name == "zap_sweep" else values
            log = name in LOG_SCALE
            cands = _candidates(values, log)
            scores = np.array([_score(decide(f, {**th, name: c}), truth) for c in cands])
            value = _settle(cands, scores, prior[name], log)
            if not np.isclose(value, th[name]):
                changed = True
            th[name] = float(f"{value:.4g}")
        if not changed:
            break
    return th


def kit_training_set(folder: str | None = None) -> tuple[Features, list[str]]:
    """Features and roles of our kit and of its degraded copies (folder = truth)."""
    from .kit import default_kit_dir
    from .library import load_library

    bank = load_library(folder or default_kit_dir(), 22050)
    truth = [truth_from_kit(n) for n in bank.names]
    keep = [i for i, t in enumerate(truth) if t is not None]
    audio, lengths = bank.audio[keep], bank.lengths[keep]
    truth = [truth[i] for i in keep]
    parts = [features(a, lengths, bank.sample_rate)
             for a in [audio, *degraded(audio, bank.sample_rate)]]
    merged = Features(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in FEATURES})
    return merged, truth * len(parts)


if __name__ == "__main__":
    import json
    import sys

    if "--fit" not in sys.argv[1:]:
        sys.exit("usage: python -m deepdrummer_live.roles --fit   (prints fitted THRESHOLDS)")
    print(json.dumps(fit_thresholds(*kit_training_set()), indent=4))
