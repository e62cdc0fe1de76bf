"""The README quick start against `python -m infra.local`, started as a subprocess, over real HTTP."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import QUESTION, register

pytestmark = pytest.mark.e2e


def test_quick_start_upload_ingest_and_ask(base_url, tenant):
    session, document = tenant
    assert document["status"] == "ready", document.get("error")
    assert document["chunk_count"] >= 1

    response = session.post(f"{base_url}/api/v1/query/sync", json={"question": QUESTION}, timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "Vexley" in answer["answer"]
    assert answer["sources"], answer
    assert {source["document_id"] for source in answer["sources"]} == {document["id"]}
    assert {source["document_name"] for source in answer["sources"]} == {"bakery.txt"}


def test_another_tenant_cannot_see_the_document(base_url, tenant):
    _, document = tenant
    other = register(base_url, "Elsewhere")
    response = other.get(f"{base_url}/api/v1/documents/{document['id']}", timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["code"]

    listing = other.get(f"{base_url}/api/v1/documents", timeout=30)
    assert listing.status_code == 200
    assert listing.json()["items"] == []


def test_malformed_json_is_400_with_the_error_body(base_url):
    response = requests.post(
        f"{base_url}/api/v1/auth/register",
        data=b'{"org_name": "Broken",',
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] and error["message"]


def test_unknown_route_is_404_with_the_error_body(base_url):
    response = requests.get(f"{base_url}/api/v1/no-such-thing", timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_missing_token_is_401(base_url):
    response = requests.get(f"{base_url}/api/v1/documents", timeout=30)
    assert response.status_code == 401
    assert response.json()["error"]["code"]


def test_a_1_mb_authorization_header_is_431_with_the_error_body_not_a_reset(base_url):
    response = requests.get(
        f"{base_url}/api/v1/documents", headers={"Authorization": "Bearer " + "x" * 1_000_000}, timeout=30
    )
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "request_header_fields_too_large"
