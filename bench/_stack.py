"""A local stack for benchmarks: started in-process on a free port with its own data directory."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from infra.local.stack import LocalStack, StackConfig

# A benchmark loads whole corpora into one organisation and asks as fast as the machine answers: the
# platform's default quotas (10,000 documents, 1,200 questions a minute) would refuse it part-way. Values
# set in the environment still win.
BENCH_QUOTAS = {
    "QUOTA_MAX_DOCUMENTS": "100000000",
    "QUOTA_MAX_CHUNKS": "1000000000",
    "QUOTA_MAX_STORED_BYTES": str(1 << 50),
    "QUOTA_MAX_QUERIES_PER_DAY": "1000000000",
    "QUOTA_MAX_QUERIES_PER_MINUTE": "1000000000",
}


def lift_quotas() -> None:
    """Quotas no benchmark reaches, unless the environment sets them (call before the stack starts)."""
    for key, value in BENCH_QUOTAS.items():
        os.environ.setdefault(key, value)


@contextmanager
def running_stack(poll_wait_seconds: int = 1) -> Iterator[str]:
    """The API base URL (…/api/v1) of a fresh local stack, stopped on exit."""
    lift_quotas()
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as data_dir:
        stack = LocalStack(StackConfig(data_dir=Path(data_dir), port=0, poll_wait_seconds=poll_wait_seconds))
        url = stack.start()
        try:
            yield url.rstrip("/") + "/api/v1"
        finally:
            stack.stop()


def register(api: str) -> dict:
    """A new organisation; returns the register response (token, user, org)."""
    response = requests.post(
        f"{api}/auth/register",
        json={
            "org_name": "Bench",
            "email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
            "password": "bench-password",
        },
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def wait_until_ready(api: str, token: str, count: int, timeout: float = 1800) -> float:
    """Poll the document list until ``count`` documents are ready; returns the monotonic time it happened."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = 0
        cursor = None
        while True:
            params = {"status": "ready", "limit": 100, **({"cursor": cursor} if cursor else {})}
            page = requests.get(f"{api}/documents", params=params, headers=headers, timeout=30).json()
            ready += len(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        if ready >= count:
            return time.monotonic()
        failed = requests.get(
            f"{api}/documents", params={"status": "failed"}, headers=headers, timeout=30
        ).json()
        if failed["items"]:
            raise SystemExit(f"ingestion failed: {failed['items'][0]['error']}")
        time.sleep(0.1)
    raise SystemExit("documents did not become ready in time")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
