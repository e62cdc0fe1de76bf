"""A local stack for benchmarks: started in-process on a free port with its own data directory."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from infra.local.stack import LocalStack, StackConfig


@contextmanager
def running_stack(poll_wait_seconds: int = 1) -> Iterator[str]:
    """The API base URL (…/api/v1) of a fresh local stack, stopped on exit."""
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
