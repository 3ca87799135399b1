"""Peak memory of a long session: an engine taking 200 ratings, as `serve` runs it.

    python benchmarks/bench_memory.py [--ratings 200] [--samples DIR]

Each round takes the next loop from the engine, rates it (the critic trains in the
background) and waits until the learner has caught up, so every rating is trained on and the
queue refills as in a real session. The learner runs in its own process (`worker`), so this
samples both every 0.2 s and prints the peak of their sum: resident (RSS, counting the torch
libraries both map once each) and proportional (PSS, shared pages split between them: what
the machine actually spends). Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepdrummer_live.cli import load_bank  # noqa: E402
from deepdrummer_live.engine import Engine  # noqa: E402
from deepdrummer_live.session import Session  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_mb(pid: int) -> dict[str, float]:
    """Current RSS and PSS of one process, from /proc/PID/smaps_rollup."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key.lower()] = int(rest.split()[0]) / 1024
    return values


class PeakWatcher(threading.Thread):
    """The largest sum over `pids` of RSS and of PSS seen while it runs."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.peak = pids, {"rss": 0.0, "pss": 0.0}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            try:
                now = [memory_mb(pid) for pid in self.pids]
            except OSError:
                continue
            for key in self.peak:
                self.peak[key] = max(self.peak[key], sum(m[key] for m in now))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ratings", type=int, default=200)
    parser.add_argument("--samples", default=None)
    args = parser.parse_args()
    bank = load_bank(args.samples)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(Session(Path(folder)), bank)
        after_start = peak_mb()
        watcher = PeakWatcher([os.getpid(), engine.learner.pid])
        watcher.start()
        try:
            for i in range(args.ratings):
                handed = engine.next_loop(timeout=120)
                engine.rate(handed.loop_id, liked=i % 3 == 0)
                engine.learner.wait_idle(timeout=120)
        finally:
            watcher.done.set()
            engine.close()
    print(json.dumps({"ratings": args.ratings, "samples": len(bank),
                      "engine_process_peak_rss_mb_after_start": round(after_start),
                      "engine_process_peak_rss_mb": round(peak_mb()),
                      "both_peak_rss_mb": round(watcher.peak["rss"]),
                      "both_peak_pss_mb": round(watcher.peak["pss"]),
                      "seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
