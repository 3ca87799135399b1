"""A shortened study (6 + 4) in headless Chromium: landing, Part 1, pause, Part 2, results,
export; double submissions, a reload, and the server killed and started again for the same
participant change nothing."""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile

import pytest

try:
    from selenium.webdriver.common.by import By
except ImportError:  # the `browser` fixture skips (or, under CI, fails) and says why
    By = None

from .conftest import WebProcess, assert_not_blank, stored_ratings, wait_for

PHASE1, PHASE2 = 6, 4
# Shortened sampling so the test stays quick on a small CPU; the protocol is the same.
FAST = ["--set", "chains=8", "--set", "mh_steps=8", "--set", "threshold_budget=60",
        "--set", "batches_per_rating=4"]


def study_args(folder) -> list[str]:
    return ["--study", str(folder), "--phase1", str(PHASE1), "--phase2", str(PHASE2), *FAST]


def state(browser) -> dict | None:
    return browser.execute_script("return window.ddStudy && ddStudy.state()")


def item_id(browser) -> str | None:
    s = state(browser)
    ok = s and s["item"] and not browser.execute_script("return ddStudy.busy()") \
        and not browser.find_element(By.ID, "like").get_attribute("disabled")
    return s["item"]["item_id"] if ok else None


def answer(browser, liked: bool, how: str = "button") -> str:
    current = wait_for(lambda: item_id(browser), what="an item to rate")
    if how == "button":
        browser.find_element(By.ID, "like" if liked else "dislike").click()
    elif how == "key":
        browser.find_element(By.TAG_NAME, "body").send_keys("l" if liked else "d")
    else:  # a double click
        button = "like" if liked else "dislike"
        browser.execute_script(f"const b = document.getElementById('{button}');"
                               " b.click(); b.click();")
    wait_for(lambda: (s := state(browser)) and (
        s["stage"] not in ("phase1", "phase2") or s["item"]["item_id"] != current),
        what=f"the answer to {current}")
    return current


