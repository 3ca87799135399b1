"""Proxy raters: each taste hears what it claims to, answers are seeded and ~10 % flipped,
like rates on random loops are in range, and bad raters are named in the error."""

import numpy as np
import pytest
import torch

from deepdrummer_live import raters
from deepdrummer_live.kit import default_kit_dir
from deepdrummer_live.library import load_library
from deepdrummer_live.loop import random_batch
from deepdrummer_live.render import Renderer

SR = 22050
BAR = 2.0  # 120 bpm
STEP = BAR / 16


def synth(hits: dict[int, str], sr: int = SR) -> np.ndarray:
    """4 bars + 1 s of tail with a `kind` of hit ('low', 'snare', 'hat') on the given steps."""
    n = int((4 * BAR + 1) * sr)
    out = np.zeros(n, dtype=np.float32)
    rng = np.random.default_rng(0)
    t = np.arange(int(0.25 * sr)) / sr
    shapes = {"low": np.sin(2 * np.pi * 55 * t) * np.exp(-t * 12),
              "snare": rng.standard_normal(t.size) * np.exp(-t * 25)
              * np.sin(2 * np.pi * 1800 * t) + np.sin(2 * np.pi * 400 * t) * np.exp(-t * 30),
              "hat": np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t * 60)}
    for bar in range(4):
        for step, kind in hits.items():
            start = int((bar * BAR + step * STEP) * sr)
            piece = shapes[kind][:n - start]
            out[start:start + piece.size] += piece.astype(np.float32)
    return out / np.abs(out).max()


def score(name: str, audio: np.ndarray) -> float:
    return raters.TASTES[name].score(raters.analyse(audio, SR))


def test_each_taste_hears_its_feature():
    four = synth({s: "low" for s in (0, 4, 8, 12)})
    offbeat = synth({s: "low" for s in (2, 6, 10, 14)})
    assert score("kick_on_beats", four) > score("kick_on_beats", offbeat) + 1
    backbeat = synth({0: "low", 4: "snare", 8: "low", 12: "snare"})
    onbeat = synth({0: "snare", 4: "low", 8: "snare", 12: "low"})
    assert score("backbeat", backbeat) > score("backbeat", onbeat) + 0.5
    sparse = synth({0: "low", 8: "snare"})
    busy = synth({s: ("hat" if s % 2 else "snare") for s in range(16)})
    assert score("sparse", sparse) > score("sparse", busy) + 0.3
    assert score("no_harsh_highs", four) > score("no_harsh_highs", busy) + 1
    eighths = synth({s: "hat" for s in range(0, 16, 2)})
    sixteenths = synth({s: "hat" for s in range(16)})
    assert score("eighth_hats", eighths) > score("eighth_hats", sixteenths) + 0.5
    assert score("deep", four) > score("deep", eighths) + 1


def test_answers_are_seeded_and_about_ten_percent_flipped():
    audio = synth({s: "low" for s in (0, 4, 8, 12)})
    a, b = raters.BUILTINS["kick_on_beats"](3), raters.BUILTINS["kick_on_beats"](3)
    answers = [a(audio, SR) for _ in range(150)]
    assert answers == [b(audio, SR) for _ in range(150)]
    assert all(type(x) is bool for x in answers)
    assert max(answers) is True  # it does like a four-on-the-floor kick …
    assert 0.03 < 1 - np.mean(answers) < 0.2  # … and flips about one answer in ten


def test_mixed_covers_every_taste_evenly():
    names = [raters.mixed(seed).taste.name for seed in range(12)]
    assert sorted(set(names)) == sorted(raters.TASTES)
    assert all(names.count(n) == 2 for n in raters.TASTES)


@pytest.fixture(scope="module")
def kit_scores():
    bank = load_library(default_kit_dir())
    audio = Renderer(bank).listening(random_batch(96, len(bank),
                                                  torch.Generator().manual_seed(11)))
    bands = [raters.analyse(a, bank.sample_rate) for a in audio.numpy()]
    return {name: np.array([t.score(b) for b in bands]) for name, t in raters.TASTES.items()}


def test_like_rate_on_random_loops_is_in_range(kit_scores):
    for name, taste in raters.TASTES.items():
        middle = (taste.lenient + taste.strict) / 2
        rate = 0.8 * np.mean(kit_scores[name] > middle) + 0.1  # with 10 % flips
        assert 0.15 <= rate <= 0.45, (name, rate)


def test_load_rater_builtin_and_plugin(tmp_path, monkeypatch):
    spec, factory = raters.load_rater("builtin:sparse")
    assert spec == "builtin:sparse" and callable(factory(0))
    (tmp_path / "my_taste.py").write_text(
        "def loud(seed):\n"
        "    return lambda audio, sr: bool(abs(audio).mean() > 0.01 + seed * 0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _, factory = raters.load_rater("my_taste:loud")
    rater = raters.make_rater("my_taste:loud", factory, 1)
    assert raters.ask("my_taste:loud", rater, np.ones(100, np.float32), SR) is True


@pytest.mark.parametrize("source", [
    "def taste(*, seed):\n    return lambda audio, sr: seed == 5\n",  # keyword only
    "def taste(s):\n    return lambda audio, sr: s == 5\n",  # another name
    "class taste:\n    def __init__(self, seed):\n        self.seed = seed\n"
    "    def __call__(self, audio, sr):\n        return self.seed == 5\n",
])
def test_factories_get_their_seed_however_they_name_it(tmp_path, monkeypatch, source):
    (tmp_path / "their_taste.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    _, factory = raters.load_rater("their_taste:taste")
    answers = [raters.ask("their_taste:taste", raters.make_rater("their_taste:taste", factory, s),
                          np.ones(100, np.float32), SR) for s in (4, 5)]
    assert answers == [False, True]


@pytest.mark.parametrize("spec, words", [
    ("builtin:nope", "no built-in rater"), ("justaname", "MODULE:FACTORY"),
    ("no_such_module_xyz:f", "cannot import"), ("json:no_such_factory", "no callable"),
])
def test_load_rater_errors_name_the_rater(spec, words):
    with pytest.raises(raters.RaterError, match=words) as info:
        raters.load_rater(spec)
    assert spec in str(info.value)


def test_misbehaving_raters_are_named():
    audio = np.zeros(1000, np.float32)

    def broken(audio, sr):
        raise ZeroDivisionError("oops")

    with pytest.raises(raters.RaterError, match="mine:broken.*ZeroDivisionError"):
        raters.ask("mine:broken", broken, audio, SR)
    with pytest.raises(raters.RaterError, match="mine:yes.*'yes'"):
        raters.ask("mine:yes", lambda a, sr: "yes", audio, SR)
    assert raters.ask("mine:np", lambda a, sr: np.bool_(False), audio, SR) is False
    with pytest.raises(raters.RaterError, match="mine:factory.*seed 4"):
        raters.make_rater("mine:factory", lambda seed: 1 / 0, 4)
    with pytest.raises(raters.RaterError, match="not a callable"):
        raters.make_rater("mine:factory", lambda seed: 42, 4)
