"""Streamed answers from the running local stack (`python -m infra.local`), read by an SSE client over
real HTTP on the gateway's port, next to the REST routes."""

from __future__ import annotations

import json

import httpx
import pytest
from httpx_sse import connect_sse

from tests.e2e.conftest import QUESTION

pytestmark = pytest.mark.e2e


def _token(session) -> str:
    return session.headers["Authorization"].removeprefix("Bearer ")


def test_stream_events_over_the_wire(base_url, tenant):
    session, document = tenant
    with (
        httpx.Client(timeout=60) as client,
        connect_sse(
            client,
            "POST",
            f"{base_url}/api/v1/query",
            json={"question": QUESTION},
            headers={"Authorization": f"Bearer {_token(session)}"},
        ) as source,
    ):
        response = source.response
        events = [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"

    kinds = [kind for kind, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"token"} and len(kinds) > 3
    sources = events[0][1]["sources"]
    assert {s["document_id"] for s in sources} == {document["id"]}
    answer = "".join(data["text"] for kind, data in events if kind == "token")
    assert "Vexley" in answer and "[1]" in answer
    usage = events[-1][1]["usage"]
    assert usage["retrieved_chunks"] == len(sources) and usage["provider"] == "extractive"

    # The synchronous endpoint (API Gateway route, query function) gives the same answer.
    sync = session.post(f"{base_url}/api/v1/query/sync", json={"question": QUESTION}, timeout=60).json()
    assert sync["answer"] == answer
    assert sync["sources"] == sources
    assert sync["usage"] == usage


def test_raw_framing_is_event_then_json_data_lines(base_url, tenant):
    """What `curl -N` shows: no Content-Type needed on the request, one `event:` and one `data:` line per
    event, a blank line after each."""
    session, _ = tenant
    with httpx.stream(
        "POST",
        f"{base_url}/api/v1/query",
        content=json.dumps({"question": QUESTION, "top_k": 1}),
        headers={"Authorization": f"Bearer {_token(session)}"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        raw = response.read().decode()
    blocks = [b for b in raw.split("\n\n") if b.strip() and not b.startswith(":")]
    for block in blocks:
        event_line, data_line = block.split("\n")
        assert event_line.split(": ", 1)[0] == "event"
        assert data_line.startswith("data: ")
        json.loads(data_line.removeprefix("data: "))
    assert blocks[0].startswith("event: sources\n") and blocks[-1].startswith("event: done\n")


@pytest.mark.parametrize("authorization", [None, "Bearer forged.token.value"])
def test_no_or_bad_token_is_401_json_before_any_stream(base_url, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(
        f"{base_url}/api/v1/query", json={"question": QUESTION}, headers=headers, timeout=30
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "unauthorized"


def test_invalid_and_malformed_bodies_are_refused_before_any_stream(base_url, tenant):
    session, _ = tenant
    headers = {"Authorization": f"Bearer {_token(session)}"}
    invalid = httpx.post(f"{base_url}/api/v1/query", json={"question": ""}, headers=headers, timeout=30)
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "validation_error"
    malformed = httpx.post(f"{base_url}/api/v1/query", content=b'{"question":', headers=headers, timeout=30)
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "bad_request"


def test_a_disconnected_client_leaves_the_stack_serving(base_url, tenant):
    session, _ = tenant
    headers = {"Authorization": f"Bearer {_token(session)}"}
    with httpx.stream(
        "POST", f"{base_url}/api/v1/query", json={"question": QUESTION}, headers=headers, timeout=60
    ) as response:
        next(response.iter_bytes())  # the first event, then hang up
    again = session.post(f"{base_url}/api/v1/query/sync", json={"question": QUESTION}, timeout=60)
    assert again.status_code == 200 and "Vexley" in again.json()["answer"]
