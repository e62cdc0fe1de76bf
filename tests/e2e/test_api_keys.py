"""A tenant API key against the running local stack over real HTTP: the streamed answer (the stream app)
and the REST routes (the gateway and the Lambda handlers), with its scope and its revocation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid

import httpx
import pytest
import requests
from httpx_sse import connect_sse

from tests.e2e.conftest import QUESTION, register
from tests.e2e.test_readme import DEFAULT_API, README

pytestmark = pytest.mark.e2e


def _create_key(base_url: str, session: requests.Session, scope: str) -> dict:
    response = session.post(
        f"{base_url}/api/v1/api-keys", json={"name": f"e2e {scope}", "scope": scope}, timeout=30
    )
    assert response.status_code == 201, response.text
    return response.json()


def _stream(base_url: str, secret: str) -> tuple[int, list[tuple[str, dict]]]:
    with (
        httpx.Client(timeout=60) as client,
        connect_sse(
            client,
            "POST",
            f"{base_url}/api/v1/query",
            json={"question": QUESTION},
            headers={"Authorization": f"Bearer {secret}"},
        ) as source,
    ):
        return source.response.status_code, [(e.event, json.loads(e.data)) for e in source.iter_sse()]


def test_a_query_key_streams_answers_and_stops_when_revoked(base_url, tenant):
    session, document = tenant
    created = _create_key(base_url, session, "query")
    secret, key_id = created["secret"], created["api_key"]["id"]
    status, events = _stream(base_url, secret)
    assert status == 200
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and "token" in kinds
    assert {s["document_id"] for s in events[0][1]["sources"]} == {document["id"]}
    answer = "".join(data["text"] for kind, data in events if kind == "token")
    assert "Vexley" in answer

    headers = {"Authorization": f"Bearer {secret}"}
    sync = requests.post(
        f"{base_url}/api/v1/query/sync", json={"question": QUESTION}, headers=headers, timeout=60
    )
    assert sync.status_code == 200 and sync.json()["answer"] == answer
    # A query key only asks.
    upload = requests.post(
        f"{base_url}/api/v1/documents", json={"name": "x.txt", "content": "text"}, headers=headers, timeout=30
    )
    assert upload.status_code == 403 and upload.json()["error"]["code"] == "forbidden"

    assert session.delete(f"{base_url}/api/v1/api-keys/{key_id}", timeout=30).status_code == 204
    refused = httpx.post(f"{base_url}/api/v1/query", json={"question": QUESTION}, headers=headers, timeout=30)
    forged = httpx.post(
        f"{base_url}/api/v1/query",
        json={"question": QUESTION},
        headers={"Authorization": "Bearer forged.token.value"},
        timeout=30,
    )
    assert refused.status_code == forged.status_code == 401
    assert refused.json() == forged.json() == {"error": {"code": "unauthorized", "message": "invalid token"}}
    rest = requests.get(f"{base_url}/api/v1/me", headers=headers, timeout=30)
    assert rest.status_code == 401 and rest.json() == refused.json()


def test_a_write_key_uploads_and_the_listing_shows_its_use(base_url):
    session = register(base_url, "Ferry")  # an org of its own: the shared tenant keeps its one document
    created = _create_key(base_url, session, "write")
    headers = {"Authorization": f"Bearer {created['secret']}"}
    upload = requests.post(
        f"{base_url}/api/v1/documents",
        json={"name": "notes.txt", "content": "The ferry leaves at noon."},
        headers=headers,
        timeout=30,
    )
    assert upload.status_code == 202, upload.text
    assert requests.get(f"{base_url}/api/v1/users", headers=headers, timeout=30).status_code == 403
    listed = session.get(f"{base_url}/api/v1/api-keys", timeout=30).json()["items"]
    (mine,) = [k for k in listed if k["id"] == created["api_key"]["id"]]
    assert mine["last_used_at"] is not None and mine["prefix"] == created["secret"][:12]
    assert created["secret"] not in json.dumps(listed)


def _readme_section(title: str) -> str:
    section = README.read_text().split(f"## {title}\n", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README uses curl")
def test_the_readme_api_key_section_runs_as_written(base_url):
    # The quick start first (it sets API and TOKEN), as someone else: the quick start's own test expects
    # to be the first to register its e-mail address.
    email = f"ada-{uuid.uuid4().hex[:8]}@acme.test"
    script = (_readme_section("Quick start") + _readme_section("API keys")).replace("ada@acme.test", email)
    assert f"API={DEFAULT_API}" in script
    script = script.replace(f"API={DEFAULT_API}", f"API={base_url}/api/v1")
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    outputs = [json.loads(line) for line in lines if line.startswith("{")]
    # Quick start: the document, the answer to the token; then the answer to the key, the list, the 401.
    _, by_token, by_key, listed, after = outputs
    assert by_key["answer"] == by_token["answer"] and "twenty-five days" in by_key["answer"]
    assert len(re.findall(r"^event: sources", run.stdout, re.M)) == 2  # the stream, with each credential
    (key,) = listed["items"]
    assert key["name"] == "reporting bot" and key["scope"] == "query" and key["last_used_at"]
    assert "secret" not in key
    assert "204" in lines
    assert after == {"error": {"code": "unauthorized", "message": "invalid token"}}
