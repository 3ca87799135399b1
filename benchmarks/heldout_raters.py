"""Held-out proxy users: tastes the defaults were never tuned on, to check that the tuning
generalises (and an example of a plug-in rater for `deepdrummer-live experiment`).

    deepdrummer-live experiment --rater benchmarks.heldout_raters:mixed --users 8 --seed 0 \
        --jobs 2 --out results/heldout

Four tastes, measured differently from the built-in ones where they could be: syncopation (hits
on the off-beat eighths), a busy mid band, a dark sound (spectral centroid), and sixteenth-note
hats. Each user likes a loop when its score is above a threshold drawn between the 72nd and
80th percentile of the score on 200 random loops of our kit (so 20–28 % of random loops pass),
and flips 10 % of its answers, as the built-in users do.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from deepdrummer_live.raters import Bands, analyse

OFFBEAT_EIGHTHS = [2, 6, 10, 14]


def offbeat(audio: np.ndarray, rate: int) -> float:
    """Low and mid hits on the "and" of each beat, more than on the beats."""
    b = analyse(audio, rate)
    hits = b.low + b.mid
    beats = hits[[0, 4, 8, 12]].mean()
    return float(np.log1p(hits[OFFBEAT_EIGHTHS]).mean() - 0.5 * np.log1p(beats))


def busy_mid(audio: np.ndarray, rate: int) -> float:
    """Many snare/clap/tom-region hits."""
    b: Bands = analyse(audio, rate)
    return float(np.sum(b.mid > 0.2 * (b.mid.max() + 1e-9)) + 0.1 * np.log1p(b.mid.sum()))


def dark(audio: np.ndarray, rate: int) -> float:
    """A low spectral centroid of the whole loop."""
    spectrum = np.abs(np.fft.rfft(np.asarray(audio, np.float32))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1.0 / rate)
    return float(-np.log10((spectrum * freqs).sum() / (spectrum.sum() + 1e-12) + 1.0))


def sixteenth_hats(audio: np.ndarray, rate: int) -> float:
    """Bright hits on most of the sixteen steps."""
    b = analyse(audio, rate)
    return float(np.mean(b.high > 0.2 * (b.high.max() + 1e-9)))


TASTES = {"offbeat": offbeat, "busy_mid": busy_mid, "dark": dark,
          "sixteenth_hats": sixteenth_hats}


@cache
def _calibration(name: str) -> tuple[float, float]:
    """The 72nd and 80th percentile of the taste's score on 200 random loops of our kit."""
    import torch

    from deepdrummer_live.kit import default_kit_dir
    from deepdrummer_live.library import load_library
    from deepdrummer_live.loop import random_batch
    from deepdrummer_live.render import Renderer

    bank = load_library(default_kit_dir())
    batch = random_batch(200, len(bank), torch.Generator().manual_seed(12345))
    audio = Renderer(bank).listening(batch).numpy()
    scores = [TASTES[name](a, bank.sample_rate) for a in audio]
    return float(np.percentile(scores, 72)), float(np.percentile(scores, 80))


class HeldOutRater:
    def __init__(self, name: str, seed: int, flip: float = 0.1) -> None:
        lenient, strict = _calibration(name)
        rng = np.random.default_rng([seed, 31337])
        self.name, self.score = name, TASTES[name]
        self.threshold = lenient + (strict - lenient) * rng.random()
        self.flip = flip
        self._rng = np.random.default_rng([seed, 4242])

    def __call__(self, audio: np.ndarray, sample_rate: int) -> bool:
        liked = self.score(audio, sample_rate) > self.threshold
        return bool(liked != (self._rng.random() < self.flip))


def mixed(seed: int) -> HeldOutRater:
    """User `seed` gets held-out taste number `seed % 4`."""
    names = list(TASTES)
    return HeldOutRater(names[seed % len(names)], seed)
