"""The Max for Live devices, built from text: `DeepDrummer.amxd` and `DeepDrummer Sampler.amxd`.

The patches are written here as Python (every box, every cord, the comments in the patch), the
logic that is not time-critical lives in `max_for_live/dd_device.js` and `dd_grid.js`, and
`build_device` packs the patcher JSON into an unfrozen `.amxd`, as Ableton's production
guidelines advise for the copy kept under version control. Same sources, same bytes.

The `.amxd` container (see max_for_live/README.md for the sources): chunks of a 4-character tag
and a little-endian u32 payload size: `ampf` (4 bytes: the device type, `mmmm` MIDI effect,
`aaaa` audio effect, `iiii` instrument), `meta` (4 bytes), `ptch` (the patcher JSON, ended by a
NUL; a frozen device's `ptch` starts with `mx@c` instead).
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO / "max_for_live"
DEVICE_NAME = "DeepDrummer.amxd"
SAMPLER_NAME = "DeepDrummer Sampler.amxd"
JS_FILES = ("dd_device.js", "dd_grid.js")
DEVICE_TYPES = {"midi_effect": b"mmmm", "audio_effect": b"aaaa", "instrument": b"iiii"}
TRACKS, STEPS, SLOTS = 4, 16, 3
VOICES = 8  # Sampler voices per buffer: overlapping tails sum, as in the engine's renderer
MIDI_CHANNEL = 10  # General MIDI drums
NOTE_MS = 60  # note length: shorter than a sixteenth up to 250 bpm
MIX_DIVISOR = 200.0  # Sampler gain = velocity / 200: velocity 100 → render.MIX_GAIN (0.5)
WIDTH, HEIGHT = 384, 169
FIXED_DATE = 3_786_825_600  # 2024-01-01 in Max's 1904 epoch: builds do not depend on the clock
ENGINE_ADDRESSES = ("/dd/hello", "/dd/bye", "/dd/ping", "/dd/next", "/dd/rate",
                    "/dd/start_listen/status", "/dd/lock", "/dd/fotf", "/dd/transport/bar")
REPLY_ADDRESSES = ("/dd/hello", "/dd/pong", "/dd/loop", "/dd/loop/track", "/dd/rated",
                   "/dd/status", "/dd/lock", "/dd/fotf", "/dd/error")


class AmxdError(ValueError):
    """A file that is not a readable Max for Live device; the message says why."""


# -- the container -------------------------------------------------------------------------
def pack_amxd(patcher: dict, device_type: str = "midi_effect") -> bytes:
    """An unfrozen `.amxd`: ampf, meta and ptch chunks around the patcher JSON."""
    body = (json.dumps(patcher, indent="\t", ensure_ascii=False) + "\n").encode() + b"\0"
    return (_chunk(b"ampf", DEVICE_TYPES[device_type]) + _chunk(b"meta", b"\0\0\0\0")
            + _chunk(b"ptch", body))


def _chunk(tag: bytes, payload: bytes) -> bytes:
    return tag + struct.pack("<I", len(payload)) + payload


def read_amxd(path: str | Path) -> dict[str, Any]:
    """Parse a device: {"device_type", "chunks" [(tag, size)], "frozen", "patcher" (the JSON)}.

    Raises AmxdError for anything that is not a well-formed, unfrozen device."""
    data = Path(path).read_bytes()
    chunks: list[tuple[str, int]] = []
    payloads: dict[str, bytes] = {}
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            raise AmxdError(f"truncated chunk header at byte {offset}")
        try:
            tag = data[offset:offset + 4].decode("ascii")
        except UnicodeDecodeError:
            raise AmxdError(f"bad chunk tag at byte {offset}") from None
        size = struct.unpack_from("<I", data, offset + 4)[0]
        if offset + 8 + size > len(data):
            raise AmxdError(f"chunk {tag!r} runs past the end of the file")
        chunks.append((tag, size))
        payloads[tag] = data[offset + 8:offset + 8 + size]
        offset += 8 + size
    if not chunks or chunks[0][0] != "ampf":
        raise AmxdError("not a Max for Live device (no 'ampf' chunk first)")
    kinds = {v: k for k, v in DEVICE_TYPES.items()}
    device_type = kinds.get(payloads["ampf"])
    if device_type is None:
        raise AmxdError(f"unknown device type {payloads['ampf']!r}")
    if "ptch" not in payloads:
        raise AmxdError("no 'ptch' chunk")
    body = payloads["ptch"]
    frozen = body[:4] == b"mx@c"
    if frozen:
        raise AmxdError("the device is frozen (mx@c); keep the unfrozen one in the repository")
    if body.endswith(b"\0"):
        body = body[:-1]
    try:
        patcher = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AmxdError(f"the patcher is not valid JSON: {exc}") from None
    if not isinstance(patcher, dict) or "patcher" not in patcher:
        raise AmxdError("the JSON has no 'patcher'")
    return {"device_type": device_type, "chunks": chunks, "frozen": frozen,
            "meta": payloads.get("meta", b""), "patcher": patcher}


# -- reading a patch back ------------------------------------------------------------------
def iter_boxes(patcher: dict):
    """Every box of a patcher (the JSON document or its "patcher"), subpatchers included."""
    inner = patcher.get("patcher", patcher)
    for item in inner.get("boxes", []):
        box = item["box"]
        yield box
        if "patcher" in box:
            yield from iter_boxes(box["patcher"])


def device_osc_routes(patcher: dict) -> dict[str, set[str]]:
    """The OSC addresses the patch lets out to the engine ("send") and routes in ("receive").

    The device's [js] can only reach the engine through the `osc_out` [routepass], and replies
    only reach it through the `osc_in` one: these two boxes are the patch's side of the API."""
    routes: dict[str, set[str]] = {"send": set(), "receive": set()}
    for box in iter_boxes(patcher):
        kind = {"osc_out": "send", "osc_in": "receive"}.get(box.get("varname", ""))
        if kind:
            routes[kind].update(a for a in box["text"].split()[1:] if a.startswith("/"))
    return routes


