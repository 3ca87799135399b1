"""Free mode in headless Chromium: ratings land in the session's SQLite, exactly once."""

from __future__ import annotations

import urllib.request

import pytest

try:
    from selenium.webdriver.common.by import By
except ImportError:  # the `browser` fixture skips (or, under CI, fails) and says why
    By = None

from .conftest import WebProcess, assert_not_blank, call, stored_ratings, wait_for


@pytest.fixture(scope="module")
def web(tmp_path_factory, browser):
    root = tmp_path_factory.mktemp("web-free")
    process = WebProcess(root, ["--session", str(root / "session")])
    process.session = root / "session"
    yield process
    out = process.stop()
    assert "every rating is saved" in out, out
    assert (process.session / "critic.pt").exists()  # the critic was saved on SIGTERM


def loop_id(browser) -> str | None:
    return browser.execute_script("const l = window.ddFree && ddFree.current();"
                                  "return l && !l.rated ? l.loop_id : null;")


def ready(browser) -> str:
    """The id of the loop on screen once it can be rated."""
    return wait_for(lambda: not browser.find_element(By.ID, "like").get_attribute("disabled")
                    and loop_id(browser), what="a loop ready to rate")


def test_page_shows_a_loop_and_plays_it(web, browser):
    browser.get(web.url)
    first = ready(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "#grid tbody tr")
    assert len(rows) == 4
    for row in rows:
        assert len(row.find_elements(By.CSS_SELECTOR, "td.cell")) == 16
        assert row.find_element(By.TAG_NAME, "th").text.strip()  # the sample's name
    browser.find_element(By.ID, "play").click()
    info = wait_for(lambda: (lambda i: i if i["loaded"] and i["playing"] else None)(
        browser.execute_script("return ddFree.player.info()")), what="the loop playing")
    assert info["loopId"] == first
    assert 8.9 < info["duration"] < 9.1  # 4 bars at 120 bpm + 1 s tail, decoded by Chromium
    assert info["loopSeconds"] == pytest.approx(8.0)
    assert browser.find_element(By.ID, "st-session").text == "session"
    shot = web.session.parent / "free.png"
    browser.save_screenshot(str(shot))
    assert_not_blank(shot)
    browser.find_element(By.ID, "play").click()


def test_ten_ratings_are_stored(web, browser):
    browser.get(web.url)
    body = browser.find_element(By.TAG_NAME, "body")
    before = stored_ratings(web.session / "session.sqlite")
    given = []
    for i in range(10):
        current = ready(browser)
        liked = i % 3 != 0
        if i < 5:  # buttons for half, keyboard shortcuts for the other half
            browser.find_element(By.ID, "like" if liked else "dislike").click()
        else:
            body.send_keys("l" if liked else "d")
        given.append((current, int(liked), "web"))
        wait_for(lambda c=current: loop_id(browser) not in (None, c), what="the next loop")
    after = stored_ratings(web.session / "session.sqlite")
    assert after == before + given
    count = browser.find_element(By.ID, "st-ratings")
    wait_for(lambda: count.text == str(len(after)), what="the rating count on the page")


