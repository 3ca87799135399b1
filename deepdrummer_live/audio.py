"""Audio out: the playing loop, rendered by our renderer, through sounddevice (PortAudio).

Loops are rendered at the output device's rate, before they can start (on the deck's worker,
see `Deck.add_preparer`). A writer thread then produces the audio bar by bar with PortAudio's
blocking API: PortAudio's own buffer (`latency`) sits between Python and the sound card, so a
busy Python (critic training) delays the writer but not the sound; no Python code runs in the
audio callback.

What is heard is exactly `Renderer.listening`: bar j of a loop is bar j of its listening form
for the first four bars, then its steady-state bar (`Renderer.bar`, tails wrapped around). A
new loop starts only on a bar line; the old loop's tails ring on underneath (the listening
form's tail after its fourth bar, faded out over its last 10 ms), so nothing clicks.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .library import SampleBank
from .loop import LoopBatch
from .render import LISTEN_BARS, Renderer, bar_length

log = logging.getLogger("deepdrummer_live.audio")
LATENCY = 0.06  # seconds of audio PortAudio buffers ahead of the sound card
CHUNK = 512  # frames per blocking write
FADE_SECONDS = 0.01
CACHE = 16  # rendered loops kept


def refresh_devices() -> None:
    """Re-initialise PortAudio, so that a JACK server started after import is seen."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


def output_devices() -> list[str]:
    import sounddevice as sd

    return [f"{d['name']} ({sd.query_hostapis(d['hostapi'])['name']}, "
            f"{d['default_samplerate']:g} Hz)" for d in sd.query_devices()
            if d["max_output_channels"] > 0]


@dataclass(frozen=True)
class RenderedLoop:
    """One loop's audio at the device rate: its listening form and its steady bar."""

    loop_id: str
    bar_frames: int
    listening: np.ndarray  # 4 bars + 1 s tail
    steady: np.ndarray  # one bar in steady state
    ringout: np.ndarray  # what rings on after a bar line when it stops (faded)

    def bar(self, index: int) -> np.ndarray:
        n = self.bar_frames
        if index < LISTEN_BARS:
            return self.listening[index * n:(index + 1) * n]
        return self.steady


