"""Live tests: real MIDI and audio through a JACK server with the dummy backend.

The server is started by the project's own code (`deepdrummer_live.jackd.JackServer`) under a
unique name. Without `jackd` (or PortAudio) these tests skip with the reason; in CI (`CI` set)
they fail instead, because CI installs jackd2 and libportaudio2 and must run them.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from deepdrummer_live.jackd import JackError, JackServer, find_jackd

PERIOD = 256
RATE = 48000


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the live tests: install jackd2 and libportaudio2)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def jack_server():
    """A dummy JACK server (synchronous, 48 kHz, period 256) for this test session."""
    if find_jackd() is None:
        _missing("jackd is not installed (Debian/Ubuntu: apt-get install jackd2)")
    server = JackServer(rate=RATE, period=PERIOD)
    try:
        server.start()
    except JackError as exc:
        _missing(f"cannot start a JACK server: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jack_module(jack_server):
    """JACK-Client: an independent JACK client for recording audio and connecting ports."""
    try:
        import jack
    except (ImportError, OSError) as exc:
        _missing(f"JACK-Client is not usable ({exc}); pip install JACK-Client")
    return jack


@pytest.fixture(scope="session")
def sounddevice_module(jack_server):
    try:
        import sounddevice
    except OSError as exc:  # PortAudio missing
        _missing(f"sounddevice cannot load PortAudio ({exc}); apt-get install libportaudio2")
    from deepdrummer_live.audio import refresh_devices

    refresh_devices()
    return sounddevice


@pytest.fixture(scope="session")
def bank(kit_bank):
    """Our own kit (tests/conftest.py decodes it once per test session)."""
    return kit_bank


@pytest.fixture(scope="session")
def engine(tmp_path_factory, bank):
    """A real engine (session store, learner, sampler, candidate queue) on our kit."""
    from deepdrummer_live.engine import Engine
    from deepdrummer_live.session import Session

    session = Session(tmp_path_factory.mktemp("live") / "session")
    engine = Engine(session, bank, seed=3)
    yield engine
    engine.close()


class Trainer:
    """Keeps the engine's learner training in the background: random loops, rated."""

    def __init__(self, engine, bank) -> None:
        self.engine, self.bank = engine, bank
        self.stop = threading.Event()
        self.seen_training = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from deepdrummer_live.loop import random_loop

        learner = self.engine.learner
        seed = 1000
        while not self.stop.is_set():
            if learner.owed < 4 * learner.preset.batches_per_rating:
                seed += 1
                learner.add_rating(random_loop(self.bank, seed), seed % 2 == 0)
            if learner.training:
                self.seen_training += 1
            time.sleep(0.01)

    def __enter__(self) -> Trainer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

