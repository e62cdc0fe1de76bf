"""No document text, question text, password, token or API key secret in the logs of any function.

A local stack of its own runs with every function logging at DEBUG, and with the Powertools switches
that would log whole events (POWERTOOLS_LOGGER_LOG_EVENT, POWERTOOLS_DEV) turned on, so that a handler
relying on their defaults would be caught. A full flow plants unique strings (register, sign in, upload,
ingest, ask synchronously and streamed, with a JWT and with an API key), then the stack's whole output
(every function's log lines and metrics) is searched for them. The same output must hold the lines of
those requests, tagged with their tenant, or the search would prove nothing.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
import requests
from httpx_sse import connect_sse

from tests.e2e.conftest import INGEST_TIMEOUT, local_stack

pytestmark = pytest.mark.e2e

MARK = uuid.uuid4().hex[:12]
DOCUMENT_WORD = f"Quillmarsh{MARK}"  # a word only the document holds
QUESTION_WORD = f"Brindlecove{MARK}"  # a word only the question holds
PASSWORD = f"correct horse {MARK} battery"
DOCUMENT = (
    f"The lighthouse keeper of {DOCUMENT_WORD} polishes the lamp every evening at dusk. "
    "The lamp burns whale oil in winter and paraffin in summer."
)
QUESTION = f"What does the lighthouse lamp burn in winter, asks the keeper of {QUESTION_WORD}?"


@pytest.fixture(scope="module")
def debug_stack(tmp_path_factory):
    with local_stack(
        tmp_path_factory.mktemp("debug-stack"),
        POWERTOOLS_LOG_LEVEL="DEBUG",
        POWERTOOLS_LOGGER_LOG_EVENT="true",
        POWERTOOLS_DEV="true",
        POWERTOOLS_METRICS_DISABLED="false",  # dev mode would silence the metrics, which are searched too
    ) as stack:
        yield stack


def _stream(url: str, secret: str, request_id: str) -> list[tuple[str, dict]]:
    with (
        httpx.Client(timeout=60) as client,
        connect_sse(
            client,
            "POST",
            f"{url}/api/v1/query",
            json={"question": QUESTION},
            headers={"Authorization": f"Bearer {secret}", "X-Request-Id": request_id},
        ) as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["x-request-id"] == request_id
        return [(e.event, json.loads(e.data)) for e in source.iter_sse()]


def _json_objects(text: str) -> list[dict]:
    """The JSON objects of the output (Powertools' dev mode indents them over several lines)."""
    decoder, objects, index = json.JSONDecoder(), [], 0
    while (start := text.find("{", index)) != -1:
        try:
            obj, index = decoder.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        if isinstance(obj, dict):
            objects.append(obj)
    return objects


def test_no_planted_secret_or_text_reaches_any_log(debug_stack):
    url, log_path = debug_stack
    email = f"keeper-{MARK}@lighthouse.example"
    registered = requests.post(
        f"{url}/api/v1/auth/register",
        json={"org_name": f"Lighthouse {MARK}", "email": email, "password": PASSWORD},
        timeout=30,
    )
    assert registered.status_code == 201, registered.text
    token, org_id = registered.json()["token"], registered.json()["org"]["id"]
    wrong = requests.post(
        f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD + "x"}, timeout=30
    )
    assert wrong.status_code == 401
    login = requests.post(f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30)
    assert login.status_code == 200
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {login.json()['token']}"

    created = session.post(
        f"{url}/api/v1/documents", json={"name": "lighthouse.txt", "content": DOCUMENT}, timeout=30
    )
    assert created.status_code == 202, created.text
    document = created.json()["document"]
    deadline = time.monotonic() + INGEST_TIMEOUT
    while document["status"] not in ("ready", "failed"):
        assert time.monotonic() < deadline, f"document still {document['status']}"
        time.sleep(0.5)
        document = session.get(f"{url}/api/v1/documents/{document['id']}", timeout=30).json()["document"]
    assert document["status"] == "ready"

    sync = session.post(f"{url}/api/v1/query/sync", json={"question": QUESTION}, timeout=60)
    assert sync.status_code == 200, sync.text
    assert DOCUMENT_WORD in json.dumps(sync.json())  # the answer does carry the planted text
    sync_request_id = sync.headers["x-amzn-requestid"]

    key = session.post(f"{url}/api/v1/api-keys", json={"name": "log scan", "scope": "query"}, timeout=30)
    assert key.status_code == 201, key.text
    secret = key.json()["secret"]
    stream_ids = {f"scan-jwt-{MARK}": token, f"scan-key-{MARK}": secret}
    for request_id, credential in stream_ids.items():
        events = _stream(url, credential, request_id)
        assert events[0][0] == "sources" and events[-1][0] == "done"
        assert DOCUMENT_WORD in json.dumps(events)

    # A stream's last line is written once its response has ended: wait for those of both streams.
    deadline = time.monotonic() + 15
    while True:
        output = log_path.read_text(errors="replace")
        finished = {
            line.get("correlation_id")
            for line in _json_objects(output)
            if line.get("message") == "stream finished"
        }
        if finished >= set(stream_ids):
            break
        assert time.monotonic() < deadline, "the streams' lines never reached the output"
        time.sleep(0.2)

    planted = {
        "document text": DOCUMENT_WORD,
        "question text": QUESTION_WORD,
        "password": MARK + " battery",
        "JWT (registration)": token,
        "JWT (login)": login.json()["token"],
        "JWT signature": token.rsplit(".", 1)[-1],
        "API key secret": secret,
        "API key secret body": secret.removeprefix("rag_"),
    }
    leaked = {what: value for what, value in planted.items() if value in output}
    assert not leaked, f"found in the logs: {sorted(leaked)}"

    # The search covered the lines of these very requests, from every function, at DEBUG.
    lines = _json_objects(output)
    tenant_lines = [line for line in lines if line.get("org_id") == org_id]
    messages = {line.get("message") for line in tenant_lines}
    assert {"request handled", "document processed", "stream finished", "retrieved", "chunked"} <= messages
    assert any(line.get("level") == "DEBUG" for line in tenant_lines)
    assert any(line.get("correlation_id") == sync_request_id for line in tenant_lines)
    for request_id in stream_ids:
        finished = [line for line in tenant_lines if line.get("correlation_id") == request_id]
        assert any(line.get("message") == "stream finished" for line in finished), request_id
    assert any("_aws" in line and line.get("org_id") == org_id for line in lines)  # metrics, too
