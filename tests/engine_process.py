"""Run `deepdrummer-live` commands in a subprocess, as a user would, for tests over real
sockets: `serve` (OSC over UDP) and `web` (HTTP) share the starting, waiting and stopping."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAPER_LIBRARY = REPO.parent / "shared" / "samples" / "deepdrummer-paper"


class CommandProcess:
    """`deepdrummer-live ARGS` in a subprocess; returns once a line matches `ready`, whose
    first group is kept in `.ready` (the port or URL it printed)."""

    def __init__(self, args: list[str], ready: str, env: dict[str, str] | None = None,
                 timeout: float = 120.0) -> None:
        self.name = args[0]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "deepdrummer_live", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, cwd=REPO)
        self.lines: list[str] = []
        self.ready = self._wait_for(ready, timeout)

    def _wait_for(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} exited early:\n" + "".join(self.lines))
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found.group(1)
        raise TimeoutError(f"{self.name} did not start:\n" + "".join(self.lines))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> str:
        """SIGTERM, as a service manager would; returns everything it printed."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.lines.append(out or "")
        return "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL: a crash or a power cut, with no chance to save anything."""
        self.proc.kill()
        self.proc.communicate(timeout=30)


class EngineProcess(CommandProcess):
    """`serve` on a free port; `.port` once it listens."""

    def __init__(self, session: Path, cache: Path, samples: Path = PAPER_LIBRARY,
                 extra: list[str] | None = None) -> None:
        super().__init__(["serve", "--osc-port", "0", "--session", str(session),
                          "--samples", str(samples), *(extra or [])],
                         r"listening for OSC on [\d.]+:(\d+)", {"DEEPDRUMMER_CACHE": str(cache)})
        self.port = int(self.ready)