def device_osc_addresses(patcher: dict) -> set[str]:
    """Every OSC address the device sends or routes."""
    routes = device_osc_routes(patcher)
    return routes["send"] | routes["receive"]


# -- building a patch ----------------------------------------------------------------------
@dataclass
class Box:
    id: str
    data: dict

    @property
    def outlets(self) -> int:
        return int(self.data.get("numoutlets", 0))

    @property
    def inlets(self) -> int:
        return int(self.data.get("numinlets", 0))


# Inlets, outlets and outlet types of the stock objects used here (Max 8 reference); objects
# whose counts follow their arguments are computed in `_io`.
FIXED_IO: dict[str, tuple[int, int, list[str]]] = {
    "live.thisdevice": (1, 3, ["bang", "int", "int"]),
    "udpsend": (1, 0, []),
    "udpreceive": (1, 1, [""]),
    "metro": (2, 1, ["bang"]),
    "transport": (2, 9, ["int", "int", "float", "float", "float", "", "int", "float", ""]),
    "change": (1, 3, ["", "int", "int"]),
    "i": (2, 1, ["int"]),
    "+": (2, 1, ["int"]),
    "/": (2, 1, ["float"]),
    "coll": (1, 4, ["", "", "bang", "bang"]),
    "makenote": (3, 2, ["float", "float"]),
    "midiformat": (7, 2, ["int", ""]),
    "midiout": (1, 0, []),
    "midiin": (1, 1, ["int"]),
    "freebang": (1, 1, ["bang"]),
    "prepend": (1, 1, [""]),
    "pattr": (1, 3, ["", "", ""]),
    "buffer~": (1, 2, ["float", "bang"]),
    "play~": (1, 2, ["signal", "bang"]),
    "*~": (2, 1, ["signal"]),
    "plugout~": (2, 2, ["signal", "signal"]),
    "counter": (5, 4, ["int", "", "", "int"]),
    "zl": (2, 2, ["", ""]),
    "defer": (1, 1, [""]),
}


def _io(text: str) -> tuple[int, int, list[str]]:
    name, *args = text.split()
    args = [a for a in args if not a.startswith("@")]
    if name in FIXED_IO:
        return FIXED_IO[name]
    if name in ("t", "trigger"):
        kinds = {"b": "bang", "i": "int", "f": "float", "l": "", "s": ""}
        return 1, len(args), [kinds.get(a, "") for a in args]
    if name in ("route", "routepass", "sel", "select"):
        n = len(args) + 1
        return 2, n, (["bang"] * (n - 1) + [""]) if name in ("sel", "select") else [""] * n
    if name == "pack":
        return len(args), 1, [""]
    if name == "unpack":
        return 1, len(args), ["int" if "." not in a else "float" for a in args]
    if name == "gate":
        return 2, int(args[0]), [""] * int(args[0])
    if name == "expr":
        return 1, 1, [""]
    if name == "js":
        return 1, 4, ["", "", "", ""]
    raise KeyError(f"no inlet/outlet counts for {name!r}")


