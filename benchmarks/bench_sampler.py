"""Sampler and candidate-queue speed: proposals per second, one round of `Sampler.sample`, and
how soon a loop is ready (warm) or reflects a new rating (fresh).

    python benchmarks/bench_sampler.py [--samples DIR] [--threads N] [--ratings R] [--json]

- `mh_overhead_proposals_per_s`: the batched MH bookkeeping alone (mutate, constrain, accept)
  with a free scorer, 64 chains: what the sampler adds on top of scoring.
- `sample_round_s`: `Sampler.sample(4)` with the default preset and an untrained critic (all
  chains × mh_steps proposals scored in batches), and `proposals_per_s` from it.
- `paper_loop_s`: the paper's way for comparison: one chain, 100 steps, one loop scored per step
  (same critic and renderer, so it isolates batching).
- `get_ms_p50/p95`: `CandidateQueue.get` when the queue is warm.
- `fresh_s_p50/p95`: a rating given to the background `Learner` → a candidate chosen by the
  critic that learned from it is ready in the queue (training + one sampler round).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepdrummer_live.candidates import CandidateQueue  # noqa: E402
from deepdrummer_live.kit import default_kit_dir  # noqa: E402
from deepdrummer_live.learner import PRESETS, Learner  # noqa: E402
from deepdrummer_live.library import load_library  # noqa: E402
from deepdrummer_live.loop import LoopBatch, random_batch  # noqa: E402
from deepdrummer_live.sampler import Sampler, metropolis_hastings  # noqa: E402


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def mh_overhead(n_samples: int, chains: int = 64, steps: int = 400) -> float:
    generator = torch.Generator().manual_seed(0)
    start = random_batch(chains, n_samples, generator)

    def free(batch: LoopBatch) -> torch.Tensor:
        return batch.grid.float().mean((1, 2))

    began = time.perf_counter()
    metropolis_hastings(free, start, n_samples, generator, steps, 0.1)
    return chains * steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=default_kit_dir())
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--ratings", type=int, default=10, help="ratings timed for fresh_s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bank = load_library(args.samples)
    preset = PRESETS["default"]
    learner = Learner(bank, preset, device="cpu", seed=0)
    sampler = Sampler(bank, learner.scorer(), preset, torch.Generator().manual_seed(1))
    out: dict[str, object] = {"machine": f"{platform.processor() or platform.machine()}, "
                                         f"{os.cpu_count()} CPUs",
                              "threads": torch.get_num_threads(), "samples": len(bank),
                              "chains": preset.chains, "mh_steps": preset.mh_steps}
    out["mh_overhead_proposals_per_s"] = round(mh_overhead(len(bank)))

    sampler.sample(4)  # warm up
    rounds = []
    for _ in range(3):
        began = time.perf_counter()
        sampler.sample(4)
        rounds.append(time.perf_counter() - began)
    out["sample_round_s"] = round(statistics.median(rounds), 3)
    out["proposals_per_s"] = round(preset.chains * preset.mh_steps / out["sample_round_s"])
    paper = Sampler(bank, learner.scorer(), preset.with_overrides(chains=1, mh_steps=100),
                    torch.Generator().manual_seed(2))
    began = time.perf_counter()
    paper.sample(1)
    out["paper_loop_s"] = round(time.perf_counter() - began, 3)

    queue = CandidateQueue(learner, sampler, depth=4).start()
    learner.start()
    try:
        gets, fresh = [], []
        for i in range(args.ratings):
            queue.wait_ready(60)
            began = time.perf_counter()
            candidate = queue.get(timeout=10)
            gets.append(time.perf_counter() - began)
            version = learner.version
            began = time.perf_counter()
            learner.add_rating(candidate.loop, liked=i % 3 == 0)
            while not any(c.critic_version > version for c in queue.ready()):
                time.sleep(0.002)
            fresh.append(time.perf_counter() - began)
    finally:
        queue.close()
        learner.stop()
    out["get_ms_p50"] = round(1000 * statistics.median(gets), 3)
    out["get_ms_p95"] = round(1000 * p95(gets), 3)
    out["fresh_s_p50"] = round(statistics.median(fresh), 3)
    out["fresh_s_p95"] = round(p95(fresh), 3)
    out["train_update_s_p50"] = round(statistics.median(learner.update_seconds), 3)
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()
