"""Study mode's bookkeeping without a browser: the SQLite ratings are the truth, so an answer
stored just before a crash (before the protocol's state was saved) is not lost or changed."""

from __future__ import annotations

import pytest

from deepdrummer_live.learner import PRESETS
from deepdrummer_live.web import StudyBusy, StudyMode

FAST = PRESETS["default"].with_overrides(chains=8, mh_steps=8, threshold_budget=40,
                                         batches_per_rating=2)


@pytest.fixture(scope="module")
def bank():
    from deepdrummer_live.cli import load_bank

    return load_bank(None)  # our kit


def test_an_answer_stored_before_a_crash_is_replayed(tmp_path, bank):
    study = StudyMode(tmp_path / "study", bank, preset=FAST, phase1=3, phase2=2)
    try:
        with pytest.raises(StudyBusy):  # one server per study folder
            StudyMode(tmp_path / "study", bank, preset=FAST, phase1=3, phase2=2)
        carol = study.participant("Carol", create=True)
        assert carol.name == "carol"  # names are case-insensitive
        first = carol.state()["item"]
        assert first["item_id"] == "1-000"
        # The crash: the rating reached SQLite, the protocol's saved state never heard of it.
        carol.session.rate(first["loop_id"], True, "study 1-000")
    finally:
        study.close()

    study = StudyMode(tmp_path / "study", bank, preset=FAST, phase1=3, phase2=2)
    try:
        carol = study.participant("carol")
        state = carol.state()
        assert state["answered"] == 1 and state["item"]["item_id"] == "1-001"
        assert carol.results()["phase1_likes"] == [True]
        again = carol.answer("1-000", False)  # a stale tab: the first answer stands
        assert again["stored"] is False and carol.results()["phase1_likes"] == [True]
        assert [r.liked for r in carol.session.ratings()] == [True]
    finally:
        study.close()
