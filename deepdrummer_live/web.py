"""The browser interface: a small Starlette app over the same `Engine` as the OSC bridge.

Free mode (`/`) rates loops from the engine; study mode (`/study`, see `web_study`) runs the
paper's two-phase protocol with one session per participant. The pages are plain HTML, CSS and
JS in `static/` (no build step, no CDN), so it works offline. Every write is idempotent:
a rating sent twice (double click, reload, retry) keeps the first one and says so.
"""

from __future__ import annotations

import fcntl
import json
import logging
import socket
import threading
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .engine import Engine, EngineBusy, HandedLoop
from .learner import Preset
from .loop import Loop, LoopBatch
from .render import Renderer, write_midi, write_wav
from .session import AlreadyRated, Session, UnknownLoop

STATIC = Path(__file__).parent / "static"
LOOP_ID_CHARS = set("0123456789abcdef")
log = logging.getLogger("deepdrummer_live.web")


class BadRequest(HTTPException):
    """A request we refuse with 400 and a one-line reason."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail)


# -- request helpers (shared with web_study) ----------------------------------------------
async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or a clear 400."""
    try:
        data = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def need_bool(data: dict, key: str) -> bool:
    value = data.get(key)
    if isinstance(value, bool):
        return value
    if value in (0, 1) and not isinstance(value, float):
        return bool(value)
    raise BadRequest(f"{key!r} must be true or false")


def need_loop_id(value: object) -> str:
    if not isinstance(value, str) or len(value) != 12 or set(value) - LOOP_ID_CHARS:
        raise BadRequest("a loop id is 12 hex characters")
    return value


def loop_json(handed: HandedLoop) -> dict[str, Any]:
    """What a page needs to show and play a loop."""
    data = handed.loop.to_dict()
    score = handed.score if handed.score == handed.score else None  # NaN: not known
    return {"loop_id": handed.loop_id, "grid": data["grid"], "samples": data["samples"],
            "bpm": data["bpm"], "steps": handed.loop.steps, "tracks": handed.loop.tracks,
            "notes": list(handed.notes), "score": score, "critic_version": handed.critic_version,
            "wav": f"/api/loop/{handed.loop_id}.wav", "midi": f"/api/loop/{handed.loop_id}.mid"}


def error_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


