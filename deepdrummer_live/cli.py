"""`deepdrummer-live`: one command with a subcommand per job.

Bad arguments print one line saying what was wrong and exit with code 2, as argparse does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A user mistake we can name in one line (exit code 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (and exit code 2), not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def preset_overrides(pairs: list[str], preset):
    """`--set key=value` strings (experiment, web study) → (a preset with those fields
    replaced, the values), each value parsed as the type of the field it replaces
    (`critic.NAME` for critic settings)."""
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"--set needs key=value, got {pair!r}")
        owner, name = (preset.critic, key[7:]) if key.startswith("critic.") else (preset, key)
        if name not in {f.name for f in dataclasses.fields(owner)} or name == "critic":
            raise CliError(f"--set {key}: no such setting; preset settings are "
                           f"{', '.join(f.name for f in dataclasses.fields(preset))} and "
                           "critic.NAME")
        values[key] = _parse_value(key, text.strip(), getattr(owner, name))
    try:
        return preset.with_overrides(**values), values
    except (TypeError, ValueError) as exc:
        raise CliError(f"--set: {exc}") from None


def _parse_value(key: str, text: str, current):
    try:
        if isinstance(current, bool):
            if text.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError("expected true or false")
            return text.lower() in {"true", "1", "yes"}
        if isinstance(current, tuple):
            return tuple(int(v) for v in text.split(","))
        if current is None:
            return None if text.lower() == "none" else float(text)
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return None if text.lower() == "none" else float(text)
        return text
    except ValueError as exc:
        raise CliError(f"--set {key}={text}: {exc}") from None


def bpm_value(text: str) -> float:
    value = positive_float(text)
    if not 20 <= value <= 400:
        raise argparse.ArgumentTypeError(f"bpm must be within 20–400, got {text}")
    return value


def load_bank(samples: str | None, sample_rate: int | None = None, strict: bool = False):
    """The library at `samples`, or our own kit; a clear CliError when it cannot be loaded
    (with `strict`, the SampleError itself, which lists every skipped file's reason)."""
    from .kit import default_kit_dir
    from .library import DEFAULT_SAMPLE_RATE, SampleError, load_library

    folder = Path(samples) if samples else default_kit_dir()
    try:
        return load_library(folder, sample_rate or DEFAULT_SAMPLE_RATE)
    except SampleError as exc:
        if strict:
            raise
        raise CliError(str(exc)) from None


def unit_float(text: str) -> float:
    """A probability such as a density: a number within 0–1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0–1, got {text}")
    return value


def natural(text: str) -> int:
    """A whole number >= 0 (seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be within 0–2^63, got {text}")
    return value


def output_file(text: str) -> Path:
    """A file we are about to write: its folder must exist and it must not be a folder."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {path.parent} does not exist")
    return path


def cmd_samples_info(args: argparse.Namespace) -> int:
    from .library import SampleError

    try:
        bank = load_bank(args.dir, strict=True)
    except SampleError as exc:
        if args.dir and Path(args.dir).is_dir():  # nothing usable: still report every reason
            info = {"root": str(Path(args.dir).resolve()), "count": 0,
                    "skipped": exc.skipped, "samples": []}
            _print_info(info, args.json)
        raise CliError(str(exc)) from None
    info = {"root": bank.root, "count": len(bank), "sample_rate": bank.sample_rate,
            "skipped": bank.skipped, "samples": bank.names}
    try:
        from .roles import classify_bank

        info["roles"] = dict(zip(bank.names, classify_bank(bank), strict=True))
    except ImportError:
        pass
    _print_info(info, args.json)
    return 0


def _print_info(info: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info))
        return
    rate = f" at {info['sample_rate']} Hz" if "sample_rate" in info else ""
    print(f"{info['count']} samples loaded from {info['root']}{rate}")
    for item in info["skipped"]:
        print(f"  skipped {item['path']}: {item['reason']}")


def cmd_samples_build(args: argparse.Namespace) -> int:
    from .kit import build_kit, default_kit_dir, format_kit_report, kit_report

    out = Path(args.out).expanduser() if args.out else default_kit_dir(build=False)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} is a file, not a folder")
    try:
        files = build_kit(out, seed=args.seed)
    except OSError as exc:
        raise CliError(f"cannot write the kit to {out}: {exc.strerror or exc}") from None
    print(f"wrote {len(files)} one-shots to {out}")
    print(format_kit_report(kit_report(out)))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .loop import random_loop
    from .render import LoopBatch, Renderer, write_midi, write_wav

    bank = load_bank(args.samples)
    loop = random_loop(bank, args.seed, bpm=args.bpm, density=args.density)
    audio = Renderer(bank).listening(LoopBatch.from_loops([loop], bank), args.bpm)[0]
    try:
        write_wav(args.out, audio, bank.sample_rate)
    except (OSError, RuntimeError) as exc:  # soundfile reports a failed open as RuntimeError
        raise CliError(f"cannot write {args.out}: {exc}") from None
    print(f"wrote {args.out} ({audio.shape[0] / bank.sample_rate:.2f} s, {args.bpm:g} bpm)")
    for track, (name, row) in enumerate(zip(loop.samples, loop.to_dict()["grid"], strict=True)):
        print(f"  track {track + 1}: {row}  {name}")
    if args.midi:
        try:
            write_midi(args.midi, loop)
        except OSError as exc:
            raise CliError(f"cannot write {args.midi}: {exc.strerror or exc}") from None
        print(f"wrote {args.midi}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="deepdrummer-live",
        description="Find drum grooves you love: rate loops, and a critic learns your taste.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    samples = sub.add_parser("samples", help="inspect a sample folder or rebuild our kit")
    samples_sub = samples.add_subparsers(dest="samples_command", metavar="ACTION")
    samples_sub.required = True
    info = samples_sub.add_parser("info", help="load a folder of one-shots and report on it")
    info.add_argument("dir", nargs="?", help="folder of one-shots (default: our kit)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=cmd_samples_info)
    build = samples_sub.add_parser("build", help="regenerate our own drum kit")
    build.add_argument("--out", help="output folder (default: the kit folder)")
    build.add_argument("--seed", type=natural, default=0)
    build.set_defaults(handler=cmd_samples_build)

    render = sub.add_parser("render", help="render one random loop to WAV (and MIDI)")
    render.add_argument("--seed", type=natural, required=True)
    render.add_argument("--samples", help="folder of one-shots (default: our kit)")
    render.add_argument("--bpm", type=bpm_value, default=120.0)
    render.add_argument("--density", type=unit_float, default=0.25,
                        help="probability that a step plays (0–1)")
    render.add_argument("--out", type=output_file, required=True, help="WAV file to write")
    render.add_argument("--midi", type=output_file, help="also write this standard MIDI file")
    render.set_defaults(handler=cmd_render)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Subcommands kept beside what they drive: each `commands/<name>.py` has `register`."""
    from importlib import import_module

    from . import commands

    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__))
    return [import_module(f"{commands.__name__}.{name}").register for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None) or getattr(args, "func", None)
    if handler is None:  # a subcommand module that set neither: its help is the best answer
        parser.error(f"{args.command}: nothing to run")
    try:
        return int(handler(args) or 0)
    except CliError as exc:
        print(f"deepdrummer-live: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # run through the package, so its exception classes are the ones raised
    from deepdrummer_live.cli import main as package_main

    sys.exit(package_main())
