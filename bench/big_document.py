"""A document at the size limit next to a one-sentence document of another tenant, on the local stack.

Usage: .venv/bin/python bench/big_document.py [--megabytes 5] [--modes single,ranges]

For each mode a fresh local stack: tenant A sends a text document of ``--megabytes`` MiB (the
``max_document_bytes`` limit by default), tenant B sends one sentence right behind it. Measured: time to
ready of each, the number of ingest invocations and the longest one (against the function's timeout).
``single`` is the path before chunk ranges (the whole document embedded in one invocation: the range
size set above the document's chunk count); ``ranges`` is the default configuration.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import machine_line  # noqa: E402
from bench._stack import lift_quotas, register  # noqa: E402
from infra.local.stack import LocalStack, StackConfig  # noqa: E402


def document_text(size_bytes: int, seed: int = 7) -> str:
    """English-like text of exactly under ``size_bytes`` UTF-8 bytes: words of the project's own docs in
    a seeded random order (varied enough that every chunk is a different text)."""
    words = re.findall(r"[A-Za-z]{3,}", (ROOT / "docs" / "decisions.md").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while True:
        word = rng.choice(words)
        if size + len(word) + 1 > size_bytes:
            return " ".join(out)
        out.append(word)
        size += len(word) + 1


def wait_ready(api: str, token: str, document_id: str, timeout: float) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = requests.get(f"{api}/documents/{document_id}", headers=headers, timeout=30).json()[
            "document"
        ]
        if document["status"] == "ready":
            return time.monotonic()
        if document["status"] == "failed":
            raise SystemExit(f"document failed: {document['error']}")
        time.sleep(0.2)
    raise SystemExit("document not ready in time")


def run(mode: str, text: str, timeout: float) -> dict:
    if mode == "single":
        os.environ["INGEST_RANGE_CHUNKS"] = "1000000"
    else:
        os.environ.pop("INGEST_RANGE_CHUNKS", None)
    from ragcore.config import reset_settings

    reset_settings()
    lift_quotas()
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as data_dir:
        stack = LocalStack(StackConfig(data_dir=Path(data_dir), port=0, poll_wait_seconds=1))
        url = stack.start()
        try:
            api = url.rstrip("/") + "/api/v1"
            ingest = stack.functions["IngestFunction"]
            durations: list[float] = []
            original = ingest.invoke

            def timed(event, *args, **kwargs):
                started = time.monotonic()
                try:
                    return original(event, *args, **kwargs)
                finally:
                    durations.append(time.monotonic() - started)

            ingest.invoke = timed  # the poller calls the function through this attribute
            # The model is loaded before the clock starts (both modes alike).
            from ragcore.config import get_settings
            from ragcore.embeddings import get_embedder

            get_embedder(get_settings()).embed(["warm-up"])
            big_org, small_org = register(api), register(api)
            started = time.monotonic()
            big = requests.post(
                f"{api}/documents",
                json={"name": "big.txt", "content": text},
                headers={"Authorization": f"Bearer {big_org['token']}"},
                timeout=120,
            )
            big.raise_for_status()
            small = requests.post(
                f"{api}/documents",
                json={"name": "small.txt", "content": "Parking permits are issued at the front desk."},
                headers={"Authorization": f"Bearer {small_org['token']}"},
                timeout=30,
            )
            small.raise_for_status()
            small_ready = wait_ready(api, small_org["token"], small.json()["document"]["id"], timeout)
            big_ready = wait_ready(api, big_org["token"], big.json()["document"]["id"], timeout)
            chunks = requests.get(
                f"{api}/documents/{big.json()['document']['id']}",
                headers={"Authorization": f"Bearer {big_org['token']}"},
                timeout=30,
            ).json()["document"]["chunk_count"]
            return {
                "mode": mode,
                "chunks": chunks,
                "big_ready_s": big_ready - started,
                "small_ready_s": small_ready - started,
                "invocations": len(durations),
                "max_invocation_s": max(durations),
                "timeout_s": ingest.spec.timeout,
            }
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=float, default=5.0)
    parser.add_argument("--modes", default="single,ranges")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a single mode, in a process of its own
    args = parser.parse_args()
    text = document_text(int(args.megabytes * 1024 * 1024) - 16)
    if args.one:
        print("RESULT " + json.dumps(run(args.one, text, args.timeout)), flush=True)
        return
    print(f"# {datetime.date.today()} {machine_line()}, document {len(text.encode())} bytes", flush=True)
    results = []
    # Each mode in a fresh process: a stack's database pool and settings are process-wide.
    for mode in args.modes.split(","):
        command = [sys.executable, __file__, "--one", mode, "--megabytes", str(args.megabytes)]
        command += ["--timeout", str(args.timeout)]
        child = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
        if child.returncode or not lines:
            sys.stderr.write(child.stderr[-4000:])
            raise SystemExit(f"mode {mode} failed")
        results.append(json.loads(lines[-1].removeprefix("RESULT ")))
        print(lines[-1], flush=True)  # each mode's figures as soon as they exist
    print("| mode | chunks | big ready (s) | small ready (s) | invocations | longest (s) | timeout (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['mode']} | {r['chunks']} | {r['big_ready_s']:.1f} | {r['small_ready_s']:.1f} | "
            f"{r['invocations']} | {r['max_invocation_s']:.1f} | {r['timeout_s']} |"
        )
    if len(results) == 2:
        single, ranges = results
        print(
            f"small document ready {single['small_ready_s'] / ranges['small_ready_s']:.1f}x sooner "
            f"with ranges; big document {ranges['big_ready_s'] / single['big_ready_s']:.2f}x "
            "the single-invocation time"
        )


if __name__ == "__main__":
    main()