@dataclass
class Patch:
    """Boxes and cords of one patcher, with ids and positions chosen by us (reproducible)."""

    prefix: str = "obj"
    boxes: list[Box] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)

    def _add(self, data: dict) -> Box:
        box = Box(f"{self.prefix}-{len(self.boxes) + 1}", data)
        data["id"] = box.id
        self.boxes.append(box)
        return box

    def obj(self, text: str, x: float, y: float, width: float | None = None, **attrs) -> Box:
        inlets, outlets, types = _io(text)
        data = {"maxclass": "newobj", "text": text, "numinlets": inlets,
                "numoutlets": outlets, "patching_rect": [x, y, width or _width(text), 22.0]}
        if outlets:
            data["outlettype"] = types
        data.update(attrs)
        return self._add(data)

    def js(self, filename: str, args: str, x: float, y: float, outlets: int = 4) -> Box:
        text = f"js {filename} {args}".strip()
        return self._add({"maxclass": "newobj", "text": text, "numinlets": 1,
                          "numoutlets": outlets, "outlettype": [""] * outlets,
                          "patching_rect": [x, y, _width(text), 22.0],
                          "saved_object_attributes": {"filename": filename,
                                                      "parameter_enable": 0}})

    def subpatcher(self, name: str, patcher: dict, x: float, y: float, inlets: int,
                   outlets: int, outlettype: list[str]) -> Box:
        """An embedded [p name]: stored inside the device, so it is not a dependency."""
        text = f"p {name}"
        return self._add({"maxclass": "newobj", "text": text, "numinlets": inlets,
                          "numoutlets": outlets, "outlettype": outlettype,
                          "patching_rect": [x, y, _width(text), 22.0], "patcher": patcher,
                          "saved_object_attributes": {"description": "", "digest": "",
                                                      "globalpatchername": "", "tags": ""}})

    def msg(self, text: str, x: float, y: float) -> Box:
        return self._add({"maxclass": "message", "text": text, "numinlets": 2, "numoutlets": 1,
                          "outlettype": [""], "patching_rect": [x, y, _width(text), 22.0]})

    def comment(self, text: str, x: float, y: float, width: float = 300.0,
                lines: int = 1) -> Box:
        data = {"maxclass": "comment", "text": text, "numinlets": 1, "numoutlets": 0,
                "patching_rect": [x, y, width, 20.0 + 13.0 * (lines - 1)]}
        if lines > 1:
            data["linecount"] = lines
        return self._add(data)

    def ui(self, maxclass: str, x: float, y: float, width: float, height: float,
           inlets: int, outlets: int, outlettype: list[str], presentation: list[int] | None,
           **attrs) -> Box:
        data = {"maxclass": maxclass, "numinlets": inlets, "numoutlets": outlets,
                "patching_rect": [x, y, width, height]}
        if outlets:
            data["outlettype"] = outlettype
        if presentation is not None:
            data["presentation"] = 1
            data["presentation_rect"] = [float(v) for v in presentation]
        data.update(attrs)
        return self._add(data)

    def connect(self, source: Box, outlet: int, destination: Box, inlet: int = 0) -> None:
        if not 0 <= outlet < source.outlets:
            raise ValueError(f"{source.data.get('text', source.data['maxclass'])!r} has no "
                             f"outlet {outlet}")
        if not 0 <= inlet < destination.inlets:
            raise ValueError(f"{destination.data.get('text', destination.data['maxclass'])!r} "
                             f"has no inlet {inlet}")
        self.lines.append({"patchline": {"destination": [destination.id, inlet],
                                         "source": [source.id, outlet]}})

    def chain(self, *boxes: Box) -> None:
        """Left outlet to left inlet, down a column."""
        for a, b in zip(boxes, boxes[1:], strict=False):
            self.connect(a, 0, b, 0)

    def to_json(self) -> tuple[list[dict], list[dict]]:
        return [{"box": b.data} for b in self.boxes], list(self.lines)


def _width(text: str) -> float:
    return float(max(30, 7 * len(text) + 14))


def _parameter(longname: str, shortname: str, kind: int, **extra) -> dict:
    """A live.* parameter's `valueof` block (kind: 0 float, 1 int, 2 enum, 3 blob)."""
    value = {"parameter_longname": longname, "parameter_shortname": shortname,
             "parameter_type": kind}
    value.update(extra)
    return {"valueof": value}


def _text_button(patch: Patch, label: str, longname: str, x: float, y: float,
                 rect: list[int], *, toggle: bool, initial: int = 0, info: str = "",
                 shortname: str | None = None) -> Box:
    """A MIDI-mappable live.text (button or toggle), automated and stored with the Live set."""
    extra: dict[str, Any] = {"parameter_enum": ["off", "on"], "parameter_mmax": 1,
                             "parameter_invisible": 0}
    if toggle:
        extra.update(parameter_initial_enable=1, parameter_initial=[initial])
    return patch.ui("live.text", x, y, 44.0, 20.0, 1, 2, ["", ""], rect,
                    mode=1 if toggle else 0, outputmode=1, text=label, texton=label,
                    varname=longname, parameter_enable=1, annotation_name=longname,
                    annotation=info,
                    saved_attribute_attributes=_parameter(longname, shortname or label, 2,
                                                          **extra))


