"""Fixtures of the end-to-end tests: one local stack (`python -m infra.local` as a subprocess, real HTTP)
for the whole session, and a tenant with one ingested document."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 180  # first start: initdb, migrations, model load
INGEST_TIMEOUT = 60

# Variables that would point the stack at something other than its own embedded services.
EXTERNAL = ("DATABASE_URL", "MIGRATION_DATABASE_URL", "AWS_ENDPOINT_URL", "QUEUE_URL", "JWT_SECRET")

DOCUMENT = (
    "The Harbour Street bakery opens at seven in the morning on weekdays. "
    "Its sourdough is made with rye flour milled at the Vexley mill, two miles north of the harbour. "
    "On Sundays the bakery is closed so the bakers can rest."
)
QUESTION = "Which mill supplies the rye flour for the sourdough?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _stop(process: subprocess.Popen, data_dir: Path) -> None:
    """SIGTERM lets the stack stop PostgreSQL itself; SIGKILL the group if it hangs. PostgreSQL runs in a
    session of its own (pg_ctl detaches it), so a survivor is stopped through its pid file."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)


@contextlib.contextmanager
def local_stack(work: Path, **extra_env: str) -> Iterator[tuple[str, Path]]:
    """A local stack (`python -m infra.local`) with its data and its whole output (every function's log
    lines included) under ``work``: yields its base URL and the path of that output."""
    data_dir, log_path = work / "data", work / "stack.log"
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in EXTERNAL}
    # Every client of an e2e run is 127.0.0.1: one address registering dozens of organisations and
    # (schemathesis) failing hundreds of logins. The address limits are raised so tests do not throttle
    # each other; the limits themselves are tested through the handlers (tests/integration).
    env.update(REGISTER_MAX_PER_ADDRESS="100000", LOGIN_MAX_FAILURES_PER_ADDRESS="100000")
    env.update(PORT=str(port), DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **extra_env)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.local"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole at teardown
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # Any HTTP answer means the stack finished starting; health must then be 200 straight away.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"the local stack exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                health = requests.get(f"{url}/api/v1/health", timeout=5)
                break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the local stack did not listen within {STARTUP_TIMEOUT}s:\n{_tail(log_path)}")
            time.sleep(0.5)
        assert health.status_code == 200, f"{health.status_code} {health.text}\n{_tail(log_path)}"
        assert health.json() == {"status": "ok"}
        yield url, log_path
    finally:
        _stop(process, data_dir)
        print(f"--- local stack log (tail) ---\n{_tail(log_path)}")


@pytest.fixture(scope="session")
def base_url(tmp_path_factory):
    with local_stack(tmp_path_factory.mktemp("local-stack")) as (url, _log):
        yield url


def register(base_url: str, org: str) -> requests.Session:
    response = requests.post(
        f"{base_url}/api/v1/auth/register",
        json={
            "org_name": org,
            "email": f"admin-{uuid.uuid4().hex[:8]}@{org.lower()}.example",
            "password": "a long passphrase 42",
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    assert token
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


@pytest.fixture(scope="session")
def tenant(base_url):
    """Org A with one uploaded document, once the ingest function has made it ready."""
    session = register(base_url, "Harbour")
    response = session.post(
        f"{base_url}/api/v1/documents",
        json={"name": "bakery.txt", "content": DOCUMENT, "metadata": {"source": "e2e"}},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    document = response.json()["document"]
    assert document["status"] == "pending"

    deadline = time.monotonic() + INGEST_TIMEOUT
    while document["status"] not in ("ready", "failed"):
        assert time.monotonic() < deadline, f"document still {document['status']} after {INGEST_TIMEOUT}s"
        time.sleep(0.5)
        response = session.get(f"{base_url}/api/v1/documents/{document['id']}", timeout=30)
        assert response.status_code == 200, response.text
        document = response.json()["document"]
    return session, document