def test_a_shortened_study_end_to_end(tmp_path_factory, browser):
    root = tmp_path_factory.mktemp("web-study")
    folder = root / "study"
    shots = root / "shots"
    shots.mkdir()
    web = WebProcess(root, study_args(folder))
    try:
        browser.get(web.url + "study")
        browser.execute_script("localStorage.clear()")
        browser.refresh()
        wait_for(lambda: browser.find_element(By.ID, "landing").is_displayed(), what="landing")
        assert "Part 1" in browser.find_element(By.ID, "landing").text
        assert browser.find_element(By.CSS_SELECTOR, "#landing .n-phase1").text == str(PHASE1)
        browser.save_screenshot(str(shots / "landing.png"))
        assert_not_blank(shots / "landing.png")
        field = browser.find_element(By.ID, "participant")
        field.send_keys("alice")
        field.submit()

        given: dict[str, bool] = {}
        plan = [(True, "button"), (False, "key"), (True, "double"), (False, "button"),
                (True, "key"), (True, "button")]
        for i, (liked, how) in enumerate(plan):
            if i == 3:  # a reload mid-study shows the same item again, nothing is lost
                before = wait_for(lambda: item_id(browser), what="an item")
                browser.refresh()
                assert wait_for(lambda: item_id(browser), what="the item after reload") == before
                assert state(browser)["answered"] == 3
            if i == 4:  # the server dies (kill -9); a new one resumes at the same item
                before = wait_for(lambda: item_id(browser), what="an item")
                web.kill()
                web = WebProcess(root, study_args(folder))
                browser.get(web.url + "study")  # another port, another origin: name asked
                field = wait_for(lambda: (lambda f: f if f.is_displayed() else None)(
                    browser.find_element(By.ID, "participant")), what="the landing page")
                field.send_keys("alice")  # running it again for the same participant
                field.submit()
                assert wait_for(lambda: item_id(browser), what="the item after restart") == before
                assert state(browser)["answered"] == 4
            if i == 0:
                wait_for(lambda: item_id(browser), what="the first item")
                browser.save_screenshot(str(shots / "rating.png"))
                assert_not_blank(shots / "rating.png")
                info = wait_for(lambda: (lambda x: x if x["loaded"] else None)(
                    browser.execute_script("return ddStudy.player.info()")), what="audio")
                assert 8.9 < info["duration"] < 9.1 and info["playing"]
            given[answer(browser, liked, how)] = liked

        wait_for(lambda: browser.find_element(By.ID, "pause").is_displayed(), what="the pause")
        browser.save_screenshot(str(shots / "pause.png"))
        assert_not_blank(shots / "pause.png")
        go_on = browser.find_element(By.ID, "continue")
        wait_for(lambda: go_on.is_enabled(), timeout=240, what="Part 2 to be ready")
        go_on.click()

        for i in range(PHASE2):
            current = wait_for(lambda: item_id(browser), what="a Part 2 item")
            assert current.startswith("2-") and state(browser)["item"]["total"] == PHASE2
            if i == 1:  # a stale tab sends the same answer again, and then a different one
                given[answer(browser, False, "button")] = False
                replies = browser.execute_async_script("""
                    const done = arguments[arguments.length - 1];
                    const send = liked => fetch('/api/study/p/alice/answer', {method: 'POST',
                        headers: {'Content-Type': 'application/json'},
                        body: JSON.stringify({item_id: arguments[0], liked})}).then(r => r.json());
                    Promise.all([send(false), send(true)]).then(done);""", current)
                assert [r["stored"] for r in replies] == [False, False]
                continue
            given[answer(browser, i % 2 == 0, "key" if i else "double")] = i % 2 == 0

        results = browser.find_element(By.ID, "results")
        wait_for(lambda: results.is_displayed(), what="the results page")
        wait_for(lambda: "%" in browser.find_element(By.ID, "res-final").text, what="θ_final")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#fig-theta svg rect")) == 2
        assert browser.find_elements(By.CSS_SELECTOR, "#fig-phase1 svg polyline")
        browser.save_screenshot(str(shots / "results.png"))
        assert_not_blank(shots / "results.png")

        # Exactly one stored rating per item, the first answer each time.
        db = folder / "participants" / "alice" / "session.sqlite"
        rows = stored_ratings(db)
        assert sorted(source.removeprefix("study ") for _, _, source in rows) == sorted(given)
        assert {source.removeprefix("study "): bool(liked) for _, liked, source in rows} == given

        # The export: results.json and one WAV per item.
        href = browser.find_element(By.ID, "export").get_attribute("href")
        with urllib.request.urlopen(href, timeout=120) as reply:
            archive = zipfile.ZipFile(io.BytesIO(reply.read()))
        data = json.loads(archive.read("results.json"))
        items = data["items"]
        assert len(items) == PHASE1 + PHASE2
        assert {i["item_id"]: i["liked"] for i in items} == given
        for source, key in (("init", "theta_init"), ("final", "theta_final")):
            mine = [i["liked"] for i in items if i.get("source") == source]
            assert len(mine) == PHASE2 // 2
            assert data["results"][key] == pytest.approx(sum(mine) / len(mine))
            shown = browser.find_element(By.ID, "res-" + source).text
            assert shown == f"{round(100 * data['results'][key])} %"
        assert data["results"]["phase1_likes"] == [given[f"1-{k:03d}"] for k in range(PHASE1)]
        for item in items:
            wav = archive.read(item["wav"])
            assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
        assert len({i["loop_id"] for i in items}) == PHASE1 + PHASE2  # none recycled

        browser.get(web.url + "study/summary")
        wait_for(lambda: browser.find_element(By.ID, "sm-n").text == "1 / 1", what="summary")
        assert browser.find_elements(By.CSS_SELECTOR, "#fig-thetas svg polyline")
        browser.save_screenshot(str(shots / "summary.png"))
        assert_not_blank(shots / "summary.png")

        check_bad_requests(web.url)
        request = urllib.request.Request(web.url + "api/study/p/alice/answer", method="POST",
                                         data=b'{"item_id": "1-000", "liked": false}')
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert json.loads(reply.read())["stored"] is False
        assert len(stored_ratings(db)) == PHASE1 + PHASE2

        # One server per study: a second one for the same folder refuses to start.
        with pytest.raises(RuntimeError, match="one server per study"):
            WebProcess(root, study_args(folder))
    finally:
        out = web.stop()
    assert "every rating is saved" in out, out


def check_bad_requests(url: str) -> None:
    """Bad input gets a clear error and changes nothing (run on the study server above)."""
    def call(path: str, body: bytes | None = None) -> tuple[int, str]:
        request = urllib.request.Request(url + path.lstrip("/"), data=body,
                                         method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    code, text = call("/api/study/join", b'{"participant": "../etc"}')
    assert code == 400 and "participant" in text
    assert call("/api/study/p/nobody")[0] == 404
    assert call("/api/study/join", b"[1]")[0] == 400
    assert call("/api/study/join", b'{"participant": "bob"}')[0] == 200
    code, text = call("/api/study/p/bob/answer", b'{"item_id": "2-000", "liked": true}')
    assert code == 404 and "no item" in text
    code, text = call("/api/study/p/bob/answer", b'{"item_id": "1-000", "liked": "yes"}')
    assert code == 400 and "liked" in text
    code, text = call("/api/study/p/bob/continue", b"{}")
    assert code == 409 and "not finished" in text
    assert json.loads(call("/api/study/p/bob")[1])["answered"] == 0
