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


def test_the_consoles_upload_limit_is_the_platforms_default():
    # The console refuses a file over its limit before asking for an upload URL: its fallback (used when
    # config.json names none) must be the byte limit the API enforces by default (EXTRACT_MAX_BYTES).
    import re

    from ragcore.config import Settings

    source = (WEB / "src" / "config.ts").read_text()
    match = re.search(r"const FALLBACK: ConsoleConfig = \{[^}]*maxUploadBytes: ([\d *]+)\}", source)
    assert match, "config.ts: FALLBACK has no maxUploadBytes"
    factors = [int(part) for part in match.group(1).split("*")]
    limit = 1
    for factor in factors:
        limit *= factor
    assert limit == Settings.model_fields["extract_max_bytes"].default
