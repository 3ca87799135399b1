"""Roles from audio, GM notes per track, and names as ground truth.

The accuracy floors are what the frozen thresholds measure today (docs/benchmarks.md, "Role
classifier"), rounded down a little: they catch a change that makes the classifier worse.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepdrummer_live import roles
from deepdrummer_live.library import SampleBank
from deepdrummer_live.roles import (
    GM_NOTES,
    ROLES,
    THRESHOLDS,
    Features,
    accuracy,
    classify_bank,
    fit_thresholds,
    track_notes,
    truth_from_kit,
    truth_from_name,
)


@pytest.mark.parametrize("name,role", [
    ("808/clean/kick01rr1.wav", "kick"), ("dfam/BD 001.wav", "kick"),
    ("beatboxes/SR-88_Kick_BassWah01.wav", "kick"), ("drumhits/Snare04.wav", "snare"),
    ("vermona/Vermona_Clap_05.wav", "clap"), ("808/hot/rimshot.wav", "rim"),
    ("drumhits/Closedhat05.wav", "hat_closed"), ("808/warm/hhclosed.wav", "hat_closed"),
    ("dfam/CH 002.wav", "hat_closed"), ("beatboxes/DR110_OpenHat_RingMod01.wav", "hat_open"),
    ("808/hot/hhopen.wav", "hat_open"), ("808/clean/tomlo.wav", "tom"),
    ("beatboxes/SR-88_Cymbal_Clean.wav", "cymbal"), ("808/hot/cowbell.wav", "perc"),
    ("808/warm/congamid.wav", "perc"), ("dfam/Wood 003.wav", "perc"),
    ("drumhits/Zapp01.wav", "other"),
    ("vermona/Vermona_HiHat_02.wav", None), ("vermona/Vermona_Misc_09.wav", None),
    ("dfam/Bass Hit 000.wav", None), ("C:\\kits\\808\\Kick 3.WAV", "kick"),
])
def test_truth_from_name(name, role):
    assert truth_from_name(name) == role


def test_truth_from_kit_folders():
    assert truth_from_kit("kick/kick_03_808.wav") == "kick"
    assert truth_from_kit("cowbell/cowbell_00_808.wav") == "perc"
    assert truth_from_kit("zap/zap_00_sine.wav") == "other"
    assert truth_from_kit("elsewhere/x.wav") is None


def test_track_notes_follow_general_midi():
    assert track_notes(["kick", "snare", "hat_closed", "hat_open"]) == [36, 38, 42, 46]
    assert track_notes(["clap", "rim", "cymbal", "perc"]) == [39, 37, 49, 56]
    assert track_notes(["kick", "kick", "other", "hat_closed"]) == [36, 36, 54, 42]
    assert set(GM_NOTES) == set(ROLES)


def test_several_toms_get_distinct_notes_low_to_high():
    assert track_notes(["tom", "kick", "tom", "tom"]) == [45, 36, 48, 50]
    assert track_notes(["tom", "tom", "tom", "tom"], pitches=[300, 80, 120, 200]) == [
        50, 43, 45, 48]
    assert track_notes(["tom", "snare"], pitches=[95, 200]) == [45, 38]  # by pitch: low tom
    assert track_notes(["tom", "snare"], pitches=[300, 200]) == [50, 38]


def test_unknown_role_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown role"):
        track_notes(["kick", "cowbell"])


def test_features_are_finite_and_classify_handles_odd_input():
    rng = np.random.default_rng(0)
    audio = np.zeros((3, 4410), dtype=np.float32)
    audio[1] = rng.standard_normal(4410)  # white noise
    audio[2, :10] = 1.0  # a click
    f = roles.features(audio, None, 44100)
    for name in roles.FEATURES:
        assert np.all(np.isfinite(getattr(f, name))), name
    assert len(roles.classify(audio, None, 44100)) == 3
    assert roles.classify(np.zeros((0, 100), dtype=np.float32), None, 44100) == []


def test_our_kit(kit_bank):
    scores = accuracy(classify_bank(kit_bank), [truth_from_kit(n) for n in kit_bank.names])
    for role in ("kick", "snare", "clap", "hat_closed", "hat_open", "tom", "cymbal", "rim"):
        correct, total = scores[role]
        assert correct >= 0.9 * total, (role, scores[role])
    correct, total = scores["all"]
    assert total == len(kit_bank) and correct >= 0.82 * total, scores


def test_the_paper_library(paper_bank):
    """Never fitted on: the honest test set. Measured 187 / 278 (67 %) when frozen."""
    truth = [truth_from_name(n) for n in paper_bank.names]
    scores = accuracy(classify_bank(paper_bank), truth)
    correct, total = scores["all"]
    assert total >= 270 and correct >= 0.62 * total, scores
    assert scores["kick"][0] >= 0.72 * scores["kick"][1], scores
    assert scores["snare"][0] >= 0.6 * scores["snare"][1], scores
    assert scores["hat_closed"][0] >= 0.75 * scores["hat_closed"][1], scores


def test_roles_do_not_depend_on_the_sample_rate(kit_bank):
    part = SampleBank(kit_bank.names[::5], kit_bank.audio[::5], kit_bank.lengths[::5],
                      kit_bank.sample_rate)
    at_44k = classify_bank(part)
    at_22k = classify_bank(part.resampled(22050))
    same = sum(a == b for a, b in zip(at_44k, at_22k, strict=True))
    assert same >= 0.95 * len(at_44k)


def test_fit_puts_a_threshold_in_the_middle_of_the_gap():
    """Kicks at 45-55 Hz, toms at 90-110 Hz, everything else equal: kick_pitch goes to the
    geometric middle of 55 and 90 whatever it starts from."""
    n = 10
    pitch = np.concatenate([np.linspace(45, 55, n), np.linspace(90, 110, n)])
    base = {name: np.zeros(2 * n) for name in roles.FEATURES}
    base.update(body=np.full(2 * n, 0.99), low=np.full(2 * n, 0.9), pitch=pitch,
                sweep=np.full(2 * n, 0.5), tonality=np.full(2 * n, 100.0),
                bursts=np.ones(2 * n), decay=np.full(2 * n, 0.3))
    truth = ["kick"] * n + ["tom"] * n
    for start in (40.0, 75.0, 200.0):
        fitted = fit_thresholds(Features(**base), truth, {**THRESHOLDS, "kick_pitch": start},
                                sweeps=1)
        assert 55 < fitted["kick_pitch"] < 90
        assert fitted["kick_pitch"] == pytest.approx(np.sqrt(55 * 90), rel=0.08)
