"""OSC reply latency of a real engine (subprocess) over UDP on 127.0.0.1, while it trains.

    python benchmarks/bench_osc.py [--requests 1000] [--pause-ms 30]

Each round waits until a loop is ready (a warm queue: a person listens for seconds between
answers), sends `/dd/next`, waits for the bundle, then `/dd/rate` for that loop and waits for
`/dd/rated`; every rating makes the critic train in the background, so both are measured while
training runs. Prints p50/p95/p99 per address and how often the engine was training.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepdrummer_live.client import EngineClient  # noqa: E402
from tests.engine_process import EngineProcess  # noqa: E402


def percentiles(values: list[float]) -> dict[str, float]:
    ms = np.array(values) * 1000
    return {f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)} | {
        "max": round(float(ms.max()), 3), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--pause-ms", type=float, default=30.0,
                        help="think time between rounds (a person takes seconds)")
    parser.add_argument("--samples", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        options = {"samples": Path(args.samples)} if args.samples else {}
        engine = EngineProcess(Path(tmp) / "session", Path(tmp) / "cache", **options)
        timings: dict[str, list[float]] = {"/dd/next": [], "/dd/rate": [], "/dd/status": []}
        training = 0
        try:
            with EngineClient(port=engine.port, timeout=10) as client:
                client.hello()
                time.sleep(3)  # let the queue fill
                for i in range(args.requests):
                    while client.status()["queue_depth"] == 0:  # measure a warm queue
                        time.sleep(0.01)
                    start = time.perf_counter()
                    loop = client.next(i)
                    timings["/dd/next"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    client.rate(loop.loop_id, i % 3 == 0)
                    timings["/dd/rate"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    training += client.status()["training"]
                    timings["/dd/status"].append(time.perf_counter() - start)
                    time.sleep(args.pause_ms / 1000)
        finally:
            engine.stop()
    report = {address: percentiles(values) for address, values in timings.items()}
    report["share_of_rounds_training"] = round(training / args.requests, 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
