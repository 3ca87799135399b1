"""Child processes that keep work away from the engine's GIL (the learner, the MIDI clock).

Spawned, never forked: forking a process that runs torch threads is unsafe. The child's
first message on the pipe says it is ready, or `("error", why)`; the parent waits for it, so a
child that cannot start fails the caller's start with that reason.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


class ChildStartError(RuntimeError):
    """A child process did not start; the message says which one and why."""


def spawn(target: Callable[[Any, Any], None], spec: Any, name: str, what: str,
          timeout: float) -> tuple[Any, Any, tuple]:
    """Start `target(conn, spec)` in a daemon process called `name` and wait up to `timeout` s
    for its first message. Returns (process, the parent's end of the pipe, that message)."""
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    process = context.Process(target=target, args=(child, spec), name=name, daemon=True)
    process.start()
    child.close()
    try:
        if not conn.poll(timeout):
            process.kill()
            raise ChildStartError(f"{what} did not start in time")
        message = conn.recv()
    except EOFError:
        raise ChildStartError(f"{what} died while starting") from None
    if message[0] == "error":
        process.join(5)
        raise ChildStartError(message[1])
    return process, conn, message
