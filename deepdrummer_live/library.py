"""Sample library: a folder of one-shots decoded into one tensor the renderer can gather from.

Every file becomes mono float32 at the engine's rate, peak-normalised, with its leading silence
trimmed and its length capped, so that any sample can sit on any track and sound alike in level.
A file that cannot be used is skipped with its reason; loading never stops on a bad file.
The decoded bank is cached on disk, keyed by the folder's content, so the second start is fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

AUDIO_SUFFIXES = {".wav", ".wave", ".aif", ".aiff", ".aifc", ".flac", ".ogg"}
DEFAULT_SAMPLE_RATE = 44100
DEFAULT_MAX_SECONDS = 2.0
SILENCE = 10 ** (-60 / 20)  # -60 dBFS after normalisation: below this is leading silence
FADE_SECONDS = 0.005  # fade where a sample is cut at the length cap, to avoid a click
MAX_LEADING_SECONDS = 5.0  # read at most this much silence before giving up on a file
CACHE_VERSION = 2  # 2: rows stored back to back, without the padding


class SampleError(ValueError):
    """A file (or folder) that cannot be used; the message says why. When a whole folder has
    nothing usable, `skipped` still lists each file's reason, so a report can show them."""

    def __init__(self, message: str, skipped: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.skipped = skipped or []


@dataclass
class SampleBank:
    """Decoded one-shots, zero-padded to one length, ready for batched rendering."""

    names: list[str]  # paths relative to the library folder, with '/' separators
    audio: torch.Tensor  # [N, max_len] float32
    lengths: torch.Tensor  # [N] int64, samples of real audio per row
    sample_rate: int
    root: str = ""
    skipped: list[dict[str, str]] = field(default_factory=list)  # {path, reason}

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Row of the sample called `name` (a KeyError names it when it is not in the bank)."""
        if not hasattr(self, "_index"):
            self._index = {n: i for i, n in enumerate(self.names)}
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"sample {name!r} is not in the library {self.root}") from None

    def path(self, name: str) -> Path:
        return Path(self.root) / name

    def resampled(self, sample_rate: int) -> SampleBank:
        """The same bank at another rate (the critic listens at a lower rate than we play).

        Kept per rate on this bank: resampling a whole kit takes a second or so, and the
        engine, critic and sampler each ask for the critic's rate.
        """
        if sample_rate == self.sample_rate:
            return self
        if not hasattr(self, "_resampled"):
            self._resampled: dict[int, SampleBank] = {}
        if sample_rate not in self._resampled:
            self._resampled[sample_rate] = self._resample(sample_rate)
        return self._resampled[sample_rate]

    def _resample(self, sample_rate: int) -> SampleBank:
        audio = AF.resample(self.audio, self.sample_rate, sample_rate)
        lengths = torch.ceil(self.lengths * (sample_rate / self.sample_rate)).long()
        lengths = lengths.clamp(max=audio.shape[1])
        audio = audio * (torch.arange(audio.shape[1]) < lengths[:, None])  # no ringing past the end
        return SampleBank(list(self.names), audio.contiguous(), lengths, sample_rate,
                          self.root, list(self.skipped))


def audio_files(folder: Path) -> list[Path]:
    """Audio files below `folder`, sorted so that sample order is stable across machines."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def decode_one_shot(path: Path, sample_rate: int, max_seconds: float) -> np.ndarray:
    """One file → mono float32 at `sample_rate`: trimmed, normalised, capped. Raises SampleError."""
    try:
        if path.stat().st_size == 0:
            raise SampleError("empty file (0 bytes)")
        info = sf.info(str(path))
    except SampleError:
        raise
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError…
        raise SampleError(f"not a readable audio file ({_short(exc)})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise SampleError("no audio frames")
    limit = int((max_seconds + MAX_LEADING_SECONDS) * info.samplerate)
    try:
        data, rate = sf.read(str(path), frames=min(info.frames, limit), dtype="float32",
                             always_2d=True)
    except Exception as exc:
        raise SampleError(f"cannot decode ({_short(exc)})") from None
    if data.size == 0:
        raise SampleError("no audio frames")
    mono = data.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise SampleError("contains NaN or infinite values")
    peak = float(np.abs(mono).max())
    if peak <= 1e-6:
        seconds = len(mono) / rate
        raise SampleError("silent" if len(mono) == info.frames
                          else f"silent for its first {seconds:g} s")
    mono = mono / peak
    start = int(np.argmax(np.abs(mono) > SILENCE))
    cap = int(max_seconds * rate)
    mono = mono[start:start + cap]
    if len(mono) == cap:
        fade = min(len(mono), int(FADE_SECONDS * rate))
        mono[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    if rate != sample_rate:
        mono = AF.resample(torch.from_numpy(np.ascontiguousarray(mono)), rate, sample_rate).numpy()
        mono = mono[:int(max_seconds * sample_rate)]  # resampling rounds the length up
        mono = mono / max(float(np.abs(mono).max()), 1e-9)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _short(exc: BaseException) -> str:
    """First line of a decoder's message, without the "Error opening '<path>': " prefix (the
    report already names the file)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    line = re.sub(r"^Error opening .*?: ", "", line)
    return line[:200]


def folder_key(files: list[Path], folder: Path, sample_rate: int, max_seconds: float) -> str:
    """Hash of every file's name and bytes plus the decode settings: the cache key.

    A file that cannot be opened is hashed as such (decoding then reports it), never raised.
    """
    digest = hashlib.sha256(f"v{CACHE_VERSION}:{sample_rate}:{max_seconds}".encode())
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            digest.update(f"unreadable: {type(exc).__name__}".encode())
        digest.update(b"\1")
    return digest.hexdigest()[:32]


def cache_dir() -> Path:
    """Where decoded banks and other rebuildable files go (`$DEEPDRUMMER_CACHE` overrides)."""
    base = os.environ.get("DEEPDRUMMER_CACHE") or Path.home() / ".cache" / "deepdrummer-live"
    return Path(base)


def load_library(folder: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE,
                 max_seconds: float = DEFAULT_MAX_SECONDS, use_cache: bool = True) -> SampleBank:
    """Load every one-shot below `folder`. Raises SampleError if none is usable."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise SampleError(f"sample folder not found: {folder}")
    files = audio_files(folder)
    key = folder_key(files, folder, sample_rate, max_seconds)
    cached = cache_dir() / "banks" / f"{key}.npz"
    if use_cache and cached.exists():
        bank = _read_cache(cached, folder)
        if bank is not None:
            return bank
    rows: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[dict[str, str]] = []
    for path in files:
        name = path.relative_to(folder).as_posix()
        try:
            rows.append(decode_one_shot(path, sample_rate, max_seconds))
            names.append(name)
        except SampleError as exc:
            skipped.append({"path": name, "reason": str(exc)})
    if not files:
        raise SampleError(f"no audio files (WAV, AIFF, FLAC or OGG) in {folder}")
    if not rows:
        raise SampleError(f"no usable audio files in {folder} ({len(skipped)} skipped)", skipped)
    longest = max(len(r) for r in rows)
    audio = np.zeros((len(rows), longest), dtype=np.float32)
    for i, row in enumerate(rows):
        audio[i, :len(row)] = row
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    bank = SampleBank(names, torch.from_numpy(audio), torch.from_numpy(lengths), sample_rate,
                      str(folder), skipped)
    if use_cache:
        _write_cache(cached, bank)
    return bank


def _write_cache(path: Path, bank: SampleBank) -> None:
    """Write atomically: a half-written cache must never be read back. The rows go back to
    back without their padding (a quarter of the size for a typical kit). A cache that cannot
    be written (read-only or full disk) only costs the next start its speed."""
    meta = json.dumps({"names": bank.names, "skipped": bank.skipped,
                       "sample_rate": bank.sample_rate, "width": bank.audio.shape[1]})
    lengths = bank.lengths.numpy()
    flat = np.concatenate([row[:n] for row, n in zip(bank.audio.numpy(), lengths, strict=True)])
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, audio=flat, lengths=lengths, meta=np.array(meta))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _read_cache(path: Path, folder: Path) -> SampleBank | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            flat, lengths = data["audio"], data["lengths"].astype(np.int64)
        if lengths.sum() != len(flat) or len(lengths) != len(meta["names"]):
            return None
        audio = np.zeros((len(lengths), int(meta["width"])), dtype=np.float32)
        ends = np.cumsum(lengths)
        for row, start, end in zip(audio, ends - lengths, ends, strict=True):
            row[:end - start] = flat[start:end]
        return SampleBank(meta["names"], torch.from_numpy(audio), torch.from_numpy(lengths),
                          int(meta["sample_rate"]), str(folder), meta["skipped"])
    except Exception:
        return None  # a damaged cache is rebuilt, never trusted
