"""A small OSC client for the engine: used by the tests, `deepdrummer-live ask` and tools."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket


class EngineError(Exception):
    """The engine answered `/dd/error <address> <code> <message>`."""

    def __init__(self, address: str, code: str, text: str) -> None:
        super().__init__(f"{address}: {code}: {text}")
        self.address, self.code, self.text = address, code, text


@dataclass
class LoopReply:
    request_id: int
    loop_id: str
    score: float
    bpm: float
    steps: int
    tracks: int
    notes: list[int] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    velocities: list[list[int]] = field(default_factory=list)


def encode(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for value in args:
        builder.add_arg(value)
    return builder.build().dgram


class EngineClient:
    """Talks to `deepdrummer-live serve` over UDP; replies come back to this socket."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, timeout: float = 5.0) -> None:
        self.target = (host, port)
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if host in ("127.0.0.1", "localhost") else "", 0))
        self._pending: list[tuple[str, list]] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, address: str, *args) -> None:
        self.sock.sendto(encode(address, *args), self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def receive(self, timeout: float | None = None) -> list[tuple[str, list]]:
        """The messages of the next datagram (a bundle's messages in order)."""
        if self._pending:
            pending, self._pending = self._pending, []
            return pending
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data, _ = self.sock.recvfrom(65536)
        return [(m.message.address, list(m.message.params)) for m in OscPacket(data).messages]

    def expect(self, address: str, timeout: float | None = None) -> list:
        """Wait for a message at `address` (raising EngineError on `/dd/error`)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {address} reply from {self.target}")
            messages = self.receive(remaining)
            for i, (addr, args) in enumerate(messages):
                if addr == "/dd/error":
                    raise EngineError(*args)
                if addr == address:
                    self._pending = messages[i + 1:]
                    return args

    def request(self, address: str, *args, reply: str | None = None) -> list:
        self.send(address, *args)
        return self.expect(reply or address)

    def hello(self, reply_port: int | None = None, name: str = "python") -> list:
        port = reply_port or self.sock.getsockname()[1]
        return self.request("/dd/hello", port, name)

    def ping(self, token: int = 0) -> list:
        return self.request("/dd/ping", token, reply="/dd/pong")

    def next(self, request_id: int = 0, patience: float | None = None) -> LoopReply:
        """The next loop. A `busy` answer (no loop ready yet, e.g. right after start on a slow
        machine) is retried until `patience` seconds (default: the client's timeout) pass."""
        deadline = time.monotonic() + (self.timeout if patience is None else patience)
        while True:
            self.send("/dd/next", request_id)
            try:
                head = self.expect("/dd/loop")
                break
            except EngineError as exc:
                if exc.code != "busy" or time.monotonic() > deadline:
                    raise
        reply = LoopReply(*head)
        for _ in range(reply.tracks):
            _, track, note, sample, *velocities = self.expect("/dd/loop/track")
            reply.notes.append(note)
            reply.samples.append(sample)
            reply.velocities.append(velocities)
        return reply

    def rate(self, loop_id: str, like: bool) -> tuple[int, int]:
        _, n, likes = self.request("/dd/rate", loop_id, int(like), reply="/dd/rated")
        return n, likes

    def status(self) -> dict:
        n, depth, training, version, device = self.request("/dd/status")
        return {"n_ratings": n, "queue_depth": depth, "training": bool(training),
                "critic_version": version, "device": device}