def test_double_click_and_resubmission_store_one_rating(web, browser):
    browser.get(web.url)
    current = ready(browser)
    db = web.session / "session.sqlite"
    before = len(stored_ratings(db))
    browser.execute_script("const b = document.getElementById('like'); b.click(); b.click();")
    wait_for(lambda: loop_id(browser) not in (None, current), what="the next loop")
    # The same rating sent again, and a contrary one, as a retrying or stale tab would.
    answers = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const send = liked => fetch('/api/rate', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({loop_id: arguments[0], liked})}).then(r => r.json());
        Promise.all([send(true), send(false)]).then(done);""", current)
    assert [a["stored"] for a in answers] == [False, False]
    rows = stored_ratings(db)
    assert len(rows) == before + 1 and rows[-1] == (current, 1, "web")


def test_reload_keeps_the_loop_on_screen_and_adds_nothing(web, browser):
    browser.get(web.url)
    current = ready(browser)
    db = web.session / "session.sqlite"
    before = stored_ratings(db)
    browser.refresh()
    assert ready(browser) == current
    browser.find_element(By.TAG_NAME, "body").send_keys("d")
    wait_for(lambda: loop_id(browser) not in (None, current), what="the next loop")
    browser.refresh()
    assert ready(browser) != current
    assert stored_ratings(db) == before + [(current, 0, "web")]


def test_next_skips_without_rating(web, browser):
    browser.get(web.url)
    current = ready(browser)
    before = stored_ratings(web.session / "session.sqlite")
    browser.find_element(By.TAG_NAME, "body").send_keys("n")
    wait_for(lambda: loop_id(browser) not in (None, current), what="the next loop")
    assert stored_ratings(web.session / "session.sqlite") == before


def test_downloads_are_wav_and_midi(web, browser):
    browser.get(web.url)
    ready(browser)
    wav = browser.find_element(By.ID, "dl-wav").get_attribute("href")
    midi = browser.find_element(By.ID, "dl-midi").get_attribute("href")
    with urllib.request.urlopen(wav, timeout=30) as reply:
        assert reply.headers["Content-Disposition"].startswith("attachment")
        data = reply.read()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    with urllib.request.urlopen(midi, timeout=30) as reply:
        assert reply.read(4) == b"MThd"


def test_locking_a_track_keeps_it_in_the_following_loops(web, browser):
    browser.get(web.url)
    ready(browser)
    reference = browser.execute_script("return ddFree.current()")
    button = browser.find_element(By.CSS_SELECTOR, "button[aria-label='lock track 2 pattern']")
    button.click()
    wait_for(lambda: button.get_attribute("aria-pressed") == "true", what="the lock to show")
    sound = browser.find_element(By.CSS_SELECTOR, "button[aria-label='lock track 2 sound']")
    sound.click()
    wait_for(lambda: sound.get_attribute("aria-pressed") == "true", what="the lock to show")
    for _ in range(2):
        current = ready(browser)
        browser.find_element(By.ID, "next").click()
        wait_for(lambda c=current: loop_id(browser) not in (None, c), what="the next loop")
        loop = browser.execute_script("return ddFree.current()")
        assert loop["grid"][1] == reference["grid"][1]
        assert loop["samples"][1] == reference["samples"][1]
    # Five clicks in one go, all made before the engine answers the first: each must count, in
    # order (a slow machine showed the second click undoing the first).
    browser.execute_script(
        "for (const label of arguments[0])"
        "  document.querySelector(`button[aria-label='${label}']`).click();",
        ["lock track 2 pattern", "lock track 2 sound", "lock track 3 pattern",
         "lock track 3 pattern", "lock track 3 pattern"])
    wait_for(lambda: engine_locks(web) == ([False, False, True, False], [False] * 4),
             what="the engine to hold only track 3's pattern")
    wait_for(lambda: browser.execute_script(
        "return Array.from(document.querySelectorAll('button[data-lock][aria-pressed=true]'))"
        ".map(b => b.getAttribute('aria-label'))") == ["lock track 3 pattern"],
        what="the page to show only track 3's pattern locked")


def test_four_on_the_floor_follows_quick_clicks(web, browser):
    browser.get(web.url)
    ready(browser)
    before = engine_status(web)["four_on_the_floor"]
    browser.execute_script("for (let i = 0; i < 3; i++) document.getElementById('fotf').click();")
    wait_for(lambda: browser.execute_script("return ddFree.pendingChanges()") == 0,
             what="the engine to answer the three clicks")
    assert engine_status(web)["four_on_the_floor"] is not before
    assert browser.find_element(By.ID, "fotf").is_selected() is not before
    browser.find_element(By.ID, "fotf").click()  # as it was, for the tests that follow
    wait_for(lambda: engine_status(web)["four_on_the_floor"] is before, what="the switch back")


def engine_status(web: WebProcess) -> dict:
    """The engine's status as `GET /api/status` gives it (not as the page shows it)."""
    return call(web.url + "api/status", timeout=10)


def engine_locks(web: WebProcess) -> tuple[list[bool], list[bool]]:
    """The locks as the engine holds them."""
    status = engine_status(web)
    return status["locked_grid"], status["locked_sample"]


def test_bad_requests_get_clear_errors(web):
    def post(path: str, body: bytes) -> tuple[int, str]:
        request = urllib.request.Request(web.url + path.lstrip("/"), data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    assert post("/api/rate", b"not json") == (400, '{"error":"the body is not JSON"}')
    code, text = post("/api/rate", b'{"loop_id": "zz", "liked": true}')
    assert code == 400 and "12 hex" in text
    code, text = post("/api/rate", b'{"loop_id": "ffffffffffff", "liked": true}')
    assert code == 404 and "no loop" in text
    code, text = post("/api/lock", b'{"track": 4, "grid": true, "sample": false}')
    assert code == 400 and "track" in text


def test_keyboard_reachable_and_usable_at_phone_width(web, browser):
    browser.get(web.url)
    ready(browser)
    body = browser.find_element(By.TAG_NAME, "body")
    body.click()
    reached = set()
    for _ in range(30):
        browser.switch_to.active_element.send_keys("\t")
        reached.add(browser.switch_to.active_element.get_attribute("id"))
    assert {"play", "like", "dislike", "next", "fotf", "dl-wav", "dl-midi"} <= reached
    size = browser.get_window_size()
    try:
        browser.set_window_size(390, 844)
        wait_for(lambda: browser.execute_script("return window.innerWidth") <= 400,
                 what="a phone-sized window")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
        for button in ("like", "dislike", "next"):
            box = browser.find_element(By.ID, button).rect
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 40
        shot = web.session.parent / "free-phone.png"
        browser.save_screenshot(str(shot))
        assert_not_blank(shot)
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_command_line_mistakes_are_one_line_errors(tmp_path, capsys):
    import socket

    from deepdrummer_live.cli import main

    session = str(tmp_path / "s")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert main(["web", "--session", session, "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot listen" in err and "--port" in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()  # refused before opening anything
    assert main(["web", "--session", session, "--set", "chains=4"]) == 2
    assert "--study" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["web", "--study", str(tmp_path / "st"), "--phase2", "5"])
    assert exit_.value.code == 2 and "odd" in capsys.readouterr().err
