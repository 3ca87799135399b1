"""Shared fixtures: the paper's sample library, decoded banks, and a private cache folder.

Every test session decodes into its own `DEEPDRUMMER_CACHE` (set for the whole session, so
subprocesses inherit it too): tests never read or write the user's ~/.cache, and a stale
cache from an older version can never make a test pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from deepdrummer_live.kit import default_kit_dir
from deepdrummer_live.library import SampleBank, load_library

REPO = Path(__file__).resolve().parent.parent
PAPER_LIBRARY = REPO.parent / "shared" / "samples" / "deepdrummer-paper"
PAPER_COUNT = 325  # WAVs in the paper's library (16/24-bit int and float, mono and stereo)


@pytest.fixture(scope="session", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's DEEPDRUMMER_CACHE folder (overrides pytest's own `cache` fixture here)."""
    folder = tmp_path_factory.mktemp("deepdrummer-cache")
    old = os.environ.get("DEEPDRUMMER_CACHE")
    os.environ["DEEPDRUMMER_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("DEEPDRUMMER_CACHE", None)
    else:
        os.environ["DEEPDRUMMER_CACHE"] = old


@pytest.fixture(scope="session")
def paper_library() -> Path:
    """The paper's 325 one-shots (read only; skips the test where the folder is absent)."""
    if not PAPER_LIBRARY.is_dir():
        pytest.skip(f"the paper's sample library is not at {PAPER_LIBRARY}")
    return PAPER_LIBRARY


@pytest.fixture(scope="session")
def paper_bank(paper_library: Path, cache: Path) -> SampleBank:
    """The paper's library decoded at 44.1 kHz, once per session."""
    return load_library(paper_library)


@pytest.fixture(scope="session")
def kit_bank(cache: Path) -> SampleBank:
    """Our own default kit decoded at 44.1 kHz, once per session."""
    return load_library(default_kit_dir())



@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: torch's thread pool only adds waiting on a busy 2-core machine (the
    engine does the same, see `devices.share_cores`). Restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
