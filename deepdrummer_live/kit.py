"""Our own default drum kit: analog-drum-machine one-shots synthesised from scratch, CC0.

The paper's sample library cannot ship with the project, so the default kit is made here, by
code, in the manner of the 808/909 and their analog relatives: swept sines for kicks and toms,
tuned bodies plus filtered noise for snares, six detuned square waves for metal, and so on.

Everything is computed in float64 numpy from a seeded `numpy.random.Generator` per sample (no
global RNG, no clock), then quantised to 16-bit PCM by our own rounding, so a rebuild with the
same seed gives byte-identical files: the committed `samples/` folder can be checked against a
fresh build. Filters are biquads (RBJ cookbook) applied through their exact frequency response
on a zero-padded FFT, which equals running the recursive filter but needs no per-sample Python
loop; the whole kit builds in one to two seconds.

`kit_report` measures the result (spectral centroid, decay, duration per category) so that
"sounds like a drum machine" is checked by numbers: kicks low, hats high, closed hats short.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 44100
PEAK_DBFS = -1.0  # every one-shot is peak-normalised to this
MAX_SECONDS = 2.0  # hard cap on a one-shot's length
TAIL_DB = -60.0  # a one-shot ends where its level stays below this (relative to its peak)
FADE_SECONDS = 0.01  # fade-out at a natural end, so the last sample is exactly zero
CAP_FADE_SECONDS = 0.15  # longer fade where the cap cuts a sound that is still ringing
DECAY_DB = 40.0  # kit_report's decay: time for the RMS envelope to fall this far below its peak
DC_CUTOFF_HZ = 20.0
FILTER_PAD_SECONDS = 0.25  # zero padding for FFT filtering: longer than any filter rings

DEFAULT_KIT_DIR = Path(__file__).resolve().parent.parent / "samples"
CC0_URL = "https://creativecommons.org/publicdomain/zero/1.0/"

Voice = Callable[[np.random.Generator, int, int], tuple[str, np.ndarray]]
"""(rng, index within its category, sample rate) → (variant label, float64 audio)."""


# --------------------------------------------------------------------------------------------
# Building blocks


def _time(seconds: float, sr: int) -> np.ndarray:
    return np.arange(max(1, int(round(seconds * sr))), dtype=np.float64) / sr


def _decay(t: np.ndarray, tau: float) -> np.ndarray:
    """Exponential decay with time constant `tau` seconds: the analog VCA envelope."""
    return np.exp(-t / tau)


def _ring_time(tau: float) -> float:
    """Seconds for an exponential with time constant `tau` to fall to TAIL_DB."""
    return tau * np.log(10.0) * (-TAIL_DB) / 20.0


def _sweep_phase(t: np.ndarray, f_start: float, f_end: float, tau: float) -> np.ndarray:
    """Phase (radians) of an oscillator gliding exponentially from f_start to f_end.

    The frequency is f_end + (f_start - f_end)·exp(-t/tau), the pitch envelope of an analog
    kick or tom; the phase is its exact integral, so there is no accumulated rounding.
    """
    return 2 * np.pi * (f_end * t + (f_start - f_end) * tau * (1.0 - np.exp(-t / tau)))


def _square(t: np.ndarray, freq: float, phase: float = 0.0) -> np.ndarray:
    """Naive ±1 square wave (its aliasing is part of the cheap-oscillator sound)."""
    return np.where(np.mod(freq * t + phase, 1.0) < 0.5, 1.0, -1.0)


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def _norm(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x)))
    return x / peak if peak > 0 else x


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Frequencies are drawn evenly in pitch, not in Hz."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _spread(rng: np.random.Generator, i: int, n: int, lo: float, hi: float) -> float:
    """Stratified log-uniform draw: sample i of n lands in its own slice of [lo, hi]."""
    u = (i + rng.uniform(0.1, 0.9)) / n
    return float(lo * (hi / lo) ** u)


def _saturate(x: np.ndarray, drive: float) -> np.ndarray:
    """tanh overdrive; drive 1 is nearly clean, 5+ is a hot analog channel."""
    return np.tanh(drive * _norm(x)) / np.tanh(drive)


def _biquad(kind: str, f0: float, q: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook biquad coefficients (b, a) for lowpass/highpass/bandpass."""
    f0 = min(f0, 0.45 * sr)
    w0 = 2 * np.pi * f0 / sr
    alpha = np.sin(w0) / (2 * q)
    c = np.cos(w0)
    if kind == "lowpass":
        b = np.array([(1 - c) / 2, 1 - c, (1 - c) / 2])
    elif kind == "highpass":
        b = np.array([(1 + c) / 2, -(1 + c), (1 + c) / 2])
    elif kind == "bandpass":  # constant 0 dB peak gain
        b = np.array([alpha, 0.0, -alpha])
    else:
        raise ValueError(f"unknown filter kind {kind!r}")
    a = np.array([1 + alpha, -2 * c, 1 - alpha])
    return b / a[0], a / a[0]


