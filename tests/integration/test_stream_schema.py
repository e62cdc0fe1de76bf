"""The stream endpoint's body is what docs/openapi.json says it is: a stream of the documented events, each
with the documented JSON data (OpenAPI before 3.2: the schema of text/event-stream describes one event)."""

import json

from jsonschema import Draft202012Validator
from starlette.testclient import TestClient

from scripts.openapi import OUTPUT
from tests.integration.test_documents import upload
from tests.integration.test_stream import QUESTION, _load_stream_app


def _events(body: str) -> list[dict]:
    """Each frame as an SSE parser reads it ({"event", "data"}); comment frames are no events."""
    events = []
    for frame in body.split("\n\n"):
        fields = [line.split(": ", 1) for line in frame.splitlines() if line and not line.startswith(":")]
        if fields:
            events.append(dict(fields))
    return events


def _violations(schema: dict, event: dict) -> list[str]:
    """Why an event is not one the schema documents: its envelope, then its data against the content
    schema of the branch its name selects (JSON Schema validators do not check contentSchema)."""
    problems = [error.message for error in Draft202012Validator(schema).iter_errors(event)]
    for branch in schema["oneOf"]:
        if branch["properties"]["event"]["const"] == event.get("event"):
            try:
                data = json.loads(event.get("data", ""))
            except ValueError:
                return [*problems, "data is not JSON"]
            content = branch["properties"]["data"]["contentSchema"]
            problems += [error.message for error in Draft202012Validator(content).iter_errors(data)]
    return problems


def test_the_streamed_body_matches_the_documented_event_stream(platform):
    org = platform.register()
    upload(platform, org["token"])
    platform.ingest_all()
    operation = json.loads(OUTPUT.read_text())["paths"]["/api/v1/query"]["post"]
    schema = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]
    with TestClient(_load_stream_app()) as client:
        response = client.post(
            "/api/v1/query", json={"question": QUESTION}, headers={"Authorization": f"Bearer {org['token']}"}
        )
    assert response.status_code == 200
    events = _events(response.text)
    assert [e["event"] for e in events][:2] == ["sources", "token"] and events[-1]["event"] == "done"
    for event in events:
        assert not _violations(schema, event), (event, _violations(schema, event))
    # Not vacuous: an undocumented event, or a documented one with the wrong data, is refused.
    assert _violations(schema, {"event": "surprise", "data": "{}"})
    assert _violations(schema, {"event": "token", "data": '{"answer": "x"}'})
    assert _violations(schema, {"event": "done", "data": "not json"})
    assert "503" in operation["responses"]
