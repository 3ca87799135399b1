"""Real browser tests: `deepdrummer-live web` in a subprocess, driven by headless Chromium.

Chromium and chromedriver come from Debian (`apt-get install chromium chromium-driver`); no
browser is ever downloaded. Without them these tests are skipped, except under CI (`CI` set),
where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
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


class WebProcess:
    """`deepdrummer-live web` on a free port, as a user starts it; `.url` once it serves."""

    def __init__(self, home: Path, args: list[str]) -> None:
        env = dict(os.environ, DEEPDRUMMER_HOME=str(home / "home"), PYTHONUNBUFFERED="1",
                   OMP_NUM_THREADS="1")
        env.setdefault("DEEPDRUMMER_CACHE", str(home / "cache"))  # tests/conftest.py sets one
        # `-c main()` rather than `-m deepdrummer_live.cli`: under -m the module runs twice (as
        # __main__ and as imported by the commands), and CliError would not be caught.
        cmd = [sys.executable, "-c", "import sys; from deepdrummer_live.cli import main; "
               "sys.exit(main())", "web", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, cwd=REPO)
        self.lines: list[str] = []
        self.url = self._wait_for_url()

    def _wait_for_url(self, timeout: float = 180.0) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("web exited early:\n" + "".join(self.lines))
            self.lines.append(line)
            found = re.search(r"open (http://[\d.]+:\d+/)", line)
            if found:
                return found.group(1)
        raise TimeoutError("web did not start:\n" + "".join(self.lines))

    def kill(self) -> None:
        """SIGKILL: a crash or a power cut, with no chance to save anything."""
        self.proc.kill()
        self.proc.communicate(timeout=30)

    def stop(self, timeout: float = 60.0) -> str:
        """SIGTERM, as a service manager would; returns everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.lines.append(out or "")
        return "".join(self.lines)


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


def stored_ratings(db_path: Path) -> list[tuple[str, int, str]]:
    """(loop_id, liked, source) rows, read straight from the session's SQLite file."""
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT loop_id, liked, source FROM ratings ORDER BY seq").fetchall()