def _filter(x: np.ndarray, kind: str, f0: float, sr: int, q: float = 0.7071,
            stages: int = 1) -> np.ndarray:
    """Run `x` through `stages` identical biquads.

    Computed as the biquad's exact frequency response on an FFT zero-padded by
    FILTER_PAD_SECONDS: the causal recursive filter's output, except that ringing more than that
    past the end of `x` would wrap around (our filters ring for far less).
    """
    b, a = _biquad(kind, f0, q, sr)
    n = len(x)
    n_fft = _fft_size(n + int(FILTER_PAD_SECONDS * sr))
    z, z2 = _unit_circle(n_fft)
    h = (b[0] + b[1] * z + b[2] * z2) / (a[0] + a[1] * z + a[2] * z2)
    return np.fft.irfft(np.fft.rfft(x, n_fft) * h**stages, n_fft)[:n]


def _fft_size(n: int) -> int:
    """Smallest even 2^a·3^b·5^c >= n: FFTs of such sizes are fast, and far smaller than 2^k."""
    best = 1 << int(np.ceil(np.log2(max(n, 2))))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35 * (1 << max(1, int(np.ceil(np.log2(n / p35)))))
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


@functools.lru_cache(maxsize=64)
def _unit_circle(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """e^{-jω} and e^{-2jω} at each rfft bin of an n_fft-point FFT (cached: sizes repeat)."""
    z = np.exp(-1j * np.pi * np.arange(n_fft // 2 + 1) / (n_fft // 2))
    z2 = z * z
    z.flags.writeable = False
    z2.flags.writeable = False
    return z, z2


def _lowpass(x: np.ndarray, f0: float, sr: int, stages: int = 1) -> np.ndarray:
    return _filter(x, "lowpass", f0, sr, stages=stages)


def _highpass(x: np.ndarray, f0: float, sr: int, stages: int = 1) -> np.ndarray:
    return _filter(x, "highpass", f0, sr, stages=stages)


def _bandpass(x: np.ndarray, f0: float, q: float, sr: int, stages: int = 1) -> np.ndarray:
    return _filter(x, "bandpass", f0, sr, q=q, stages=stages)


def _click(rng: np.random.Generator, t: np.ndarray, sr: int, tau: float,
           hp: float) -> np.ndarray:
    """A short high-passed noise tick: the beater / stick transient, peak 1."""
    return _norm(_highpass(_noise(rng, len(t)), hp, sr) * _decay(t, tau))


def _damped(t: np.ndarray, freq: float, tau: float, phase: float = 0.0) -> np.ndarray:
    """Damped sinusoid: what a struck resonator (bridged-T, membrane mode) rings with."""
    return np.sin(2 * np.pi * freq * t + phase) * _decay(t, tau)


# 808 hi-hat/cymbal oscillators: six square waves at inharmonic ratios give the metallic sound.
METAL_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)


def _metal(rng: np.random.Generator, t: np.ndarray, scale: float) -> np.ndarray:
    """Six detuned squares, each with a random phase and ±1 % detune."""
    out = np.zeros_like(t)
    for f in METAL_HZ:
        out += _square(t, f * scale * rng.uniform(0.99, 1.01), rng.uniform())
    return out / len(METAL_HZ)


# --------------------------------------------------------------------------------------------
# Instrument families: one voice per category, parameters drawn per sample


def kick(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Sine with an exponential pitch sweep (e.g. 150 → 45 Hz), click transient, drive."""
    style = ("808", "909", "hard")[i % 3]
    if style == "808":  # long boom, soft click
        f_end, f_start = rng.uniform(40, 55), rng.uniform(100, 170)
        sweep, tau = rng.uniform(0.02, 0.06), rng.uniform(0.07, 0.17)
        click, drive = rng.uniform(0.05, 0.2), rng.uniform(1.0, 1.8)
    elif style == "909":  # short, punchy, loud click
        f_end, f_start = rng.uniform(45, 62), rng.uniform(180, 320)
        sweep, tau = rng.uniform(0.008, 0.025), rng.uniform(0.04, 0.09)
        click, drive = rng.uniform(0.25, 0.6), rng.uniform(1.2, 2.5)
    else:  # overdriven
        f_end, f_start = rng.uniform(40, 55), rng.uniform(140, 260)
        sweep, tau = rng.uniform(0.015, 0.04), rng.uniform(0.05, 0.12)
        click, drive = rng.uniform(0.1, 0.4), rng.uniform(3.0, 8.0)
    t = _time(_ring_time(tau) + 0.02, sr)
    body = np.sin(_sweep_phase(t, f_start, f_end, sweep)) * _decay(t, tau)
    tick = _click(rng, t, sr, rng.uniform(0.0005, 0.002), rng.uniform(2000, 5000))
    return style, _saturate(body + click * tick, drive)


def snare(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Tuned body (two drum modes ~180/330 Hz, slight pitch drop) plus band-passed noise."""
    style = ("808", "909", "tight", "fat", "bright")[i % 5]
    f1 = _spread(rng, i, 25, 160, 240)
    f2 = f1 * rng.uniform(1.65, 1.95)
    body_tau = rng.uniform(0.02, 0.06) * (1.5 if style == "fat" else 1.0)
    noise_tau = rng.uniform(0.03, 0.1) * (0.5 if style == "tight" else 1.0)
    tone = {"808": 1.0, "909": 0.5, "tight": 0.6, "fat": 1.2, "bright": 0.35}[style]
    tone *= rng.uniform(0.7, 1.3)
    t = _time(_ring_time(max(body_tau, noise_tau)) + 0.01, sr)
    bend = rng.uniform(0.1, 0.5)
    body = (np.sin(_sweep_phase(t, f1 * (1 + bend), f1, 0.01)) * _decay(t, body_tau)
            + rng.uniform(0.4, 0.9) * np.sin(_sweep_phase(t, f2 * (1 + bend), f2, 0.01))
            * _decay(t, 0.7 * body_tau))
    hiss = _noise(rng, len(t))
    hiss = _highpass(hiss, rng.uniform(900, 2200), sr)
    hiss = _lowpass(hiss, rng.uniform(6000, 12000) * (1.4 if style == "bright" else 1.0), sr)
    snap = _norm(hiss) * _decay(t, noise_tau)
    return style, _saturate(tone * _norm(body) + snap, rng.uniform(1.0, 2.5))


def clap(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """3–4 noise bursts ~10 ms apart, then a decaying tail, band-passed around 1–2 kHz."""
    bursts = 3 + i % 2
    gap = rng.uniform(0.008, 0.013)
    burst_tau = rng.uniform(0.0015, 0.003)
    tail_tau = rng.uniform(0.035, 0.1)
    t = _time((bursts - 1) * gap + _ring_time(tail_tau) + 0.01, sr)
    env = np.zeros_like(t)
    for k in range(bursts):
        dt = t - k * gap
        if k == bursts - 1:  # the tail is softer than the sharp bursts before it
            tau, level = tail_tau, rng.uniform(0.5, 0.8)
        else:
            tau, level = burst_tau, rng.uniform(1.0, 1.3)
        env += np.where(dt >= 0, level * np.exp(-np.maximum(dt, 0) / tau), 0.0)
    center = _spread(rng, i, 15, 1000, 2000)
    hiss = _bandpass(_noise(rng, len(t)), center, rng.uniform(0.8, 2.0), sr, stages=2)
    return ("808", "909")[i % 2], _norm(hiss) * env


def _hat(rng: np.random.Generator, sr: int, tau: float, length: float) -> np.ndarray:
    """Metal (six squares) and/or noise, high-passed at ~7 kHz, with a fast decay."""
    t = _time(length, sr)
    metal = _metal(rng, t, rng.uniform(0.85, 1.35))
    noise_mix = rng.uniform(0.0, 0.7)
    src = (1 - noise_mix) * metal + noise_mix * _norm(_noise(rng, len(t)))
    src = _highpass(src, rng.uniform(6500, 9000), sr, stages=2)
    src = _lowpass(src, rng.uniform(9000, 16000), sr)  # from dark to sizzling
    return _norm(src) * _decay(t, tau)


def hat_closed(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Closed hi-hat: decays 40 dB in about 30–80 ms."""
    tau = _spread(rng, i, 20, 0.0065, 0.017)
    return ("808", "909")[i % 2], _hat(rng, sr, tau, _ring_time(tau) + 0.01)


def hat_open(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Open hi-hat: decays 40 dB in about 250–600 ms."""
    tau = _spread(rng, i, 15, 0.055, 0.13)
    return ("808", "909")[i % 2], _hat(rng, sr, tau, _ring_time(tau) + 0.01)


def tom(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Pitched sine with a pitch drop, a faint second mode and a stick transient."""
    f = _spread(rng, i, 15, 75, 320)
    label = "low" if f < 125 else ("mid" if f < 200 else "high")
    tau = rng.uniform(0.05, 0.15) * (110 / f) ** 0.3
    t = _time(_ring_time(tau) + 0.01, sr)
    bend, sweep = rng.uniform(0.2, 0.7), rng.uniform(0.03, 0.1)
    body = np.sin(_sweep_phase(t, f * (1 + bend), f, sweep)) * _decay(t, tau)
    mode = rng.uniform(1.45, 1.6) * f
    body += rng.uniform(0.0, 0.3) * np.sin(_sweep_phase(t, mode * (1 + bend), mode, sweep)) \
        * _decay(t, 0.5 * tau)
    stick = _bandpass(_noise(rng, len(t)), min(8 * f, 3000), 1.0, sr) * _decay(t, 0.003)
    return label, _saturate(body + rng.uniform(0.05, 0.25) * _norm(stick), rng.uniform(1.0, 2.0))


def rim(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Short high click plus a resonant body (808: 455/1667 Hz; 909: 220/500/1000 Hz)."""
    style = ("808", "909")[i % 2]
    k = rng.uniform(0.85, 1.2)
    tau = rng.uniform(0.004, 0.012)
    t = _time(_ring_time(tau) + 0.02, sr)
    if style == "808":
        body = _damped(t, 455 * k, tau) + rng.uniform(0.4, 0.8) * _damped(t, 1667 * k, tau)
    else:
        body = (0.5 * _damped(t, 220 * k, tau) + _damped(t, 500 * k, tau)
                + rng.uniform(0.4, 0.9) * _damped(t, 1000 * k, 0.7 * tau))
    tick = _click(rng, t, sr, rng.uniform(0.0003, 0.001), rng.uniform(3000, 6000))
    x = _highpass(_norm(body) + rng.uniform(0.3, 0.8) * tick, rng.uniform(250, 600), sr)
    return style, _saturate(x, rng.uniform(2.0, 4.5))


def cowbell(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Two squares ~540/800 Hz, band-passed, with a sharp-then-long two-stage decay."""
    f1 = _spread(rng, i, 10, 470, 640)
    f2 = f1 * rng.uniform(1.45, 1.52)
    tau_long = rng.uniform(0.05, 0.15)
    t = _time(_ring_time(tau_long) + 0.01, sr)
    src = _square(t, f1) + _square(t, f2)
    src = _bandpass(src, f2 * rng.uniform(1.0, 2.2), rng.uniform(1.2, 2.5), sr, stages=2)
    env = 0.6 * _decay(t, rng.uniform(0.006, 0.015)) + 0.4 * _decay(t, tau_long)
    return ("808", "bright")[i % 2], _norm(src) * env


def shaker(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """High band of noise with a quick swell and short decay; some shaken twice."""
    attack, tau = rng.uniform(0.003, 0.015), rng.uniform(0.02, 0.07)
    double = i % 3 == 2
    second = rng.uniform(0.06, 0.1)
    t = _time((second if double else 0.0) + attack + _ring_time(tau) + 0.01, sr)

    def swell(start: float) -> np.ndarray:
        dt = t - start
        rise = 0.15 + 0.85 * np.clip(dt / attack, 0.0, 1.0)
        fall = np.exp(-np.maximum(dt - attack, 0.0) / tau)
        return np.where(dt >= 0, rise * fall, 0.0)

    env = swell(0.0) + (rng.uniform(0.5, 0.8) * swell(second) if double else 0.0)
    hiss = _highpass(_noise(rng, len(t)), rng.uniform(3000, 6000), sr, stages=2)
    hiss = _lowpass(hiss, rng.uniform(9000, 15000), sr)
    return ("double" if double else "single"), _norm(hiss) * env


def perc(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Congas, bongos (pitched membranes), claves and woodblocks (struck resonators)."""
    kind = ("conga", "bongo", "clave", "woodblock")[i % 4]
    j = i // 4  # index within the kind, for pitch spread
    if kind in ("conga", "bongo"):
        lo, hi, tau = (170, 330, rng.uniform(0.05, 0.14)) if kind == "conga" else \
            (330, 650, rng.uniform(0.03, 0.08))
        f = _spread(rng, j, 5, lo, hi)
        t = _time(_ring_time(tau) + 0.01, sr)
        body = np.sin(_sweep_phase(t, f * rng.uniform(1.05, 1.2), f, 0.01)) * _decay(t, tau)
        slap = _bandpass(_noise(rng, len(t)), rng.uniform(1500, 3000), 1.0, sr) * _decay(t, 0.004)
        return kind, _saturate(body + rng.uniform(0.1, 0.3) * _norm(slap), rng.uniform(1.0, 1.8))
    if kind == "clave":
        f, tau = _spread(rng, j, 5, 2200, 2800), rng.uniform(0.012, 0.03)
        t = _time(_ring_time(tau) + 0.01, sr)
        return kind, _damped(t, f, tau) + rng.uniform(0.0, 0.2) * _damped(t, 2.7 * f, 0.5 * tau)
    f, tau = _spread(rng, j, 5, 700, 1300), rng.uniform(0.015, 0.04)
    t = _time(_ring_time(tau) + 0.01, sr)
    body = _damped(t, f, tau) + rng.uniform(0.3, 0.6) * _damped(t, 2.5 * f, 0.5 * tau)
    return kind, body + 0.3 * _click(rng, t, sr, 0.0005, 4000)


def cymbal(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Long metallic noise: squares plus noise in a bright band and a shorter mid band."""
    style = ("crash", "ride")[i % 2]
    t = _time(MAX_SECONDS, sr)
    metal = _metal(rng, t, rng.uniform(0.7, 1.2))
    noise_mix = rng.uniform(0.4, 0.7) if style == "crash" else rng.uniform(0.1, 0.35)
    src = (1 - noise_mix) * metal + noise_mix * _norm(_noise(rng, len(t)))
    tau = rng.uniform(0.25, 0.45)
    high = _norm(_highpass(src, rng.uniform(5000, 8000), sr, stages=2)) * _decay(t, tau)
    mid = _norm(_bandpass(src, rng.uniform(3000, 5000), 1.0, sr)) * _decay(t, 0.3 * tau)
    x = high + rng.uniform(0.3, 0.6) * mid
    if style == "ride":  # the bell "ping"
        x += rng.uniform(0.1, 0.25) * _damped(t, rng.uniform(2500, 3500), 0.4 * tau)
    return style, x


def zap(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Fast exponential pitch sweeps: laser/zap blips, mostly downward."""
    wave = ("sine", "square", "fm", "sine", "rise")[i % 5]
    tau = rng.uniform(0.03, 0.1)
    t = _time(_ring_time(tau) + 0.01, sr)
    f_start, f_end = _log_uniform(rng, 1500, 6000), _log_uniform(rng, 40, 250)
    sweep = rng.uniform(0.01, 0.05)
    if wave == "rise":
        f_start, f_end = f_end * 2, f_start * 0.6
    phase = _sweep_phase(t, f_start, f_end, sweep)
    if wave == "square":
        osc = _lowpass(np.where(np.sin(phase) >= 0, 1.0, -1.0), rng.uniform(3000, 8000), sr)
    elif wave == "fm":
        osc = np.sin(phase + rng.uniform(1, 4) * np.sin(rng.uniform(1.5, 3.5) * phase))
    else:
        osc = np.sin(phase)
    return wave, osc * _decay(t, tau)


def noise(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Plain noise hits: white, pink, low rumble, band, and crackle."""
    kind = ("white", "pink", "lowpass", "band", "crackle")[i % 5]
    tau = rng.uniform(0.05, 0.15)
    t = _time(_ring_time(tau) + 0.01, sr)
    x = _noise(rng, len(t))
    if kind == "pink":  # 1/f power: scale the spectrum by 1/sqrt(f)
        spec = np.fft.rfft(x)
        spec[1:] /= np.sqrt(np.arange(1, len(spec)))
        spec[0] = 0
        x = np.fft.irfft(spec, len(x))
    elif kind == "lowpass":
        x = _lowpass(x, rng.uniform(300, 900), sr, stages=2)
    elif kind == "band":
        x = _bandpass(x, rng.uniform(600, 3000), rng.uniform(2, 5), sr)
    elif kind == "crackle":
        x = np.where(rng.uniform(size=len(t)) < 0.01, x * 3, 0.0)
        x = _lowpass(x, rng.uniform(4000, 9000), sr)
    return kind, _norm(x) * _decay(t, tau)


def harsh(rng: np.random.Generator, i: int, sr: int) -> tuple[str, np.ndarray]:
    """Deliberately unpleasant sounds (crushed, clipped, screeching), as the paper's library had.

    They give the critic something to learn to avoid.
    """
    kind = ("bitcrush", "buzz", "ringmod", "digital", "fuzz", "whistle", "crushed_hat",
            "glitch")[i % 8]
    tau = rng.uniform(0.06, 0.2)
    t = _time(_ring_time(tau) + 0.01, sr)
    env = _decay(t, tau)
    if kind == "bitcrush":  # kick at 3 bits and a few kHz
        x = np.sin(_sweep_phase(t, rng.uniform(150, 250), 50, 0.03)) * env
        x = _sample_hold(np.round(x * 4) / 4, int(rng.integers(8, 17)))
    elif kind == "buzz":
        f = rng.uniform(900, 2000)
        x = np.clip(3 * (_square(t, f) + _square(t, f * 1.013)), -1, 1) * env
    elif kind == "ringmod":
        x = np.sin(2 * np.pi * rng.uniform(2500, 4000) * t) \
            * np.sin(2 * np.pi * rng.uniform(3000, 5000) * t)
        x = np.clip(2.5 * x, -1, 1) * env
    elif kind == "digital":  # 1-bit sample-and-hold noise
        x = np.sign(_sample_hold(_noise(rng, len(t)), int(rng.integers(4, 21)))) * env
    elif kind == "fuzz":  # snare pushed into hard clipping
        x = np.clip(20 * (_noise(rng, len(t)) + np.sin(2 * np.pi * 190 * t)), -1, 1) * env
    elif kind == "whistle":
        vibrato = 40 * np.sin(2 * np.pi * rng.uniform(15, 30) * t)
        x = np.clip(2 * np.sin(2 * np.pi * (rng.uniform(3000, 4500) * t + vibrato / 20)), -1, 1)
        x = x * env
    elif kind == "crushed_hat":
        x = np.round(_highpass(_noise(rng, len(t)), 5000, sr) * 1.5) * _decay(t, 0.4 * tau)
        x = _sample_hold(x, 3)
    else:  # glitch: a random square melody changing every 10–30 ms
        x = np.zeros_like(t)
        start = 0
        while start < len(t):
            stop = start + int(rng.uniform(0.01, 0.03) * sr)
            x[start:stop] = _square(t[start:stop], _log_uniform(rng, 200, 5000))
            start = stop
        x = x * env
    return kind, x


def _sample_hold(x: np.ndarray, hold: int) -> np.ndarray:
    """Keep every `hold`-th sample and repeat it: crude sample-rate reduction (aliasing)."""
    return np.repeat(x[::hold], hold)[: len(x)]


# Category → (count, voice, stable RNG offset base). Offsets never change when categories are
# added, so existing samples keep their sound.
KIT_LAYOUT: dict[str, tuple[int, Voice, int]] = {
    "kick": (30, kick, 0),
    "snare": (25, snare, 1000),
    "clap": (15, clap, 2000),
    "hat_closed": (20, hat_closed, 3000),
    "hat_open": (15, hat_open, 4000),
    "tom": (15, tom, 5000),
    "rim": (10, rim, 6000),
    "cowbell": (10, cowbell, 7000),
    "shaker": (10, shaker, 8000),
    "perc": (20, perc, 9000),
    "cymbal": (10, cymbal, 10000),
    "zap": (10, zap, 11000),
    "noise": (5, noise, 12000),
    "harsh": (8, harsh, 13000),
}
KIT_SIZE = sum(count for count, _, _ in KIT_LAYOUT.values())


# --------------------------------------------------------------------------------------------
# Finishing and writing


def finish(x: np.ndarray, sr: int) -> np.ndarray:
    """Raw voice output → a clean int16 one-shot.

    DC removed, starts at the transient, ends where it falls below TAIL_DB (at most
    MAX_SECONDS), faded to exactly zero, peak at PEAK_DBFS; rounded by us, not by libsndfile.
    """
    x = _highpass(np.asarray(x, dtype=np.float64), DC_CUTOFF_HZ, sr)
    x = _norm(x)
    loud = np.flatnonzero(np.abs(x) >= 10 ** (TAIL_DB / 20))
    if len(loud) == 0:
        raise ValueError("silent voice output")
    start, end = int(loud[0]), int(loud[-1]) + 1
    cap = int(MAX_SECONDS * sr)
    capped = end - start >= cap
    x = x[start:start + cap] if capped else x[start:end]
    fade = min(int((CAP_FADE_SECONDS if capped else FADE_SECONDS) * sr), len(x) // 4)
    if fade > 0:
        x = x.copy()
        x[-fade:] *= 0.5 * (1 + np.cos(np.linspace(0.0, np.pi, fade)))
    x = _norm(x) * 10 ** (PEAK_DBFS / 20)
    return np.round(x * 32767).astype(np.int16)


def synthesize(category: str, index: int, seed: int = 0,
               sample_rate: int = SAMPLE_RATE) -> tuple[str, np.ndarray]:
    """One one-shot of the kit: (file name without suffix, int16 audio). Pure and deterministic."""
    count, voice, offset = KIT_LAYOUT[category]
    if not 0 <= index < count:
        raise IndexError(f"{category} has {count} samples, not {index + 1}")
    # (seed, offset) rather than seed + offset: seed 1 must not replay seed 0's streams shifted.
    rng = np.random.default_rng((seed, offset + index))
    label, audio = voice(rng, index, sample_rate)
    return f"{category}_{index:02d}_{label}", finish(audio, sample_rate)


def build_kit(out_dir: Path, seed: int = 0, sample_rate: int = SAMPLE_RATE) -> list[Path]:
    """Write the whole kit (KIT_SIZE one-shots, 16-bit mono WAV) into out_dir/<category>/.

    Old .wav files in the category folders are removed first, so a rebuild is exact; other
    files and folders in `out_dir` are left alone. Returns the written WAV paths, in order.
    """
    if seed < 0:
        raise ValueError("seed must be >= 0")
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for category, (count, _, _) in KIT_LAYOUT.items():
        folder = out_dir / category
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.wav"):
            stale.unlink()
        for index in range(count):
            name, pcm = synthesize(category, index, seed, sample_rate)
            path = folder / f"{name}.wav"
            sf.write(str(path), pcm, sample_rate, format="WAV", subtype="PCM_16")
            paths.append(path)
    (out_dir / "LICENSE.txt").write_text(_license_text(), encoding="utf-8")
    (out_dir / "README.md").write_text(_readme_text(seed, sample_rate), encoding="utf-8")
    return paths


def _license_text() -> str:
    return (
        "DeepDrummer Live default drum kit: CC0 1.0 Universal (public domain dedication)\n"
        "\n"
        "To the extent possible under law, the DeepDrummer Live contributors have waived all\n"
        "copyright and related or neighboring rights to the sound files in this folder.\n"
        "They were synthesised from scratch by deepdrummer_live/kit.py; no recordings or\n"
        "third-party samples were used. You may copy, modify, distribute and use them, even\n"
        "commercially, without asking permission and without attribution.\n"
        "\n"
        f"Full legal text: {CC0_URL}\n"
    )


def _readme_text(seed: int, sample_rate: int) -> str:
    rows = "\n".join(f"- `{name}/`: {count}" for name, (count, _, _) in KIT_LAYOUT.items())
    return (
        "# DeepDrummer Live default drum kit\n"
        "\n"
        f"{KIT_SIZE} one-shot drum sounds in the style of analog drum machines (808/909 and\n"
        f"relatives), 16-bit PCM mono WAV at {sample_rate} Hz, each peak-normalised to\n"
        f"{PEAK_DBFS:g} dBFS and at most {MAX_SECONDS:g} s long. They are synthesised from\n"
        f"scratch by `deepdrummer_live/kit.py` (seed {seed}); no recordings are used.\n"
        "A few sounds in `harsh/` are unpleasant on purpose, as in the DeepDrummer paper's\n"
        "library.\n"
        "\n"
        f"{rows}\n"
        "\n"
        "These files are generated: do not edit them by hand. Regenerate them, byte for byte,\n"
        "with\n"
        "\n"
        "    deepdrummer-live samples build\n"
        "\n"
        "(`--out DIR` and `--seed S` to build elsewhere or another variation), which also prints\n"
        "the measured report (spectral centroid, decay, duration per category).\n"
        "\n"
        "Licence: CC0 1.0 (public domain), see LICENSE.txt.\n"
    )


# --------------------------------------------------------------------------------------------
# Finding the kit


def _cache_root() -> Path:
    """Where rebuildable files go (`$DEEPDRUMMER_CACHE` overrides), as in library.cache_dir."""
    base = os.environ.get("DEEPDRUMMER_CACHE") or Path.home() / ".cache" / "deepdrummer-live"
    return Path(base)


def _has_wavs(folder: Path) -> bool:
    return folder.is_dir() and any(folder.rglob("*.wav"))


def _is_complete(folder: Path) -> bool:
    """A kit folder that a finished build_kit left (its README.md is written last)."""
    return (folder / "README.md").is_file() and \
        sum(1 for _ in folder.glob("*/*.wav")) >= KIT_SIZE


def default_kit_dir(build: bool = True) -> Path:
    """The committed `samples/` folder if present, else a kit built once into the user cache.

    A non-editable install has no `samples/`; the kit is then built on first use (a second
    or two) into `$DEEPDRUMMER_CACHE/kit` or `~/.cache/deepdrummer-live/kit`. The build goes to
    a temporary folder that is renamed into place, so a half-built kit is never used.

    With `build=False` nothing is built: it returns where the kit lives or belongs, which is
    `samples/` in a source checkout (even before its first build) and the cache folder otherwise
    (never site-packages). `deepdrummer-live samples build` writes there.
    """
    if _has_wavs(DEFAULT_KIT_DIR):
        return DEFAULT_KIT_DIR
    kit = _cache_root() / "kit"
    if not build:
        checkout = (DEFAULT_KIT_DIR.parent / "pyproject.toml").is_file()
        return DEFAULT_KIT_DIR if checkout else kit
    if _is_complete(kit):
        return kit
    kit.parent.mkdir(parents=True, exist_ok=True)
    tmp = kit.with_name(f".kit.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_kit(tmp)
    if kit.exists() and not _is_complete(kit):
        shutil.rmtree(kit, ignore_errors=True)  # leftovers of an interrupted older layout
    try:
        tmp.rename(kit)
    except OSError:  # another process finished first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return kit


# --------------------------------------------------------------------------------------------
# Measuring


def spectral_centroid(x: np.ndarray, sr: int) -> float:
    """Power-weighted mean frequency (Hz) of the whole one-shot: where its energy sits.

    Power rather than magnitude weighting, so a quiet broadband floor (a click, dither,
    quantisation) does not drag a kick's centroid up into the kHz.
    """
    power = np.abs(np.fft.rfft(x)) ** 2
    total = float(power.sum())
    if total == 0:
        return 0.0
    return float((np.fft.rfftfreq(len(x), 1 / sr) * power).sum() / total)


def decay_time(x: np.ndarray, sr: int, drop_db: float = DECAY_DB, frame: int = 256,
               hop: int = 64) -> float:
    """Seconds from the RMS envelope's peak until it first falls `drop_db` below that peak.

    RMS over `frame`-sample windows every `hop` samples; a sound that never falls that far
    counts until its end.
    """
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    energy = np.concatenate(([0.0], np.cumsum(x * x)))
    starts = np.arange(0, len(x) - frame + 1, hop)
    rms = np.sqrt((energy[starts + frame] - energy[starts]) / frame)
    top = int(np.argmax(rms))
    below = np.flatnonzero(rms[top:] < rms[top] * 10 ** (-drop_db / 20))
    frames = int(below[0]) if len(below) else len(rms) - 1 - top
    return frames * hop / sr


def measure_one_shot(x: np.ndarray, sr: int) -> dict[str, float]:
    """Centroid (Hz), decay (s, to -DECAY_DB), duration (s) and peak (dBFS) of one sound."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return {
        "centroid_hz": spectral_centroid(x, sr),
        "decay_s": decay_time(x, sr),
        "duration_s": len(x) / sr,
        "peak_dbfs": 20 * np.log10(peak) if peak > 0 else -np.inf,
    }


def kit_report(kit_dir: Path) -> dict[str, dict[str, float]]:
    """Per category folder of `kit_dir`: count, centroid mean/min/max (Hz), mean decay time (s,
    RMS envelope falling DECAY_DB = 40 dB below its peak), mean duration (s).

    Works on any folder of category subfolders (stereo files are mixed to mono). Kit
    categories come first, in kit order; other folders follow alphabetically.
    """
    kit_dir = Path(kit_dir)
    folders = [p for p in kit_dir.iterdir() if p.is_dir() and any(p.glob("*.wav"))]
    order = list(KIT_LAYOUT)
    folders.sort(key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))
    report: dict[str, dict[str, float]] = {}
    for folder in folders:
        stats = []
        for path in sorted(folder.glob("*.wav")):
            data, sr = sf.read(str(path), dtype="float64", always_2d=True)
            stats.append(measure_one_shot(data.mean(axis=1), sr))
        centroids = [s["centroid_hz"] for s in stats]
        report[folder.name] = {
            "count": len(stats),
            "centroid_mean_hz": float(np.mean(centroids)),
            "centroid_min_hz": float(np.min(centroids)),
            "centroid_max_hz": float(np.max(centroids)),
            "decay_mean_s": float(np.mean([s["decay_s"] for s in stats])),
            "duration_mean_s": float(np.mean([s["duration_s"] for s in stats])),
        }
    return report


def format_kit_report(report: dict[str, dict[str, float]]) -> str:
    """The report as a Markdown table, for the CLI and docs."""
    lines = [
        "| category | count | centroid mean (Hz) | centroid min | centroid max "
        f"| decay −{DECAY_DB:g} dB mean (s) | duration mean (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report.items():
        lines.append(
            f"| {name} | {r['count']:.0f} | {r['centroid_mean_hz']:.0f} | "
            f"{r['centroid_min_hz']:.0f} | {r['centroid_max_hz']:.0f} | "
            f"{r['decay_mean_s']:.3f} | {r['duration_mean_s']:.3f} |"
        )
    total = sum(r["count"] for r in report.values())
    lines.append(f"| **all** | {total:.0f} | | | | | |")
    return "\n".join(lines)
