"""File uploads on the local stack (`python -m infra.local`, real HTTP): the presigned PUT goes to the
stack's S3 endpoint, whose event reaches the ingest queue; answers then cite the file."""

from __future__ import annotations

import time

import pytest
import requests

from tests.e2e.conftest import INGEST_TIMEOUT, register

pytestmark = pytest.mark.e2e


def upload(base_url: str, session: requests.Session, name: str, content_type: str, data: bytes) -> dict:
    """POST /documents/uploads, PUT the bytes to the presigned URL, wait for ready (or failed)."""
    created = session.post(
        f"{base_url}/api/v1/documents/uploads",
        json={"name": name, "content_type": content_type, "size": len(data)},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    document, target = created.json()["document"], created.json()["upload"]
    assert target["url"].startswith("http://127.0.0.1:"), target["url"]
    put = requests.put(target["url"], data=data, headers=target["headers"], timeout=30)
    assert put.status_code == 200, put.text
    deadline = time.monotonic() + INGEST_TIMEOUT
    while document["status"] not in ("ready", "failed"):
        assert time.monotonic() < deadline, f"document still {document['status']} after {INGEST_TIMEOUT}s"
        time.sleep(0.5)
        response = session.get(f"{base_url}/api/v1/documents/{document['id']}", timeout=30)
        assert response.status_code == 200, response.text
        document = response.json()["document"]
    return document


def ask(base_url: str, session: requests.Session, question: str) -> dict:
    response = session.post(f"{base_url}/api/v1/query/sync", json={"question": question}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_text_file_uploaded_to_the_local_bucket_is_ingested_and_cited(base_url):
    session = register(base_url, "Lighthouse")
    data = (
        b"Keeper's log of the Cape Orrin lighthouse.\n\n"
        b"The lamp is lit thirty minutes before sunset and its lens is polished every Tuesday. "
        b"Supplies arrive by the Gannet supply boat on the first Monday of each month."
    )
    document = upload(base_url, session, "keeper.txt", "text/plain", data)
    assert document["status"] == "ready", document["error"]
    answer = ask(base_url, session, "Which boat brings the supplies to the lighthouse?")
    assert answer["sources"][0]["document_id"] == document["id"]
    assert answer["sources"][0]["document_name"] == "keeper.txt"


def test_a_put_that_does_not_match_the_signed_size_is_refused_locally_too(base_url):
    session = register(base_url, "Signed")
    created = session.post(
        f"{base_url}/api/v1/documents/uploads",
        json={"name": "a.txt", "content_type": "text/plain", "size": 5},
        timeout=30,
    ).json()
    target = created["upload"]
    refused = requests.put(target["url"], data=b"longer than five", headers=target["headers"], timeout=30)
    assert refused.status_code == 403 and "SignatureDoesNotMatch" in refused.text
    wrong_type = requests.put(target["url"], data=b"hello", headers={"Content-Type": "text/html"}, timeout=30)
    assert wrong_type.status_code == 403
