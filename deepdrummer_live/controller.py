"""A MIDI controller for rating without the mouse: like, dislike, next, lock a track; LEDs.

A profile maps actions to notes or CCs and says how to light things:
- `launchpad`: a Novation Launchpad in Programmer mode (note = pad, velocity = colour). The
  current loop's 4 × 16 grid fills the 8 × 8 pads (steps 1–8 on the top four rows, 9–16 on the
  bottom four, one row per track); the right-hand column holds like / dislike / next, the top
  row the four track locks. A rating flashes its button white.
- `generic`: any controller with buttons or pads; its LEDs (if any) follow the bound controls,
  127 = lit.
A JSON or TOML file can start from either profile and rebind anything (`learn` writes one).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ACTIONS = ("like", "dislike", "next", "lock1", "lock2", "lock3", "lock4")
NOTE_ON, NOTE_OFF, CONTROL = 0x90, 0x80, 0xB0
FLASH_SECONDS = 0.15
LAUNCHPAD_X_PROGRAMMER = (0xF0, 0x00, 0x20, 0x29, 0x02, 0x0C, 0x0E, 0x01, 0xF7)
LAUNCHPAD_X_LIVE = (0xF0, 0x00, 0x20, 0x29, 0x02, 0x0C, 0x0E, 0x00, 0xF7)


class ControllerError(ValueError):
    """A controller profile or config file that cannot be used; the message says why."""


@dataclass(frozen=True)
class Control:
    """One note or CC (channel 0–15, or None for any channel on input and 0 on output)."""

    kind: str  # "note" or "cc"
    number: int
    channel: int | None = None

    @classmethod
    def parse(cls, text: str) -> Control:
        """'note:36', 'cc:20', 'cc:20@10' (channel counted from 1)."""
        try:
            body, _, chan = str(text).strip().lower().partition("@")
            kind, _, number = body.partition(":")
            channel = int(chan) - 1 if chan else None
            control = cls(kind, int(number), channel)
        except ValueError:
            raise ControllerError(f"bad control {text!r}: write note:N or cc:N, "
                                  "optionally @CHANNEL (1–16)") from None
        if kind not in ("note", "cc") or not 0 <= control.number <= 127 or (
                channel is not None and not 0 <= channel <= 15):
            raise ControllerError(f"bad control {text!r}: note:N or cc:N with N 0–127, "
                                  "channel 1–16")
        return control

    def __str__(self) -> str:
        chan = f"@{self.channel + 1}" if self.channel is not None else ""
        return f"{self.kind}:{self.number}{chan}"

    def pressed_by(self, message: list[int] | tuple[int, ...]) -> bool:
        """A note-on with velocity > 0, or a CC with value > 0, on this control."""
        if len(message) < 3:
            return False
        status, kind = message[0] & 0xF0, "note" if message[0] & 0xF0 == NOTE_ON else "cc"
        if status not in (NOTE_ON, CONTROL) or message[2] == 0:
            return False
        channel_ok = self.channel is None or message[0] & 0x0F == self.channel
        return kind == self.kind and message[1] == self.number and channel_ok

    def message(self, value: int) -> list[int]:
        """The message that sets this control's LED to `value` (colour or 0–127)."""
        status = NOTE_ON if self.kind == "note" else CONTROL
        return [status | (self.channel or 0), self.number, value]


@dataclass(frozen=True)
class Profile:
    """Bindings and LED behaviour of one kind of controller."""

    name: str
    bindings: dict[str, Control]
    grid: bool = False  # Launchpad pads show the loop
    init: tuple[tuple[int, ...], ...] = ()  # sent once at start (e.g. Programmer mode)
    exit: tuple[tuple[int, ...], ...] = ()  # sent at close, after the LEDs are cleared
    colours: dict[str, int] = field(default_factory=dict)
    track_colours: tuple[int, ...] = ()
    input: str | None = None  # port name (or part of it) to read from
    output: str | None = None  # port name (or part of it) for the LEDs

    def action_for(self, message: list[int] | tuple[int, ...]) -> str | None:
        for action, control in self.bindings.items():
            if control.pressed_by(message):
                return action
        return None


def _cc(n: int) -> Control:
    return Control("cc", n)


