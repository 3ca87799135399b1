"""What a person looks at after an experiment: results.json, summary.md and PNG figures (KDE of
θ_init vs θ_final and of Δθ as in the paper, the like rate over Phase I), plus the progress bar
shown while it runs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np

FIGURES = {"theta": "theta_kde.png", "delta": "delta_kde.png", "phase1": "phase1_like_rate.png"}


class ProgressBar:
    """One self-overwriting line on stderr: users done, ratings done, time left. Into a log file
    or a pipe (no terminal) it writes a plain line every `log_every` seconds instead, so a log
    is not thousands of redrawn lines."""

    def __init__(self, users: int, ratings_per_user: int, stream: TextIO | None = None,
                 every: float = 0.5, log_every: float = 30.0) -> None:
        self.users, self.per_user = users, ratings_per_user
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty())
        self.every = every if self.terminal else log_every
        self.started = time.monotonic()
        self._last = 0.0
        self._last_line: tuple[int, int] | None = None
        self.users_done = 0
        self.ratings_done = 0

    def update(self, users_done: int, ratings_done: int, force: bool = False) -> None:
        self.users_done, self.ratings_done = users_done, ratings_done
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        if self.terminal:
            self.stream.write("\r" + self.line(now) + "\033[K")
        elif self._last_line != (self.users_done, self.ratings_done):
            self.stream.write(self.line(now) + "\n")
        self._last_line = (self.users_done, self.ratings_done)
        self.stream.flush()

    def line(self, now: float | None = None) -> str:
        total = self.users * self.per_user
        elapsed = (now or time.monotonic()) - self.started
        done = self.ratings_done
        width = 24
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        eta = "?" if done == 0 else _duration(elapsed / done * (total - done))
        return (f"[{bar}] users {self.users_done}/{self.users}  ratings {done}/{total}  "
                f"elapsed {_duration(elapsed)}  left ~{eta}")

    def close(self, users_done: int | None = None, ratings_done: int | None = None) -> None:
        """Draw the final state and end the line."""
        self.update(self.users_done if users_done is None else users_done,
                    self.ratings_done if ratings_done is None else ratings_done, force=True)
        if self.terminal:
            self.stream.write("\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def kde(values: list[float], grid: np.ndarray, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density (Scott's bandwidth, at least 0.03 so ties still show)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return np.zeros_like(grid)
    if bandwidth is None:
        bandwidth = max(0.03, 1.06 * data.std() * data.size ** (-1 / 5))
    z = (grid[:, None] - data[None, :]) / bandwidth
    return np.exp(-0.5 * z ** 2).sum(axis=1) / (data.size * bandwidth * np.sqrt(2 * np.pi))


def smooth(values: np.ndarray, window: int = 10) -> np.ndarray:
    """Centred moving average that shrinks at the edges (no padding bias)."""
    out = np.empty(len(values))
    for i in range(len(values)):
        lo, hi = max(0, i - window // 2), min(len(values), i + window // 2 + 1)
        out[i] = values[lo:hi].mean()
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_theta(runs: dict[str, list[dict]], path: Path) -> Path:
    """KDE of θ_init (dashed) and θ_final (solid) per run, as the paper's Figure."""
    plt = _pyplot()
    grid = np.linspace(-0.1, 1.1, 241)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=90)
    for k, (label, users) in enumerate(runs.items()):
        colour = f"C{k}"
        prefix = f"{label}: " if len(runs) > 1 else ""
        ax.plot(grid, kde([u["theta_init"] for u in users], grid), "--", color=colour,
                label=f"{prefix}θ_init")
        ax.plot(grid, kde([u["theta_final"] for u in users], grid), "-", color=colour,
                label=f"{prefix}θ_final")
    ax.set_xlabel("share of Phase II loops liked (θ)")
    ax.set_ylabel("density over users")
    ax.set_title("Loops from the initial vs the final critic")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_delta(runs: dict[str, list[dict]], path: Path) -> Path:
    plt = _pyplot()
    grid = np.linspace(-1, 1, 241)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=90)
    for k, (label, users) in enumerate(runs.items()):
        deltas = [u["delta"] for u in users]
        ax.plot(grid, kde(deltas, grid), color=f"C{k}",
                label=f"{label} (mean {np.mean(deltas):+.2f})")
        ax.axvline(float(np.mean(deltas)), color=f"C{k}", lw=0.8, ls=":")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("Δθ = θ_final − θ_init")
    ax.set_ylabel("density over users")
    ax.set_title("Improvement per user")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_phase1(runs: dict[str, list[dict]], path: Path, window: int = 10) -> Path:
    """Like rate at each Phase I rating, averaged over users, smoothed over `window` ratings."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=90)
    for k, (label, users) in enumerate(runs.items()):
        rows = [u["phase1_likes"] for u in users if u.get("phase1_likes")]
        if not rows:
            continue
        n = min(len(r) for r in rows)
        rate = np.array([r[:n] for r in rows], dtype=float).mean(axis=0)
        ax.plot(np.arange(1, n + 1), smooth(rate, window), color=f"C{k}", label=label)
    ax.set_ylim(0, 1)
    ax.set_xlabel("rating in Phase I")
    ax.set_ylabel("share liked")
    ax.set_title(f"Like rate while the critic learns (mean over users, {window}-rating window)",
                 fontsize=10)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return path


def figures(runs: dict[str, list[dict]], folder: Path, prefix: str = "") -> dict[str, Path]:
    folder = Path(folder)
    return {"theta": plot_theta(runs, folder / f"{prefix}{FIGURES['theta']}"),
            "delta": plot_delta(runs, folder / f"{prefix}{FIGURES['delta']}"),
            "phase1": plot_phase1(runs, folder / f"{prefix}{FIGURES['phase1']}")}


def summary_markdown(results: dict, figure_names: dict[str, str] | None = None) -> str:
    """A short human-readable report of one run."""
    s = results["summary"]
    ci = s.get("delta_ci95") or [float("nan")] * 2
    lines = [
        f"# Experiment: {results.get('rater', '?')}, preset {results.get('preset_name', '?')}",
        "",
        f"{s['n_users']} simulated users, seeds {results.get('seed', 0)}…"
        f"{results.get('seed', 0) + s['n_users'] - 1}; Phase I {results.get('phase1')} "
        f"ratings, Phase II {results.get('phase2')} + {results.get('phase2')}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| mean θ_init (loops from the untrained critic liked) | {s['mean_theta_init']:.3f} |",
        f"| mean θ_final (loops from the trained critic liked) | {s['mean_theta_final']:.3f} |",
        f"| mean Δθ (95 % bootstrap CI) | {s['mean_delta']:+.3f} ({ci[0]:+.3f} … {ci[1]:+.3f}) |",
        f"| median Δθ | {s['median_delta']:+.3f} |",
        f"| users with Δθ > 0 | {s['share_improved']:.0%} |",
        f"| users with Δθ ≥ 0.2 | {s['share_delta_ge_0_2']:.0%} |",
        f"| users with Δθ < 0 | {s['share_worse']:.0%} |",
    ]
    if s.get("phase1_first20_like_rate") is not None:
        lines.append(f"| Phase I like rate, first 20 → last 20 ratings | "
                     f"{s['phase1_first20_like_rate']:.2f} → {s['phase1_last20_like_rate']:.2f} |")
    if results.get("wall_seconds") is not None:
        lines.append(f"| wall time | {results['wall_seconds'] / 60:.1f} min |")
    lines += ["", "| user seed | rater | θ_init | θ_final | Δθ | final critic reached f ≥ "
              "threshold |", "|---|---|---|---|---|---|"]
    for u in results["users"]:
        reached = u.get("reached_final")
        lines.append(f"| {u['seed']} | {u.get('rater', '')} | {u['theta_init']:.2f} | "
                     f"{u['theta_final']:.2f} | {u['delta']:+.2f} | "
                     f"{'' if reached is None else f'{reached:.0%}'} |")
    if figure_names:
        lines.append("")
        for key, title in (("theta", "θ_init vs θ_final"), ("delta", "Δθ"),
                           ("phase1", "like rate over Phase I")):
            if key in figure_names:
                lines.append(f"![{title}]({figure_names[key]})")
    return "\n".join(lines) + "\n"


def write_report(results: dict, out: Path) -> dict[str, Path]:
    """results.json, summary.md and the three figures into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.json", "summary": out / "summary.md"}
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(paths["results"])
    made = figures({results.get("preset_name", "run"): results["users"]}, out)
    paths.update(made)
    paths["summary"].write_text(summary_markdown(results, {k: p.name for k, p in made.items()}))
    return paths


def compare(paths: list[Path], out: Path, prefix: str = "compare_") -> dict[str, Path]:
    """Figures with several runs' results.json overlaid (labelled by preset name), for
    comparing presets on the same users."""
    runs = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        label = data.get("preset_name", Path(path).parent.name)
        runs[label if label not in runs else f"{label} ({Path(path).parent.name})"] = \
            data["users"]
    return figures(runs, Path(out), prefix)


if __name__ == "__main__":  # python -m deepdrummer_live.report OUT_DIR RESULTS.json ...
    if len(sys.argv) < 3:
        sys.exit("usage: python -m deepdrummer_live.report OUT_DIR RESULTS.json [RESULTS.json …]")
    for name, made in compare([Path(p) for p in sys.argv[2:]], Path(sys.argv[1])).items():
        print(f"{name}: {made}")
