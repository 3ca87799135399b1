"""The learner, the sampler and the candidate queue in a child process, behind a small proxy.

Why a process: every thread of one Python process shares the GIL. Training and the MH search
hold it for most of each minibatch, and on a small CPU a thread holding it can be descheduled
for milliseconds, so a reply to `/dd/next` or `/dd/rate` waited on the critic (p99 8–23 ms).
Here the engine's process keeps only fast work: the session store, a mirror of the ready
candidates, and the replies. The child trains and searches at background priority and pushes
what changed (critic version, owed training, ready candidates) down a pipe; ratings,
constraints and handed-out loops go the other way without waiting for an answer.

Loops handed out are filtered here, at once, so a loop never comes twice even while the
child's next list is in flight; constraint changes carry an epoch so a list made before one
is never taken after it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .candidates import CandidateQueue, ReadyCandidates, loop_key, obeys
from .child import ChildStartError, spawn
from .learner import Learner, Preset
from .library import SampleBank
from .loop import Constraints, Loop
from .sampler import Candidate

log = logging.getLogger("deepdrummer_live.worker")
PUBLISH_S = 0.01  # how often the child looks for news to push
START_TIMEOUT = 120.0  # importing torch and resuming a long session can take a while
STOP_TIMEOUT = 60.0
BAR_MARGIN = 0.05  # training slices end this long before a bar line


def bar_deadline(transport: tuple[float, int, float] | None,
                 now: float | None = None) -> float | None:
    """When the current training slice must end: just before the next bar line, given the
    host's last `(time.monotonic(), bar, bpm)`; None when no host spoke in the last 8 bars."""
    if transport is None:
        return None
    when, _, bpm = transport
    bar_seconds = 240.0 / bpm
    now = time.monotonic() if now is None else now
    if now - when > 8 * bar_seconds:  # the host went quiet: stop guessing
        return None
    bars_ahead = int((now - when + BAR_MARGIN) // bar_seconds) + 1
    return when + bars_ahead * bar_seconds - BAR_MARGIN


class WorkerError(RuntimeError):
    """The learner process failed to start, or is gone."""


@dataclass(frozen=True)
class WorkerState:
    """What the child last reported."""

    version: int = 0  # bumps whenever the critic's weights change
    owed: int = 0  # minibatches of training still to run
    n_ratings: int = 0  # ratings the child has received
    learned: int = 0  # ratings whose training is complete


class LearnerProcess(ReadyCandidates):
    """The learner and its candidate queue, running in a child process (see module doc).

    Offers what the engine needs of both: `add_rating`, `get`, `set_constraints`, `remember`,
    `save`, the critic's `version`, `owed` and `training`, the ready `depth`."""

    def __init__(self, bank: SampleBank, preset: Preset, device: str | None = None,
                 seed: int = 0, queue_depth: int = 4, checkpoint: Path | None = None,
                 ratings: Sequence[tuple[Loop, bool, int]] = (),
                 on_lost: Callable[[], None] | None = None) -> None:
        """`ratings` are (loop, liked, seq) in rating order; a checkpoint's `rating_seq` says
        which of them the saved critic has already learned. `on_lost` is called (from a
        reader thread) if the child dies before `close()`."""
        self.bank = bank
        self.preset = preset
        self.spec = {"bank": bank, "preset": preset, "device": device, "seed": seed,
                     "queue_depth": queue_depth,
                     "checkpoint": str(checkpoint) if checkpoint else None,
                     "ratings": list(ratings)}
        self.device = "?"
        self.warnings: list[str] = []
        self._state = WorkerState()
        self._sent_ratings = len(self.spec["ratings"])
        self._ready: list[Candidate] = []
        self._handed = {loop_key(loop) for loop, _, _ in ratings}  # never offered twice
        self._constraints: Constraints | None = None
        self._epoch = 0
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._replies: dict[int, Any] = {}
        self._request = 0
        self._process: Any = None
        self._conn: Any = None
        self._reader: threading.Thread | None = None
        self._gone = False
        self._closing = False
        self._on_lost = on_lost

    # -- life cycle ----------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> LearnerProcess:
        """Spawn the child and wait until it has resumed the ratings and built its critic."""
        try:
            self._process, self._conn, message = spawn(
                _worker_main, self.spec, "deepdrummer-learner", "the learner process", timeout)
        except ChildStartError as exc:
            raise WorkerError(str(exc)) from None
        finally:
            self.spec = {}  # the bank and ratings now live in the child
        _, self.device, self.warnings, state = message
        self._state = WorkerState(*state)
        self._reader = threading.Thread(target=self._read, name="learner-news", daemon=True)
        self._reader.start()
        return self

    def close(self, checkpoint: Path | None = None, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the child after its current minibatch, saving the critic to `checkpoint`."""
        if self._process is None:
            return
        self._closing = True
        try:
            reply = self._call("stop", str(checkpoint) if checkpoint else None, timeout=timeout)
            if reply:
                log.error("saving the critic failed: %s", reply)
        except WorkerError as exc:
            log.error("%s", exc)
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()
        self._process = None

    # -- ratings and training ------------------------------------------------------------
    def add_rating(self, loop: Loop, liked: bool, train: bool = True, seq: int = 0) -> None:
        """Hand a rating to the learner (returns at once). KeyError for unknown samples."""
        for name in loop.samples:
            self.bank.index(name)
        with self._cond:
            self._sent_ratings += 1
        self._send("rate", loop, bool(liked), train, seq)

    @property
    def version(self) -> int:
        return self._state.version

    @property
    def owed(self) -> int:
        return self._state.owed

    @property
    def training(self) -> bool:
        """Training is owed, or a rating is on its way to the learner."""
        with self._cond:
            return self._state.owed > 0 or self._state.n_ratings < self._sent_ratings

    @property
    def learned(self) -> int:
        return self._state.learned

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every rating sent so far is fully trained (True) or time runs out."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.training and not self._gone:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return not self._gone

    def save(self, path: Path, wait: bool = True, timeout: float = STOP_TIMEOUT) -> None:
        """Checkpoint the critic (atomic rename) with the last rating it has fully learned;
        `wait=False` returns at once and leaves the child to save in the background."""
        if not wait:
            self._notify("save", None, str(path))
            return
        error = self._call("save", str(path), timeout=timeout)
        if error:
            raise WorkerError(f"saving the critic failed: {error}")

    def set_transport(self, transport: tuple[float, int, float]) -> None:
        """Where the host's bar lines are: training slices end before the next one."""
        self._notify("transport", transport)

    # -- candidates ----------------------------------------------------------------------
    def _hand_out(self, candidate: Candidate) -> bool:
        key = loop_key(candidate.loop)
        if key in self._handed:
            return False
        self._handed.add(key)
        self._notify("handed", candidate.loop)
        return True

    def _stopped(self) -> bool:
        return self._gone

    def set_constraints(self, constraints: Constraints | None) -> None:
        """From now on only loops obeying `constraints` are handed out; the child repairs
        and refills its ready loops."""
        with self._cond:
            self._epoch += 1
            self._constraints = constraints
            keep = obeys([c.loop for c in self._ready], constraints, self.bank)
            self._ready = [c for c, ok in zip(self._ready, keep, strict=True) if ok]
            self._notify("constraints", constraints, self._epoch)

    def remember(self, loops: Iterable[Loop]) -> None:
        """Never hand out these loops."""
        loops = list(loops)
        with self._cond:
            self._handed.update(loop_key(loop) for loop in loops)
            self._ready = [c for c in self._ready if loop_key(c.loop) not in self._handed]
        self._notify("remember", loops)

    # -- the pipe ------------------------------------------------------------------------
    def _send(self, *message: Any) -> None:
        with self._send_lock:
            if self._gone:
                raise WorkerError("the learner process is gone")
            try:
                self._conn.send(message)
            except (OSError, ValueError) as exc:
                self._lost(f"the learner process is gone ({exc})")
                raise WorkerError("the learner process is gone") from None

    def _notify(self, *message: Any) -> None:
        """Tell the child something it needs only while it lives (a new child is told again)."""
        try:
            self._send(*message)
        except WorkerError:
            pass

    def _call(self, kind: str, *args: Any, timeout: float) -> Any:
        with self._cond:
            self._request += 1
            request = self._request
        self._send(kind, request, *args)
        end = time.monotonic() + timeout
        with self._cond:
            while request not in self._replies:
                left = end - time.monotonic()
                if self._gone or left <= 0:
                    raise WorkerError(f"the learner process did not answer {kind!r}")
                self._cond.wait(left)
            return self._replies.pop(request)

    def _read(self) -> None:
        """News from the child: state, ready candidates, answers to calls."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self._lost("the learner process is gone")
                return
            kind = message[0]
            with self._cond:
                if kind == "state":
                    self._state = WorkerState(*message[1])
                elif kind == "candidates":
                    epoch, candidates = message[1], message[2]
                    if epoch == self._epoch:
                        self._ready = [c for c in candidates
                                       if loop_key(c.loop) not in self._handed]
                elif kind == "reply":
                    self._replies[message[1]] = message[2]
                self._cond.notify_all()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def gone(self) -> bool:
        return self._gone

    def _lost(self, why: str) -> None:
        with self._cond:
            unexpected = not self._gone and not self._closing
            self._gone = True
            self._cond.notify_all()
        if unexpected:
            log.error("%s", why)
            if self._on_lost is not None:
                self._on_lost()


# -- the child -------------------------------------------------------------------------------
class _Worker:
    """The child's side: the real learner, sampler and candidate queue."""

    def __init__(self, conn: Any, spec: dict) -> None:
        import torch

        from .devices import share_cores
        from .sampler import Sampler

        share_cores()
        self.conn = conn
        self.bank: SampleBank = spec["bank"]
        self.learner = Learner(self.bank, spec["preset"], device=spec["device"],
                               seed=spec["seed"])
        self.seqs: list[int] = []  # the session's id of each rating the learner holds
        self.warnings = self._resume(spec["checkpoint"], spec["ratings"])
        generator = torch.Generator().manual_seed(spec["seed"] + 1)
        self.sampler = Sampler(self.bank, self.learner.scorer(), self.learner.preset,
                               generator=generator)
        self.queue = CandidateQueue(self.learner, self.sampler, depth=spec["queue_depth"])
        self.queue.remember(loop for loop, _, _ in spec["ratings"])  # never offered twice
        self.transport: tuple[float, int, float] | None = None
        self.epoch = 0
        self.send_lock = threading.Lock()
        self.stopping = threading.Event()

    def _resume(self, checkpoint: str | None,
                ratings: list[tuple[Loop, bool, int]]) -> list[str]:
        """Load the checkpoint, then owe training for every rating it had not learned."""
        from .critic import CheckpointError

        warnings, trained_seq = [], 0
        if checkpoint and Path(checkpoint).exists():
            try:
                trained_seq = int(self.learner.load(checkpoint).get("rating_seq", 0))
            except CheckpointError as exc:
                warnings.append(f"{exc}; retraining the critic from every stored rating")
        skipped = 0
        for loop, liked, seq in ratings:
            try:
                self._add(loop, liked, seq > trained_seq, seq)
            except KeyError:  # a sample that is no longer in the library
                skipped += 1
        if skipped:
            warnings.append(f"{skipped} stored ratings use samples missing from "
                            f"{self.bank.root}; they are kept in the session but not used "
                            "for training")
        return warnings

    def _add(self, loop: Loop, liked: bool, train: bool, seq: int) -> None:
        self.learner.add_rating(loop, liked, train=train)
        self.seqs.append(seq)

    def state(self) -> tuple[int, int, int, int]:
        """(version, owed, ratings received, learned). Ratings are counted first: one counted
        is already owed, so a snapshot never shows a received rating as trained."""
        received = len(self.seqs)
        learner = self.learner
        return (learner.version, learner.owed, received, learner.learned)

    def send(self, *message: Any) -> None:
        with self.send_lock:
            self.conn.send(message)

    def save(self, path: str) -> None:
        learned = self.learner.learned
        seq = max(self.seqs[:learned], default=0)
        self.learner.save(path, {"rating_seq": seq})

    def run(self) -> None:
        """Train and search in the background; obey the engine until it says stop or dies."""
        self.learner.start(deadline=lambda: bar_deadline(self.transport))
        self.queue.start()
        publisher = threading.Thread(target=self._publish, name="publish", daemon=True)
        publisher.start()
        try:
            while self._obey(self.conn.recv()):
                pass
        except (EOFError, OSError):  # the engine is gone (maybe killed): nothing to save
            pass
        finally:
            self._halt()

    def _halt(self) -> None:
        """Stop publishing, searching and training (after the current minibatch). Idempotent."""
        self.stopping.set()
        self.queue.close()
        self.learner.stop()

    def _obey(self, message: tuple) -> bool:
        kind = message[0]
        if kind == "rate":
            _, loop, liked, train, seq = message
            try:
                self._add(loop, liked, train, seq)
            except KeyError as exc:
                log.warning("rating not learned: %s", exc)
        elif kind == "handed":
            self.queue.remember([message[1]])
        elif kind == "remember":
            self.queue.remember(message[1])
        elif kind == "constraints":
            self.queue.set_constraints(message[1])
            self.epoch = message[2]
        elif kind == "transport":
            self.transport = message[1]
        elif kind in ("save", "stop"):
            _, request, path = message
            if kind == "stop":
                self._halt()
            error = None
            if path:
                try:
                    self.save(path)
                except Exception as exc:  # reported to the engine, which logs it
                    error = f"{type(exc).__name__}: {exc}"
                    log.exception("saving the critic failed")
            if request is not None:
                self.send("reply", request, error)
            return kind != "stop"
        return True

    def _publish(self) -> None:
        """Push the critic's state and the ready candidates whenever they change."""
        last_state, last_ready = None, None
        while not self.stopping.wait(PUBLISH_S):
            state = self.state()
            epoch = self.epoch  # read before the list: a list is never older than its epoch
            ready = self.queue.ready()
            keys = (epoch, tuple((loop_key(c.loop), c.critic_version) for c in ready))
            try:
                if state != last_state:
                    self.send("state", state)
                    last_state = state
                if keys != last_ready:
                    self.send("candidates", epoch, ready)
                    last_ready = keys
            except (OSError, ValueError):
                return


def _worker_main(conn: Any, spec: dict) -> None:
    from .devices import run_in_background

    run_in_background()  # threads started from here inherit the lower priority
    try:
        worker = _Worker(conn, spec)
    except Exception as exc:
        conn.send(("error", f"the learner could not start: {type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", str(worker.learner.device), worker.warnings, worker.state()))
    worker.run()
