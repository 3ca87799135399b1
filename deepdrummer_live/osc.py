"""The OSC API (docs/osc-api.md): a dispatcher from addresses to engine calls, over UDP.

python-osc parses the datagrams; everything around it is ours, because its own servers let
`UnicodeDecodeError` and handler exceptions escape and log junk on the root logger. Here every
datagram is either answered or rejected with `/dd/error`, and logging about bad input is
rate-limited. Replies leave from the server's own socket.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from .engine import Engine, EngineBusy, HandedLoop
from .session import AlreadyRated, UnknownLoop

API_VERSION = "1"
MAX_DATAGRAM = 8192
BUNDLE_HEADER = 16  # "#bundle\0" and the time tag
RECEIVE_BUFFER = 4 * 1024 * 1024  # a 10,000-message burst fits (the default 208 KB does not)
log = logging.getLogger("deepdrummer_live.osc")

# Request address → argument types: required, then optional ones in brackets.
ADDRESSES: dict[str, str] = {
    "/dd/hello": "i[s]",
    "/dd/bye": "",
    "/dd/ping": "[i]",
    "/dd/next": "[i]",
    "/dd/get": "s[i]",
    "/dd/rate": "si",
    "/dd/status": "",
    "/dd/start_listen/status": "",
    "/dd/stop_listen/status": "",
    "/dd/start_listen/loop": "",
    "/dd/stop_listen/loop": "",
    "/dd/transport/bar": "i[f]",
    "/dd/lock": "iii",
    "/dd/fotf": "i",
    "/dd/render": "s",
}
REPLY_ADDRESSES = {"/dd/hello", "/dd/pong", "/dd/loop", "/dd/loop/track", "/dd/rated",
                   "/dd/status", "/dd/playing", "/dd/lock", "/dd/fotf", "/dd/render", "/dd/error"}
SLOW = {"/dd/next", "/dd/render"}  # answered from a worker so the socket keeps being read
SWITCH_INTERVAL = 0.0005  # s: how soon the receiving thread gets the GIL back


class OscRejected(Exception):
    """A request we answer with `/dd/error <address> <code> <message>`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Client:
    """A sender, keyed by its address; replies go to `reply_to`."""

    reply_to: tuple[str, int]
    name: str = ""
    status: bool = False
    loops: bool = False


