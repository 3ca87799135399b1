"""The session store: ratings are durable, unique and survive reopening."""

import sqlite3

import pytest

from deepdrummer_live.loop import Loop
from deepdrummer_live.session import AlreadyRated, Session, UnknownLoop


def make_loop(i: int) -> Loop:
    grid = tuple(tuple(bool((i >> (s % 8)) & 1) for s in range(16)) for _ in range(4))
    return Loop(grid, ("a.wav", "b.wav", "c.wav", f"d{i}.wav"), 120.0)


def test_ratings_survive_reopening(tmp_path):
    session = Session(tmp_path / "s")
    ids = [session.add_loop(make_loop(i), 0.5, 1) for i in range(5)]
    assert session.rate(ids[0], True) == (1, 1)
    assert session.rate(ids[1], False) == (2, 1)
    session.close()
    again = Session(tmp_path / "s")
    assert again.counts() == (2, 1)
    stored = again.ratings()
    assert [r.loop_id for r in stored] == ids[:2]
    assert stored[0].loop == make_loop(0)
    assert [r.loop_id for r in again.ratings(after_seq=stored[0].seq)] == [ids[1]]


def test_double_rating_and_unknown_loop_are_refused(tmp_path):
    session = Session(tmp_path / "s")
    loop_id = session.add_loop(make_loop(1))
    session.rate(loop_id, True)
    with pytest.raises(AlreadyRated):
        session.rate(loop_id, False)
    with pytest.raises(UnknownLoop):
        session.rate("0123456789ab", True)
    assert session.counts() == (1, 1)
    assert session.ratings()[0].liked is True


def test_database_is_wal_and_readable_by_sqlite(tmp_path):
    session = Session(tmp_path / "s")
    session.rate(session.add_loop(make_loop(2)), True)
    db = sqlite3.connect(tmp_path / "s" / "session.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 1