class AudioPlayer:
    """Plays the deck's loop on a sounddevice output; `device` is a name or index."""

    def __init__(self, deck: Any, bank: SampleBank, device: Any = None,
                 samplerate: int | None = None, channels: int = 2, latency: float = LATENCY,
                 chunk: int = CHUNK) -> None:
        import sounddevice as sd

        try:
            info = sd.query_devices(device, "output")
        except (ValueError, sd.PortAudioError) as exc:
            which = "no audio output found" if device is None else f"no audio output {device!r}"
            raise ValueError(f"{which} ({exc}); play to a DAW or drum machine with --midi-out, "
                             "or use `deepdrummer-live web`") from None
        self.deck = deck
        self.rate = int(samplerate or info["default_samplerate"])
        self.channels = min(channels, int(info["max_output_channels"]))
        self.renderer = Renderer(bank.resampled(self.rate))
        self.stream = sd.OutputStream(samplerate=self.rate, device=device,
                                      channels=self.channels, dtype="float32", latency=latency)
        self.chunk = chunk
        self.device_name = info["name"]
        self.bar = -1
        self.switches: list[tuple[int, str]] = []  # (bar, loop id) of every loop started
        self._cache: collections.OrderedDict[str, RenderedLoop] = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        self._voice: RenderedLoop | None = None
        self._voice_bars = 0
        self._ringouts: list[list] = []  # [array, position]
        self._bar_audio = np.zeros(0, dtype=np.float32)
        self._bar_pos = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- rendering (deck worker) -----------------------------------------------------------
    def prepare(self, handed: Any) -> RenderedLoop:
        """Render `handed` at the device rate (cached): called before it may start."""
        key = f"{handed.loop_id}@{handed.loop.bpm:g}"
        with self._cache_lock:
            if key in self._cache:
                return self._cache[key]
        loop = handed.loop
        batch = LoopBatch.from_loops([loop], self.renderer.bank)
        listening = self.renderer.listening(batch, loop.bpm)[0].numpy().astype(np.float32)
        steady = self.renderer.bar(batch, loop.bpm)[0].numpy().astype(np.float32)
        n = bar_length(loop.steps, loop.bpm, self.rate)
        ringout = listening[LISTEN_BARS * n:].copy()
        fade = min(len(ringout), int(FADE_SECONDS * self.rate))
        if fade:
            ringout[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        rendered = RenderedLoop(handed.loop_id, n, listening, steady, ringout)
        with self._cache_lock:
            self._cache[key] = rendered
            while len(self._cache) > CACHE:
                self._cache.popitem(last=False)
        return rendered

    def _rendered(self, handed: Any) -> RenderedLoop | None:
        with self._cache_lock:
            return self._cache.get(f"{handed.loop_id}@{handed.loop.bpm:g}")

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> AudioPlayer:
        self.deck.add_preparer(self.prepare)
        self.stream.start()
        self._thread = threading.Thread(target=self._write, name="audio-out", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Fade out, let the buffer drain, close the stream."""
        if self._thread is None:
            self.stream.close()
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        try:
            fade = int(FADE_SECONDS * self.rate)
            tail = self._take(fade) * np.linspace(1.0, 0.0, fade, dtype=np.float32)
            self.stream.write(self._frames(np.concatenate([tail, np.zeros(self.chunk,
                                                                          np.float32)])))
            self.stream.stop()
        finally:
            self.stream.close()

    # -- the writer thread -----------------------------------------------------------------
    def _write(self) -> None:
        from .midi import realtime_thread

        realtime_thread()
        try:
            while not self._stop.is_set():
                self.stream.write(self._frames(self._take(self.chunk)))
        except Exception:
            log.exception("audio output stopped")

    def _frames(self, mono: np.ndarray) -> np.ndarray:
        return np.repeat(mono[:, None], self.channels, axis=1)

    def _take(self, frames: int) -> np.ndarray:
        """The next `frames` of output, crossing bar lines as needed."""
        out = np.empty(frames, dtype=np.float32)
        done = 0
        while done < frames:
            if self._bar_pos >= len(self._bar_audio):
                self._next_bar()
            n = min(frames - done, len(self._bar_audio) - self._bar_pos)
            out[done:done + n] = self._bar_audio[self._bar_pos:self._bar_pos + n]
            self._bar_pos += n
            done += n
        return out

    def _next_bar(self) -> None:
        """A bar line: maybe start the deck's next loop, then lay out the whole bar."""
        self.bar += 1
        handed, _ = self.deck.loop_for_bar(self.bar)
        if handed is not None and (self._voice is None or handed.loop_id != self._voice.loop_id):
            rendered = self._rendered(handed)
            if rendered is None:  # not prepared (should not happen): render meanwhile
                threading.Thread(target=self.prepare, args=(handed,), daemon=True).start()
            else:
                if self._voice is not None:
                    self._ringouts.append([self._voice.ringout, 0])
                self._voice, self._voice_bars = rendered, 0
                self.switches.append((self.bar, handed.loop_id))
        if self._voice is None:
            bar = np.zeros(bar_length(16, self.deck.bpm or 120.0, self.rate), np.float32)
        else:
            bar = self._voice.bar(self._voice_bars).copy()
            self._voice_bars += 1
        for ring in self._ringouts:
            array, pos = ring
            n = min(len(bar), len(array) - pos)
            bar[:n] += array[pos:pos + n]
            ring[1] = pos + n
        self._ringouts = [r for r in self._ringouts if r[1] < len(r[0])]
        self._bar_audio, self._bar_pos = bar, 0
        bpm = handed.loop.bpm if handed is not None else (self.deck.bpm or 120.0)
        self.deck.bar_line(self.bar, bpm)
