"""`deepdrummer-live play`: loops through the speakers (and/or MIDI), rated from the keyboard.

Also `start_bridges(engine, args)` and `add_player_arguments(parser)`, which `serve` uses to
play while it serves OSC, and `deepdrummer-live controller ports|learn`.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import threading
import time
from typing import Any

from ..cli import CliError
from .serve import add_engine_arguments, open_engine, wait_for_shutdown

KEYS = "l like · d dislike · n next · 1-4 lock a track · q quit"


def add_player_arguments(parser: argparse.ArgumentParser) -> None:
    """Options for playing loops (audio, MIDI, clock, controller); --bpm comes from the engine
    options."""
    group = parser.add_argument_group("playing")
    group.add_argument("--audio-out", nargs="?", const="default", metavar="DEVICE",
                       help="play audio (on DEVICE, a name or part of one; default: the "
                            "system's default output)")
    group.add_argument("--midi-out", nargs="?", const="", metavar="PORT",
                       help="play MIDI notes on a virtual port DeepDrummer:out, or on PORT")
    group.add_argument("--midi-api", default="auto",
                       choices=["auto", "jack", "alsa", "coremidi", "winmm"],
                       help="MIDI system (auto: JACK on Linux when a JACK server runs)")
    group.add_argument("--midi-clock-in", metavar="PORT",
                       help="follow MIDI clock (start/stop/continue/song position) from PORT")
    group.add_argument("--midi-channel", type=int, default=10, metavar="1-16",
                       help="MIDI channel of the notes (default 10, General MIDI drums)")
    group.add_argument("--notes", metavar="N,N,N,N",
                       help="MIDI note per track (default: by each sample's role, GM drums)")
    group.add_argument("--controller", metavar="PROFILE",
                       help="MIDI controller: launchpad, generic, or a .json/.toml config file")
    group.add_argument("--controller-in", metavar="PORT", help="controller input port")
    group.add_argument("--controller-out", metavar="PORT", help="controller LED output port")


class _Bridge:
    """A player or controller and the ports it owns: closed together, player first."""

    def __init__(self, name: str, thing: Any, ports: list[Any]) -> None:
        self.name, self.thing, self.ports = name, thing, ports

    def close(self) -> None:
        from ..midi import close_port

        try:
            self.thing.close()
        finally:
            for port in self.ports:
                close_port(port)


def start_bridges(engine: Any, args: argparse.Namespace) -> list[Any]:
    """Start what the options ask for (MIDI out, audio out, controller) around one `Deck`.

    Returns closeables, to be closed in order (the deck last); [] when nothing was asked for.
    Raises CliError (after closing whatever had started) when a port or device is missing.
    """
    audio = getattr(args, "audio_out", None)
    midi = getattr(args, "midi_out", None)
    profile_name = getattr(args, "controller", None)
    if audio is None and midi is None and profile_name is None:
        return []
    from ..controller import ControllerError
    from ..deck import Deck
    from ..midi import MidiError

    deck = Deck(engine, source=getattr(args, "command", None) or "player")
    started: list[Any] = []
    try:
        deck.start()
        # both players count bars from their start: build the audio player first (it
        # resamples the library, which takes a while), then start the two together
        sound = _audio_player(deck, engine, audio) if audio is not None else None
        if sound is not None:
            started.append(sound)
        if midi is not None:
            started.append(_start_midi(deck, args, midi))
        if sound is not None:
            sound.thing.start()
        if profile_name is not None:
            started.append(_start_controller(deck, args, profile_name))
    except (MidiError, ControllerError, ValueError, OSError, TimeoutError) as exc:
        for bridge in reversed(started):
            bridge.close()
        deck.close()
        raise CliError(str(exc)) from None
    return [*started, deck]


def _start_midi(deck: Any, args: argparse.Namespace, port: str) -> _Bridge:
    from ..midi import (
        IsolatedMidiPlayer,
        parse_notes,
    )

    api = getattr(args, "midi_api", "auto")
    channel = getattr(args, "midi_channel", 10)
    if not 1 <= channel <= 16:
        raise ValueError(f"--midi-channel must be 1–16, got {channel}")
    notes = parse_notes(args.notes) if getattr(args, "notes", None) else None
    clock_in = getattr(args, "midi_clock_in", None)
    # the player runs in a process of its own: critic training cannot disturb its timing
    player = IsolatedMidiPlayer(deck, port or None, api, notes=notes, channel=channel - 1,
                                bpm=getattr(args, "bpm", 120.0), clock_in=clock_in).start()
    where = port or "virtual port DeepDrummer:out"
    clock = f", following MIDI clock from {args.midi_clock_in}" if clock_in else ""
    print(f"MIDI out on {where} (channel {channel}){clock}")
    return _Bridge("midi", player, [])


def _audio_player(deck: Any, engine: Any, device: str) -> _Bridge:
    """An audio player, not started yet."""
    try:
        from ..audio import AudioPlayer
    except OSError as exc:  # PortAudio missing
        raise ValueError(f"audio needs PortAudio ({exc}); Debian/Ubuntu: apt-get install "
                         "libportaudio2") from None
    player = AudioPlayer(deck, engine.bank, device=None if device == "default" else device)
    print(f"audio out on {player.device_name} at {player.rate} Hz")
    return _Bridge("audio", player, [])


def _start_controller(deck: Any, args: argparse.Namespace, name: str) -> _Bridge:
    from ..controller import Controller, load_profile
    from ..midi import close_port, open_input, open_output

    profile = load_profile(name)
    api = getattr(args, "midi_api", "auto")
    midi_in = open_input(getattr(args, "controller_in", None) or profile.input, api,
                         client="DeepDrummer-controller")
    try:
        midi_out = open_output(getattr(args, "controller_out", None) or profile.output, api,
                               client="DeepDrummer-leds")
    except BaseException:
        close_port(midi_in)
        raise
    print(f"controller: {profile.name} profile")
    return _Bridge("controller", Controller(deck, profile, midi_in, midi_out).start(),
                   [midi_in, midi_out])


# -- the terminal -----------------------------------------------------------------------------
class Keys:
    """Single key presses from the terminal (cbreak mode), or characters from a pipe."""

    def __init__(self) -> None:
        self.tty = sys.stdin.isatty()
        self._saved: Any = None
        self._pending: list[str] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Keys:
        if self.tty and os.name == "posix":
            import termios
            import tty

            self._saved = termios.tcgetattr(sys.stdin)
            tty.setcbreak(sys.stdin.fileno())
        elif not self.tty:
            threading.Thread(target=self._read_pipe, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self._saved)

    def _read_pipe(self) -> None:
        for line in sys.stdin:
            with self._lock:
                self._pending.extend(line.strip())

    def get(self, timeout: float) -> str | None:
        """The next key, or None after `timeout` seconds."""
        if not self.tty:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with self._lock:
                    if self._pending:
                        return self._pending.pop(0)
                time.sleep(0.02)
            return None
        if os.name == "nt":  # pragma: no cover - Windows console
            import msvcrt

            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if msvcrt.kbhit():
                    return msvcrt.getwch()
                time.sleep(0.02)
            return None
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        return sys.stdin.read(1) if ready else None


def status_line(deck: Any) -> str:
    s = deck.status()
    rate = f"{100 * s.n_likes / s.n_ratings:.0f}%" if s.n_ratings else "–"
    handed = deck.playing_handed
    playing = f"loop {handed.loop_id} bar {max(deck.bar, 0) + 1}" if handed else "starting"
    locks = " ".join(str(i + 1) for i, on in enumerate(deck.locks) if on) or "none"
    training = "training" if s.training else "idle"
    return (f"{playing} · {s.n_ratings} rated, {s.n_likes} liked ({rate}) · critic "
            f"v{s.critic_version} {training} · locked: {locks}")


def _describe(event: Any) -> str | None:
    if event.kind == "rated":
        return f"{'liked' if event.liked else 'disliked'} {event.handed.loop_id}"
    if event.kind in ("busy", "error"):
        return event.text
    return None


def run(args: argparse.Namespace) -> int:
    if args.audio_out is None and not args.no_audio:
        args.audio_out = "default"
    if args.audio_out is None and args.midi_out is None:
        raise CliError("nothing to play: drop --no-audio or add --midi-out")
    stop = wait_for_shutdown()
    engine = open_engine(args)
    bridges: list[Any] = []
    try:
        print("waiting for the first loop…", flush=True)
        bridges = start_bridges(engine, args)
        deck = bridges[-1]
        messages: list[str] = []

        def note(event: Any) -> None:
            text = _describe(event)
            if text:
                messages.append(text)

        deck.on_event(note)
        print(KEYS, flush=True)
        _interact(deck, stop, messages)
    finally:
        for bridge in bridges:
            bridge.close()
        print("\nstopping: saving the critic…", flush=True)
        n, likes = engine.session.counts()
        engine.close()
    print(f"session saved: {n} ratings, {likes} liked — {engine.session.folder}", flush=True)
    return 0


def _interact(deck: Any, stop: threading.Event, messages: list[str]) -> None:
    actions = {"l": deck.like, "d": deck.dislike, "n": deck.next}
    tty = sys.stdout.isatty()
    last = ""
    with Keys() as keys:
        while not stop.is_set():
            key = keys.get(0.25)
            if key is not None:
                key = key.lower()
                if key == "q":
                    return
                if key in actions:
                    actions[key]()
                elif key in ("1", "2", "3", "4"):
                    deck.toggle_lock(int(key) - 1)
            while messages:
                text = messages.pop(0)
                print(("\r\033[K" if tty else "") + text, flush=True)
                last = ""
            line = status_line(deck)
            if tty:
                print("\r\033[K" + line, end="", flush=True)
            elif line != last:
                print(line, flush=True)
            last = line


# -- deepdrummer-live controller ------------------------------------------------------------
def run_ports(args: argparse.Namespace) -> int:
    from ..midi import MidiError, list_ports

    try:
        inputs, outputs = list_ports(args.midi_api)
    except MidiError as exc:
        raise CliError(str(exc)) from None
    print("MIDI inputs:", *(inputs or ["(none)"]), sep="\n  ")
    print("MIDI outputs:", *(outputs or ["(none)"]), sep="\n  ")
    try:
        from ..audio import output_devices

        print("audio outputs:", *(output_devices() or ["(none)"]), sep="\n  ")
    except OSError as exc:
        print(f"audio: unavailable ({exc})")
    return 0


def run_learn(args: argparse.Namespace) -> int:
    from ..controller import ACTIONS, ControllerError, learn, load_profile, save_profile
    from ..midi import MidiError, close_port, open_input

    try:
        base = load_profile(args.profile)
        midi_in = open_input(args.input or base.input, args.midi_api,
                             client="DeepDrummer-learn")
    except (MidiError, ControllerError) as exc:
        raise CliError(str(exc)) from None
    try:
        profile = learn(midi_in, ACTIONS, timeout=args.timeout, base=base)
    finally:
        close_port(midi_in)
    if args.input:
        from dataclasses import replace

        profile = replace(profile, input=args.input)
    path = save_profile(profile, args.out)
    print(f"wrote {path}; use it with --controller {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("play", help="play loops through the speakers (and/or MIDI) and "
                                         "rate them from the keyboard")
    add_engine_arguments(parser)
    add_player_arguments(parser)
    parser.add_argument("--no-audio", action="store_true", help="MIDI only (with --midi-out)")
    parser.set_defaults(handler=run)

    ctl = sub.add_parser("controller", help="list MIDI/audio ports, or MIDI-learn a controller")
    ctl_sub = ctl.add_subparsers(dest="controller_command", metavar="ACTION")
    ctl_sub.required = True
    ports = ctl_sub.add_parser("ports", help="list MIDI ports and audio outputs")
    ports.add_argument("--midi-api", default="auto")
    ports.set_defaults(handler=run_ports)
    learn = ctl_sub.add_parser("learn", help="press each control in turn; writes a config file")
    learn.add_argument("--out", required=True, help="config file to write (.json or .toml)")
    learn.add_argument("--input", help="controller port (default: a virtual port "
                                       "DeepDrummer-learn:in)")
    learn.add_argument("--profile", default="generic", help="profile to start from "
                                                            "(generic or launchpad)")
    learn.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per control")
    learn.add_argument("--midi-api", default="auto")
    learn.set_defaults(handler=run_learn)
