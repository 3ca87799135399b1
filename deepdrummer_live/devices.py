"""Pick where torch runs: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import os
import threading

import torch


def pick_device(preferred: str | None = None) -> torch.device:
    """The best device available, or `preferred` (also `$DEEPDRUMMER_DEVICE`) when given."""
    name = preferred or os.environ.get("DEEPDRUMMER_DEVICE")
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


BACKGROUND_NICENESS = 10


def run_in_background() -> None:
    """Lower the calling thread's CPU priority (Linux: threads have their own niceness), so
    training and sampling yield the cores at once to replies, MIDI and audio. A no-op where
    the OS does not support it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
    except (AttributeError, OSError):
        pass


def share_cores() -> None:
    """Training and the candidate producer run side by side: give each its share of the
    cores. torch's default (every core per op, in each thread) oversubscribes the machine,
    and tiny ops then wait on spinning threads (measured 70× slower on 2 cores)."""
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
