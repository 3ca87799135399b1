"""The Max for Live device: its file, its patch, and its conversation with a real engine.

Live is not needed: the committed .amxd is parsed and checked against its sources and against
the engine's OSC API, and the device's [js] logic (run by node, as `tests/js/device_bridge.js`)
talks to `deepdrummer-live serve` over real UDP, with this test playing the patch's [udpsend]
and [udpreceive] exactly as wired in the .amxd.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from deepdrummer_live import m4l, osc
from deepdrummer_live.kit import default_kit_dir
from deepdrummer_live.roles import GM_NOTES, TOM_SETS
from deepdrummer_live.session import Session

from .engine_process import EngineProcess

REPO = Path(__file__).resolve().parents[1]
DEVICE_JS = (REPO / "max_for_live" / "dd_device.js").read_text()
OSC_DOC = (REPO / "docs" / "osc-api.md").read_text()
BRIDGE = REPO / "tests" / "js" / "device_bridge.js"
NODE = shutil.which("node")
ENGINE, LOCAL, SEQ, UI = range(4)

# Stock Max/MSP objects (and Max for Live's live.*), nothing else: no externals to install.
STOCK = {"live.thisdevice", "udpsend", "udpreceive", "metro", "transport", "change", "i", "+",
         "/", "coll", "makenote", "midiformat", "midiout", "midiin", "freebang", "prepend",
         "pattr", "buffer~", "play~", "*~", "plugout~", "counter", "zl", "t", "route",
         "routepass", "sel", "pack", "unpack", "gate", "expr", "js", "p", "defer"}


def patchers() -> dict[str, dict]:
    return {name: m4l.read_amxd(m4l.SOURCES / name)["patcher"]
            for name in (m4l.DEVICE_NAME, m4l.SAMPLER_NAME)}


# -- the file ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kind", [(m4l.DEVICE_NAME, "midi_effect"),
                                       (m4l.SAMPLER_NAME, "instrument")])
def test_committed_device_parses(name, kind):
    info = m4l.read_amxd(m4l.SOURCES / name)
    assert info["device_type"] == kind and not info["frozen"]
    assert [tag for tag, _ in info["chunks"]] == ["ampf", "meta", "ptch"]
    assert info["patcher"]["patcher"]["openinpresentation"] == 1
    data = (m4l.SOURCES / name).read_bytes()
    assert data[:4] == b"ampf" and data[8:12] == m4l.DEVICE_TYPES[kind]
    assert int.from_bytes(data[28:32], "little") == len(data) - 32  # ptch runs to the end


def test_committed_devices_match_their_sources():
    assert m4l.stale_devices() == [], "run `deepdrummer-live m4l build` and commit the result"


def test_build_is_reproducible_and_goes_where_asked(tmp_path):
    first = m4l.build_device(tmp_path / "a")
    second = m4l.build_device(tmp_path / "b" / "Custom.amxd")
    assert first.name == m4l.DEVICE_NAME and second.name == "Custom.amxd"
    assert first.read_bytes() == second.read_bytes()
    js = "dd_device.js"
    assert (second.parent / js).read_bytes() == (m4l.SOURCES / js).read_bytes()
    assert m4l.stale_devices(tmp_path / "a") == []


def test_cli_build_and_check(tmp_path):
    from deepdrummer_live.cli import main

    assert main(["m4l", "build", "--out", str(tmp_path)]) == 0
    assert main(["m4l", "check", "--out", str(tmp_path)]) == 0
    (tmp_path / m4l.DEVICE_NAME).write_bytes(b"ampf")
    assert main(["m4l", "check", "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize("damage,message", [
    (lambda d: d[:20], "runs past the end"),
    (lambda d: b"xxxx" + d[4:], "no 'ampf' chunk"),
    (lambda d: d[:32] + b"mx@c" + d[36:], "frozen"),
    (lambda d: d[:32] + b"?" + d[33:], "not valid JSON"),
    (lambda d: d[:8] + b"zzzz" + d[12:], "unknown device type"),
])
def test_broken_files_get_a_clear_error(tmp_path, damage, message):
    path = tmp_path / "broken.amxd"
    path.write_bytes(damage((m4l.SOURCES / m4l.DEVICE_NAME).read_bytes()))
    with pytest.raises(m4l.AmxdError, match=message):
        m4l.read_amxd(path)


# -- the patch -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", [m4l.DEVICE_NAME, m4l.SAMPLER_NAME])
def test_patch_uses_stock_objects_and_valid_cords(name):
    patcher = patchers()[name]

    def check(inner: dict) -> None:
        boxes = {item["box"]["id"]: item["box"] for item in inner["boxes"]}
        for box in boxes.values():
            if box["maxclass"] == "newobj":
                assert box["text"].split()[0] in STOCK, box["text"]
            if "patcher" in box:
                check(box["patcher"])
        for line in inner["lines"]:
            (src, outlet), (dst, inlet) = (line["patchline"]["source"],
                                           line["patchline"]["destination"])
            assert 0 <= outlet < boxes[src]["numoutlets"], (boxes[src], outlet)
            assert 0 <= inlet < boxes[dst]["numinlets"], (boxes[dst], inlet)

    check(patcher["patcher"])
    texts = [b.get("text", "") for b in m4l.iter_boxes(patcher)]
    assert "metro 16n @quantize 16n @active 1" in texts  # sixteenths locked to Live's grid
    assert any(t.startswith("udpreceive 0 @defer 1") for t in texts)
    assert texts.count("transport") == 2  # unnamed: Live's own transport
    assert "freebang" in texts and "live.thisdevice" in texts
    scripts = {b.get("filename") or b.get("saved_object_attributes", {}).get("filename")
               for b in m4l.iter_boxes(patcher)} - {None}
    assert scripts == {"dd_device.js", "dd_grid.js"}
    deps = {d["name"] for d in patcher["patcher"]["dependency_cache"]}
    assert deps == set(m4l.JS_FILES)
    if name == m4l.SAMPLER_NAME:
        assert sum(t.startswith("buffer~ ") for t in texts) == m4l.SLOTS * m4l.TRACKS
        assert sum(t.startswith("play~ ") for t in texts) == m4l.SLOTS * m4l.TRACKS * m4l.VOICES
    else:
        assert "makenote 100 60" in texts and "midiout" in texts


def test_midi_flush_is_all_notes_off_on_the_drum_channel():
    texts = [b.get("text", "") for b in m4l.iter_boxes(patchers()[m4l.DEVICE_NAME])]
    status = 0xB0 + m4l.MIDI_CHANNEL - 1
    assert f"{status} 123 0" in texts and "stop" in texts


def test_controls_are_live_parameters_stored_with_the_set():
    patcher = patchers()[m4l.DEVICE_NAME]["patcher"]
    names = {v[0] for k, v in patcher["parameters"].items() if isinstance(v, list)}
    assert {"Like", "Dislike", "Next", "Auto Next", "Four on the Floor", "Engine Port",
            "Session"} | {f"Lock {t}" for t in range(1, 5)} <= names
    buttons = [b for b in m4l.iter_boxes(patcher) if b.get("maxclass") == "live.text"]
    assert all(b["parameter_enable"] == 1 for b in buttons)  # MIDI-mappable, automatable
    session = [b for b in m4l.iter_boxes(patcher) if b.get("text") == "pattr dd_session"]
    assert session and session[0]["saved_object_attributes"]["parameter_enable"] == 1


# -- the OSC addresses ---------------------------------------------------------------------
def test_every_address_the_device_uses_is_in_the_engine_api_and_its_doc():
    documented = set(re.findall(r"`(/dd/[a-z_/]+)", OSC_DOC))
    js_sends = set(re.findall(r'engine\("(/dd/[a-z_/]+)"', DEVICE_JS))
    js_expects = set(re.findall(r'"(/dd/[a-z_/]+)": on[A-Z]', DEVICE_JS))
    assert js_sends and js_expects
    for name, patcher in patchers().items():
        routes = m4l.device_osc_routes(patcher)
        assert routes["send"] <= set(osc.ADDRESSES), (name, routes["send"] - set(osc.ADDRESSES))
        assert routes["receive"] <= osc.REPLY_ADDRESSES, name
        assert (routes["send"] | routes["receive"]) <= documented, name
        assert js_sends <= routes["send"], "the js sends what the patch would drop"
        assert js_expects == routes["receive"], "every reply routed in has a handler"


# -- talking to a real engine ------------------------------------------------------------------
class Device:
    """dd_device.js under node, with the patch's UDP objects played by real sockets."""

    def __init__(self, engine_port: int, session: str = "") -> None:
        self.proc = subprocess.Popen([NODE, str(BRIDGE), "midi", "7"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=REPO)
        routes = m4l.device_osc_routes(patchers()[m4l.DEVICE_NAME])
        self.sendable, self.receivable = routes["send"], routes["receive"]
        self.udpsend = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udpreceive: socket.socket | None = None
        self.target = ("127.0.0.1", 9000)
        self.sent: list[list] = []  # what reached the engine
        self.replies: list[list] = []  # what the engine answered
        self.coll: dict[int, list] = {}
        self.ui: list[list] = []
        self.message("engineport", engine_port)  # parameters are restored before init
        if session:
            self.message("session", session)

    def message(self, name: str, *args) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps([name, *args]) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        assert "error" not in reply, reply["error"]
        for outlet, *msg in reply["out"]:
            self._route(outlet, msg)

    def state(self) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write('["state"]\n')
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["state"]

    def _route(self, outlet: int, msg: list) -> None:
        if outlet == ENGINE:  # [routepass <engine addresses> port] -> [udpsend]
            if msg[0] == "port":
                self.target = ("127.0.0.1", msg[1])
            elif msg[0] in self.sendable:
                self.sent.append(msg)
                self.udpsend.sendto(encode(*msg), self.target)
        elif outlet == LOCAL:  # [route port]: [udpreceive]'s port, and the probe [udpsend]
            if msg[0] == "port":
                if self.udpreceive:
                    self.udpreceive.close()
                self.udpreceive = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.udpreceive.bind(("127.0.0.1", msg[1]))
                self.udpreceive.settimeout(0.05)
                self.probe_port = msg[1]
            else:
                self.udpsend.sendto(encode(*msg), ("127.0.0.1", self.probe_port))
        elif outlet == SEQ and msg[0] == "coll":
            self.coll[msg[1]] = msg[2:]
        elif outlet == UI:
            self.ui.append(msg)

    def pump(self, until, timeout: float = 30.0) -> None:
        """Deliver datagrams to the js ([udpreceive] -> [routepass]) until `until()` holds;
        a heartbeat every second, as the patch's [metro 1000] sends."""
        deadline = time.monotonic() + timeout
        beat = time.monotonic() + 1.0
        while not until():
            now = time.monotonic()
            assert now < deadline, f"timed out; sent {self.sent[-5:]}, got {self.replies[-5:]}"
            if now > beat:
                self.message("heartbeat")
                beat = now + 1.0
            try:
                data = self.udpreceive.recv(65536)
            except TimeoutError:
                continue
            for address, args in decode(data):
                if address in self.receivable:
                    self.replies.append([address, *args])
                    self.message(address, *args)

    def status(self) -> tuple[str, str]:
        lines = {m[0]: " ".join(str(a) for a in m[2:]) for m in self.ui if m[1:2] == ["set"]}
        return lines.get("status1", ""), lines.get("status2", "")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.udpsend.close()
        if self.udpreceive:
            self.udpreceive.close()


def encode(address: str, *args) -> bytes:
    """As [udpsend] does: whole numbers as int32, other numbers as float32, text as strings."""
    builder = OscMessageBuilder(address)
    for value in args:
        kind = ("i" if isinstance(value, int) else "f" if isinstance(value, float) else "s")
        builder.add_arg(value, kind)
    return builder.build().dgram


def decode(data: bytes) -> list[tuple[str, list]]:
    return [(m.message.address, list(m.message.params)) for m in OscPacket(data).messages]


def replies(device: Device, address: str) -> list[list]:
    return [r[1:] for r in device.replies if r[0] == address]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("m4l")
    process = EngineProcess(root / "live-set", root / "cache", samples=default_kit_dir())
    process.session_dir = root / "live-set"
    yield process
    process.stop()


@pytest.mark.skipif(NODE is None, reason="node is not installed (the device's js runs in node)")
def test_device_session_with_a_real_engine(engine):
    device = Device(engine.port)
    try:
        device.message("tempo", 120.0)
        device.message("init")
        assert device.target == ("127.0.0.1", engine.port)
        device.pump(lambda: device.state()["probeOk"] and device.state()["connected"])
        state = device.state()
        assert state["engineSession"] == "live-set" and state["storedSession"] == "live-set"
        assert ["session", "live-set"] in [m[:2] for m in device.ui]  # into the set's [pattr]
        assert [m[0] for m in device.sent[:8]] == [
            "/dd/hello", "/dd/start_listen/status", "/dd/lock", "/dd/lock", "/dd/lock",
            "/dd/lock", "/dd/fotf", "/dd/next"]

        # The first loop: it plays at once (nothing is playing yet), the grid shows it.
        device.pump(lambda: device.state()["audibleId"] is not None, timeout=60)
        first = device.state()["audibleId"]
        loop, tracks = replies(device, "/dd/loop")[-1], replies(device, "/dd/loop/track")[-4:]
        assert loop[1] == first and loop[4:] == [16, 4]
        allowed = set(GM_NOTES.values()) | {n for s in TOM_SETS.values() for n in s}
        slot = device.state()["audibleSlot"]
        for t, (loop_id, track, note, path, *velocities) in enumerate(tracks):
            assert loop_id == first and track == t and note in allowed
            assert Path(path).is_file() and len(velocities) == 16
            for step in range(16):  # the sequencer's [coll]: velocity, buffer, note per track
                assert device.coll[slot * 16 + step][3 * t:3 * t + 3] == [
                    velocities[step], slot * 4 + t, note]
        grid = [m for m in device.ui if m[:2] == ["grid", "track"]]
        assert [m[3] for m in grid[-4:]] == [r[2] for r in tracks]

        # Like: the rating is stored; auto-next asks for the next loop.
        device.message("like")
        assert device.sent[-2] == ["/dd/rate", first, 1] and device.sent[-1][0] == "/dd/next"
        device.pump(lambda: replies(device, "/dd/rated")
                    and device.state()["audibleId"] not in (None, first))
        assert replies(device, "/dd/rated")[-1][0] == first
        shown = [" ".join(map(str, m[2:])) for m in device.ui if m[:2] == ["status2", "set"]]
        assert any(line.startswith("Rated: 1 ratings, 1 liked") for line in shown)

        # Lock a track, tell the engine where the bars are, play, dislike.
        device.message("lock", 0, 1)
        assert device.sent[-1] == ["/dd/lock", 0, 1, 1]
        device.pump(lambda: [0, 1, 1] in replies(device, "/dd/lock"))
        device.message("transport", 1)
        for ticks in (0, 120, 1920, 3840):  # bar lines are every 16 sixteenths (1920 ticks)
            device.message("tick", ticks)
            device.message("key", device.state()["audibleSlot"] * 16 + (ticks // 120) % 16)
        bars = [m for m in device.sent if m[0] == "/dd/transport/bar"]
        assert bars == [["/dd/transport/bar", 0, 120], ["/dd/transport/bar", 1, 120],
                        ["/dd/transport/bar", 2, 120]]
        second = device.state()["audibleId"]
        device.message("dislike")
        device.pump(lambda: len(replies(device, "/dd/rated")) == 2)
        assert replies(device, "/dd/rated")[-1][:2] == [second, 2]

        # While playing, the next loop is armed for the bar line, not switched mid-bar.
        device.pump(lambda: device.state()["armedSlot"] != device.state()["audibleSlot"])
        assert device.state()["audibleId"] == second
        device.message("key", device.state()["armedSlot"] * 16)  # the bar line: [sel 0] fires
        assert device.state()["audibleId"] not in (second, None)

        device.message("heartbeat")
        device.message("heartbeat")
        device.pump(lambda: any(isinstance(p[0], int) and p[0] < 2_000_000
                                for p in replies(device, "/dd/pong")))
        # The only error allowed: "busy" (no loop ready yet), which the device asks again for.
        assert all(e[:2] == ["/dd/next", "busy"] for e in replies(device, "/dd/error"))
        assert device.status()[0] == "Session live-set"
        device.message("free")
        assert device.sent[-1] == ["/dd/bye"]
    finally:
        device.close()
    session = Session(engine.session_dir)  # the ratings are in the engine's session store
    try:
        rated = {r.loop_id: r.liked for r in session.ratings()}
    finally:
        session.close()
    assert rated[first] is True and rated[second] is False


@pytest.mark.skipif(NODE is None, reason="node is not installed (the device's js runs in node)")
def test_device_says_how_to_start_an_engine_that_is_not_running():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing answers here
    device = Device(port)
    try:
        device.message("init")
        for _ in range(3):
            device.message("heartbeat")
        assert device.status() == (f"No engine at 127.0.0.1:{port}",
                                   f"Start it: deepdrummer-live serve --osc-port {port}")
        assert not device.state()["connected"]
        assert [m[0] for m in device.sent].count("/dd/hello") >= 2  # it keeps trying
    finally:
        device.close()