# -- free mode ----------------------------------------------------------------------------
class FreeMode:
    """Routes of free mode; each is a thin call into the engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def routes(self) -> list[Route]:
        return [
            Route("/api/status", self.status),
            Route("/api/current", self.current),
            Route("/api/next", self.next, methods=["POST"]),
            Route("/api/rate", self.rate, methods=["POST"]),
            Route("/api/lock", self.lock, methods=["POST"]),
            Route("/api/fotf", self.fotf, methods=["POST"]),
            Route("/api/loop/{loop_id}.wav", self.wav),
            Route("/api/loop/{loop_id}.mid", self.midi),
            Route("/api/loop/{loop_id}", self.loop),
        ]

    def _state(self) -> dict[str, Any]:
        engine = self.engine
        status = engine.status()
        c = engine.constraints
        return {"session": engine.session.name, "n_ratings": status.n_ratings,
                "n_likes": status.n_likes,
                "like_rate": status.n_likes / status.n_ratings if status.n_ratings else None,
                "queue_depth": status.queue_depth, "training": status.training,
                "critic_version": status.critic_version, "device": status.device,
                "locked_grid": list(c.locked_grid), "locked_sample": list(c.locked_sample),
                "four_on_the_floor": bool(c.four_on_the_floor)}

    def _handed(self, loop_id: str) -> HandedLoop:
        try:
            return self.engine.handed_loop(need_loop_id(loop_id))
        except UnknownLoop:
            raise HTTPException(404, f"no loop {loop_id} in this session") from None

    def _with_rating(self, handed: HandedLoop) -> dict[str, Any]:
        return {**loop_json(handed), "rated": self.engine.session.is_rated(handed.loop_id)}

    def status(self, request: Request) -> JSONResponse:
        return JSONResponse(self._state())

    def current(self, request: Request) -> JSONResponse:
        """The loop on screen before a reload (if any), so a reload shows the same loop."""
        handed = self.engine.current
        return JSONResponse({"loop": self._with_rating(handed) if handed else None})

    def next(self, request: Request) -> JSONResponse:
        try:
            handed = self.engine.next_loop()
        except EngineBusy as exc:
            return JSONResponse({"error": str(exc)}, status_code=503,
                                headers={"Retry-After": "1"})
        return JSONResponse({"loop": self._with_rating(handed), "status": self._state()})

    def loop(self, request: Request) -> JSONResponse:
        return JSONResponse({"loop": self._with_rating(self._handed(
            request.path_params["loop_id"]))})

    async def rate(self, request: Request) -> JSONResponse:
        data = await json_body(request)
        loop_id, liked = need_loop_id(data.get("loop_id")), need_bool(data, "liked")
        try:
            await run_in_threadpool(self.engine.rate, loop_id, liked, "web")
            stored = True
        except UnknownLoop:
            raise HTTPException(404, f"no loop {loop_id} in this session") from None
        except AlreadyRated:
            stored = False  # a double click or a retry: the first rating stands
        return JSONResponse({"loop_id": loop_id, "stored": stored, "status": self._state()})

    async def lock(self, request: Request) -> JSONResponse:
        data = await json_body(request)
        track = data.get("track")
        if not isinstance(track, int) or isinstance(track, bool) \
                or not 0 <= track < self.engine.tracks:
            raise BadRequest(f"'track' must be 0–{self.engine.tracks - 1}")
        self.engine.lock(track, need_bool(data, "grid"), need_bool(data, "sample"))
        return JSONResponse(self._state())

    async def fotf(self, request: Request) -> JSONResponse:
        data = await json_body(request)
        self.engine.set_four_on_the_floor(need_bool(data, "on"))
        return JSONResponse(self._state())

    def wav(self, request: Request) -> FileResponse:
        handed = self._handed(request.path_params["loop_id"])
        path = self.engine.render(handed.loop_id)
        return _download(request, path, f"deepdrummer-{handed.loop_id}.wav", "audio/wav")

    def midi(self, request: Request) -> FileResponse:
        handed = self._handed(request.path_params["loop_id"])
        path = self.engine.session.folder / "renders" / f"{handed.loop_id}.mid"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            write_midi(tmp, handed.loop, notes=handed.notes)
            tmp.replace(path)
        return _download(request, path, f"deepdrummer-{handed.loop_id}.mid", "audio/midi")


def _download(request: Request, path: Path, filename: str, media_type: str) -> FileResponse:
    """The file inline (for the player), or as an attachment with `?download=1`."""
    disposition = "attachment" if request.query_params.get("download") else "inline"
    return FileResponse(path, media_type=media_type, filename=filename,
                        content_disposition_type=disposition)


# -- the app ------------------------------------------------------------------------------
def create_app(engine: Engine | None = None, study: Any = None) -> Starlette:
    """Free mode over `engine` at `/`, and/or study mode (a `web_study.StudyMode`) at `/study`."""
    if engine is None and study is None:
        raise ValueError("nothing to serve: give an engine, a study, or both")
    routes: list[Route | Mount] = []
    if engine is not None:
        routes += FreeMode(engine).routes()
        routes.append(Route("/", lambda r: FileResponse(STATIC / "index.html")))
    if study is not None:
        routes += study.routes()
        routes.append(Route("/study", lambda r: FileResponse(STATIC / "study.html")))
        if engine is None:
            routes.append(Route("/", lambda r: RedirectResponse("/study")))
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    app = Starlette(routes=routes, exception_handlers={HTTPException: error_response})
    app.add_middleware(_NoCache)
    return app


class _NoCache:
    """API answers change with every rating: tell the browser not to cache them."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/") \
                or scope["path"].endswith((".wav", ".mid")):
            await self.app(scope, receive, send)
            return

        async def send_no_cache(message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"cache-control", b"no-store")]
            await send(message)

        await self.app(scope, receive, send_no_cache)


