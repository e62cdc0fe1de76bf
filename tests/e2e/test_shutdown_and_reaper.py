"""SIGTERM during ingestion: the local stack exits 0, and after a restart on the same data every document
ends ready (the reaper re-sends what the previous run's in-memory queue lost)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.e2e.conftest import EXTERNAL, REPO, STARTUP_TIMEOUT, _free_port, _stop, _tail

RESTART_INGEST_TIMEOUT = 180


def _start(data_dir, log_path, port):
    env = {key: value for key, value in os.environ.items() if key not in EXTERNAL}
    # No grace period: the invocation running at SIGTERM is certainly abandoned mid-ingestion.
    env.update(PORT=str(port), DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", SHUTDOWN_GRACE_SECONDS="0")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.local"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"the local stack exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            requests.get(f"{url}/health", timeout=5)
            return process, url
        except requests.ConnectionError:
            assert time.monotonic() < deadline, _tail(log_path)
            time.sleep(0.5)


def _statuses(url, token, ids):
    headers = {"Authorization": f"Bearer {token}"}
    return [requests.get(f"{url}/documents/{i}", headers=headers, timeout=30).json()["document"] for i in ids]


def test_sigterm_during_ingestion_exits_cleanly_and_a_restart_finishes_every_document(tmp_path):
    data_dir, log_path, port = tmp_path / "data", tmp_path / "stack.log", _free_port()
    process, url = _start(data_dir, log_path, port)
    try:
        registered = requests.post(
            f"{url}/auth/register",
            json={
                "org_name": "Restart",
                "email": f"{uuid.uuid4().hex[:8]}@restart.example",
                "password": "a long pass",
            },
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        token = registered.json()["token"]
        text = " ".join(
            f"Line {i} of the maintenance log mentions valve {i % 31} in hall {i % 7}." for i in range(400)
        )
        ids = []
        for n in range(4):
            response = requests.post(
                f"{url}/documents",
                json={"name": f"log-{n}.txt", "content": f"{text} Entry {n}."},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["document"]["id"])
        assert {d["status"] for d in _statuses(url, token, ids)} - {"ready"}, "ingestion finished too soon"

        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(60) == 0, _tail(log_path)
        assert "terminate called" not in log_path.read_text(errors="replace")
    finally:
        _stop(process, data_dir)

    process, url = _start(data_dir, log_path, port)
    try:
        deadline = time.monotonic() + RESTART_INGEST_TIMEOUT
        while True:
            documents = _statuses(url, token, ids)
            if all(d["status"] in ("ready", "failed") for d in documents):
                break
            assert time.monotonic() < deadline, [d["status"] for d in documents]
            time.sleep(1)
        assert [d["status"] for d in documents] == ["ready"] * 4, documents
        assert all(d["chunk_count"] > 0 for d in documents)
    finally:
        _stop(process, data_dir)
        print(f"--- local stack log (tail) ---\n{_tail(log_path)}")
