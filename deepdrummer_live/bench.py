"""`deepdrummer-live bench`: how fast the learning loop is, next to the original design.

Measures, on one machine in one run: scoring throughput (render + MFCC + CNN, batched, one
bar), the wait for the next loop after a rating (a warm queue), the time until a loop chosen
by a critic that learned from that rating is ready, and the incremental update after one
rating. The same figures for the original design (the `paper` preset: 44.1 kHz features, one
chain, one loop at a time, 100 MH steps per loop, 40 × 16 training) come with ratios.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time

import numpy as np
import torch

from .candidates import CandidateQueue
from .cli import load_bank
from .critic import count_parameters
from .devices import share_cores
from .learner import PRESETS, Learner
from .loop import random_batch
from .sampler import Sampler, metropolis_hastings


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def scoring_rate(scorer, bank, batch: int, seconds: float = 3.0) -> float:
    """Loops scored per second, batched, for about `seconds`."""
    generator = torch.Generator().manual_seed(0)
    scorer(random_batch(batch, len(bank), generator))  # warm up caches and allocator
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        scorer(random_batch(batch, len(bank), generator))
        done += batch
    return done / (time.perf_counter() - start)


def live_latencies(bank, preset: str, device, ratings: int) -> dict:
    """A rater who answers as soon as a loop is there: the queue, learner and sampler as the
    engine runs them, in their own threads."""
    share_cores()  # as the engine runs: training and sampling side by side
    learner = Learner(bank, preset, device=device, seed=0).start()
    sampler = Sampler(bank, learner.scorer(), learner.preset,
                      generator=torch.Generator().manual_seed(1))
    queue = CandidateQueue(learner, sampler, depth=4).start()
    next_ms, fresh_s = [], []
    try:
        queue.wait_ready(timeout=120)
        candidate = queue.get(timeout=120)
        for i in range(ratings):
            queue.wait_ready(timeout=120)  # a person listens for a while: the queue refills
            start = time.perf_counter()
            learner.add_rating(candidate.loop, liked=i % 3 == 0)
            candidate = queue.get(timeout=120)
            next_ms.append((time.perf_counter() - start) * 1000)
            while learner.scorer().learned < i + 1:
                time.sleep(0.002)
            learned_version = learner.scorer().version
            while True:  # a loop chosen by a critic that has learned from this rating
                fresh = queue.get(timeout=120)
                if fresh is None or fresh.critic_version >= learned_version:
                    break
            fresh_s.append(time.perf_counter() - start)
            candidate = fresh or candidate
    finally:
        queue.close()
        learner.stop()
    return {"next_loop_ms_p95": p95(next_ms), "fresh_loop_s_p95": p95(fresh_s),
            "train_update_s_p95": p95(learner.update_seconds)}


def original_design(bank, device, ratings: int) -> dict:
    """The original: one chain, one loop at a time, 100 MH steps, 40 × 16 after each rating.
    The next loop came from a critic that had not yet learned the rating (computed while the
    rating trained would have stalled), so the fresh loop waits for training + MH."""
    torch.set_num_threads(os.cpu_count() or 1)  # the original ran alone, on every core
    preset = PRESETS["paper"]
    learner = Learner(bank, preset, device=device, seed=0)
    scorer = learner.scorer()
    generator = torch.Generator().manual_seed(0)
    one_loop = []
    for _ in range(3):
        start = time.perf_counter()
        metropolis_hastings(scorer, random_batch(1, len(bank), generator), len(bank),
                            generator, preset.mh_steps, preset.temperature)
        one_loop.append(time.perf_counter() - start)
    loops = random_batch(max(3, ratings // 5), len(bank), generator).to_loops(bank)
    for i, loop in enumerate(loops):
        learner.add_rating(loop, i % 2 == 0)
        learner.train_pending()
    loop_s = float(np.median(one_loop))
    update = p95(learner.update_seconds)
    return {"score_loops_per_s": scoring_rate(scorer, bank, 1, seconds=2.0),
            "mh_loop_s": loop_s, "next_loop_ms_p95": loop_s * 1000,
            "fresh_loop_s_p95": update + loop_s, "train_update_s_p95": update,
            "critic_params": count_parameters(learner.critic)}


def run(args) -> int:
    torch.manual_seed(0)
    bank = load_bank(args.samples)
    device = torch.device(args.device) if args.device else None
    learner = Learner(bank, "default", device=device)
    report = {
        "device": str(learner.device),
        "critic_params": count_parameters(learner.critic),
        "score_loops_per_s": scoring_rate(learner.scorer(), bank, 256),
        **live_latencies(bank, "default", device, args.ratings),
    }
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    if not args.skip_original:
        original = original_design(bank, device, args.ratings)
        report["original"] = original
        report["ratios"] = {
            "score_loops_per_s": report["score_loops_per_s"] / original["score_loops_per_s"],
            "next_loop_ms_p95": original["next_loop_ms_p95"] / report["next_loop_ms_p95"],
            "fresh_loop_s_p95": original["fresh_loop_s_p95"] / report["fresh_loop_s_p95"],
            "train_update_s_p95": original["train_update_s_p95"] / report["train_update_s_p95"],
        }
    if args.json:
        print(json.dumps(report, indent=None))
        return 0
    for key, value in report.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k:22} {v:,.3f}" if isinstance(v, float) else f"  {k:22} {v}")
        else:
            print(f"{key:24} {value:,.3f}" if isinstance(value, float) else f"{key:24} {value}")
    sys.stdout.flush()
    return 0
