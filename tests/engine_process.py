"""Run `deepdrummer-live serve` in a subprocess, as a user would, for tests over real UDP."""

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


class EngineProcess:
    """`serve` on a free port; `.port` once it listens; `.kill()` / `.stop()` to end it."""

    def __init__(self, session: Path, cache: Path, samples: Path = PAPER_LIBRARY,
                 extra: list[str] | None = None) -> None:
        env = dict(os.environ, DEEPDRUMMER_CACHE=str(cache), PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "deepdrummer_live", "serve", "--osc-port", "0",
               "--session", str(session), "--samples", str(samples), *(extra or [])]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, cwd=REPO)
        self.lines: list[str] = []
        self.port = self._wait_for_port()

    def _wait_for_port(self, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("engine exited early:\n" + "".join(self.lines))
            self.lines.append(line)
            found = re.search(r"listening for OSC on [\d.]+:(\d+)", line)
            if found:
                return int(found.group(1))
        raise TimeoutError("engine did not start:\n" + "".join(self.lines))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> str:
        """SIGTERM, as a service manager would; returns the rest of its output."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out or "")
        return "".join(self.lines)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
