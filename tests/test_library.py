"""Sample library: every real file loads, every broken one is skipped by name, the cache holds."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from deepdrummer_live import library
from deepdrummer_live.library import SampleBank, SampleError, load_library

from .conftest import PAPER_COUNT

RATE = 44100


def _hit(rate: int = RATE, seconds: float = 0.3, freq: float = 180.0) -> np.ndarray:
    """A decaying sine: a drum-like one-shot whose exact shape the tests can predict."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.8 * np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.05)).astype(np.float32)


def _check_rows(bank: SampleBank, max_seconds: float = library.DEFAULT_MAX_SECONDS) -> None:
    """What every decoded bank promises: mono float32, peak 1, trimmed, capped, zero-padded."""
    assert bank.audio.dtype == torch.float32 and bank.audio.dim() == 2
    assert bank.audio.shape[0] == len(bank.names) == len(bank.lengths)
    cap = int(max_seconds * bank.sample_rate)
    for row, n in zip(bank.audio, bank.lengths.tolist(), strict=True):
        assert 0 < n <= cap
        assert float(row[:n].abs().max()) == pytest.approx(1.0, abs=1e-6)
        assert float(row[0].abs()) > library.SILENCE  # leading silence trimmed
        assert not row[n:].any()  # padding is silence


# --- the paper's library -----------------------------------------------------------------------


def test_paper_library_loads_all_files(paper_library: Path, paper_bank: SampleBank) -> None:
    wavs = sorted(p.relative_to(paper_library).as_posix() for p in paper_library.rglob("*.wav"))
    assert len(wavs) == PAPER_COUNT
    formats = Counter((sf.info(str(paper_library / w)).channels,
                       sf.info(str(paper_library / w)).subtype) for w in wavs)
    assert {subtype for _, subtype in formats} >= {"PCM_16", "PCM_24", "FLOAT"}
    assert {channels for channels, _ in formats} == {1, 2}  # the mix the issue names
    assert len(paper_bank) + len(paper_bank.skipped) == PAPER_COUNT
    assert paper_bank.skipped == [], paper_bank.skipped
    assert paper_bank.names == wavs  # sorted relative paths: stable order on every machine
    assert paper_bank.sample_rate == RATE
    assert paper_bank.path(wavs[0]) == paper_library.resolve() / wavs[0]
    _check_rows(paper_bank)