LAUNCHPAD = Profile(
    name="launchpad",
    bindings={"like": _cc(89), "dislike": _cc(79), "next": _cc(69),
              "lock1": _cc(91), "lock2": _cc(92), "lock3": _cc(93), "lock4": _cc(94)},
    grid=True, init=(LAUNCHPAD_X_PROGRAMMER,), exit=(LAUNCHPAD_X_LIVE,),
    colours={"like": 21, "dislike": 5, "next": 3, "lock_on": 13, "lock_off": 1, "flash": 3},
    track_colours=(5, 9, 13, 45), input="Launchpad", output="Launchpad")

GENERIC = Profile(
    name="generic",
    bindings={"like": _cc(20), "dislike": _cc(21), "next": _cc(22),
              "lock1": _cc(23), "lock2": _cc(24), "lock3": _cc(25), "lock4": _cc(26)},
    colours={"like": 127, "dislike": 127, "next": 127, "lock_on": 127, "lock_off": 0,
             "flash": 0})

PROFILES = {"launchpad": LAUNCHPAD, "generic": GENERIC}


def launchpad_pad(track: int, step: int) -> int:
    """Programmer-mode note of the pad for (track, step): rows 8–5 steps 1–8, rows 4–1 9–16."""
    row = 8 - track - 4 * (step // 8)
    return 10 * row + step % 8 + 1


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a JSON/TOML file based on one."""
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ControllerError(f"no controller profile {name_or_path!r}: use "
                              f"{' or '.join(PROFILES)}, or a .json/.toml file")
    try:
        text = path.read_text()
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise ControllerError("TOML needs Python 3.11+; use a .json file") from None
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ControllerError(f"cannot read {path}: {exc}") from None
    return profile_from_dict(data, str(path))


def profile_from_dict(data: dict, where: str = "config") -> Profile:
    if not isinstance(data, dict):
        raise ControllerError(f"{where}: expected a table of settings")
    base_name = data.get("profile", "generic")
    if base_name not in PROFILES:
        raise ControllerError(f"{where}: profile must be one of {', '.join(PROFILES)}")
    base = PROFILES[base_name]
    bindings = dict(base.bindings)
    for action, text in (data.get("bindings") or {}).items():
        if action not in ACTIONS:
            raise ControllerError(f"{where}: unknown action {action!r}; actions: "
                                  f"{', '.join(ACTIONS)}")
        bindings[action] = Control.parse(text)
    colours = {**base.colours, **{k: int(v) for k, v in (data.get("colours") or {}).items()}}
    unknown = set(data) - {"profile", "bindings", "colours", "input", "output"}
    if unknown:
        raise ControllerError(f"{where}: unknown settings {', '.join(sorted(unknown))}")
    return replace(base, bindings=bindings, colours=colours,
                   input=data.get("input", base.input), output=data.get("output", base.output))


def profile_to_dict(profile: Profile) -> dict:
    return {"profile": profile.name, "input": profile.input, "output": profile.output,
            "bindings": {a: str(c) for a, c in profile.bindings.items()}}


def save_profile(profile: Profile, path: str | Path) -> Path:
    """Write a profile as JSON (or TOML when the name ends in .toml)."""
    path = Path(path)
    data = profile_to_dict(profile)
    if path.suffix.lower() == ".toml":
        lines = [f"profile = {json.dumps(data['profile'])}"]
        lines += [f"{k} = {json.dumps(data[k])}" for k in ("input", "output") if data[k]]
        lines += ["", "[bindings]"]
        lines += [f"{a} = {json.dumps(c)}" for a, c in data["bindings"].items()]
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text(json.dumps({k: v for k, v in data.items() if v is not None},
                                   indent=2) + "\n")
    return path


def loop_leds(profile: Profile, handed: Any,
              locks: list[bool] | tuple[bool, ...]) -> list[list[int]]:
    """Every LED message that shows `handed` (and the lock states) on this controller."""
    messages: list[list[int]] = []
    colours = profile.colours
    if profile.grid and handed is not None:
        grid = handed.loop.grid
        for track in range(min(4, len(grid))):
            colour = profile.track_colours[track % len(profile.track_colours)]
            for step in range(min(16, len(grid[track]))):
                pad = launchpad_pad(track, step)
                messages.append([NOTE_ON, pad, colour if grid[track][step] else 0])
    for action in ("like", "dislike", "next"):
        if action in profile.bindings:
            messages.append(profile.bindings[action].message(colours[action]))
    for track, locked in enumerate(locks[:4]):
        control = profile.bindings.get(f"lock{track + 1}")
        if control is not None:
            messages.append(control.message(colours["lock_on" if locked else "lock_off"]))
    return messages


def clear_leds(profile: Profile) -> list[list[int]]:
    messages = []
    if profile.grid:
        messages += [[NOTE_ON, launchpad_pad(t, s), 0] for t in range(4) for s in range(16)]
    messages += [control.message(0) for control in profile.bindings.values()]
    return messages


class Controller:
    """Reads `midi_in` for actions on the deck; shows the deck's loop on `midi_out`'s LEDs."""

    def __init__(self, deck: Any, profile: Profile, midi_in: Any,
                 midi_out: Any | None = None) -> None:
        self.deck = deck
        self.profile = profile
        self.midi_in = midi_in
        self.midi_out = midi_out
        self.actions: list[str] = []  # every action taken, in order (shown by `play`)
        self._send_lock = threading.Lock()
        self._closed = False

    def start(self) -> Controller:
        for message in self.profile.init:
            self._send(list(message))
        self.deck.on_event(self._on_deck_event)
        self.show(getattr(self.deck, "playing_handed", None) or self.deck.pending)
        self.midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
        self.midi_in.set_callback(self._on_message)
        return self

    def close(self) -> None:
        """Stop listening, switch the LEDs off, leave Programmer mode."""
        if self._closed:
            return
        self._closed = True
        try:
            self.midi_in.cancel_callback()
        except Exception:
            pass
        for message in clear_leds(self.profile) + [list(m) for m in self.profile.exit]:
            self._send(message)

    def _send(self, message: list[int]) -> None:
        if self.midi_out is None:
            return
        with self._send_lock:
            self.midi_out.send_message(message)

    def show(self, handed: Any) -> None:
        for message in loop_leds(self.profile, handed, self.deck.locks):
            self._send(message)

    def _on_message(self, event: tuple[list[int], float], data: Any = None) -> None:
        action = self.profile.action_for(event[0])
        if action is None:
            return
        self.actions.append(action)
        if action == "like":
            self.deck.like()
        elif action == "dislike":
            self.deck.dislike()
        elif action == "next":
            self.deck.next()
        else:
            self.deck.toggle_lock(int(action[-1]) - 1)

    def _on_deck_event(self, event: Any) -> None:
        if self._closed:
            return
        if event.kind == "loop":
            self.show(event.handed)
        elif event.kind == "lock":
            track = int(event.text)
            control = self.profile.bindings.get(f"lock{track + 1}")
            if control is not None:
                on = self.deck.locks[track]
                self._send(control.message(self.profile.colours["lock_on" if on else "lock_off"]))
        elif event.kind == "rated":
            self._flash("like" if event.liked else "dislike")

    def _flash(self, action: str) -> None:
        """The rated button lights the flash colour, then its own again."""
        control = self.profile.bindings.get(action)
        if control is None:
            return
        self._send(control.message(self.profile.colours["flash"]))
        restore = control.message(self.profile.colours[action])
        timer = threading.Timer(FLASH_SECONDS, lambda: self._closed or self._send(restore))
        timer.daemon = True
        timer.start()


def learn(midi_in: Any, actions: tuple[str, ...] = ACTIONS,
          prompt: Callable[[str], None] = print, timeout: float = 30.0,
          base: Profile = GENERIC) -> Profile:
    """MIDI learn: press each action's control in turn; returns `base` with those bindings."""
    bindings = dict(base.bindings)
    midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
    while midi_in.get_message() is not None:  # drop what came before
        pass
    used: set[tuple[str, int]] = set()
    for action in actions:
        prompt(f"press the control for {action} (or wait {timeout:g} s to keep "
               f"{bindings[action]})")
        control = _wait_for_control(midi_in, timeout, used)
        if control is not None:
            bindings[action] = control
            used.add((control.kind, control.number))
            prompt(f"  {action} = {control}")
    return replace(base, bindings=bindings)


def _wait_for_control(midi_in: Any, timeout: float,
                      used: set[tuple[str, int]]) -> Control | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = midi_in.get_message()
        if item is None:
            time.sleep(0.005)
            continue
        message = item[0]
        if len(message) < 3 or message[2] == 0:
            continue  # releases: note-off as velocity 0, CC back to 0
        status = message[0] & 0xF0
        if status not in (NOTE_ON, CONTROL):
            continue
        kind = "note" if status == NOTE_ON else "cc"
        if (kind, message[1]) in used:
            continue
        return Control(kind, message[1], message[0] & 0x0F)
    return None
