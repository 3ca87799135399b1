"""The command-line contract of issue 2, run as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from deepdrummer_live.cli import main as cli_main
from deepdrummer_live.kit import DEFAULT_KIT_DIR, KIT_SIZE
from deepdrummer_live.render import LISTEN_BARS

from .conftest import PAPER_COUNT


def cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`deepdrummer-live ARGS` with this interpreter (the session's DEEPDRUMMER_CACHE too)."""
    env = os.environ | {"PYTHONWARNINGS": "ignore::DeprecationWarning"}
    return subprocess.run([sys.executable, "-m", "deepdrummer_live.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> subprocess.CompletedProcess:
    """The same command in this process (no interpreter start-up: torch loads once), for the
    many cases below; the subprocess tests above show the real entry point behaves alike."""
    try:
        code = cli_main([str(a) for a in args])
    except SystemExit as exc:  # argparse's way out
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback, no usage dump
    assert "error" in lines[0] and "Traceback" not in result.stderr
    return lines[0]


def test_samples_info_on_the_paper_library(paper_library: Path, paper_bank: object) -> None:
    result = cli("samples", "info", paper_library, "--json")  # decoded already: from the cache
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    assert info["count"] == PAPER_COUNT and info["skipped"] == []
    assert len(info["samples"]) == PAPER_COUNT and info["sample_rate"] == 44100


def test_samples_info_reports_skipped_files(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    t = np.arange(4410) / 44100
    sf.write(tmp_path / "hit.wav", np.sin(2 * np.pi * 200 * t) * np.exp(-t / 0.02), 44100)
    (tmp_path / "bad.wav").write_text("not audio")
    (tmp_path / "empty.aiff").write_bytes(b"")
    result = cli("samples", "info", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["count"] == 1 and info["samples"] == ["hit.wav"]
    assert {item["path"] for item in info["skipped"]} == {"bad.wav", "empty.aiff"}
    assert all(item["reason"] for item in info["skipped"])
    text = main(capsys, "samples", "info", tmp_path)  # the human form names them too
    assert "1 samples loaded" in text.stdout and "skipped bad.wav: " in text.stdout

    (tmp_path / "hit.wav").unlink()  # nothing usable left: still every reason, then exit 2
    result = cli("samples", "info", tmp_path, "--json")
    assert "no usable audio files" in _one_line_error(result)
    info = json.loads(result.stdout)
    assert info["count"] == 0 and len(info["skipped"]) == 2


def test_samples_build_writes_the_kit(tmp_path: Path) -> None:
    out = tmp_path / "kit"
    result = cli("samples", "build", "--out", out)
    assert result.returncode == 0, result.stderr
    built = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert len(built) == KIT_SIZE >= 200
    assert (out / "LICENSE.txt").is_file() and "CC0" in (out / "LICENSE.txt").read_text()
    assert f"wrote {KIT_SIZE} one-shots" in result.stdout and "| kick |" in result.stdout
    committed = sorted(p.relative_to(DEFAULT_KIT_DIR).as_posix()
                       for p in DEFAULT_KIT_DIR.rglob("*.wav"))
    assert built == committed  # `samples build` regenerates the shipped kit…
    for name in built[::20]:  # …byte for byte
        assert (out / name).read_bytes() == (DEFAULT_KIT_DIR / name).read_bytes(), name


def test_render_writes_wav_and_midi(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav, mid = tmp_path / "loop.wav", tmp_path / "loop.mid"
    result = cli("render", "--seed", "7", "--bpm", "97", "--out", wav, "--midi", mid)
    assert result.returncode == 0, result.stderr
    info = sf.info(str(wav))
    assert (info.samplerate, info.channels) == (44100, 1)
    step = round(60 / 97 / 4 * 44100 * 16)  # one bar at 97 bpm, in samples
    assert info.frames == LISTEN_BARS * step + 44100  # 4 bars and 1 s of tail
    audio, _ = sf.read(str(wav))
    assert 0.01 < np.abs(audio).max() <= 0.99 + 2 ** -20  # never clips
    midi = mido.MidiFile(str(mid))
    tempo = next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo) == pytest.approx(97.0, abs=1e-3)
    notes = [m for m in midi.tracks[0] if m.type == "note_on" and m.velocity > 0]
    rows = [line.split()[2] for line in result.stdout.splitlines() if "track " in line]
    assert len(notes) == LISTEN_BARS * sum(row.count("x") for row in rows) > 0

    again = tmp_path / "again.wav"
    assert main(capsys, "render", "--seed", "7", "--bpm", "97", "--out", again).returncode == 0
    assert again.read_bytes() == wav.read_bytes()  # a seed is a loop


def test_render_with_another_library(tmp_path: Path, paper_library: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "paper.wav"
    result = main(capsys, "render", "--seed", "1", "--samples", paper_library, "--out", wav)
    assert result.returncode == 0, result.stderr
    assert sf.info(str(wav)).frames == 9 * 44100  # 120 bpm by default: the paper's 9 s
    assert result.stdout.count("track ") == 4


@pytest.mark.parametrize("args", [
    ["render", "--out", "x.wav"],  # no seed
    ["render", "--seed", "one", "--out", "x.wav"],
    ["render", "--seed", "-1", "--out", "x.wav"],
    ["render", "--seed", "1", "--bpm", "0", "--out", "x.wav"],
    ["render", "--seed", "1", "--bpm", "fast", "--out", "x.wav"],
    ["render", "--seed", "1", "--bpm", "1000", "--out", "x.wav"],
    ["render", "--seed", "1", "--density", "1.5", "--out", "x.wav"],
    ["render", "--seed", "1", "--out", "no/such/folder/x.wav"],
    ["render", "--seed", "1", "--out", "."],
    ["render", "--seed", "1", "--out", "x.wav", "--midi", "no/such/folder/x.mid"],
    ["render", "--seed", "1", "--samples", "no/such/folder", "--out", "x.wav"],
    ["samples", "info", "no/such/folder"],
    ["samples", "info", "--jsn"],
    ["samples"],
    ["samples", "build", "--seed", "-2"],
    ["frobnicate"],
    [],
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _one_line_error(main(capsys, *args))
    assert not (tmp_path / "x.wav").exists()  # nothing half-written


@pytest.mark.parametrize("args", [
    ["render", "--seed", "one", "--out", "x.wav"],  # argparse's error
    ["samples", "info", "no/such/folder"],  # ours, raised while running
])
def test_bad_arguments_in_a_real_process(tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "deepdrummer_live.cli", *args],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    _one_line_error(result)
    assert not (tmp_path / "x.wav").exists()


def test_build_refuses_a_file_as_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "kit.wav"
    target.write_bytes(b"keep me")
    assert "not a folder" in _one_line_error(main(capsys, "samples", "build", "--out", target))
    assert target.read_bytes() == b"keep me"  # bad input loses nothing


def test_render_into_an_empty_library_folder(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_line_error(main(capsys, "render", "--seed", "1", "--samples", empty,
                                "--out", tmp_path / "x.wav"))
    assert "no audio files" in line and not (tmp_path / "x.wav").exists()


def test_serve_with_an_unknown_device_says_so_and_keeps_the_session(tmp_path: Path) -> None:
    from deepdrummer_live.loop import Loop
    from deepdrummer_live.session import Session

    session = Session(tmp_path / "s")
    loop = Loop(((True,) + (False,) * 15,), ("kick.wav",))
    session.rate(session.add_loop(loop), True)
    session.close()
    result = cli("serve", "--session", tmp_path / "s", "--device", "nope", "--osc-port", "0")
    line = _one_line_error(result)
    assert "nope" in line and "--device" in line
    assert Session(tmp_path / "s").counts() == (1, 1)  # the stored rating is untouched