def test_stereo_is_mixed_to_mono(paper_library: Path, paper_bank: SampleBank) -> None:
    name = next(n for n in paper_bank.names
                if sf.info(str(paper_library / n)).channels == 2
                and sf.info(str(paper_library / n)).subtype == "FLOAT")
    data, rate = sf.read(str(paper_library / name), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    mono = mono / np.abs(mono).max()
    start = int(np.argmax(np.abs(mono) > library.SILENCE))
    row = paper_bank.index(name)
    n = int(paper_bank.lengths[row])
    expected = mono[start:start + n]
    if len(mono) - start > n:  # capped: the last few milliseconds fade out
        expected = expected[:n - int(library.FADE_SECONDS * rate)]
    np.testing.assert_allclose(paper_bank.audio[row, :len(expected)].numpy(), expected,
                               atol=1e-6)


# --- formats and rates ------------------------------------------------------------------------


def _write_formats(folder: Path) -> np.ndarray:
    hit = _hit()
    sub = folder / "nested" / "deeper"
    sub.mkdir(parents=True)
    sf.write(folder / "int16.wav", hit, RATE, subtype="PCM_16")
    sf.write(folder / "int24.WAV", hit * 0.25, RATE, subtype="PCM_24")  # upper-case suffix
    sf.write(folder / "float.wav", hit * 3.0, RATE, subtype="FLOAT")  # beyond full scale
    sf.write(sub / "stereo.wav", np.stack([hit, hit * 0.5], axis=1), RATE, subtype="PCM_24")
    sf.write(folder / "one.aiff", hit, RATE, subtype="PCM_16")
    sf.write(folder / "one.flac", hit, RATE, subtype="PCM_24")
    sf.write(folder / "one.ogg", hit, RATE, subtype="VORBIS")
    sf.write(folder / "rate8k.wav", _hit(8000), 8000, subtype="PCM_16")
    sf.write(folder / "rate96k.wav", _hit(96000), 96000, subtype="FLOAT")
    silence = np.zeros(int(0.1 * RATE), dtype=np.float32)
    sf.write(folder / "late.wav", np.concatenate([silence, hit]), RATE, subtype="FLOAT")
    (folder / "notes.txt").write_text("not audio, and not named like audio: ignored")
    return hit / np.abs(hit).max()


def test_formats_rates_and_channels(tmp_path: Path) -> None:
    expected = _write_formats(tmp_path)
    bank = load_library(tmp_path, use_cache=False)
    assert bank.skipped == []
    assert sorted(bank.names) == bank.names == [
        "float.wav", "int16.wav", "int24.WAV", "late.wav", "nested/deeper/stereo.wav",
        "one.aiff", "one.flac", "one.ogg", "rate8k.wav", "rate96k.wav"]
    _check_rows(bank)
    start = int(np.argmax(np.abs(expected) > library.SILENCE))
    lossless = {"float.wav": 1e-6, "late.wav": 1e-6, "nested/deeper/stereo.wav": 1e-6,
                "int24.WAV": 1e-5, "one.flac": 1e-5, "int16.wav": 1e-4, "one.aiff": 1e-4}
    for name, atol in lossless.items():
        row = bank.index(name)
        got = bank.audio[row, :int(bank.lengths[row])].numpy()
        np.testing.assert_allclose(got, expected[start:], atol=atol, err_msg=name)
    for name in ("rate8k.wav", "rate96k.wav", "one.ogg"):  # resampled or lossy: same length
        assert abs(int(bank.lengths[bank.index(name)]) - (len(expected) - start)) < 0.005 * RATE


def test_other_engine_rate(tmp_path: Path) -> None:
    _write_formats(tmp_path)
    bank = load_library(tmp_path, sample_rate=16000, max_seconds=0.2, use_cache=False)
    assert bank.sample_rate == 16000 and bank.skipped == []
    _check_rows(bank, max_seconds=0.2)
    assert int(bank.lengths.max()) == int(0.2 * 16000)


# --- broken files -----------------------------------------------------------------------------


def _write_broken(folder: Path) -> None:
    sf.write(folder / "good.wav", _hit(), RATE, subtype="PCM_16")
    whole = (folder / "good.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[:len(whole) // 2])  # header promises more
    (folder / "header_only.wav").write_bytes(whole[:30])
    (folder / "zero.wav").write_bytes(b"")
    (folder / "text.wav").write_text("this is a text file named like a WAV\n")
    (folder / "random.flac").write_bytes(np.random.default_rng(0).bytes(5000))
    sf.write(folder / "silent.wav", np.zeros(RATE // 10, dtype=np.float32), RATE)
    sf.write(folder / "nan.wav", np.full(100, np.nan, dtype=np.float32), RATE, subtype="FLOAT")
    (folder / "folder.wav").mkdir()  # a folder named like audio is no file: not listed


def test_broken_files_are_skipped_by_name(tmp_path: Path) -> None:
    _write_broken(tmp_path)
    bank = load_library(tmp_path, use_cache=False)
    reasons = {item["path"]: item["reason"] for item in bank.skipped}
    assert set(reasons) == {"header_only.wav", "zero.wav", "text.wav", "random.flac",
                            "silent.wav", "nan.wav"}
    assert reasons["zero.wav"] == "empty file (0 bytes)"
    assert reasons["silent.wav"] == "silent"
    assert "NaN" in reasons["nan.wav"]
    assert reasons["text.wav"].startswith("not a readable audio file (")
    assert str(tmp_path) not in reasons["text.wav"]  # the report names the file once
    # A truncated WAV keeps what it has: a usable, shorter one-shot.
    assert bank.names == ["good.wav", "truncated.wav"]
    good, cut = bank.lengths.tolist()
    assert 0 < cut < good
    np.testing.assert_allclose(bank.audio[1, :cut], bank.audio[0, :cut], atol=1e-4)
    _check_rows(bank)


def test_ten_minute_file_is_capped(tmp_path: Path) -> None:
    """A 10-minute recording in a one-shot folder: decoded as its first 2 s, faded at the cut,
    without decoding the other 9 minutes 58 (the time is printed, not asserted)."""
    t = np.arange(10 * 60 * RATE, dtype=np.float32) / RATE
    drone = (0.5 * np.sin(2 * np.pi * 110.0 * t)).astype(np.float32)
    drone[:RATE // 2] = 0.0  # half a second of leading silence
    sf.write(tmp_path / "ten_minutes.wav", drone, RATE, subtype="PCM_16")
    sf.write(tmp_path / "hit.wav", _hit(), RATE, subtype="PCM_16")
    begin = time.perf_counter()
    bank = load_library(tmp_path, use_cache=False)
    print(f"10-minute file loaded in {time.perf_counter() - begin:.2f} s")
    row = bank.index("ten_minutes.wav")
    assert int(bank.lengths[row]) == int(library.DEFAULT_MAX_SECONDS * RATE)
    assert bank.audio.shape[1] == int(library.DEFAULT_MAX_SECONDS * RATE)
    audio = bank.audio[row].numpy()
    assert abs(audio[0]) < 0.05  # starts where the sound starts (a sine's zero crossing)
    assert audio[-1] == 0.0 and np.abs(audio[-int(0.05 * RATE):]).max() > 0.5  # faded at the cut


def test_sound_after_long_silence_is_reported(tmp_path: Path) -> None:
    quiet = np.zeros(int((library.DEFAULT_MAX_SECONDS + library.MAX_LEADING_SECONDS + 1) * RATE),
                     dtype=np.float32)
    sf.write(tmp_path / "late.wav", np.concatenate([quiet, _hit()]), RATE, subtype="PCM_16")
    sf.write(tmp_path / "hit.wav", _hit(), RATE, subtype="PCM_16")
    bank = load_library(tmp_path, use_cache=False)
    assert bank.names == ["hit.wav"]
    assert bank.skipped == [{"path": "late.wav", "reason": "silent for its first 7 s"}]


def test_unusable_folders_raise(tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="not found"):
        load_library(tmp_path / "missing")
    with pytest.raises(SampleError, match="no audio files"):
        load_library(tmp_path)
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(SampleError, match="no usable audio files") as info:
        load_library(tmp_path)
    assert info.value.skipped == [{"path": "zero.wav", "reason": "empty file (0 bytes)"}]


# --- the cache --------------------------------------------------------------------------------


def test_cache_hit_and_invalidation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, cache = tmp_path / "kit", tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("DEEPDRUMMER_CACHE", str(cache))
    sf.write(folder / "a.wav", _hit(freq=100.0), RATE, subtype="PCM_16")
    sf.write(folder / "b.wav", _hit(seconds=0.1, freq=900.0), RATE, subtype="PCM_16")
    (folder / "broken.wav").write_text("nope")
    first = load_library(folder)
    assert len(list((cache / "banks").glob("*.npz"))) == 1

    def no_decoding(*args: object) -> np.ndarray:
        raise AssertionError("decoded a file although the cache was valid")

    with monkeypatch.context() as patch:
        patch.setattr(library, "decode_one_shot", no_decoding)
        second = load_library(folder)  # from the cache: not one file decoded
    assert second.names == first.names and second.skipped == first.skipped
    assert torch.equal(second.audio, first.audio) and torch.equal(second.lengths, first.lengths)
    assert second.root == first.root and second.sample_rate == first.sample_rate

    sf.write(folder / "b.wav", _hit(seconds=0.2, freq=300.0), RATE, subtype="PCM_16")
    changed = load_library(folder)  # one file's content changed: the cache is not used
    assert int(changed.lengths[1]) != int(first.lengths[1])
    assert torch.equal(changed.audio[0], first.audio[0])
    assert len(list((cache / "banks").glob("*.npz"))) == 2

    sf.write(folder / "c.wav", _hit(), RATE, subtype="PCM_16")
    assert load_library(folder).names == ["a.wav", "b.wav", "c.wav"]  # a new file: reloaded
    with pytest.raises(AssertionError, match="decoded"), monkeypatch.context() as patch:
        patch.setattr(library, "decode_one_shot", no_decoding)
        load_library(folder, sample_rate=22050)  # other decode settings: another key


def test_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, cache = tmp_path / "kit", tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("DEEPDRUMMER_CACHE", str(cache))
    sf.write(folder / "a.wav", _hit(), RATE, subtype="PCM_16")
    first = load_library(folder)
    (cached,) = (cache / "banks").glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:100])
    again = load_library(folder)
    assert torch.equal(again.audio, first.audio)
    assert load_library(folder).names == ["a.wav"]  # and the rebuilt cache reads back


# --- the bank ---------------------------------------------------------------------------------


def test_index_names_the_missing_sample(kit_bank: SampleBank) -> None:
    assert kit_bank.names[kit_bank.index(kit_bank.names[7])] == kit_bank.names[7]
    with pytest.raises(KeyError, match="no/such.wav"):
        kit_bank.index("no/such.wav")


def test_resampled_bank(kit_bank: SampleBank) -> None:
    low = kit_bank.resampled(16000)
    assert kit_bank.resampled(16000) is low  # resampled once per rate
    assert kit_bank.resampled(kit_bank.sample_rate) is kit_bank
    assert low.names == kit_bank.names and low.sample_rate == 16000
    ratio = low.lengths.double() / kit_bank.lengths.double()
    assert torch.allclose(ratio, torch.full_like(ratio, 16000 / 44100), atol=1e-3)
    padding = torch.arange(low.audio.shape[1]) >= low.lengths[:, None]
    assert not low.audio[padding].any()
    peaks = low.audio.abs().amax(dim=1)
    kicks = torch.tensor([name.startswith("kick/") for name in low.names])
    assert float(peaks[kicks].min()) > 0.9  # a kick's energy is far below 8 kHz: level kept
    assert float(peaks.max()) < 1.5 and float(peaks.min()) > 0.05  # hats lose their highs