# -- the devices ---------------------------------------------------------------------------
def build_patcher(kind: str = "midi") -> dict:
    """The device's patcher JSON: kind "midi" (MIDI effect) or "sampler" (instrument)."""
    sampler = kind == "sampler"
    p = Patch()
    c = p.comment
    c("DeepDrummer" + (" Sampler" if sampler else "") + ": plays the loops a critic thinks you "
      "like, and learns from your Like / Dislike. Built by `deepdrummer-live m4l build` from "
      "deepdrummer_live/m4l.py: edit that, not this patch.", 20, 10, 760, 2)
    c("Needs dd_device.js and dd_grid.js beside the device, and the engine: "
      "deepdrummer-live serve (OSC on 127.0.0.1:9000, docs/osc-api.md).", 20, 42, 760)

    # -- start-up and life cycle ---------------------------------------------------------
    c("1. Start-up: live.thisdevice bangs once the device is ready (parameters restored).",
      20, 80, 520)
    thisdevice = p.obj("live.thisdevice", 20, 105)
    start = p.obj("t b b", 20, 135)
    on = p.msg("1", 90, 165)
    init = p.msg("init", 20, 195)
    p.connect(thisdevice, 0, start)
    p.connect(start, 1, on)
    p.connect(start, 0, init)
    enabled = p.obj("prepend enabled", 200, 135)
    p.connect(thisdevice, 1, enabled)
    freebang = p.obj("freebang", 330, 105)
    free = p.msg("free", 330, 135)
    p.connect(freebang, 0, free)
    c("Every second: pings, reconnection, retries.", 20, 230, 300)
    heartbeat_metro = p.obj("metro 1000", 20, 255)
    heartbeat = p.msg("heartbeat", 20, 285)
    p.connect(on, 0, heartbeat_metro)
    p.connect(heartbeat_metro, 0, heartbeat)

    # -- the logic ------------------------------------------------------------------------
    device = p.js("dd_device.js", "sampler" if sampler else "midi", 420, 470)
    for box in (init, enabled, free, heartbeat):
        p.connect(box, 0, device)

    # -- OSC --------------------------------------------------------------------------------
    c("2. OSC (docs/osc-api.md). Only these addresses go out to the engine...", 700, 80, 520)
    osc_out = p.obj("routepass " + " ".join(ENGINE_ADDRESSES) + " port", 700, 105,
                    varname="osc_out")
    udpsend = p.obj("udpsend 127.0.0.1 9000", 700, 165)
    for outlet in range(len(ENGINE_ADDRESSES) + 1):
        p.connect(osc_out, outlet, udpsend)
    c("...and only these replies come in. The engine answers on our own port, said in /dd/hello.",
      700, 200, 560)
    udpreceive = p.obj("udpreceive 0 @defer 1 @quiet 1", 700, 225)
    osc_in = p.obj("routepass " + " ".join(REPLY_ADDRESSES), 700, 255, varname="osc_in")
    p.connect(udpreceive, 0, osc_in)
    for outlet in range(len(REPLY_ADDRESSES)):
        p.connect(osc_in, outlet, device)
    p.connect(device, 0, osc_out)
    c("Our port: a random one, checked by sending ourselves a /dd/pong (probe).", 700, 290, 520)
    local = p.obj("route port", 700, 315)
    local_port = p.obj("prepend port", 700, 345)
    probe = p.obj("udpsend 127.0.0.1 29999", 860, 375)
    p.connect(device, 1, local)
    p.connect(local, 0, local_port)
    p.connect(local_port, 0, udpreceive)
    p.connect(local_port, 0, probe)
    p.connect(local, 1, probe)

    # -- controls ---------------------------------------------------------------------------
    c("3. Controls: live.* parameters, MIDI-mappable and saved with the Live set.", 20, 330,
      520)
    like = _text_button(p, "Like", "Like", 20, 360, [6, 6, 60, 24], toggle=False,
                        info="Rate the playing loop: the critic learns you like it.")
    dislike = _text_button(p, "Dislike", "Dislike", 90, 360, [6, 34, 60, 24], toggle=False,
                           info="Rate the playing loop: the critic learns you do not like it.")
    nxt = _text_button(p, "Next", "Next", 160, 360, [6, 62, 60, 24], toggle=False,
                       info="Skip to another loop (it starts at the next bar line).")
    for button, word, x in ((like, "like", 20), (dislike, "dislike", 90), (nxt, "next", 160)):
        trig = p.obj("t b", x, 395)
        message = p.msg(word, x, 425)
        p.connect(button, 0, trig)
        p.chain(trig, message, device)
    auto = _text_button(p, "Auto next", "Auto Next", 230, 360, [6, 92, 60, 16], toggle=True,
                        initial=1, shortname="Auto",
                        info="After Like or Dislike, go on to the next loop.")
    fotf = _text_button(p, "4 on floor", "Four on the Floor", 300, 360, [6, 112, 60, 16],
                        toggle=True, shortname="4 Kick",
                        info="A kick on every beat (track 1) in the loops that follow.")
    for box, word, x in ((auto, "autonext", 230), (fotf, "fotf", 300)):
        pre = p.obj(f"prepend {word}", x, 425)
        p.connect(box, 0, pre)
        p.connect(pre, 0, device)
    for t in range(TRACKS):
        lock = _text_button(p, "Lock", f"Lock {t + 1}", 20 + 70 * t, 470,
                            [344, 6 + 24 * t + 3, 34, 18], toggle=True, shortname=f"Lock {t + 1}",
                            info=f"Keep track {t + 1}'s pattern and sample in the loops that "
                                 "follow.")
        pre = p.obj(f"prepend lock {t}", 20 + 70 * t, 500)
        p.connect(lock, 0, pre)
        p.connect(pre, 0, device)
    p.ui("live.comment", 20, 540, 60, 18, 1, 0, [], [6, 132, 60, 14], text="Engine port",
         fontsize=9.0)
    port = p.ui("live.numbox", 90, 540, 50, 15, 1, 2, ["", "float"], [6, 148, 60, 15],
                varname="Engine Port", parameter_enable=1, annotation_name="Engine Port",
                annotation="The port `deepdrummer-live serve` listens on (--osc-port).",
                saved_attribute_attributes=_parameter(
                    "Engine Port", "Port", 0, parameter_mmin=1024.0, parameter_mmax=65535.0,
                    parameter_initial_enable=1, parameter_initial=[9000.0],
                    parameter_unitstyle=0, parameter_invisible=1))
    port_pre = p.obj("prepend engineport", 90, 570)
    p.connect(port, 0, port_pre)
    p.connect(port_pre, 0, device)
    session = p.obj("pattr dd_session", 220, 540, varname="dd_session",
                    saved_object_attributes={"parameter_enable": 1, "parameter_mappable": 0},
                    saved_attribute_attributes=_parameter("Session", "Session", 3,
                                                          parameter_invisible=1))
    session_pre = p.obj("prepend session", 220, 570)
    p.connect(session, 0, session_pre)
    p.connect(session_pre, 0, device)
    c("The engine's session name, stored with the Live set: the device warns when the engine "
      "runs another one.", 220, 600, 420, 2)

    # -- display ----------------------------------------------------------------------------
    c("4. Display.", 20, 640, 200)
    ui = p.obj("route status1 status2 grid session", 420, 640)
    p.connect(device, 3, ui)
    grid = p.ui("jsui", 20, 700, 268, 96, 1, 0, [], [72, 6, 268, 96], filename="dd_grid.js",
                parameter_enable=0, jsarguments=[])
    status1 = p.ui("live.comment", 300, 700, 306, 16, 1, 0, [], [72, 108, 306, 16],
                   text="DeepDrummer: starting (needs dd_device.js beside the device)",
                   fontsize=9.5)
    status2 = p.ui("live.comment", 300, 725, 306, 16, 1, 0, [], [72, 126, 306, 16], text="",
                   fontsize=9.5)
    p.connect(ui, 0, status1)
    p.connect(ui, 1, status2)
    p.connect(ui, 2, grid)
    p.connect(ui, 3, session)

    # -- sequencer --------------------------------------------------------------------------
    c("5. Sequencer (native, in Max's scheduler thread; [js] only writes its data). Each "
      "sixteenth of Live's transport: step = raw ticks / 120 mod 16; at step 0 the armed "
      "slot becomes the playing one (a new loop starts only on a bar line).", 1300, 80, 640, 2)
    tick_metro = p.obj("metro 16n @quantize 16n @active 1", 1300, 120)
    tick_bang = p.obj("t b", 1300, 150)
    tick_transport = p.obj("transport", 1300, 180, 200)
    p.chain(tick_metro, tick_bang, tick_transport)
    ticks = p.obj("t f f", 1300, 215)
    p.connect(tick_transport, 7, ticks)
    tempo = p.obj("prepend tempo", 1420, 215)
    p.connect(tick_transport, 4, tempo)
    p.connect(tempo, 0, device)
    tick_pre = p.obj("prepend tick", 1420, 245)
    p.connect(ticks, 0, tick_pre)
    p.connect(tick_pre, 0, device)
    step = p.obj(f"expr int($f1/120.+0.5)%{STEPS}", 1300, 280)
    p.connect(ticks, 1, step)
    step_t = p.obj("t i i", 1300, 310)
    p.connect(step, 0, step_t)
    bar_line = p.obj("sel 0", 1400, 340)
    p.connect(step_t, 1, bar_line)
    armed = p.obj("i 0", 1400, 370)
    p.connect(bar_line, 0, armed)
    add = p.obj("+ 0", 1300, 400)
    p.connect(armed, 0, add, 1)
    p.connect(step_t, 0, add)
    key_t = p.obj("t i i", 1300, 430)
    p.connect(add, 0, key_t)
    key_pre = p.obj("prepend key", 1420, 460)
    p.connect(key_t, 0, key_pre)
    p.connect(key_pre, 0, device)
    pattern = p.obj("coll", 1300, 490)
    p.connect(key_t, 1, pattern)
    c(f"The [coll]: key slot*16+step -> velocity, buffer, note for each of {TRACKS} tracks; "
      f"{SLOTS} slots (playing, armed, being written).", 1500, 490, 460)
    seq = p.obj("route coll arm now bufname sample", 1600, 380)
    p.connect(device, 2, seq)
    p.connect(seq, 0, pattern)
    p.connect(seq, 1, armed, 1)
    p.connect(seq, 2, armed)
    hits = p.obj("zl iter 3", 1300, 520)
    p.connect(pattern, 0, hits)
    rests = p.obj("route 0", 1300, 550)
    p.connect(hits, 0, rests)
    reverse = p.obj("zl rev", 1300, 580)
    p.connect(rests, 1, reverse)
    hit = p.obj("unpack 0 0 0", 1300, 610)
    p.connect(reverse, 0, hit)
    c("note buffer velocity (velocity first, then the note triggers)", 1420, 610, 360)

    c("Transport: Live's transport stopping, or the device going off or away, sends "
      "note-offs for everything.", 1300, 720, 520)
    poll = p.obj("metro 100", 1300, 745)
    p.connect(on, 0, poll)
    poll_bang = p.obj("t b", 1300, 775)
    poll_transport = p.obj("transport", 1300, 805, 200)
    p.chain(poll, poll_bang, poll_transport)
    state = p.obj("change", 1300, 835)
    p.connect(poll_transport, 6, state)
    state_t = p.obj("t i i", 1300, 865)
    p.connect(state, 0, state_t)
    transport_pre = p.obj("prepend transport", 1300, 895)
    p.connect(state_t, 0, transport_pre)
    p.connect(transport_pre, 0, device)
    if sampler:
        _sampler_voices(p, hit, seq, device)
    else:
        stopped = p.obj("sel 0", 1450, 895)
        p.connect(state_t, 1, stopped)
        off = p.obj("sel 0", 1550, 895)
        p.connect(thisdevice, 1, off)
        flush = p.obj("t b b", 1450, 930)
        p.connect(stopped, 0, flush)
        p.connect(off, 0, flush)
        p.connect(freebang, 0, flush)
        _midi_out(p, hit, flush)

    boxes, lines = p.to_json()
    parameters = {b.id: [_name(b, "longname"), _name(b, "shortname"), 0] for b in p.boxes
                  if b.data.get("parameter_enable") == 1
                  or b.data.get("saved_object_attributes", {}).get("parameter_enable") == 1}
    parameters["inherited_shortname"] = 1
    device_type = "instrument" if sampler else "midi_effect"
    return {"patcher": {
        "fileversion": 1,
        "appversion": {"major": 8, "minor": 6, "revision": 0, "architecture": "x64",
                       "modernui": 1},
        "classnamespace": "box",
        "rect": [40.0, 80.0, 1900.0, 1000.0],
        "openrect": [0.0, 0.0, float(WIDTH), float(HEIGHT)],
        "bglocked": 0,
        "openinpresentation": 1,
        "default_fontsize": 10.0,
        "default_fontface": 0,
        "default_fontname": "Arial",
        "gridonopen": 1,
        "gridsize": [15.0, 15.0],
        "gridsnaponopen": 1,
        "objectsnaponopen": 1,
        "statusbarvisible": 2,
        "toolbarvisible": 1,
        "boxanimatetime": 200,
        "enablehscroll": 1,
        "enablevscroll": 1,
        "devicewidth": float(WIDTH),
        "description": "DeepDrummer: a critic learns your taste in drum loops, live in Ableton.",
        "digest": "",
        "tags": "",
        "style": "",
        "subpatcher_template": "",
        "assistshowspatchername": 0,
        "boxes": boxes,
        "lines": lines,
        "parameters": parameters,
        "dependency_cache": [{"name": name, "patcherrelativepath": ".", "type": "TEXT",
                              "implicit": 1} for name in JS_FILES],
        "latency": 0,
        "is_mpe": 0,
        "external_mpe_tuning_enabled": 0,
        "minimum_live_version": "",
        "minimum_max_version": "",
        "platform_compatibility": 0,
        "project": {
            "version": 1, "creationdate": FIXED_DATE, "modificationdate": FIXED_DATE,
            "viewrect": [0.0, 0.0, 300.0, 500.0], "autoorganize": 1, "hideprojectwindow": 1,
            "showdependencies": 1, "autolocalize": 0, "contents": {"patchers": {}},
            "layout": {}, "searchpath": {}, "detailsvisible": 0,
            "amxdtype": struct.unpack(">I", DEVICE_TYPES[device_type])[0], "readonly": 0,
            "devpathtype": 0, "devpath": ".", "sortmode": 0, "viewmode": 0,
            "includepackages": 0},
        "autosave": 0,
    }}