# -- serving ------------------------------------------------------------------------------
class WebServer:
    """uvicorn on a socket we bind first, so port 0 works, the port is known at once, and a
    busy port is reported before anything slow (the engine) is started."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(128)
        except OSError:
            self.socket.close()
            raise
        self.host, self.port = host, self.socket.getsockname()[1]
        self.server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, app: Starlette) -> WebServer:
        """Serve `app` from a background thread; uvicorn only captures signals in the main
        thread, so Ctrl-C stays with the caller, which stops us in order."""
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, args=([self.socket],),
                                        name="web", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.socket.close()


# -- study mode ---------------------------------------------------------------------------
PARTICIPANT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
STATE_KEY = "study_state"


def need_participant(value: object) -> str:
    """A participant's name, in lower case: "Alice" and "alice" are one person (and one
    folder, also on file systems that ignore case)."""
    if not isinstance(value, str) or not 1 <= len(value) <= 40 \
            or set(value) - PARTICIPANT_CHARS:
        raise BadRequest("a participant name is 1–40 letters, digits, - or _")
    return value.lower()


class Participant:
    """One participant: their own session folder (SQLite ratings) and protocol.

    The session's ratings are the truth: an answer is stored there first (one per loop, so a
    repeated answer is refused by `AlreadyRated`), then given to the protocol, whose JSON state
    (items handed out, Phase II's loops) is saved in the session's meta table. On resume the
    protocol is rebuilt from that state and any stored answer it had not seen is replayed.
    """

    def __init__(self, name: str, folder: Path, bank, preset: str | Preset, seed: int,
                 phase1: int, phase2: int, device: str | None, bpm: float = 120.0) -> None:
        from .experiment import Protocol

        self.name = name
        self.bank = bank
        self.lock = threading.RLock()
        self.session = Session(folder)
        self.preparing: threading.Thread | None = None
        self.error: str | None = None
        self._loops: dict[str, Loop] = {}
        self._paused: dict[str, Any] = {}
        try:
            state = self.session.get_meta(STATE_KEY)
            if state is None:
                self.protocol = Protocol(bank, preset, seed, phase1, phase2, bpm=bpm,
                                         device=device)
                self.session.set_meta("participant", name)
                self.session.set_meta("created", str(time.time()))
            else:
                self.protocol = Protocol.from_state(bank, json.loads(state), device=device)
            self._remember_loops()
            self._replay_answers()
        except BaseException:
            self.session.close()
            raise

    def _items(self) -> list[dict]:
        return self.protocol.phase1_items + self.protocol.phase2_items

    def _remember_loops(self) -> None:
        """item id → loop for everything handed out, readable while Phase II is being built."""
        for item in self._items():
            if item["item_id"] not in self._loops:
                loop = Loop.from_dict(item["loop"])
                self.session.add_loop(loop)
                self._loops[item["item_id"]] = loop

    def _replay_answers(self) -> None:
        """Answers stored in SQLite but missing from the saved state (a crash in between)."""
        verdicts = {r.source.removeprefix("study "): r.liked for r in self.session.ratings()}
        changed = False
        for item in self._items():
            if item["liked"] is None and item["item_id"] in verdicts:
                self.protocol.answer(item["item_id"], verdicts[item["item_id"]])
                changed = True
        if changed:
            self._save()

    def _save(self) -> None:
        self.session.set_meta(STATE_KEY, json.dumps(self.protocol.state_dict()))

    def loop_of(self, item_id: str) -> Loop:
        loop = self._loops.get(item_id)
        if loop is None:
            raise HTTPException(404, f"no item {item_id!r} was handed to {self.name}")
        return loop

    @property
    def building(self) -> bool:
        return self.preparing is not None and self.preparing.is_alive()

    def _stage(self) -> str:
        phase = self.protocol.phase
        if phase == 1:
            return "phase1"
        if phase == 3:
            return "done"
        ready = bool(self.protocol.phase2_items)
        return "phase2" if ready and self.session.get_meta("continued") == "1" else "pause"

    def state(self) -> dict[str, Any]:
        """Where the participant is, and the item to rate now (the same one until answered)."""
        if self.building:  # the protocol is busy: answer from what was true at the pause
            return dict(self._paused, error=self.error)
        with self.lock:
            stage = self._stage()
            item = None
            if stage in ("phase1", "phase2"):
                known = len(self._loops)
                item = self.protocol.next_item()
                self._remember_loops()
                if len(self._loops) != known:  # a new item: keep it across a restart
                    self._save()
            p = self.protocol
            out = {"participant": self.name, "stage": stage,
                   "phase1": p.phase1, "phase2": 2 * p.phase2,
                   "answered": p.answered, "total": p.total,
                   "ready": bool(p.phase2_items), "error": self.error,
                   "item": None if item is None else {
                       "item_id": item.item_id, "phase": item.phase, "index": item.index,
                       "total": item.total, "bpm": item.loop.bpm, "steps": item.loop.steps,
                       "loop_id": item.loop.loop_id,
                       "wav": f"/api/study/p/{self.name}/item/{item.item_id}.wav"}}
            if stage == "pause" and not p.phase2_items and self.error is None:
                self._paused = out
                self._prepare_phase2()
            return out

    def _prepare_phase2(self) -> None:
        """Threshold sampling for Phase II takes a while: do it during the pause."""
        def build() -> None:
            try:
                with self.lock:
                    self.protocol.next_item()  # chooses and shuffles every Phase II loop
                    self._remember_loops()
                    self._save()
            except Exception as exc:  # shown on the page; the participant's answers are safe
                log.exception("preparing Phase II for %s failed", self.name)
                self.error = f"preparing Part 2 failed: {exc}"

        self.error = None
        self.preparing = threading.Thread(target=build, name=f"phase2-{self.name}", daemon=True)
        self.preparing.start()

    def answer(self, item_id: str, liked: bool) -> dict[str, Any]:
        """Store the answer (once: a repeat or a second click keeps the first)."""
        loop = self.loop_of(item_id)
        stored: bool | None = None
        if self.building:  # the protocol is busy, and every item handed out was answered
            try:
                self.session.rate(loop.loop_id, liked, f"study {item_id}")
                stored = True
            except AlreadyRated:
                return {"stored": False, **self.state()}
        with self.lock:
            if stored is None:
                try:
                    self.session.rate(loop.loop_id, liked, f"study {item_id}")
                    stored = True
                except AlreadyRated:
                    stored = False
            if not self._answered(item_id):  # new, or stored before a crash: the first stands
                self.protocol.answer(item_id, liked if stored else self._verdict(loop.loop_id))
                self._save()
            if self._stage() == "done":
                self._write_results()
        return {"stored": stored, **self.state()}

    def _answered(self, item_id: str) -> bool:
        return any(i["item_id"] == item_id and i["liked"] is not None for i in self._items())

    def _verdict(self, loop_id: str) -> bool:
        """The stored answer for a loop: the first one, whatever was sent after it."""
        return next(r.liked for r in reversed(self.session.ratings()) if r.loop_id == loop_id)

    def go_on(self) -> dict[str, Any]:
        """The participant ends the pause (once Phase II is ready), or retries a failed build."""
        if self.building:
            raise HTTPException(409, "Part 2 is still being prepared")
        with self.lock:
            if self.protocol.phase == 1:
                raise HTTPException(409, "Part 1 is not finished yet")
            if not self.protocol.phase2_items:
                if self.error is None:
                    raise HTTPException(409, "Part 2 is still being prepared")
                self.error = None  # try again
            else:
                self.session.set_meta("continued", "1")
        return self.state()

    def results(self) -> dict[str, Any]:
        with self.lock:
            out = self.protocol.results()
            out["participant"] = self.name
            out["done"] = self.protocol.done
            return out

    def _write_results(self) -> None:
        path = self.session.folder / "results.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.export_json(), indent=1))
        tmp.replace(path)

    def export_json(self) -> dict[str, Any]:
        """Everything about this participant: results, every item and answer, the preset."""
        with self.lock:
            state = self.protocol.state_dict()
            rated = {r.loop_id: r.rated for r in self.session.ratings()}
            items = []
            for item in state["phase1_items"] + state["phase2_items"]:
                loop = Loop.from_dict(item["loop"])
                items.append({**item, "phase": int(item["item_id"][0]),
                              "loop_id": loop.loop_id, "rated_at": rated.get(loop.loop_id),
                              "wav": f"wavs/{item['item_id']}.wav"})
            return {"participant": self.name, "created": self.session.get_meta("created"),
                    "results": self.results(), "preset": state["preset"], "seed": state["seed"],
                    "phase1": state["phase1"], "phase2": 2 * state["phase2"],
                    "sample_root": str(self.bank.root), "items": items}

    def close(self) -> None:
        if self.preparing is not None:
            self.preparing.join(timeout=60)
        with self.lock:
            self.session.close()


class StudyMode:
    """The paper's study in the browser: one folder, one session per participant inside it."""

    def __init__(self, folder: str | Path, bank, preset: str | Preset = "default",
                 device: str | None = None, seed: int = 0, phase1: int = 80,
                 phase2: int = 60, bpm: float = 120.0) -> None:
        if phase2 % 2:
            raise ValueError("Phase II must have an even number of loops (half per critic)")
        self.folder = Path(folder).expanduser().resolve()
        (self.folder / "participants").mkdir(parents=True, exist_ok=True)
        self._lockfile = _exclusive(self.folder / "study.lock")
        self.bank, self.preset, self.device, self.seed = bank, preset, device, seed
        self.phase1, self.phase2, self.bpm = phase1, phase2, bpm
        self._participants: dict[str, Participant] = {}
        self._opening: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._renderer = Renderer(bank)
        self._render_lock = threading.Lock()

    def n_participants(self) -> int:
        return sum(1 for p in (self.folder / "participants").iterdir() if p.is_dir())

    def participant(self, name: str, create: bool = False) -> Participant:
        """The participant called `name`, loaded (or, with `create`, started) on first use.
        Loading can take a while (Phase I's critic is rebuilt), so only that name waits."""
        from .experiment import ProtocolError

        name = need_participant(name)
        with self._lock:
            if name in self._participants:
                return self._participants[name]
            opening = self._opening.setdefault(name, threading.Lock())
        with opening:
            with self._lock:
                if name in self._participants:
                    return self._participants[name]
            folder = self.folder / "participants" / name
            if not create and not (folder / "session.sqlite").exists():
                raise HTTPException(404, f"no participant {name!r} in this study")
            try:
                participant = Participant(name, folder, self.bank, self.preset,
                                          self._seed_for(name), self.phase1, self.phase2 // 2,
                                          self.device, self.bpm)
            except ProtocolError as exc:
                raise HTTPException(409, f"cannot resume {name}: {exc}") from None
            with self._lock:
                self._participants[name] = participant
            return participant

    def _seed_for(self, name: str) -> int:
        """A fixed seed per participant name, so a rerun of the same study repeats exactly."""
        return (self.seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)

    def render(self, participant: Participant, loop: Loop) -> Path:
        path = participant.session.folder / "renders" / f"{loop.loop_id}.wav"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            with self._render_lock:
                audio = self._renderer.listening(LoopBatch.from_loops([loop], self.bank),
                                                 loop.bpm)[0]
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp.wav")
            write_wav(tmp, audio, self.bank.sample_rate)
            tmp.replace(path)
        return path

    # -- routes --------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("/study/summary", lambda r: FileResponse(STATIC / "summary.html")),
            Route("/api/study/info", self.info),
            Route("/api/study/join", self.join, methods=["POST"]),
            Route("/api/study/summary", self.summary),
            Route("/api/study/p/{name}", self.get_state),
            Route("/api/study/p/{name}/answer", self.post_answer, methods=["POST"]),
            Route("/api/study/p/{name}/continue", self.post_continue, methods=["POST"]),
            Route("/api/study/p/{name}/results", self.get_results),
            Route("/api/study/p/{name}/export.zip", self.export),
            Route("/api/study/p/{name}/item/{item_id}.wav", self.item_wav),
        ]

    def info(self, request: Request) -> JSONResponse:
        preset = self.preset if isinstance(self.preset, str) else self.preset.name
        return JSONResponse({"study": self.folder.name, "phase1": self.phase1,
                             "phase2": self.phase2, "preset": preset,
                             "participants": self.n_participants()})

    async def join(self, request: Request) -> JSONResponse:
        name = need_participant((await json_body(request)).get("participant"))
        return JSONResponse(await run_in_threadpool(
            lambda: self.participant(name, create=True).state()))

    def get_state(self, request: Request) -> JSONResponse:
        return JSONResponse(self.participant(request.path_params["name"]).state())

    async def post_answer(self, request: Request) -> JSONResponse:
        data = await json_body(request)
        item_id, liked = data.get("item_id"), need_bool(data, "liked")
        if not isinstance(item_id, str) or not item_id:
            raise BadRequest("'item_id' must be the id of the item answered")
        participant = self.participant(request.path_params["name"])
        return JSONResponse(await run_in_threadpool(participant.answer, item_id, liked))

    def post_continue(self, request: Request) -> JSONResponse:
        return JSONResponse(self.participant(request.path_params["name"]).go_on())

    def get_results(self, request: Request) -> JSONResponse:
        return JSONResponse(self.participant(request.path_params["name"]).results())

    def item_wav(self, request: Request) -> FileResponse:
        participant = self.participant(request.path_params["name"])
        loop = participant.loop_of(request.path_params["item_id"])
        return FileResponse(self.render(participant, loop), media_type="audio/wav")

    def export(self, request: Request) -> FileResponse:
        """A zip of `results.json` and every loop the participant heard, as WAV."""
        participant = self.participant(request.path_params["name"])
        data = participant.export_json()
        path = participant.session.folder / "export.zip"
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("results.json", json.dumps(data, indent=1))
            for item in data["items"]:
                wav = self.render(participant, Loop.from_dict(item["loop"]))
                archive.write(wav, item["wav"], compress_type=zipfile.ZIP_STORED)
        tmp.replace(path)
        return FileResponse(path, media_type="application/zip",
                            filename=f"deepdrummer-study-{participant.name}.zip")

    def summary(self, request: Request) -> JSONResponse:
        """Every participant's θs and the study's summary, as in `experiment` results.json."""
        from .experiment import summarise

        users = []
        for folder in sorted((self.folder / "participants").iterdir()):
            path = folder / "results.json"
            if path.is_file():
                users.append(json.loads(path.read_text())["results"])
        done = [u for u in users if u.get("delta") is not None]
        return JSONResponse({"study": self.folder.name, "users": done,
                             "summary": summarise(done) if done else None,
                             "participants": self.n_participants()})

    def close(self) -> None:
        for participant in list(self._participants.values()):
            participant.close()
        self._lockfile.close()


def _exclusive(path: Path):
    """Hold an exclusive lock on `path` for as long as the returned file stays open, so two
    servers cannot run the same study at once (each would keep its own protocol state)."""
    handle = open(path, "a+")  # kept open: closing it releases the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StudyBusy(f"{path.parent} is open in another deepdrummer-live web") from None
    return handle


class StudyBusy(RuntimeError):
    """The study folder is in use by another server."""
