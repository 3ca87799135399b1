"""Start and stop a JACK server with the dummy backend, from the project's own code.

Why: on a machine without a sound card (CI, a headless box, a container) ALSA cannot work, but
a JACK server with the `dummy` backend gives real MIDI and real audio ports that python-rtmidi
and sounddevice can use. The live tests, the MIDI timing benchmark and users without hardware
(`python -m deepdrummer_live.jackd`) all bring one up the same way:

    jackd -R -P 70 -S --port-max 128 -n NAME -d dummy -r 48000 -p 256 -C 2 -P 2

- `-S` (synchronous): without it a busy 2-core box loses or duplicates MIDI events;
- `-R -P 70` (real-time scheduling): measured on a loaded 2-core box, a server without it is
  starved by torch threads and delivers MIDI up to 350 ms late; where real-time scheduling is
  not allowed, `start()` falls back to `-r` (no realtime: no rtprio/memlock errors);
- `--port-max 128` (before `-d`): keeps the shared memory at ~42 MB, under Docker's 64 MB /dev/shm;
- a unique server name, `JACK_NO_START_SERVER=1` (a client must never spawn `jackd -d alsa`)
  and `JACK_NO_AUDIO_RESERVATION=1` (no dbus device reservation).

Shutdown order matters: every client (rtmidi ports, PortAudio, recorders) must be closed
before the server gets SIGTERM, or a synchronous server hangs. `JackServer.stop` terminates
PortAudio if sounddevice is loaded, then sends TERM, waits up to 10 s, and only then KILLs
and waits for the process to be gone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_RATE = 48000
DEFAULT_PERIOD = 256
DEFAULT_PORT_MAX = 128
RT_PRIORITY = 70
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
ENV_KEYS = ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER", "JACK_NO_AUDIO_RESERVATION")


class JackError(RuntimeError):
    """The JACK server could not be found, started or stopped; the message says why."""


def find_jackd() -> str | None:
    """Path of the `jackd` binary, or None (Debian/Ubuntu: `apt-get install jackd2`)."""
    return shutil.which("jackd")


def default_server_name() -> str:
    """The server a JACK client connects to when it names none."""
    return os.environ.get("JACK_DEFAULT_SERVER") or "default"


def _socket_paths(name: str) -> list[Path]:
    """Where jackd2 puts its server socket (JACK_TMP_DIR is /dev/shm on Linux, else /tmp)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return [Path(base) / f"jack_{name}_{uid}_0" for base in ("/dev/shm", "/tmp")]


def jack_server_running(name: str | None = None) -> bool:
    """True if a JACK server called `name` (default: $JACK_DEFAULT_SERVER) accepts clients.

    Checks the server socket first, so that machines without JACK pay nothing and print no
    libjack noise, then confirms by opening (and closing) a real JACK MIDI client.
    """
    if sys.platform != "linux":
        return False
    name = name or default_server_name()
    if not any(p.exists() for p in _socket_paths(name)):
        return False
    return _probe_client(name)