def _name(box: Box, which: str) -> str:
    attrs = box.data.get("saved_attribute_attributes", {}).get("valueof", {})
    return attrs.get(f"parameter_{which}", box.data.get("varname", ""))


def _midi_out(p: Patch, hit: Box, flush: Box) -> None:
    """MIDI output: the playing slot's hits as notes, always with their note-offs."""
    p.comment(f"6. MIDI out, channel {MIDI_CHANNEL} (General MIDI drums); the notes a Drum Rack "
              f"plays. makenote sends every note-off ({NOTE_MS} ms later).", 1300, 650, 600)
    note = p.obj(f"makenote 100 {NOTE_MS}", 1300, 680)
    p.connect(hit, 2, note, 1)
    p.connect(hit, 0, note, 0)
    pair = p.obj("pack 0 0", 1450, 680)
    p.connect(note, 1, pair, 1)
    p.connect(note, 0, pair, 0)
    fmt = p.obj(f"midiformat {MIDI_CHANNEL}", 1550, 680)
    p.connect(pair, 0, fmt)
    midiout = p.obj("midiout", 1700, 680)
    p.connect(fmt, 0, midiout)
    midiin = p.obj("midiin", 1700, 620)
    p.connect(midiin, 0, midiout)
    p.comment("MIDI coming in passes through.", 1760, 620, 200)
    stop = p.msg("stop", 1450, 960)
    p.connect(flush, 1, stop)
    p.connect(stop, 0, note)
    all_off = p.msg(f"{0xB0 + MIDI_CHANNEL - 1} 123 0", 1550, 960)
    p.connect(flush, 0, all_off)
    p.connect(all_off, 0, midiout)
    p.comment("note-offs now, then All Notes Off (CC 123)", 1650, 960, 300)


