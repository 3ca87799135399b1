"""Real browser tests: `deepdrummer-live web` in a subprocess, driven by headless Chromium.

Chromium and chromedriver come from Debian (`apt-get install chromium chromium-driver`); no
browser is ever downloaded. Without them these tests are skipped, except under CI (`CI` set),
where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from tests.engine_process import CommandProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _need_browser() -> None:
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
               if path is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        reason = (f"browser tests need {', '.join(missing)} "
                  "(apt-get install chromium chromium-driver; pip install selenium)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


class WebProcess(CommandProcess):
    """`deepdrummer-live web` on a free port, as a user starts it; `.url` once it serves."""

    def __init__(self, home: Path, args: list[str]) -> None:
        env = {"DEEPDRUMMER_HOME": str(home / "home"), "OMP_NUM_THREADS": "1",
               # tests/conftest.py sets a cache for the whole run; keep it when it is there
               "DEEPDRUMMER_CACHE": os.environ.get("DEEPDRUMMER_CACHE", str(home / "cache"))}
        super().__init__(["web", "--port", "0", *args], r"open (http://[\d.]+:\d+/)", env,
                         timeout=180.0)
        self.url = self.ready


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """One headless Chromium for all web tests, with a fresh profile."""
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1000,900",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    """Poll `condition()` until it returns something truthy (returned), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the page may be between two states
            last_error = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f" ({last_error})" if last_error
                                                            else ""))


def assert_not_blank(png_path: Path) -> None:
    """A screenshot with real content: many colours, and not one colour all over."""
    from PIL import Image

    with Image.open(png_path) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        width, height = rgb.size
    assert width > 100 and height > 100, f"{png_path}: {width}×{height}"
    assert len(colours) >= 8, f"{png_path} looks blank: {len(colours)} colours"
    top = max(count for count, _ in colours)
    assert top < 0.98 * width * height, f"{png_path} is nearly one colour"


def call(url: str, body: dict | None = None, timeout: float = 600.0) -> dict:
    """GET `url` (or POST `body` as JSON); the JSON reply, or the size of any other body."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        raw = reply.read()
    return json.loads(raw) if raw[:1] == b"{" else {"bytes": len(raw)}


def stored_ratings(db_path: Path) -> list[tuple[str, int, str]]:
    """(loop_id, liked, source) rows, read straight from the session's SQLite file."""
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT loop_id, liked, source FROM ratings ORDER BY seq").fetchall()
