"""`deepdrummer-live m4l build [--out PATH]`: write the Max for Live devices from their sources.

The devices are generated (deepdrummer_live/m4l.py writes every box and cord), so the committed
`max_for_live/DeepDrummer.amxd` is a build product: edit the sources, then run this. `m4l check`
says whether the committed devices match their sources (CI runs it through tests/test_m4l.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import CliError


def run(args: argparse.Namespace) -> int:
    from .. import m4l

    if args.action == "check":
        stale = m4l.stale_devices(Path(args.out) if args.out else None)
        if stale:
            raise CliError("out of date (run `deepdrummer-live m4l build`): "
                           + ", ".join(str(p) for p in stale))
        print("the devices match their sources")
        return 0
    out = Path(args.out).expanduser() if args.out else None
    if out is not None and out.exists() and not out.is_dir() and out.suffix != ".amxd":
        raise CliError(f"--out {out} is neither a folder nor an .amxd file")
    try:
        written = m4l.build_device(out)
    except (OSError, FileNotFoundError) as exc:
        raise CliError(f"cannot write the device: {exc}") from None
    sampler = written.parent / m4l.SAMPLER_NAME
    print(f"wrote {written}")
    print(f"wrote {sampler}")
    print(f"beside them: {', '.join(m4l.JS_FILES)} (the devices load them at run time)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("m4l", help="build the Max for Live devices (max_for_live/)")
    parser.add_argument("action", choices=["build", "check"],
                        help="build: write the .amxd files; check: are they up to date?")
    parser.add_argument("--out", help="folder or .amxd path (default: max_for_live/ in the "
                        "repository)")
    parser.set_defaults(handler=run)
