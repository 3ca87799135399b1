"""Peak memory of a long session: an engine taking 200 ratings, as `serve` runs it.

    python benchmarks/bench_memory.py [--ratings 200] [--samples DIR]

Each round takes the next loop from the engine, rates it (the critic trains in the
background) and waits until the learner has caught up, so every rating is trained on and the
queue refills as in a real session. Prints the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepdrummer_live.cli import load_bank  # noqa: E402
from deepdrummer_live.engine import Engine  # noqa: E402
from deepdrummer_live.session import Session  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ratings", type=int, default=200)
    parser.add_argument("--samples", default=None)
    args = parser.parse_args()
    bank = load_bank(args.samples)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(Session(Path(folder)), bank).start()
        after_start = peak_mb()
        try:
            for i in range(args.ratings):
                handed = engine.next_loop(timeout=120)
                engine.rate(handed.loop_id, liked=i % 3 == 0)
                engine.learner.wait_idle(timeout=120)
        finally:
            engine.close()
    print(json.dumps({"ratings": args.ratings, "samples": len(bank),
                      "peak_rss_mb_after_start": round(after_start),
                      "peak_rss_mb": round(peak_mb()),
                      "seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
