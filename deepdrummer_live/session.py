"""A session: one folder holding everything a musician's taste depends on.

`session.sqlite` (WAL) keeps every loop handed out and every rating; a rating is acknowledged
only after its transaction is committed with `synchronous=FULL`, so it survives `kill -9` and a
power cut. `critic.pt` is the latest critic checkpoint, replaced by an atomic rename; it records
how many ratings it has learned from, so a resumed session retrains only on the ones after it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .loop import Loop

SCHEMA = """
CREATE TABLE IF NOT EXISTS loops (
    loop_id TEXT PRIMARY KEY,
    loop_json TEXT NOT NULL,
    score REAL,
    critic_version INTEGER,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    loop_id TEXT NOT NULL UNIQUE REFERENCES loops(loop_id),
    liked INTEGER NOT NULL CHECK (liked IN (0, 1)),
    rated REAL NOT NULL,
    source TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
CHECKPOINT = "critic.pt"


class AlreadyRated(Exception):
    """A loop can be rated once; the first rating stands."""


class UnknownLoop(KeyError):
    """A loop id this session never handed out."""


@dataclass(frozen=True)
class Rating:
    seq: int
    loop_id: str
    loop: Loop
    liked: bool
    rated: float
    source: str


class Session:
    """Thread-safe store of loops and ratings in `folder/session.sqlite`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name = self.folder.name
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.folder / "session.sqlite", check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / CHECKPOINT

    def add_loop(self, loop: Loop, score: float | None = None,
                 critic_version: int | None = None) -> str:
        """Remember a loop handed out, so a rating for it is accepted even after a restart.

        Written without waiting for the disk (a loop is not a rating): it survives the engine
        being killed, and the next rating's synced commit makes it durable with that rating.
        This keeps an fsync off every `/dd/next` reply."""
        loop_id = loop.loop_id
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO loops VALUES (?, ?, ?, ?, ?)",
                    (loop_id, loop.to_json(), score, critic_version, time.time()))
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
        return loop_id

    def loop(self, loop_id: str) -> Loop:
        with self._lock:
            row = self._db.execute("SELECT loop_json FROM loops WHERE loop_id = ?",
                                   (loop_id,)).fetchone()
        if row is None:
            raise UnknownLoop(loop_id)
        return Loop.from_json(row[0])

    def has_loop(self, loop_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM loops WHERE loop_id = ?",
                                    (loop_id,)).fetchone() is not None

    def rate(self, loop_id: str, liked: bool, source: str = "") -> tuple[int, int]:
        """Store a rating durably; returns (n_ratings, n_likes) after it."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if self._db.execute("SELECT 1 FROM loops WHERE loop_id = ?",
                                    (loop_id,)).fetchone() is None:
                    raise UnknownLoop(loop_id)
                self._db.execute(
                    "INSERT INTO ratings (loop_id, liked, rated, source) VALUES (?, ?, ?, ?)",
                    (loop_id, int(bool(liked)), time.time(), source))
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                raise AlreadyRated(loop_id) from None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._counts()

    def seq_of(self, loop_id: str) -> int:
        """The rating's place in the session (ratings are numbered in the order given)."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM ratings WHERE loop_id = ?",
                                   (loop_id,)).fetchone()
        if row is None:
            raise UnknownLoop(loop_id)
        return int(row[0])

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self._counts()

    def _counts(self) -> tuple[int, int]:
        n, likes = self._db.execute("SELECT COUNT(*), COALESCE(SUM(liked), 0) FROM ratings"
                                    ).fetchone()
        return int(n), int(likes)

    def ratings(self, after_seq: int = 0) -> list[Rating]:
        """Every rating (oldest first), or only those after `after_seq`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT r.seq, r.loop_id, l.loop_json, r.liked, r.rated, r.source "
                "FROM ratings r JOIN loops l USING (loop_id) WHERE r.seq > ? ORDER BY r.seq",
                (after_seq,)).fetchall()
        return [Rating(seq, lid, Loop.from_json(js), bool(liked), rated, source)
                for seq, lid, js, liked, rated, source in rows]

    def is_rated(self, loop_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM ratings WHERE loop_id = ?",
                                    (loop_id,)).fetchone() is not None

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
