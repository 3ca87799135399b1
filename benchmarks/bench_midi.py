"""MIDI note timing against the ideal grid, with and without the critic training meanwhile.

    python benchmarks/bench_midi.py [--bars 64] [--bpm 240] [--period 256]

Starts its own dummy JACK server (jackd2 must be installed), plays a dense loop on
its output port with the internal clock, and records it with an independent JACK MIDI input
(RtMidi stamps each message with the JACK time of the cycle that delivered it). Timing error =
arrival − ideal grid time, against the grid's median phase. Also reports how late the player's
own thread sent each message (before JACK's period rounding). "Training" runs the critic's
learner flat out in a background thread, with no regard for bar lines (the worst case).
Two players: the default one, whose scheduler runs in a process of its own
(`IsolatedMidiPlayer`), and the same scheduler as a thread of this process (`MidiPlayer`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepdrummer_live.deck import Deck  # noqa: E402
from deepdrummer_live.engine import HandedLoop  # noqa: E402
from deepdrummer_live.jackd import JackServer  # noqa: E402
from deepdrummer_live.kit import default_kit_dir  # noqa: E402
from deepdrummer_live.learner import Learner  # noqa: E402
from deepdrummer_live.library import load_library  # noqa: E402
from deepdrummer_live.loop import Loop, random_loop  # noqa: E402
from deepdrummer_live.midi import (  # noqa: E402
    IsolatedMidiPlayer,
    MidiPlayer,
    MidiRecorder,
    close_port,
    open_output,
)


class OneLoop:
    """The engine protocol, handing out one fixed loop (the benchmark times the player)."""

    def __init__(self, handed: HandedLoop) -> None:
        self.handed = handed

    def next_loop(self, timeout: float = 2.0) -> HandedLoop:
        return self.handed

    def playing(self, handed, bar) -> None:
        pass

    def rate(self, loop_id, liked, source=""):
        return (0, 0)

    def lock(self, track, grid, sample) -> None:
        pass

    def set_transport(self, bar, bpm=None) -> None:
        pass

    def status(self):
        return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(handed: HandedLoop, bars: int, bpm: float, train: Learner | None,
            isolated: bool) -> dict:
    stop = threading.Event()
    trained = [0]

    def training() -> None:
        seed = 0
        while not stop.is_set():
            seed += 1
            train.add_rating(random_loop(train.bank, seed), seed % 2 == 0)
            trained[0] += train.train_pending()

    trainer = threading.Thread(target=training, daemon=True)
    if train is not None:
        trainer.start()
        time.sleep(1.0)
    deck = Deck(OneLoop(handed)).start()
    monitor = MidiRecorder(None, client="DDBench")  # DDBench:in
    out = None
    if isolated:
        player = IsolatedMidiPlayer(deck, "DDBench:in", "jack", bpm=bpm, record=True).start()
    else:
        out = open_output("DDBench:in", api="jack")
        player = MidiPlayer(deck, out, bpm=bpm, record=True).start()
    time.sleep(bars * 240.0 / bpm)
    player.close()
    time.sleep(0.3)  # what is still on its way
    monitor.close()
    received = monitor.messages
    stop.set()
    if train is not None:
        trainer.join()
    deck.close()
    if out is not None:
        close_port(out)
    ons = [t for m, t in received if m[0] & 0xF0 == 0x90]
    step = 60.0 / bpm / 4
    sent = [(ideal, actual) for ideal, actual, m in player.sent if m[0] & 0xF0 == 0x90]
    start = sent[0][0]
    indices = [round((ideal - start) / step) for ideal, _ in sent][:len(ons)]
    offsets = [t - i * step for t, i in zip(ons, indices, strict=False)]
    phase = statistics.median(offsets)
    errors = [abs(o - phase) * 1e3 for o in offsets]
    late = [(actual - ideal) * 1e3 for ideal, actual in sent]
    return {"notes": len(ons), "expected": len(sent), "p50": percentile(errors, 0.5),
            "p99": percentile(errors, 0.99), "max": max(errors),
            "send_p50": percentile(late, 0.5), "send_p99": percentile(late, 0.99),
            "send_max": max(late), "minibatches": trained[0], "realtime": player.realtime}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=64)
    parser.add_argument("--bpm", type=float, default=240.0)
    parser.add_argument("--period", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)  # a shared 2-core machine
    bank = load_library(default_kit_dir())
    loop = random_loop(bank, 7, bpm=args.bpm, density=0.4)
    loop = Loop(tuple(tuple(on or (t == 0 and s % 4 == 0) for s, on in enumerate(row))
                      for t, row in enumerate(loop.grid)), loop.samples, args.bpm)
    handed = HandedLoop(loop.loop_id, loop, 0.5, 0, (36, 38, 42, 46), ())
    learner = Learner(bank, "default")
    with JackServer(period=args.period) as server:
        print(f"JACK dummy, 48 kHz, period {args.period} ({server.period_seconds * 1e3:.2f} ms), "
              f"realtime {server.realtime}; {args.bars} bars at {args.bpm:g} bpm")
        for name, isolated, train in (("process, idle", True, None),
                                      ("process, training", True, learner),
                                      ("thread, idle", False, None),
                                      ("thread, training", False, learner)):
            r = measure(handed, args.bars, args.bpm, train, isolated)
            print(f"{name:18s} notes {r['notes']}/{r['expected']}  arrival error p50 "
                  f"{r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  max {r['max']:.2f} ms  |  "
                  f"send late p50 {r['send_p50']:.2f} p99 {r['send_p99']:.2f} max "
                  f"{r['send_max']:.2f} ms  |  minibatches trained {r['minibatches']}  "
                  f"rt thread {r['realtime']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
