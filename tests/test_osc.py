"""The OSC API over real UDP on 127.0.0.1, with the engine in a subprocess."""

from __future__ import annotations

import random
import socket
import struct

import pytest

from deepdrummer_live.client import EngineClient, EngineError, encode
from deepdrummer_live.osc import ADDRESSES, REPLY_ADDRESSES

from .engine_process import PAPER_LIBRARY, EngineProcess

pytestmark = pytest.mark.skipif(not PAPER_LIBRARY.is_dir(), reason="needs ../shared samples")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("osc")
    process = EngineProcess(root / "session", root / "cache")
    yield process
    process.stop()


@pytest.fixture
def client(engine):
    with EngineClient(port=engine.port, timeout=10) as c:
        yield c


def test_hello_next_rate_status(client):
    version, session = client.hello(name="test")
    assert version == "1" and session == "session"
    before = client.status()["n_ratings"]
    loop = client.next(request_id=42)
    assert loop.request_id == 42 and len(loop.loop_id) == 12
    assert 0.0 <= loop.score <= 1.0 and loop.steps == 16 and loop.tracks == 4
    assert all(len(v) == 16 and set(v) <= {0, 100} for v in loop.velocities)
    assert all(35 <= note <= 81 for note in loop.notes)
    assert client.rate(loop.loop_id, True)[0] == before + 1
    status = client.status()
    assert status["n_ratings"] == before + 1 and status["device"] in ("cpu", "cuda", "mps")


@pytest.mark.parametrize("address,args,code", [
    ("/dd/nope", [], "unknown_address"),
    ("/dd/rate", ["abc"], "bad_arguments"),
    ("/dd/rate", [1, 1], "bad_arguments"),
    ("/dd/fotf", [0.5], "bad_arguments"),
    ("/dd/rate", ["0123456789ab", 1], "unknown_loop"),
    ("/dd/lock", [7, 1, 1], "out_of_range"),
    ("/dd/fotf", [3], "out_of_range"),
    ("/dd/hello", [70000], "out_of_range"),
    ("/dd/transport/bar", [1, 1000.0], "out_of_range"),
    ("/dd/render", ["ffffffffffff"], "unknown_loop"),
])
def test_bad_requests_get_a_clear_error(client, address, args, code):
    with pytest.raises(EngineError) as error:
        client.request(address, *args)
    assert error.value.address == address and error.value.code == code
    assert error.value.text


def test_whole_floats_are_taken_as_ints(client):
    """Max may send whole numbers as floats: 1.0 is an int, 0.5 is not (see above)."""
    assert client.request("/dd/lock", 1.0, 0.0, 0.0) == [1, 0, 0]


def test_a_loop_rated_twice_keeps_the_first_rating(client):
    loop = client.next()
    n, _ = client.rate(loop.loop_id, False)
    with pytest.raises(EngineError) as error:
        client.rate(loop.loop_id, True)
    assert error.value.code == "already_rated"
    assert client.status()["n_ratings"] == n


def test_lock_fotf_transport_and_render(client, tmp_path):
    first = client.next()
    assert client.request("/dd/lock", 0, 1, 1) == [0, 1, 1]
    assert client.request("/dd/fotf", 1) == [1]
    client.send("/dd/transport/bar", 3, 120.0)
    locked = [client.next() for _ in range(2)]
    for loop in locked:
        assert loop.samples[0] == first.samples[0]
        assert loop.velocities[0][::4] == [100, 100, 100, 100]  # four on the floor
        assert [v for i, v in enumerate(loop.velocities[0]) if i % 4] == \
            [v for i, v in enumerate(first.velocities[0]) if i % 4]
    client.request("/dd/fotf", 0)
    client.request("/dd/lock", 0, 0, 0)
    loop_id, path = client.request("/dd/render", first.loop_id)
    assert loop_id == first.loop_id
    import soundfile

    info = soundfile.info(path)
    assert abs(info.duration - 9.0) < 0.01  # 4 bars at 120 bpm + 1 s of tail


def test_replies_go_to_the_registered_port_of_each_client(engine):
    """Max's udpsend cannot receive: replies must go to the port the client said hello with."""
    listeners = []
    senders = []
    for _ in range(2):
        listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listen.bind(("127.0.0.1", 0))
        listen.settimeout(10)
        listeners.append(listen)
        senders.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    target = ("127.0.0.1", engine.port)
    for sender, listen in zip(senders, listeners, strict=True):
        sender.sendto(encode("/dd/hello", listen.getsockname()[1], "max"), target)
        assert b"/dd/hello" in listen.recv(65536)
    senders[1].sendto(encode("/dd/ping", 2), target)
    senders[0].sendto(encode("/dd/ping", 1), target)
    assert struct.unpack(">i", listeners[0].recv(65536)[-4:]) == (1,)
    assert struct.unpack(">i", listeners[1].recv(65536)[-4:]) == (2,)
    senders[0].sendto(encode("/dd/start_listen/status"), target)
    assert b"/dd/status" in listeners[0].recv(65536)
    for s in senders + listeners:
        s.close()


