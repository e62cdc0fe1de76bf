"""How long `sam build` of template-local.yaml takes, cold and cached, against a baseline measured in the
same run: pip installing the DepsLayer's requirements alone (what no build can avoid).

Usage: .venv/bin/python bench/sam_build.py [--python3.12 PATH] (after `make sam-venv`; uses the network
or pip's cache like any build). Builds into a temporary directory; the repository's .aws-sam is untouched.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAM = ROOT / ".venv-sam" / "bin" / "sam"


def _python312(given: str | None) -> str:
    if given:
        return given
    pyenv_root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    found = sorted(glob.glob(f"{pyenv_root}/versions/3.12.*/bin/python3.12")) or [shutil.which("python3.12")]
    if not found or not found[-1]:
        raise SystemExit("no CPython 3.12: pass --python3.12")
    return found[-1]


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python3.12", dest="python312")
    args = parser.parse_args()
    python312 = _python312(args.python312)
    architecture = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "PATH": f"{Path(python312).parent}{os.pathsep}{os.environ['PATH']}",
    }
    with tempfile.TemporaryDirectory(prefix="sam-bench-") as work:
        work_dir = Path(work)
        build = [
            str(SAM), "build", "--template-file", "template-local.yaml", "--cached", "--parallel",
            "--build-dir", str(work_dir / "build"), "--cache-dir", str(work_dir / "cache"),
            "--parameter-overrides", f"Architecture={architecture}",
        ]  # fmt: skip
        baseline = _timed(
            [
                python312, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--target", str(work_dir / "pip-only"), "-r", "infra/sam/deps/requirements.txt",
            ],
            env,
        )  # fmt: skip
        cold = _timed(build, env)
        cached = _timed(build, env)
        (ROOT / "layers/core/python/ragcore/__init__.py").touch()
        after_ragcore_change = _timed(build, env)
    print(f"machine: {os.cpu_count()} cores, {architecture}, python {sys.version.split()[0]} (bench)")
    print(f"baseline pip install of the DepsLayer requirements: {baseline:.1f} s")
    print(f"sam build, cold (empty build and cache dirs):     {cold:.1f} s ({cold / baseline:.2f}x baseline)")
    print(f"sam build --cached, nothing changed:               {cached:.1f} s ({cached / baseline:.2f}x)")
    print(f"sam build --cached, ragcore changed:               {after_ragcore_change:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
