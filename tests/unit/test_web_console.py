"""The web console's own unit tests (web/test: the event-stream reader, the error-body client), run by
vitest under Node: no browser, no network."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def test_console_unit_tests_pass():
    if shutil.which("npm") is None:
        pytest.skip("npm (Node 20.19+) is not installed: the console's unit tests need it")
    if not (WEB / "node_modules" / ".bin" / "vitest").exists():
        pytest.skip("web/node_modules is missing: `make console` (run by make test) installs it")
    run = subprocess.run(
        ["npm", "test", "--silent", "--", "--reporter=dot", "--no-color"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout and " failed" not in run.stdout, run.stdout
