"""`deepdrummer-live experiment`: the paper's two-phase protocol with simulated users.

User i gets `FACTORY(seed=S + i)` and the protocol's seed S + i, so two runs with the same
arguments (e.g. the `paper` preset and the default) meet the same users. Writes
DIR/results.json, DIR/summary.md and the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from ..cli import CliError, preset_overrides

# -- one user, in this process or a worker -------------------------------------------------
_PROGRESS = None  # a multiprocessing queue in worker processes


def _init_worker(progress_queue) -> None:
    import torch

    global _PROGRESS
    _PROGRESS = progress_queue
    torch.set_num_threads(1)


def run_one(spec: str, seed: int, samples: str | None, preset, phase1: int, phase2: int,
            report=None) -> dict:
    """User `seed`: load the rater and the bank (cached), run the protocol."""
    from ..cli import load_bank
    from ..experiment import run_user
    from ..raters import load_rater, make_rater

    bank = load_bank(samples)
    _, factory = load_rater(spec)
    rater = make_rater(spec, factory, seed)

    def progress(done: int, total: int) -> None:
        if report is not None:
            report(seed, done)
        elif _PROGRESS is not None:
            _PROGRESS.put((seed, done))

    result = run_user(spec, rater, bank, preset, seed, phase1, phase2, progress=progress)
    taste = getattr(getattr(rater, "taste", None), "name", None)
    return {"rater": taste or spec, **result}


def run(args: argparse.Namespace) -> int:
    import torch

    from ..cli import load_bank
    from ..experiment import preset_to_dict, summarise
    from ..learner import PRESETS
    from ..raters import RaterError, load_rater, make_rater
    from ..report import ProgressBar, write_report

    if args.preset not in PRESETS:
        raise CliError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    preset, overrides = preset_overrides(args.set or [], PRESETS[args.preset])
    if args.jobs is None:  # users are independent: one process per core
        args.jobs = min(os.cpu_count() or 1, args.users)
    if args.users < 1 or args.jobs < 1 or args.phase1 < 0 or args.phase2 < 1:
        raise CliError("--users and --jobs must be ≥ 1, --phase1 ≥ 0, --phase2 ≥ 1")
    bank = load_bank(args.samples)
    try:
        _, factory = load_rater(args.rater)
        make_rater(args.rater, factory, args.seed)  # fail now, not in a worker
    except RaterError as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create {out}: {exc}") from None
    torch.set_num_threads(1)  # more threads per process only contend on a small shared CPU
    seeds = [args.seed + i for i in range(args.users)]
    per_user = args.phase1 + 2 * args.phase2
    bar = ProgressBar(args.users, per_user) if not args.quiet else None
    answered: dict[int, int] = dict.fromkeys(seeds, 0)
    results: dict[int, dict] = {}
    started = time.perf_counter()

    def report(seed: int, done: int) -> None:
        answered[seed] = done
        if bar is not None:
            bar.update(len(results), sum(answered.values()))

    job = (args.rater, args.samples, preset, args.phase1, args.phase2)
    try:
        if args.jobs == 1:
            for seed in seeds:
                results[seed] = run_one(args.rater, seed, *job[1:], report=report)
        else:
            _run_parallel(seeds, job, args.jobs, results, report)
    except RaterError as exc:
        raise CliError(str(exc)) from None
    finally:
        if bar is not None:
            bar.close(len(results), sum(answered.values()))
    users = [results[s] for s in seeds]
    data = {"rater": args.rater, "preset_name": args.preset, "overrides": overrides,
            "preset": preset_to_dict(preset), "seed": args.seed, "phase1": args.phase1,
            "phase2": args.phase2, "bpm": 120.0, "samples": bank.root, "jobs": args.jobs,
            "wall_seconds": time.perf_counter() - started,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch "
                       f"{torch.__version__}",
            "users": users, "summary": summarise(users)}
    paths = write_report(data, out)
    s = data["summary"]
    print(f"{len(users)} users: θ {s['mean_theta_init']:.2f} → {s['mean_theta_final']:.2f}, "
          f"mean Δθ {s['mean_delta']:+.3f} (95 % CI {s['delta_ci95'][0]:+.3f} … "
          f"{s['delta_ci95'][1]:+.3f}); Δθ > 0 for {s['share_improved']:.0%}, ≥ 0.2 for "
          f"{s['share_delta_ge_0_2']:.0%}; {data['wall_seconds'] / 60:.1f} min")
    print(f"wrote {paths['results']}, {paths['summary'].name} and figures in {out}")
    return 0


def _run_parallel(seeds: list[int], job: tuple, jobs: int, results: dict, report) -> None:
    """Users in `jobs` worker processes; progress comes back through a queue."""
    context = get_context("spawn")
    progress = context.Queue()
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                             initargs=(progress,)) as pool:
        pending = {pool.submit(run_one, job[0], seed, *job[1:]): seed for seed in seeds}
        try:
            while pending:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    results[pending.pop(future)] = future.result()
                _drain(progress, report)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        _drain(progress, report)


def _drain(progress, report) -> None:
    while True:
        try:
            seed, done = progress.get_nowait()
        except queue.Empty:
            return
        report(seed, done)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "experiment", help="the paper's two-phase protocol with simulated users",
        description="Run N simulated users through the two-phase protocol (Phase I: ratings "
                    "that train the critic; Phase II: loops from the initial and the final "
                    "critic, shuffled) and report how much more they like the final critic's "
                    "loops. User i gets FACTORY(seed=S+i).")
    parser.add_argument("--rater", required=True,
                        help="builtin:NAME (kick_on_beats, no_harsh_highs, sparse, backbeat, "
                             "eighth_hats, deep, mixed) or MODULE:FACTORY")
    parser.add_argument("--users", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", help="folder of one-shots (default: our kit)")
    parser.add_argument("--preset", default="default", help="learner preset (default, paper)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a preset setting, e.g. lr=1e-3 or critic.n_mfcc=20 "
                             "(repeatable)")
    parser.add_argument("--phase1", type=int, default=80, help="Phase I ratings (80)")
    parser.add_argument("--phase2", type=int, default=30,
                        help="Phase II loops per critic (30)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="users run in parallel processes (default: one per CPU core); "
                             "the results do not depend on it")
    parser.add_argument("--out", required=True, help="folder for results.json and the report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)
