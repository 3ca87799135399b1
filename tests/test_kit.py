"""The synthesised default kit: complete, reproducible, and measurably drum-machine-like."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepdrummer_live import kit


def _tree(root: Path) -> dict[str, bytes]:
    """Every file below `root` (wavs, README, licence) by relative path → bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """One fresh seed-0 build shared by the tests below (a build takes about a second)."""
    out = tmp_path_factory.mktemp("kit")
    return out, kit.build_kit(out, seed=0)


@pytest.fixture(scope="module")
def audio(built: tuple[Path, list[Path]]) -> dict[str, tuple[np.ndarray, int]]:
    root, paths = built
    result = {}
    for path in paths:
        data, sr = sf.read(str(path), dtype="int16")
        result[path.relative_to(root).as_posix()] = (data, sr)
    return result


@pytest.fixture(scope="module")
def report(built: tuple[Path, list[Path]]) -> dict[str, dict[str, float]]:
    return kit.kit_report(built[0])


def test_layout_counts_and_formats(built: tuple[Path, list[Path]]) -> None:
    root, paths = built
    assert len(paths) == kit.KIT_SIZE >= 200
    assert len({p.name for p in paths}) == len(paths)
    expected = {
        "kick": 30, "snare": 25, "clap": 15, "hat_closed": 20, "hat_open": 15, "tom": 15,
        "rim": 10, "cowbell": 10, "shaker": 10, "perc": 20, "cymbal": 10, "zap": 10,
        "noise": 5, "harsh": 8,
    }
    for category, count in expected.items():
        files = sorted((root / category).glob("*.wav"))
        assert len(files) == count, category
        assert all(f.name.startswith(f"{category}_") for f in files)
    assert sorted(p.parent.name for p in paths) == sorted(
        c for c, n in expected.items() for _ in range(n))
    info = sf.info(str(paths[0]))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (
        44100, 1, "PCM_16", "WAV")
    licence = (root / "LICENSE.txt").read_text()
    assert "CC0 1.0" in licence and kit.CC0_URL in licence
    assert "deepdrummer-live samples build" in (root / "README.md").read_text()


def test_all_sounds_are_distinct(audio: dict[str, tuple[np.ndarray, int]]) -> None:
    digests = {data.tobytes() for data, _ in audio.values()}
    assert len(digests) == len(audio)


def test_same_seed_rebuilds_byte_identical_and_clears_stale(
        built: tuple[Path, list[Path]], tmp_path: Path) -> None:
    (tmp_path / "kick").mkdir()
    (tmp_path / "kick" / "kick_99_stale.wav").write_bytes(b"stale")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.wav").write_bytes(b"not ours")
    kit.build_kit(tmp_path, seed=0)
    assert not (tmp_path / "kick" / "kick_99_stale.wav").exists()
    assert (tmp_path / "mine" / "keep.wav").read_bytes() == b"not ours"
    shutil.rmtree(tmp_path / "mine")
    assert _tree(tmp_path) == _tree(built[0])


def test_other_seed_gives_other_sounds(built: tuple[Path, list[Path]], tmp_path: Path) -> None:
    paths = kit.build_kit(tmp_path, seed=1)
    assert len(paths) == kit.KIT_SIZE
    original = _tree(built[0])
    other = _tree(tmp_path)
    ours = [k for k in original if k.endswith(".wav")]
    theirs = [k for k in other if k.endswith(".wav")]
    slot = re.compile(r"^(\w+/\w+_\d\d)_")  # category/category_NN; the label may differ (tom_low)
    assert [slot.match(k)[1] for k in theirs] == [slot.match(k)[1] for k in ours]
    assert all(other[b] != original[a] for a, b in zip(ours, theirs, strict=True))
    name, pcm = kit.synthesize("snare", 3, seed=1)
    assert (tmp_path / "snare" / f"{name}.wav").is_file()
    assert np.array_equal(sf.read(str(tmp_path / "snare" / f"{name}.wav"), dtype="int16")[0], pcm)


def test_committed_samples_equal_a_fresh_build(built: tuple[Path, list[Path]]) -> None:
    committed = kit.DEFAULT_KIT_DIR
    assert committed.is_dir(), "samples/ missing: run `deepdrummer-live samples build`"
    ours = {k: v for k, v in _tree(committed).items() if k.split("/")[0] in kit.KIT_LAYOUT
            or "/" not in k}
    fresh = _tree(built[0])
    assert sorted(ours) == sorted(fresh)
    stale = [k for k in fresh if ours[k] != fresh[k]]
    assert not stale, f"samples/ is out of date, rebuild it: {stale[:5]}"


