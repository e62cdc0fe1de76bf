"""cfn-lint finds no errors in the synthesized template nor in template-local.yaml."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cfn_lint(path: Path) -> list[str]:
    exe = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    if exe is None:
        pytest.skip("cfn-lint is not installed")
    result = subprocess.run(
        [exe, "--format", "parseable", str(path)], capture_output=True, text=True, timeout=300
    )
    # parseable lines: path:line:col:line:col:RULE:message ; errors are E rules (and fatal exit bit 1)
    errors = [line for line in result.stdout.splitlines() if re.search(r":E\d{4}:", line)]
    if result.returncode & 1:
        errors.append(f"cfn-lint failed to run: {result.stderr.strip()}")
    return errors


def test_synthesized_template_has_no_cfn_lint_errors(dev):
    assert cfn_lint(dev.template_path) == []


def test_full_template_has_no_cfn_lint_errors(full):
    assert cfn_lint(full.template_path) == []


def test_template_local_has_no_cfn_lint_errors():
    path = ROOT / "template-local.yaml"
    if not path.exists():
        pytest.skip("template-local.yaml does not exist yet")
    assert cfn_lint(path) == []
