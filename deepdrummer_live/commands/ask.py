"""`deepdrummer-live ask next|rate|status`: a quick look at a running engine from a shell."""

from __future__ import annotations

import argparse
import json

from ..cli import CliError


def run(args: argparse.Namespace) -> int:
    from ..client import EngineClient, EngineError

    with EngineClient(args.host, args.osc_port, timeout=args.timeout) as client:
        try:
            if args.what == "next":
                reply = client.next()
                result = vars(reply)
            elif args.what == "rate":
                if args.loop_id is None or args.verdict is None:
                    raise CliError("usage: ask rate LOOP_ID like|dislike")
                n, likes = client.rate(args.loop_id, args.verdict == "like")
                result = {"loop_id": args.loop_id, "n_ratings": n, "n_likes": likes}
            else:
                result = client.status()
        except TimeoutError:
            raise CliError(f"no answer from an engine at {args.host}:{args.osc_port}; "
                           "start one with `deepdrummer-live serve`") from None
        except EngineError as exc:
            raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ask", help="ask a running engine: next, rate or status")
    parser.add_argument("what", choices=["next", "rate", "status"])
    parser.add_argument("loop_id", nargs="?", help="for rate: the loop's id")
    parser.add_argument("verdict", nargs="?", choices=["like", "dislike"], help="for rate")
    parser.add_argument("--osc-port", type=int, default=9000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=run)