def test_fuzz_never_stops_the_engine_or_loses_ratings(engine, client):
    """Random bytes, bit flips, bad UTF-8, huge blobs and broken bundles, with valid pings in
    between: every ping is answered and the ratings stay."""
    rng = random.Random(1234)
    before = client.status()["n_ratings"]
    valid = [encode(a, *args) for a, args in [
        ("/dd/rate", ["0123456789ab", 1]), ("/dd/status", []), ("/dd/lock", [1, 0, 1]),
        ("/dd/transport/bar", [4, 120.0]), ("/dd/get", ["0123456789ab"])]]

    def junk() -> bytes:
        kind = rng.randrange(6)
        if kind == 0:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        if kind == 1:
            data = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return bytes(data)
        if kind == 2:
            return b"/dd/rate\x00\x00\x00\x00,si\x00\xff\xfe\xfd\x00" + b"\x00\x00\x00\x01"
        if kind == 3:
            return b"/dd/\xc3\x28\x00\x00,i\x00\x00" + b"\x00\x00\x00\x01"
        if kind == 4:
            return b"#bundle\x00" + bytes(8) + struct.pack(">i", 10_000) + b"/dd/x"
        return b"/dd/render\x00\x00,b\x00\x00" + struct.pack(">i", 30000) + bytes(30000)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    target = ("127.0.0.1", engine.port)
    pings = pongs = errors = 0
    for burst in range(100):  # 200 junk datagrams, then a ping that must be answered
        for _ in range(200):
            sock.sendto(junk(), target)
        sock.sendto(encode("/dd/ping", burst), target)
        pings += 1
        try:
            while pongs < pings:
                data = sock.recv(65536)
                pongs += data.startswith(b"/dd/pong")
                errors += data.startswith(b"/dd/error")
        except TimeoutError:
            break
    sock.close()
    assert engine.alive()
    assert pongs == pings
    assert errors > 1000  # junk is answered with /dd/error, not silently dropped
    assert client.status()["n_ratings"] == before


def test_flood_of_ten_thousand_messages_is_fully_handled(engine):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    target = ("127.0.0.1", engine.port)
    for i in range(10_000):
        sock.sendto(encode("/dd/ping", i), target)
    seen = set()
    try:
        while len(seen) < 10_000:
            seen.add(struct.unpack(">i", sock.recv(64)[-4:])[0])
    except TimeoutError:
        pass
    sock.close()
    assert len(seen) == 10_000


def test_api_tables_match_the_docs():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "osc-api.md").read_text()
    for address in set(ADDRESSES) | REPLY_ADDRESSES:
        assert f"`{address}" in doc, address


def test_kill_minus_nine_loses_no_acknowledged_rating(tmp_path):
    process = EngineProcess(tmp_path / "s", tmp_path / "cache")
    acked = {}
    with EngineClient(port=process.port, timeout=10) as c:
        for i in range(12):
            loop = c.next()
            acked[loop.loop_id] = c.rate(loop.loop_id, i % 3 == 0)
        c.send("/dd/next")  # in flight when the engine dies
    process.kill()
    again = EngineProcess(tmp_path / "s", tmp_path / "cache")
    try:
        assert "resumed" in "".join(again.lines)
        with EngineClient(port=again.port, timeout=10) as c:
            status = c.status()
            assert status["n_ratings"] == 12
            for loop_id in acked:
                with pytest.raises(EngineError) as error:
                    c.rate(loop_id, True)
                assert error.value.code == "already_rated"
    finally:
        out = again.stop()
    assert "every rating is saved" in out
    assert (tmp_path / "s" / "critic.pt").exists()


@pytest.mark.parametrize("path_length", [40, 3000])
def test_loop_replies_stay_under_8_kb_whatever_the_sample_paths(path_length):
    from pythonosc.osc_packet import OscPacket

    from deepdrummer_live.engine import HandedLoop
    from deepdrummer_live.loop import Loop
    from deepdrummer_live.osc import MAX_DATAGRAM, loop_bundles

    grid = tuple(tuple((step + track) % 3 == 0 for step in range(16)) for track in range(4))
    paths = tuple(f"/{'d' * path_length}/{track}.wav" for track in range(4))
    loop = Loop(grid, ("a", "b", "c", "d"))
    handed = HandedLoop(loop.loop_id, loop, 0.5, 3, (36, 38, 42, 46), paths)
    dgrams = loop_bundles(handed, 7)
    assert all(len(d) < MAX_DATAGRAM for d in dgrams)
    assert len(dgrams) == (1 if path_length < 1000 else 2)
    received = [(m.message.address, list(m.message.params))
                for d in dgrams for m in OscPacket(d).messages]
    assert received[0] == ("/dd/loop", [7, loop.loop_id, 0.5, 120.0, 16, 4])
    assert [args[3] for _, args in received[1:]] == list(paths)
    assert [args[4:] for _, args in received[1:]] == [
        [100 if on else 0 for on in row] for row in grid]
