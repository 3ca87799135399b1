"""The two-phase protocol end to end on a tiny scale: items, answers, state round-trip, the
CLI with a plug-in rater, rater errors and the results.json contract."""

import io
import json
import os

import numpy as np
import pytest

from deepdrummer_live import cli
from deepdrummer_live.experiment import Protocol, ProtocolError, bootstrap_ci, run_user, summarise
from deepdrummer_live.kit import default_kit_dir
from deepdrummer_live.learner import PRESETS
from deepdrummer_live.library import load_library
from deepdrummer_live.loop import Loop
from deepdrummer_live.report import ProgressBar

TINY = {"chains": 4, "mh_steps": 2, "threshold_budget": 3, "batches_per_rating": 1,
        "batch_size": 4}
TINY_ARGS = [f"--set={k}={v}" for k, v in TINY.items()]


@pytest.fixture(scope="module")
def bank():
    return load_library(default_kit_dir())


@pytest.fixture(scope="module")
def tiny():
    return PRESETS["default"].with_overrides(**TINY)


def test_protocol_runs_both_phases(bank, tiny):
    protocol = Protocol(bank, tiny, seed=3, phase1=3, phase2=2)
    seen = []
    while (item := protocol.next_item()) is not None:
        assert protocol.next_item() == item  # the same item until it is answered
        seen.append(item)
        assert protocol.answer(item.item_id, item.index % 2 == 0) is True
    assert protocol.done and protocol.answered == protocol.total == 7
    assert [i.phase for i in seen] == [1] * 3 + [2] * 4
    ids = [i.loop.loop_id for i in seen]
    assert len(set(ids)) == len(ids)  # nothing recycled, no loop twice
    state = protocol.state_dict()
    assert sorted(i["source"] for i in state["phase2_items"]) == ["final"] * 2 + ["init"] * 2
    out = protocol.results()
    liked = {i["source"]: [] for i in state["phase2_items"]}
    for i in state["phase2_items"]:
        liked[i["source"]].append(i["liked"])
    assert out["theta_init"] == pytest.approx(np.mean(liked["init"]))
    assert out["delta"] == pytest.approx(out["theta_final"] - out["theta_init"])
    assert out["phase1_likes"] == [True, False, True]
    assert protocol.learner.n_ratings == 3  # Phase II ratings never train the critic


def test_answers_are_idempotent_and_checked(bank, tiny):
    protocol = Protocol(bank, tiny, seed=1, phase1=2, phase2=1)
    item = protocol.next_item()
    assert protocol.answer(item.item_id, True) is True
    assert protocol.answer(item.item_id, True) is False  # a repeat changes nothing
    assert protocol.learner.n_ratings == 1
    with pytest.raises(ProtocolError, match="already rated like"):
        protocol.answer(item.item_id, False)
    with pytest.raises(ProtocolError, match="no item"):
        protocol.answer("1-099", True)
    with pytest.raises(ProtocolError, match="True or False"):
        protocol.answer(protocol.next_item().item_id, "yes")


def test_state_round_trip_resumes_identically(bank, tiny):
    a = Protocol(bank, tiny, seed=5, phase1=3, phase2=1)
    for liked in (True, False):
        a.answer(a.next_item().item_id, liked)
    state = json.loads(json.dumps(a.state_dict()))  # plain JSON all the way
    b = Protocol.from_state(bank, state)
    assert b.answered == 2 and b.learner.n_ratings == 2
    for liked in (True,):  # both continue the same way
        item_a, item_b = a.next_item(), b.next_item()
        assert item_a == item_b
        a.answer(item_a.item_id, liked)
        b.answer(item_b.item_id, liked)
    c = Protocol.from_state(bank, a.state_dict())  # Phase I done, Phase II not chosen yet
    assert a.next_item() == b.next_item() == c.next_item()  # Phase II chosen alike
    with pytest.raises(ProtocolError):
        Protocol.from_state(bank, {"version": 99})


