"""Role classifier accuracy: per role on the paper's library (the test set) and on our kit.

    python benchmarks/bench_roles.py [--paper DIR] [--refit] [--markdown]

Truth on the paper's library comes from its file names (`roles.truth_from_name`; files whose
names do not say, like `Vermona_HiHat_*` or `Vermona_Misc_*`, are left out); on our kit from
its folders. `--refit` also runs `fit_thresholds` on the kit and says whether it gives back
the frozen THRESHOLDS. Prints a table per role, the paper library's confusions and timings.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepdrummer_live import roles  # noqa: E402
from deepdrummer_live.kit import default_kit_dir  # noqa: E402
from deepdrummer_live.library import load_library  # noqa: E402

PAPER = Path(__file__).resolve().parents[2] / "shared" / "samples" / "deepdrummer-paper"


def measure(folder: Path, truth_of) -> tuple[dict, list, float, int]:
    bank = load_library(folder)
    start = time.perf_counter()
    predicted = roles.classify_bank(bank)
    seconds = time.perf_counter() - start
    truth = [truth_of(n) for n in bank.names]
    confusions = [(t, p, n) for n, t, p in zip(bank.names, truth, predicted, strict=True)
                  if t is not None and t != p]
    return roles.accuracy(predicted, truth), confusions, seconds, len(bank)


def table(paper: dict, kit: dict) -> str:
    lines = ["| role | paper library (test) | | our kit (fitted on) | |",
             "|---|---:|---:|---:|---:|"]
    for role in [*roles.ROLES, "all"]:
        cells = []
        for scores in (paper, kit):
            if role in scores:
                correct, total = scores[role]
                cells += [f"{correct}/{total}", f"{100 * correct / total:.0f} %"]
            else:
                cells += ["–", ""]
        name = "**overall**" if role == "all" else role
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paper", type=Path, default=PAPER)
    parser.add_argument("--refit", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="only the table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    paper, confusions, paper_s, paper_n = measure(args.paper, roles.truth_from_name)
    kit, _, kit_s, kit_n = measure(default_kit_dir(), roles.truth_from_kit)
    print(table(paper, kit))
    if args.markdown:
        return
    print(f"\nclassify_bank: {paper_n} paper samples in {paper_s:.2f} s, {kit_n} kit samples "
          f"in {kit_s:.2f} s (1 thread, {platform.processor() or platform.machine()})")
    print("\npaper library, most common confusions (truth -> predicted):")
    for (true, guess), count in Counter((t, p) for t, p, _ in confusions).most_common(12):
        print(f"  {count:3d}  {true} -> {guess}")
    if args.refit:
        fitted = roles.fit_thresholds(*roles.kit_training_set())
        differ = {k: (roles.THRESHOLDS[k], v) for k, v in fitted.items()
                  if abs(v - roles.THRESHOLDS[k]) > 1e-3 * abs(v)}
        print("\nrefit on the kit:", "gives back THRESHOLDS" if not differ
              else f"differs: {differ}")


if __name__ == "__main__":
    main()
