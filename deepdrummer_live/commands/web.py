"""`deepdrummer-live web`: the browser interface (free mode, or a study with `--study`)."""

from __future__ import annotations

import argparse

from ..cli import CliError, preset_overrides
from .serve import (
    add_engine_arguments,
    open_engine,
    session_folder,
    wait_for_shutdown,
    warn_if_public,
)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def even_int(text: str) -> int:
    value = positive_int(text)
    if value % 2:
        raise argparse.ArgumentTypeError(
            f"Phase II is half from the initial critic, half from the final one: {text} is odd")
    return value


def run(args: argparse.Namespace) -> int:
    from ..web import WebServer, create_app

    warn_if_public(args.host, "rate loops in this web interface")
    if args.set and not args.study:
        raise CliError("--set changes the preset of a study only (use it with --study)")
    try:
        server = WebServer(args.host, args.port)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); is "
                       "another one running? Choose another port with --port") from None
    engine = study = None
    try:
        stop = wait_for_shutdown()
        if args.study:
            study = open_study(args)
        else:
            engine = open_engine(args)
        server.start(create_app(engine, study))
        page = "study" if study else ""
        print(f"open {server.url}{page} in a browser; Ctrl-C stops", flush=True)
        stop.wait()
        print("stopping: saving…", flush=True)
    finally:
        server.stop()
        if study is not None:
            study.close()
        if engine is not None:
            engine.close()
    print("stopped; every rating is saved", flush=True)
    return 0


def open_study(args: argparse.Namespace):
    """The study folder (one session per participant inside it) and the shared sample bank."""
    from ..cli import load_bank
    from ..learner import PRESETS
    from ..web import StudyBusy, StudyMode

    if args.preset not in PRESETS:
        raise CliError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    preset, _ = preset_overrides(args.set, PRESETS[args.preset])
    folder = session_folder(args.study)
    bank = load_bank(args.samples)
    try:
        study = StudyMode(folder, bank, preset=preset, device=args.device, seed=args.seed,
                          phase1=args.phase1, phase2=args.phase2, bpm=args.bpm)
    except StudyBusy as exc:
        raise CliError(f"{exc}; stop that one first (one server per study)") from None
    print(f"study {folder.name}: {study.n_participants()} participants so far — {folder}")
    print(f"{len(bank)} samples from {bank.root}; Phase I {args.phase1} loops, "
          f"Phase II {args.phase2} loops")
    return study


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("web", help="the browser interface: free mode, or a study (--study)")
    add_engine_arguments(parser)
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080; 0: any)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--study", metavar="NAME",
                        help="run the paper's study instead of free mode; participants' sessions "
                             "go in this study folder (a name or a path)")
    parser.add_argument("--phase1", type=positive_int, default=80,
                        help="study: Phase I length (default 80, as in the paper)")
    parser.add_argument("--phase2", type=even_int, default=60,
                        help="study: Phase II length, half per critic (default 60)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="study: change one setting of the preset, e.g. --set "
                             "threshold_budget=500 (see learner.Preset; repeatable)")
    parser.set_defaults(handler=run)