def _sampler_voices(p: Patch, hit: Box, seq: Box, device: Box) -> None:
    """Sampler output: the playing slot's hits on the engine's own samples, to Live's audio."""
    buffers = SLOTS * TRACKS
    p.comment(f"6. The engine's own samples: {buffers} buffer~ (slot x track), read by the "
              "path the engine sends, then decoded by dd_device.js as library.py decodes them "
              f"(mono, peak 1, leading silence cut, 2 s). Gain = velocity / {MIX_DIVISOR:g}, "
              "the renderer's mix.", 1300, 650, 640, 2)
    gain = p.obj(f"/ {MIX_DIVISOR}", 1450, 690)
    p.connect(hit, 2, gain)
    pair = p.obj("pack 0 0.", 1300, 720)
    p.connect(gain, 0, pair, 1)
    p.connect(hit, 1, pair, 0)
    indices = " ".join(str(k) for k in range(buffers))
    to_voice = p.obj(f"route {indices}", 1300, 750)
    p.connect(pair, 0, to_voice)
    sample_route = p.obj(f"route {indices}", 1600, 420)
    p.connect(seq, 4, sample_route)
    name_route = p.obj(f"route {indices}", 1600, 450)
    p.connect(seq, 3, name_route)
    mix = p.obj("*~ 1.", 1300, 1080)
    out = p.obj("plugout~ 1 2", 1300, 1110)
    p.connect(mix, 0, out, 0)
    p.connect(mix, 0, out, 1)
    for k in range(buffers):
        x = 1300 + 110 * (k % 6)
        y = 790 + 140 * (k // 6)
        replace = p.obj("prepend replace", x, y)
        rename = p.obj("prepend name", x, y + 25)
        buffer = p.obj(f"buffer~ ---dd_b{k}", x, y + 50)
        loaded = p.msg(f"loaded {k}", x, y + 80)
        voices = p.subpatcher(f"voices_{k}", _voices_patcher(k), x, y + 105, 2, 1, ["signal"])
        p.connect(sample_route, k, replace)
        p.connect(replace, 0, buffer)
        p.connect(name_route, k, rename)
        p.connect(rename, 0, buffer)
        p.connect(name_route, k, voices, 1)
        p.connect(buffer, 1, loaded)
        p.connect(loaded, 0, device)
        p.connect(to_voice, k, voices)
        p.connect(voices, 0, mix)
    p.comment("When the transport stops, the tails ring out, as on a drum machine.",
              1300, 1140, 420)


def _voices_patcher(k: int) -> dict:
    """One buffer's voices: round-robin play~ so overlapping hits sum, like the renderer."""
    v = Patch(prefix="voice")
    v.comment(f"Buffer {k}: a gain (left inlet) plays a hit on the next of {VOICES} voices; a "
              "name (right inlet, from dd_device.js) points the voices at the buffer.",
              10, 5, 520, 2)
    inlet = v.ui("inlet", 10, 40, 30, 30, 0, 1, [""], None, comment="gain: play a hit")
    names = v.ui("inlet", 300, 40, 30, 30, 0, 1, [""], None, comment="buffer name")
    rr = v.obj("t f b", 10, 110)
    v.connect(inlet, 0, rr)
    count = v.obj(f"counter 1 {VOICES}", 120, 140)
    v.connect(rr, 1, count)
    gate = v.obj(f"gate {VOICES}", 10, 170)
    v.connect(count, 0, gate, 0)
    v.connect(rr, 0, gate, 1)
    setname = v.obj("prepend set", 300, 110)
    v.connect(names, 0, setname)
    out = v.ui("outlet", 10, 400, 30, 30, 1, 0, [], None, comment="audio")
    for i in range(VOICES):
        x = 10 + 70 * i
        trig = v.obj("t b f", x, 210)
        v.connect(gate, i, trig)
        start = v.msg("start 0", x, 240)
        v.connect(trig, 0, start)
        play = v.obj(f"play~ ---dd_b{k}", x, 270, 65)
        v.connect(start, 0, play)
        v.connect(setname, 0, play)
        amp = v.obj("*~ 0.", x, 310, 55)
        v.connect(play, 0, amp)
        v.connect(trig, 1, amp, 1)
        v.connect(amp, 0, out)
    boxes, lines = v.to_json()
    return {"fileversion": 1,
            "appversion": {"major": 8, "minor": 6, "revision": 0, "architecture": "x64",
                           "modernui": 1},
            "classnamespace": "box", "rect": [60.0, 100.0, 640.0, 460.0], "bglocked": 0,
            "openinpresentation": 0, "default_fontsize": 10.0, "default_fontface": 0,
            "default_fontname": "Arial", "gridonopen": 1, "gridsize": [15.0, 15.0],
            "gridsnaponopen": 1, "objectsnaponopen": 1, "statusbarvisible": 2,
            "toolbarvisible": 1, "boxes": boxes, "lines": lines}


# -- building the files --------------------------------------------------------------------
def build_device(out_path: str | Path | None = None) -> Path:
    """Write DeepDrummer.amxd (and DeepDrummer Sampler.amxd beside it, with the JS files they
    load); returns the MIDI device's path. Default: max_for_live/ in this repository."""
    out = Path(out_path) if out_path else SOURCES / DEVICE_NAME
    if out.suffix != ".amxd":
        out = out / DEVICE_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pack_amxd(build_patcher("midi"), "midi_effect"))
    (out.parent / SAMPLER_NAME).write_bytes(pack_amxd(build_patcher("sampler"), "instrument"))
    for name in JS_FILES:
        source = SOURCES / name
        target = out.parent / name
        if not source.exists():
            raise FileNotFoundError(f"{source} is missing: build from a checkout of the "
                                    "repository")
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
    return out


def stale_devices(folder: str | Path | None = None) -> list[Path]:
    """Devices (and JS files) in `folder` that differ from a fresh build: [] when up to date."""
    folder = Path(folder) if folder else SOURCES
    if folder.suffix == ".amxd":
        folder = folder.parent
    expected = {DEVICE_NAME: pack_amxd(build_patcher("midi"), "midi_effect"),
                SAMPLER_NAME: pack_amxd(build_patcher("sampler"), "instrument")}
    for name in JS_FILES:
        expected[name] = (SOURCES / name).read_bytes()
    stale = []
    for name, data in expected.items():
        path = folder / name
        if not path.is_file() or path.read_bytes() != data:
            stale.append(path)
    return stale
