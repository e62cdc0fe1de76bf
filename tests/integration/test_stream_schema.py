"""The stream endpoint's body is what docs/openapi.json says it is (an event stream, not any string)."""

import json
import re

from starlette.testclient import TestClient

from scripts.openapi import OUTPUT
from tests.integration.test_documents import upload
from tests.integration.test_stream import QUESTION, _load_stream_app


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
    assert re.fullmatch(schema["pattern"], response.text), response.text[:500]
    # Not vacuous: a JSON body, or a frame of an undocumented event, does not match.
    assert not re.fullmatch(schema["pattern"], '{"answer": "x"}')
    assert not re.fullmatch(schema["pattern"], "event: surprise\ndata: {}\n\n")
    assert "503" in operation["responses"]
