"""`make run-localstack`'s command against a real LocalStack (host mode, no Docker): upload -> ready ->
query over HTTP, with the ingest queue living in LocalStack. Skips, saying why, when LocalStack is not
installed (`make localstack-venv` installs it when CPython 3.13 exists)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import boto3
import pytest
import requests

from .conftest import DOCUMENT, EXTERNAL, INGEST_TIMEOUT, QUESTION, REPO, _free_port, _stop, _tail, register

LOCALSTACK_PYTHON = REPO / ".venv-localstack" / "bin" / "python"
STARTUP_TIMEOUT = 240  # LocalStack, then initdb, migrations, model load

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not LOCALSTACK_PYTHON.exists(),
        reason="LocalStack is not installed: `make localstack-venv` needs CPython 3.13 "
        "(localstack-core imports warnings.deprecated)",
    ),
]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def localstack_stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("localstack-stack")
    data_dir, log_path = work / "data", work / "stack.log"
    port, localstack_port = _free_port(), _free_port()
    env = {key: value for key, value in os.environ.items() if key not in EXTERNAL}
    env.update(
        PORT=str(port),
        DATA_DIR=str(data_dir),
        LOCALSTACK_PORT=str(localstack_port),
        LOCALSTACK_PYTHON=str(LOCALSTACK_PYTHON),
        PYTHONUNBUFFERED="1",
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.local.localstack"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # LocalStack runs in this group: killed with it whatever happens
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"make run-localstack's command exited with {process.returncode}:\n{_tail(log_path)}"
                )
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/api/v1/health", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"not listening within {STARTUP_TIMEOUT}s:\n{_tail(log_path)}")
            time.sleep(0.5)
        yield url, f"http://127.0.0.1:{localstack_port}"
    finally:
        _stop(process, data_dir)
        print(f"--- local stack + LocalStack log (tail) ---\n{_tail(log_path)}")
        # Nothing of it may outlive the test: not LocalStack, nor anything else in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("processes of the stack outlived its shutdown")
        assert not _listening(localstack_port), "LocalStack still listens after the stack stopped"


def test_upload_ready_query_against_localstack(localstack_stack):
    url, localstack = localstack_stack
    session = register(url, "Localstack")
    response = session.post(
        f"{url}/api/v1/documents", json={"name": "bakery.txt", "content": DOCUMENT}, timeout=30
    )
    assert response.status_code == 202, response.text
    document = response.json()["document"]

    deadline = time.monotonic() + INGEST_TIMEOUT
    while document["status"] not in ("ready", "failed"):
        assert time.monotonic() < deadline, f"document still {document['status']} after {INGEST_TIMEOUT}s"
        time.sleep(0.5)
        document = session.get(f"{url}/api/v1/documents/{document['id']}", timeout=30).json()["document"]
    assert document["status"] == "ready", document

    answer = session.post(f"{url}/api/v1/query/sync", json={"question": QUESTION}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "Vexley" in body["answer"]
    assert body["sources"][0]["document_id"] == document["id"]

    # The ingest queue and its DLQ are LocalStack's, not an embedded moto's.
    sqs = boto3.client(
        "sqs",
        endpoint_url=localstack,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    names = {queue_url.rsplit("/", 1)[1] for queue_url in sqs.list_queues().get("QueueUrls", [])}
    assert {"rag-local-IngestQueue", "rag-local-IngestDeadLetterQueue"} <= names


def test_a_file_uploaded_to_localstack_s3_is_ingested_from_its_event(localstack_stack):
    url, localstack = localstack_stack
    session = register(url, "LocalstackFiles")
    data = DOCUMENT.encode()
    created = session.post(
        f"{url}/api/v1/documents/uploads",
        json={"name": "bakery.md", "content_type": "text/markdown", "size": len(data)},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    document, target = created.json()["document"], created.json()["upload"]
    assert target["url"].startswith(localstack), target["url"]  # LocalStack's S3, not an embedded moto
    put = requests.put(target["url"], data=data, headers=target["headers"], timeout=30)
    assert put.status_code == 200, put.text

    deadline = time.monotonic() + INGEST_TIMEOUT
    while document["status"] not in ("ready", "failed"):
        assert time.monotonic() < deadline, f"document still {document['status']} after {INGEST_TIMEOUT}s"
        time.sleep(0.5)
        document = session.get(f"{url}/api/v1/documents/{document['id']}", timeout=30).json()["document"]
    assert document["status"] == "ready", document
    body = session.post(f"{url}/api/v1/query/sync", json={"question": QUESTION}, timeout=60).json()
    assert body["sources"][0]["document_id"] == document["id"]

    assert session.delete(f"{url}/api/v1/documents/{document['id']}", timeout=30).status_code == 204
    s3 = boto3.client(
        "s3",
        endpoint_url=localstack,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    key = f"{created.json()['document']['id']}"
    listed = s3.list_object_versions(Bucket="rag-local-uploadbucket")
    assert not any(
        key in item["Key"] for item in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
    )
