"""The device's JavaScript (max_for_live/*.js) under node's test runner: tests/js/*.test.js."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed (needed to run tests/js)")
def test_node_tests_pass():
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.js"))
    assert files, "no tests in tests/js"
    done = subprocess.run([NODE, "--test", *files], capture_output=True, text=True, timeout=120)
    summary = [line for line in done.stdout.splitlines() if line.startswith(("# pass", "# fail"))]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert summary and summary[-1] == "# fail 0" and summary[0] != "# pass 0", summary