def _probe_client(name: str) -> bool:
    try:
        import rtmidi
    except ImportError:  # pragma: no cover - python-rtmidi is a dependency
        return False
    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        return False
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    try:
        probe = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="DeepDrummer-probe")
    except Exception:
        return False
    else:
        probe.delete()  # explicit: a lingering client stalls a synchronous server for ~5 s
        return True
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class JackServer:
    """One `jackd` process with the dummy backend, owned by this Python process.

    `start()` launches it under a unique name and, with `set_env=True`, points this process's
    JACK clients at it (JACK_DEFAULT_SERVER etc.); `stop()` shuts it down and restores the
    environment. Use it as a context manager, and close every client before it exits.
    """

    def __init__(self, name: str | None = None, rate: int = DEFAULT_RATE,
                 period: int = DEFAULT_PERIOD, sync: bool = True,
                 port_max: int = DEFAULT_PORT_MAX, channels: int = 2,
                 log_path: str | Path | None = None, set_env: bool = True,
                 realtime: bool | None = None) -> None:
        self.name = name or f"deepdrummer-{os.getpid()}-{secrets.token_hex(3)}"
        self.rate = rate
        self.period = period
        self.sync = sync
        self.port_max = port_max
        self.channels = channels
        self.set_env = set_env
        self.realtime = realtime  # None: try real-time first, fall back to -r
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self._log_handle = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def period_seconds(self) -> float:
        """One JACK cycle: MIDI and audio are delivered in whole periods."""
        return self.period / self.rate

    def command(self, jackd: str = "jackd") -> list[str]:
        """The exact command line (options before `-d`, backend options after it)."""
        cmd = [jackd, "-R", "-P", str(RT_PRIORITY)] if self.realtime else [jackd, "-r"]
        if self.sync:
            cmd.append("-S")
        cmd += ["--port-max", str(self.port_max), "-n", self.name, "-d", "dummy",
                "-r", str(self.rate), "-p", str(self.period),
                "-C", str(self.channels), "-P", str(self.channels)]
        return cmd

    def env(self) -> dict[str, str]:
        """Environment for any JACK client (or child process) that must use this server."""
        return {"JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1",
                "JACK_NO_AUDIO_RESERVATION": "1"}

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> JackServer:
        """Launch jackd and wait until it accepts clients. Raises JackError on failure."""
        if self.running:
            return self
        jackd = find_jackd()
        if jackd is None:
            raise JackError("jackd is not installed (Debian/Ubuntu: apt-get install jackd2)")
        self._wait_name_free(timeout)
        if self.realtime is None:
            self.realtime = True
            try:
                return self._start(jackd, timeout)
            except JackError:
                self.realtime = False  # no right to real-time scheduling here
        return self._start(jackd, timeout)

    def _start(self, jackd: str, timeout: float) -> JackServer:
        if self.log_path is None:
            handle = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log",
                                                 delete=False)
            self.log_path = Path(handle.name)
            handle.close()
        if self._log_handle is not None:
            self._log_handle.close()
        self._log_handle = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, **self.env()}
        self.process = subprocess.Popen(
            self.command(jackd), stdin=subprocess.DEVNULL, stdout=self._log_handle,
            stderr=subprocess.STDOUT, env=env,
            start_new_session=True)  # Ctrl-C must not kill it before its clients are closed
        try:
            self._wait_ready(timeout, env)
        except BaseException:
            self._terminate(STOP_TIMEOUT)
            raise
        if self.set_env:
            self._saved_env = {k: os.environ.get(k) for k in ENV_KEYS}
            os.environ.update(self.env())
        return self

    def _wait_ready(self, timeout: float, env: dict[str, str]) -> None:
        deadline = time.monotonic() + timeout
        jack_wait = shutil.which("jack_wait")
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise JackError(f"jackd exited at start (code "
                                f"{self.process.returncode if self.process else '?'}): "
                                f"{self.log_tail()}")
            if jack_wait:
                left = max(1, int(deadline - time.monotonic()))
                with contextlib.suppress(subprocess.TimeoutExpired):
                    result = subprocess.run(
                        [jack_wait, "-s", self.name, "-c"], env=env, capture_output=True,
                        text=True, stdin=subprocess.DEVNULL, timeout=left)
                    # jack_wait -c exits 0 either way: the word "running" is the answer
                    if "running" in result.stdout and "not running" not in result.stdout:
                        return
            elif any(p.exists() for p in _socket_paths(self.name)):
                return
            time.sleep(0.1)
        raise JackError(f"jackd did not become ready within {timeout:.0f} s: {self.log_tail()}")

    def _wait_name_free(self, timeout: float) -> None:
        """After a SIGKILL the old server's pid may linger: never start a twin under its name."""
        deadline = time.monotonic() + timeout
        while jack_server_running(self.name):
            if time.monotonic() > deadline:
                raise JackError(f"a JACK server called {self.name!r} is already running")
            time.sleep(0.1)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut the server down: PortAudio's client first, then TERM, then KILL if it hangs."""
        if self.set_env and self._saved_env:
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved_env = {}
        if self.process is not None:
            release_portaudio()
            self._terminate(timeout)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def _terminate(self, timeout: float) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()  # the pid must be gone before a server of this name restarts
        self.process = None

    def log_tail(self, chars: int = 1500) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace")
        return text[-chars:].strip() or "(empty log)"

    def __enter__(self) -> JackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def release_portaudio() -> None:
    """Close PortAudio's JACK client (it lives until Pa_Terminate, not until stream.close()).

    Why: a client still connected to a synchronous server makes jackd hang on SIGTERM. Only
    acts if sounddevice is already imported; `deepdrummer_live.audio.refresh_devices()`
    re-initialises PortAudio later if needed.
    """
    sd = sys.modules.get("sounddevice")
    if sd is None:
        return
    with contextlib.suppress(Exception):
        while sd._initialized > 0:  # sounddevice counts nested initialisations
            sd._terminate()


def main(argv: list[str] | None = None) -> int:
    """`python -m deepdrummer_live.jackd`: run a dummy JACK server until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m deepdrummer_live.jackd",
        description="Run a JACK server with the dummy backend (no sound card needed), so that "
                    "DeepDrummer's MIDI and audio ports work on a headless Linux machine.")
    parser.add_argument("--name", default=None, help="server name (default: a unique one)")
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE)
    parser.add_argument("--period", type=int, default=DEFAULT_PERIOD)
    parser.add_argument("--async", dest="sync", action="store_false",
                        help="asynchronous mode (not recommended: MIDI events can be lost)")
    parser.add_argument("--no-realtime", dest="realtime", action="store_const", const=False,
                        default=None, help="never ask for real-time scheduling (-r)")
    args = parser.parse_args(argv)
    server = JackServer(args.name, args.rate, args.period, args.sync, set_env=False,
                        realtime=args.realtime)
    try:
        server.start()
    except JackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"JACK server {server.name!r} running (pid {server.pid}, log {server.log_path}).")
    print("In another shell:")
    for key, value in server.env().items():
        print(f"  export {key}={value}")
    print("Ctrl-C stops it (close DeepDrummer first).", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # TERM stops it cleanly too
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