def test_every_one_shot_is_clean(audio: dict[str, tuple[np.ndarray, int]]) -> None:
    for key, (data, sr) in audio.items():
        assert 0 < len(data) <= 2 * sr, key
        level = np.abs(data.astype(np.float64))
        peak = level.max()
        assert abs(20 * np.log10(peak / 32768) - kit.PEAK_DBFS) < 0.1, key
        onset = int(np.argmax(level >= peak * 10 ** (-40 / 20)))
        assert onset <= sr // 1000, f"{key} starts with {onset} samples of silence"
        first_10ms = 20 * np.log10(level[: sr // 100].max() / peak)
        assert first_10ms > -12, f"{key} is only {first_10ms:.1f} dB in its first 10 ms"
        assert data[-1] == 0 and level[-sr // 1000:].max() < peak * 0.05, f"{key} not faded"


def test_report_sounds_like_a_drum_machine(report: dict[str, dict[str, float]]) -> None:
    assert list(report) == list(kit.KIT_LAYOUT)
    centroid = {name: r["centroid_mean_hz"] for name, r in report.items()}
    assert centroid["kick"] < 200 < centroid["tom"] < centroid["snare"]
    assert centroid["snare"] < 7000 < min(centroid["hat_closed"], centroid["hat_open"],
                                          centroid["cymbal"], centroid["shaker"])
    assert report["kick"]["centroid_max_hz"] < report["hat_closed"]["centroid_min_hz"]
    assert 1000 < centroid["clap"] < 3000
    decay = {name: r["decay_mean_s"] for name, r in report.items()}
    assert 0.03 <= decay["hat_closed"] <= 0.08
    assert 0.25 <= decay["hat_open"] <= 0.6
    assert decay["hat_closed"] < decay["hat_open"] < decay["cymbal"]
    assert decay["rim"] < decay["snare"] < decay["cymbal"]
    for r in report.values():
        assert r["centroid_min_hz"] <= r["centroid_mean_hz"] <= r["centroid_max_hz"]
        assert 0 < r["decay_mean_s"] <= r["duration_mean_s"] <= kit.MAX_SECONDS
    table = kit.format_kit_report(report)
    assert "| kick | 30 |" in table and f"| **all** | {kit.KIT_SIZE} |" in table


def test_measures_on_known_signals() -> None:
    sr = 44100
    t = np.arange(sr) / sr
    assert kit.spectral_centroid(np.sin(2 * np.pi * 1000 * t), sr) == pytest.approx(1000, rel=1e-3)
    decaying = np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.1)  # falls 40 dB in 0.1·ln(100) s
    assert kit.decay_time(decaying, sr) == pytest.approx(0.1 * np.log(100), abs=0.01)


def test_finish_trims_fades_and_normalises() -> None:
    sr = 44100
    t = np.arange(3 * sr) / sr
    raw = np.concatenate([np.zeros(500), np.sin(2 * np.pi * 200 * t) * np.exp(-t / 2.0)])
    out = kit.finish(raw, sr)
    assert out.dtype == np.int16 and len(out) == 2 * sr  # capped
    assert abs(int(out[1])) > 1000  # leading zeros gone: starts on the wave
    assert out[-1] == 0
    assert np.abs(out).max() == round(10 ** (kit.PEAK_DBFS / 20) * 32767)


def test_default_kit_dir_prefers_committed_samples() -> None:
    assert kit.default_kit_dir() == kit.DEFAULT_KIT_DIR
    assert kit.default_kit_dir(build=False) == kit.DEFAULT_KIT_DIR


def test_default_kit_dir_without_build_only_says_where(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPDRUMMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kit, "DEFAULT_KIT_DIR", tmp_path / "site-packages" / "samples")
    assert kit.default_kit_dir(build=False) == tmp_path / "cache" / "kit"  # installed package
    (tmp_path / "checkout").mkdir()
    (tmp_path / "checkout" / "pyproject.toml").write_text("")
    monkeypatch.setattr(kit, "DEFAULT_KIT_DIR", tmp_path / "checkout" / "samples")
    assert kit.default_kit_dir(build=False) == tmp_path / "checkout" / "samples"  # pre-build
    assert list(tmp_path.rglob("*.wav")) == []


def test_default_kit_dir_builds_into_cache_once(
        built: tuple[Path, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def fake_build(out_dir: Path, seed: int = 0, sample_rate: int = 44100) -> list[Path]:
        calls.append(out_dir)  # copy the module's build instead of spending another second
        shutil.copytree(built[0], out_dir, dirs_exist_ok=True)
        return sorted(Path(out_dir).rglob("*.wav"))

    monkeypatch.setattr(kit, "DEFAULT_KIT_DIR", tmp_path / "not-installed")
    monkeypatch.setenv("DEEPDRUMMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kit, "build_kit", fake_build)
    first = kit.default_kit_dir()
    assert first == tmp_path / "cache" / "kit"
    assert len(list(first.glob("*/*.wav"))) == kit.KIT_SIZE
    assert kit.default_kit_dir() == first
    assert len(calls) == 1
    assert not list((tmp_path / "cache").glob(".kit.tmp-*"))
