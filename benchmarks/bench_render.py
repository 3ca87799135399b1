"""Rendering speed: loops per second of the batched renderer against the paper's original way.

    python benchmarks/bench_render.py [--samples DIR] [--threads N] [--seconds S] [--json]

Batches of 1, 64 and 256 random loops (density 0.25, 120 bpm) are rendered as one bar, the form
the critic hears, at 44.1 kHz and at the critic's 16 kHz; the listening form (4 bars + 1 s)
is timed too. For comparison, `original_render` redoes what the paper's code did: one loop at a
time, a Python loop over every step and track adding each hit's samples into a numpy buffer
(its `Pattern.render`), timed for one bar and for the 9 s it rendered for every proposal.
Each figure is the median of 5 timings (each at least --seconds long), taken in turns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepdrummer_live.kit import default_kit_dir  # noqa: E402
from deepdrummer_live.library import SampleBank, load_library  # noqa: E402
from deepdrummer_live.loop import STEPS_PER_BEAT, random_batch  # noqa: E402
from deepdrummer_live.render import MIX_GAIN, Renderer  # noqa: E402

BPM = 120.0
BATCHES = (1, 64, 256)
RATES = (44100, 16000)


def original_render(grid: np.ndarray, samples: list[np.ndarray], sample_rate: int,
                    bpm: float = BPM, repeats: int = 4, pad_seconds: float = 1.0) -> np.ndarray:
    """The paper's renderer, restated: a Python loop over steps (of all repeats) and tracks,
    each hit's sample scaled and added into a float32 buffer, cut at the buffer's end."""
    tracks, steps = grid.shape
    step_seconds = 60.0 / bpm / STEPS_PER_BEAT
    audio = np.zeros(int((repeats * steps * step_seconds + pad_seconds) * sample_rate),
                     dtype=np.float32)
    for step in range(repeats * steps):
        start = int(step * step_seconds * sample_rate)
        for track in range(tracks):
            if grid[track, step % steps]:
                hit = samples[track] * MIX_GAIN  # a fresh scaled copy per hit, as it did
                end = min(start + len(hit), len(audio))
                audio[start:end] += hit[:end - start]
    return audio


def jobs(bank: SampleBank) -> list[tuple[dict, Callable[[], object], int]]:
    """(row, work, loops per call) for every figure: the batched renderer per rate, form and
    batch size, and the original renderer over 64 loops, one at a time."""
    out = []
    for rate in RATES:
        at_rate = bank.resampled(rate)
        renderer = Renderer(at_rate)
        for form in ("bar", "listening"):
            render = renderer.bar if form == "bar" else renderer.listening
            for size in BATCHES:
                if form == "listening" and size == 256:
                    continue  # nobody listens to 256 loops at once; 64 shows the trend
                batch = random_batch(size, len(bank), torch.Generator().manual_seed(size))
                out.append(({"renderer": "batched", "form": form, "rate": rate, "batch": size},
                            lambda b=batch, r=render: r(b, BPM), size))
        batch = random_batch(64, len(bank), torch.Generator().manual_seed(1))
        loops = [(grid.numpy(), [at_rate.audio[r, :int(at_rate.lengths[r])].numpy()
                                 for r in rows.tolist()])
                 for grid, rows in zip(batch.grid, batch.samples, strict=True)]
        for form, repeats, pad in (("bar", 1, 0.0), ("listening", 4, 1.0)):
            def work(loops=loops, repeats=repeats, pad=pad, rate=rate) -> None:
                for grid, samples in loops:
                    original_render(grid, samples, rate, BPM, repeats, pad)
            out.append(({"renderer": "original (one at a time)", "form": form, "rate": rate,
                         "batch": 1}, work, len(loops)))
    return out


def measure(bank: SampleBank, seconds: float, rounds: int = 5) -> list[dict]:
    """Median time per loop of each job. The jobs take turns, round after round, so that a
    change in the machine's load (it is shared) falls on all of them alike."""
    todo = jobs(bank)
    for _, work, _ in todo:
        work()  # warm up: allocations, the banks cut for this tempo
    times: list[list[float]] = [[] for _ in todo]
    for _ in range(rounds):
        for (_, work, loops), spent in zip(todo, times, strict=True):
            calls, begin = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - begin) < seconds or calls == 0:
                work()
                calls += 1
            spent.append(elapsed / calls / loops)
    rows = []
    for (row, _, _), spent in zip(todo, times, strict=True):
        per_loop = statistics.median(spent)
        rows.append(row | {"loops_per_s": 1 / per_loop, "ms_per_loop": 1000 * per_loop})
    return rows


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                     if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return (f"{model}, {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", help="folder of one-shots (default: our kit)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--seconds", type=float, default=0.5, help="least time per timing")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bank = load_library(Path(args.samples) if args.samples else default_kit_dir())
    rows = measure(bank, args.seconds)
    original = {(r["form"], r["rate"]): r["ms_per_loop"] for r in rows
                if r["renderer"].startswith("original")}
    for row in rows:
        row["speedup"] = original[row["form"], row["rate"]] / row["ms_per_loop"]
    if args.json:
        print(json.dumps({"machine": machine(), "samples": bank.root, "bpm": BPM, "rows": rows}))
        return
    print(f"# {machine()}")
    print(f"# {len(bank)} samples from {bank.root}, {BPM:g} bpm, density 0.25\n")
    print("| renderer | form | rate (Hz) | batch | loops/s | ms/loop | vs original |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['renderer']} | {r['form']} | {r['rate']} | {r['batch']} | "
              f"{r['loops_per_s']:,.0f} | {r['ms_per_loop']:.3f} | {r['speedup']:.1f}× |")


if __name__ == "__main__":
    main()
