"""How long a person waits in the browser interface, measured over real HTTP on 127.0.0.1.

    python -m tests.web.bench_web [--ratings 20] [--phase1 10] [--phase2 60] [--set KEY=VALUE]

Starts `deepdrummer-live web` in a subprocess (our kit unless --samples), then:
- free mode: `--ratings` rounds of POST /api/rate then POST /api/next (what the Like button
  does), and the first GET of each loop's WAV (rendered on demand);
- study mode (default preset): `--phase1` Phase I answers (each returns the next item, chosen
  by the critic that just trained), then the pause (Phase II's `--phase2` loops prepared by
  threshold sampling), then the first Phase II answer.
Prints one JSON object of timings in milliseconds (p50/p95/max) and seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from .conftest import WebProcess, call


def stats(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 1),
            "p95": round(float(np.percentile(ms, 95)), 1), "max": round(float(ms.max()), 1),
            "n": len(seconds)}


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def bench_free(root: Path, args) -> dict:
    web = WebProcess(root, ["--session", str(root / "free"), *args.engine])
    try:
        loop = None
        for _ in range(120):  # the first loop: wait for the queue to warm up
            try:
                loop = call(web.url + "api/next", {})["loop"]
                break
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    raise
                time.sleep(0.5)
        rate, nxt, wav = [], [], []
        for i in range(args.ratings):
            _, t = timed(call, web.url + loop["wav"].lstrip("/"))
            wav.append(t)
            _, t = timed(call, web.url + "api/rate", {"loop_id": loop["loop_id"],
                                                      "liked": i % 3 == 0})
            rate.append(t)
            while True:
                try:
                    loop, t = timed(lambda: call(web.url + "api/next", {})["loop"])
                    break
                except urllib.error.HTTPError as exc:
                    if exc.code != 503:
                        raise
            nxt.append(t)
        return {"rate_ms": stats(rate), "next_ms": stats(nxt), "first_wav_ms": stats(wav)}
    finally:
        web.stop()


def bench_study(root: Path, args) -> dict:
    extra = [f"--set={s}" for s in args.set]
    web = WebProcess(root, ["--study", str(root / "study"), "--phase1", str(args.phase1),
                            "--phase2", str(args.phase2), *extra, *args.engine])
    base = web.url + "api/study/"
    try:
        state, join = timed(call, base + "join", {"participant": "bench"})
        answers = []
        while state["stage"] == "phase1":
            state, t = timed(call, base + "p/bench/answer",
                             {"item_id": state["item"]["item_id"],
                              "liked": len(answers) % 3 == 0})
            answers.append(t)
        start = time.perf_counter()
        while not state["ready"]:
            time.sleep(0.2)
            state = call(base + "p/bench")
            if state["error"]:
                raise RuntimeError(state["error"])
        pause = time.perf_counter() - start
        state = call(base + "p/bench/continue", {})
        _, first = timed(call, base + "p/bench/answer",
                         {"item_id": state["item"]["item_id"], "liked": True})
        return {"join_s": round(join, 2), "phase1_answer_ms": stats(answers),
                "phase2_preparation_s": round(pause, 1), "phase2_answer_ms": round(first * 1000)}
    finally:
        web.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ratings", type=int, default=20)
    parser.add_argument("--phase1", type=int, default=10)
    parser.add_argument("--phase2", type=int, default=60)
    parser.add_argument("--set", action="append", default=[], help="study preset override")
    parser.add_argument("--samples")
    parser.add_argument("--only", choices=["free", "study"])
    args = parser.parse_args()
    args.engine = ["--samples", args.samples] if args.samples else []
    out = {"cpu_count": os.cpu_count(), "load_avg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "study":
            out["free"] = bench_free(Path(tmp) / "f", args)
        if args.only != "free":
            out["study"] = bench_study(Path(tmp) / "s", args)
    out["load_avg_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
