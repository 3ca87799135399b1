"""`deepdrummer-live serve`: the engine in the background, driven over OSC (and playing)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from ..cli import CliError, bpm_value, load_bank

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def sessions_root() -> Path:
    default = Path.home() / ".local" / "share" / "deepdrummer-live"
    base = os.environ.get("DEEPDRUMMER_HOME") or default
    return Path(base) / "sessions"


def session_folder(name_or_dir: str) -> Path:
    """A bare name is a session under the sessions folder; anything path-like is a folder."""
    if os.sep in name_or_dir or "/" in name_or_dir or name_or_dir.startswith("."):
        return Path(name_or_dir).expanduser()
    if not name_or_dir.replace("-", "").replace("_", "").isalnum():
        raise CliError(f"session name {name_or_dir!r}: use letters, digits, - and _ only")
    return sessions_root() / name_or_dir


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs an engine (serve, play, web)."""
    parser.add_argument("--session", default="default",
                        help="session name or folder (resumed if it exists; default: default)")
    parser.add_argument("--samples", help="folder of one-shots (default: our own kit)")
    parser.add_argument("--preset", default="default", help="learner preset: default or paper")
    parser.add_argument("--device", help="torch device (default: cuda, then mps, then cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bpm", type=bpm_value, default=120.0)


def open_engine(args: argparse.Namespace):
    """Build and start an engine from the shared options, with clear errors."""
    from ..engine import Engine
    from ..learner import PRESETS
    from ..session import Session
    from ..worker import WorkerError

    if args.preset not in PRESETS:
        raise CliError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    folder = session_folder(args.session)
    resumed = (folder / "session.sqlite").exists()
    bank = load_bank(args.samples)
    for item in bank.skipped:
        print(f"skipped sample {item['path']}: {item['reason']}")
    try:
        session = Session(folder)
    except Exception as exc:
        raise CliError(f"cannot open session {folder}: {exc}") from None
    try:
        engine = Engine(session, bank, preset=args.preset, device=args.device, seed=args.seed)
    except WorkerError as exc:  # e.g. an unknown --device; every stored rating is untouched
        session.close()
        raise CliError(f"{exc} (check --device: cpu, cuda or mps)") from None
    engine.bpm = args.bpm
    n, likes = session.counts()
    verb = "resumed" if resumed else "new"
    print(f"session {session.name} ({verb}): {n} ratings, {likes} liked — {folder}")
    print(f"{len(bank)} samples from {bank.root}; critic on {engine.device}")
    return engine


def wait_for_shutdown() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM, so the caller can shut down in order."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def warn_if_public(host: str, who: str) -> None:
    """Listening beyond loopback was asked for explicitly; say so, loudly, once."""
    if host not in LOOPBACK:
        logging.getLogger("deepdrummer_live").warning(
            "listening on %s: anyone on that network can %s", host, who)
        print(f"WARNING: listening on {host}, not only on this computer (127.0.0.1)")


def run(args: argparse.Namespace) -> int:
    from ..osc import OscServer

    warn_if_public(args.host, "send ratings to this engine")
    stop = wait_for_shutdown()
    engine = open_engine(args)
    try:
        server = OscServer(engine, args.host, args.osc_port).start()
    except OSError as exc:
        engine.close()
        raise CliError(f"cannot listen on {args.host}:{args.osc_port} ({exc.strerror}); is "
                       "another engine running? Choose another port with --osc-port") from None
    try:
        players = start_players(engine, args)
    except CliError:
        server.close()
        engine.close()
        raise
    host, port = server.address[:2]
    print(f"listening for OSC on {host}:{port} (API v1, see docs/osc-api.md); Ctrl-C stops",
          flush=True)
    stop.wait()
    print("stopping: saving the critic…", flush=True)
    for player in players:
        player.close()
    server.close()
    engine.close()
    print("stopped; every rating is saved", flush=True)
    return 0


def start_players(engine, args: argparse.Namespace) -> list:
    """MIDI / audio / controller bridges asked for on the command line (see `play`)."""
    try:
        from .play import start_bridges
    except ImportError:
        return []
    return start_bridges(engine, args)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the engine and its OSC API (for a DAW or Max)")
    add_engine_arguments(parser)
    parser.add_argument("--osc-port", type=int, default=9000)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this computer only)")
    try:
        from .play import add_player_arguments
    except ImportError:
        pass
    else:
        add_player_arguments(parser)
    parser.set_defaults(handler=run)