def check_arguments(address: str, args: list) -> list:
    """Arguments of the right count and types for `address`, or OscRejected."""
    spec = ADDRESSES[address]
    required, _, optional = spec.partition("[")
    optional = optional.rstrip("]")
    if not len(required) <= len(args) <= len(required) + len(optional):
        raise OscRejected("bad_arguments", f"{address} takes {_describe(spec)}, got {len(args)}")
    out = []
    for i, (kind, value) in enumerate(zip(required + optional, args, strict=False)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind == "i" and isinstance(value, float) and value.is_integer():
            value = int(value)  # Max's [udpsend] may send a whole number as a float
        ok = (isinstance(value, str) if kind == "s" else
              number and isinstance(value, int) if kind == "i" else number)
        if not ok:
            raise OscRejected("bad_arguments",
                              f"{address} argument {i + 1} must be {_TYPE_NAMES[kind]}, "
                              f"got {type(value).__name__}")
        out.append(float(value) if kind == "f" else value)
    return out


_TYPE_NAMES = {"i": "an int", "f": "a float", "s": "a string"}


def _describe(spec: str) -> str:
    required, _, optional = spec.partition("[")
    optional = optional.rstrip("]")
    if not spec:
        return "no arguments"
    text = f"{len(required)} argument(s) ({required})" if required else "no required arguments"
    return text + (f" and optionally {optional}" if optional else "")


def message(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for value in args:
        builder.add_arg(value)
    return builder.build().dgram


def loop_bundles(handed: HandedLoop, request_id: int) -> list[bytes]:
    """`/dd/loop` then one `/dd/loop/track` per track, in one bundle: about 1 KB with usual
    sample paths. Paths long enough to push it past MAX_DATAGRAM (deep folders) split it into
    several bundles, in order, each under the limit, since some hosts drop larger UDP
    datagrams."""
    loop = handed.loop
    parts = [message("/dd/loop", request_id, handed.loop_id, float(handed.score),
                     float(loop.bpm), loop.steps, loop.tracks)]
    for track, row in enumerate(handed.velocities):
        parts.append(message("/dd/loop/track", handed.loop_id, track, handed.notes[track],
                             handed.sample_paths[track], *row))
    groups: list[list[bytes]] = [[]]
    size = BUNDLE_HEADER
    for part in parts:
        if groups[-1] and size + 4 + len(part) >= MAX_DATAGRAM:
            groups.append([])
            size = BUNDLE_HEADER
        groups[-1].append(part)
        size += 4 + len(part)
    return [bundle(group) for group in groups]


def bundle(messages: list[bytes]) -> bytes:
    """An OSC bundle, time tag "immediately", of prebuilt messages (python-osc's builder
    only takes its own message objects, and rebuilding them would cost a second encode)."""
    out = [b"#bundle\0", (1).to_bytes(8, "big")]  # time tag 1 = immediately
    for dgram in messages:
        out += [len(dgram).to_bytes(4, "big"), dgram]
    return b"".join(out)


class RateLimitedLog:
    """At most `per_second` log lines about bad input; the rest are counted, then summarised."""

    def __init__(self, per_second: float = 2.0) -> None:
        self.per_second = per_second
        self._last = 0.0
        self.suppressed = 0

    def warning(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last >= 1.0 / self.per_second:
            extra = f" ({self.suppressed} similar suppressed)" if self.suppressed else ""
            log.warning("%s%s", text, extra)
            self._last, self.suppressed = now, 0
        else:
            self.suppressed += 1


class OscServer:
    """Serves the engine over UDP until `close()`."""

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 9000) -> None:
        self.engine = engine
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.clients: dict[tuple[str, int], Client] = {}
        self.counts = {"received": 0, "answered": 0, "rejected": 0}
        self.bad_input = RateLimitedLog()
        self._clients_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="osc-worker")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_status: tuple | None = None
        self.handlers: dict[str, Callable[[tuple[str, int], list], list[bytes] | None]] = {
            "/dd/hello": self._hello, "/dd/bye": self._bye, "/dd/ping": self._ping,
            "/dd/next": self._next, "/dd/get": self._get, "/dd/rate": self._rate,
            "/dd/status": self._status,
            "/dd/start_listen/status": partial(self._listen, kind="status", on=True),
            "/dd/stop_listen/status": partial(self._listen, kind="status", on=False),
            "/dd/start_listen/loop": partial(self._listen, kind="loops", on=True),
            "/dd/stop_listen/loop": partial(self._listen, kind="loops", on=False),
            "/dd/transport/bar": self._transport_bar, "/dd/lock": self._lock,
            "/dd/fotf": self._fotf, "/dd/render": self._render,
        }
        assert set(self.handlers) == set(ADDRESSES)
        engine.on_playing(self._push_playing)

    # -- running -------------------------------------------------------------------------
    def start(self) -> OscServer:
        # Training and sampling threads hold the GIL between torch ops; by default a waiting
        # thread asks for it only after 5 ms, which alone would blow the reply budget.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        loops = ((self.serve_forever, "osc-receive"), (self._watch_status, "osc-status"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self.counts["received"] += 1
            try:
                self.handle_datagram(data, sender)
            except Exception:  # never let one datagram stop the server
                log.exception("internal error handling a datagram from %s", sender)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._workers.shutdown(wait=True, cancel_futures=True)
        self.sock.close()

    # -- dispatch ------------------------------------------------------------------------
    def handle_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as exc:  # ParseError, UnicodeDecodeError, struct errors, …
            self._reject(sender, "", "malformed", f"not a valid OSC packet: {_short(exc)}")
            return
        for msg in messages:
            address = msg.address
            if address not in self.handlers:
                self._reject(sender, address, "unknown_address",
                             f"unknown address {address!r}; see docs/osc-api.md")
                continue
            try:
                args = check_arguments(address, list(msg.params))
            except OscRejected as exc:
                self._reject(sender, address, exc.code, str(exc))
                continue
            if address in SLOW:
                self._workers.submit(self._run, address, sender, args)
            else:
                self._run(address, sender, args)

    def _run(self, address: str, sender: tuple[str, int], args: list) -> None:
        try:
            replies = self.handlers[address](sender, args) or []
        except OscRejected as exc:
            self._reject(sender, address, exc.code, str(exc))
            return
        except Exception as exc:
            log.exception("internal error in %s", address)
            self._reject(sender, address, "internal", _short(exc))
            return
        self.counts["answered"] += 1
        for reply in replies:
            self._send(reply, self._reply_to(sender))

    def _reject(self, sender: tuple[str, int], address: str, code: str, text: str) -> None:
        self.counts["rejected"] += 1
        self.bad_input.warning(f"rejected {address or 'datagram'} from {sender[0]}: {code}: {text}")
        self._send(message("/dd/error", address, code, text[:500]), self._reply_to(sender))

    def _send(self, dgram: bytes, target: tuple[str, int]) -> None:
        try:
            with self._send_lock:
                self.sock.sendto(dgram, target)
        except OSError as exc:
            self.bad_input.warning(f"cannot reply to {target}: {exc}")

    def _reply_to(self, sender: tuple[str, int]) -> tuple[str, int]:
        client = self.clients.get(sender)
        return client.reply_to if client else sender

    def _client(self, sender: tuple[str, int]) -> Client:
        with self._clients_lock:
            return self.clients.setdefault(sender, Client(sender))

    # -- handlers ------------------------------------------------------------------------
    def _hello(self, sender, args):
        port = args[0]
        if not 1 <= port <= 65535:
            raise OscRejected("out_of_range", f"reply port {port} is not within 1–65535")
        client = self._client(sender)
        client.reply_to = (sender[0], port)
        client.name = args[1] if len(args) > 1 else ""
        return [message("/dd/hello", API_VERSION, self.engine.session.name)]

    def _bye(self, sender, args):
        with self._clients_lock:
            self.clients.pop(sender, None)

    def _ping(self, sender, args):
        return [message("/dd/pong", *args)]

    def _next(self, sender, args):
        try:
            handed = self.engine.next_loop()
        except EngineBusy as exc:
            raise OscRejected("busy", str(exc)) from None
        return loop_bundles(handed, args[0] if args else 0)

    def _get(self, sender, args):
        try:
            handed = self.engine.handed_loop(args[0])
        except UnknownLoop:
            raise OscRejected("unknown_loop", f"no loop {args[0]!r} was handed out") from None
        return loop_bundles(handed, args[1] if len(args) > 1 else 0)

    def _rate(self, sender, args):
        loop_id, like = args
        if like not in (0, 1):
            raise OscRejected("out_of_range", f"like must be 1 or 0, got {like}")
        try:
            n, likes = self.engine.rate(loop_id, bool(like), source="osc")
        except UnknownLoop:
            raise OscRejected("unknown_loop", f"no loop {loop_id!r} was handed out") from None
        except AlreadyRated:
            raise OscRejected("already_rated", f"loop {loop_id} was already rated") from None
        return [message("/dd/rated", loop_id, n, likes)]

    def _status_message(self) -> bytes:
        s = self.engine.status()
        return message("/dd/status", s.n_ratings, s.queue_depth, int(s.training),
                       s.critic_version, s.device)

    def _status(self, sender, args):
        return [self._status_message()]

    def _listen(self, sender, args, kind: str, on: bool):
        setattr(self._client(sender), kind, on)
        return [self._status_message()] if on and kind == "status" else []

    def _transport_bar(self, sender, args):
        bar = args[0]
        bpm = args[1] if len(args) > 1 else None
        if bar < 0:
            raise OscRejected("out_of_range", f"bar must be ≥ 0, got {bar}")
        if bpm is not None and not 20 <= bpm <= 400:
            raise OscRejected("out_of_range", f"bpm must be within 20–400, got {bpm:g}")
        self.engine.set_transport(bar, bpm)

    def _lock(self, sender, args):
        track, grid, sample = args
        if not 0 <= track < self.engine.tracks:
            raise OscRejected("out_of_range",
                              f"track must be within 0–{self.engine.tracks - 1}, got {track}")
        if grid not in (0, 1) or sample not in (0, 1):
            raise OscRejected("out_of_range", "grid and sample must be 1 or 0")
        self.engine.lock(track, bool(grid), bool(sample))
        return [message("/dd/lock", track, grid, sample)]

    def _fotf(self, sender, args):
        if args[0] not in (0, 1):
            raise OscRejected("out_of_range", f"on must be 1 or 0, got {args[0]}")
        self.engine.set_four_on_the_floor(bool(args[0]))
        return [message("/dd/fotf", args[0])]

    def _render(self, sender, args):
        try:
            path = self.engine.render(args[0])
        except UnknownLoop:
            raise OscRejected("unknown_loop", f"no loop {args[0]!r} was handed out") from None
        return [message("/dd/render", args[0], str(path))]

    # -- pushes --------------------------------------------------------------------------
    def _watch_status(self) -> None:
        while not self._stop.wait(0.1):
            try:
                s = self.engine.status()
            except Exception:
                continue
            key = (s.n_ratings, s.queue_depth, s.training, s.critic_version)
            if key == self._last_status:
                continue
            self._last_status = key
            listeners = [c.reply_to for c in list(self.clients.values()) if c.status]
            if listeners:
                dgram = self._status_message()
                for target in listeners:
                    self._send(dgram, target)

    def _push_playing(self, handed: HandedLoop, bar: int) -> None:
        listeners = [c.reply_to for c in list(self.clients.values()) if c.loops]
        if not listeners:
            return
        dgrams = [message("/dd/playing", handed.loop_id, bar), *loop_bundles(handed, -1)]
        for target in listeners:
            for dgram in dgrams:
                self._send(dgram, target)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
