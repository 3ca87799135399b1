"""`deepdrummer-live bench`: scoring, next-loop and training speed, next to the original
design (the measurements live in `deepdrummer_live.bench`, imported only when run)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure scoring, next-loop and training speed",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", help="sample folder (default: our kit)")
    p.add_argument("--ratings", type=int, default=20,
                   help="ratings simulated for the latency figures (default 20)")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    p.add_argument("--skip-original", action="store_true",
                   help="leave out the original design's figures")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..bench import run as run_bench

    return run_bench(args)