def test_run_user_and_summary(bank, tiny):
    def likes_loud(audio, sr):
        return bool(np.abs(audio).mean() > 0.02)

    out = run_user("test:loud", likes_loud, bank, tiny, seed=0, phase1=3, phase2=2)
    assert len(out["phase1_likes"]) == 3 and out["theta_init"] in (0, 0.5, 1)
    users = [dict(out, theta_init=a, theta_final=b, delta=b - a)
             for a, b in ((0.2, 0.6), (0.3, 0.3), (0.5, 0.4), (0.1, 0.9))]
    s = summarise(users)
    assert s["mean_delta"] == pytest.approx(0.275)
    assert s["share_improved"] == 0.5 and s["share_delta_ge_0_2"] == 0.5
    low, high = s["delta_ci95"]
    assert low <= 0.275 <= high
    assert bootstrap_ci([1.0, 1.0]) == (1.0, 1.0)


PLUGIN = """
import numpy as np

def factory(seed):
    rng = np.random.default_rng(seed)
    def rater(audio, sample_rate):
        assert audio.dtype == np.float32 and audio.ndim == 1 and sample_rate == 44100
        return bool(rng.random() < 0.5)
    return rater

def broken(seed):
    def rater(audio, sample_rate):
        raise RuntimeError("cannot hear")
    return rater

def chatty(seed):
    return lambda audio, sample_rate: "maybe"
"""


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    (tmp_path / "plugin_rater.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_cli_writes_results_and_figures(plugin, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["experiment", "--rater", "plugin_rater:factory", "--users", "2",
                     "--seed", "7", "--phase1", "2", "--phase2", "1", "--out", str(out),
                     *TINY_ARGS])
    assert code == 0
    data = json.loads((out / "results.json").read_text())
    assert [set(u) >= {"theta_init", "theta_final", "delta", "seed"} for u in data["users"]]
    assert [u["seed"] for u in data["users"]] == [7, 8]
    # one process per core by default (spawned workers get this process's sys.path)
    assert data["jobs"] == min(os.cpu_count() or 1, 2)
    assert set(data["summary"]) >= {"mean_theta_init", "mean_theta_final", "mean_delta",
                                    "share_improved", "share_delta_ge_0_2"}
    assert data["preset"]["chains"] == 4 and data["overrides"]["chains"] == 4
    for name in ("summary.md", "theta_kde.png", "delta_kde.png", "phase1_like_rate.png"):
        assert (out / name).stat().st_size > 100
    err = capsys.readouterr().err
    assert "users 2/2" in err and "ratings 8/8" in err  # the progress bar's last line


@pytest.mark.parametrize("factory, words", [("broken", "raised RuntimeError: cannot hear"),
                                            ("chatty", "returned 'maybe'")])
def test_cli_stops_on_a_misbehaving_rater(plugin, tmp_path, capsys, factory, words):
    code = cli.main(["experiment", "--rater", f"plugin_rater:{factory}", "--users", "1",
                     "--phase1", "2", "--phase2", "1", "--out", str(tmp_path / "x"),
                     "--quiet", *TINY_ARGS])
    assert code == 2
    err = capsys.readouterr().err
    assert f"plugin_rater:{factory}" in err and words in err
    assert not (tmp_path / "x" / "results.json").exists()


@pytest.mark.parametrize("args, words", [
    (["--rater", "builtin:nobody"], "no built-in rater"),
    (["--rater", "builtin:sparse", "--set", "nonsense=1"], "no such setting"),
    (["--rater", "builtin:sparse", "--set", "lr=fast"], "lr=fast"),
    (["--rater", "builtin:sparse", "--preset", "mine"], "unknown preset"),
])
def test_cli_bad_arguments_are_one_line_errors(tmp_path, capsys, args, words):
    assert cli.main(["experiment", *args, "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_item_is_json_ready(bank, tiny):
    item = Protocol(bank, tiny, seed=2, phase1=1, phase2=1).next_item()
    data = json.loads(json.dumps(item.to_dict()))
    assert Loop.from_dict(data["loop"]) == item.loop and data["phase"] == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal_and_logs_plain_lines_elsewhere():
    terminal, log = _Terminal(), io.StringIO()
    bars = [ProgressBar(2, 4, stream=terminal, every=0), ProgressBar(2, 4, stream=log, log_every=0)]
    for bar in bars:
        for done in range(1, 9):
            bar.update(done // 4, done)
        bar.update(2, 8)  # nothing new: a log gets no repeated line
        bar.close()
    assert terminal.getvalue().count("\r") == 10 and terminal.getvalue().count("\n") == 1
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and "\033" not in log.getvalue()
    assert len(lines) == 8 and "users 2/2  ratings 8/8" in lines[-1]
