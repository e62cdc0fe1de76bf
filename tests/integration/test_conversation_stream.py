"""Conversations on the stream endpoint (functions/stream/app.py over real HTTP, on the real platform):
the turn is stored when the answer completes, and nothing is stored when it does not."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from httpx_sse import connect_sse

from tests.integration.test_conversations import (  # noqa: F401 (openai_provider is a fixture)
    FIRST,
    FOLLOW_UP,
    ask,
    completion,
    new_conversation,
    openai_provider,
    read,
)
from tests.integration.test_documents import HANDBOOK, upload
from tests.integration.test_query import RECIPES
from tests.integration.test_stream import (  # noqa: F401 (fixtures)
    EndlessGenerator,
    FailingGenerator,
    stream,
    stream_url,
    use_generator,
)
from tests.unit.test_generation_openai import answer_chunks


@pytest.fixture(scope="module")
def token(platform):
    org = platform.register()
    upload(platform, org["token"], name="handbook.txt", content=HANDBOOK)
    upload(platform, org["token"], name="recipes.txt", content=RECIPES)
    platform.ingest_all()
    return org["token"]


def test_the_stream_stores_the_turn_when_the_answer_completes(platform, stream_url, token):  # noqa: F811
    conversation = new_conversation(platform, token)
    _, first = stream(stream_url, token, {"question": FIRST, "conversation_id": conversation})
    assert first[0][1]["conversation"] == {
        "id": conversation,
        "retrieval": {"query": FIRST, "method": "question"},
    }
    response, events = stream(
        stream_url, token, {"question": FOLLOW_UP, "mode": "lexical", "conversation_id": conversation}
    )
    assert response.status_code == 200
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and set(kinds[1:-1]) == {"token"}
    sources = events[0][1]
    assert sources["conversation"]["retrieval"] == {
        "query": f"{FIRST}\n{FOLLOW_UP}",
        "method": "with_history",
    }
    assert [s["document_name"] for s in sources["sources"]] == ["recipes.txt"]
    answer = "".join(data["text"] for kind, data in events if kind == "token")
    assert "180 degrees" in answer

    # Stored before `done` was sent: readable as soon as the stream ends.
    messages = read(platform, token, conversation).body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert messages[2]["content"] == FOLLOW_UP
    assert messages[3]["content"] == answer
    assert messages[3]["sources"] == sources["sources"]
    assert messages[3]["usage"] == events[-1][1]["usage"]


def test_a_client_that_disconnects_mid_answer_leaves_no_turn(
    platform,
    stream_url,  # noqa: F811
    token,
    use_generator,  # noqa: F811
):
    conversation = new_conversation(platform, token)
    generator = use_generator(EndlessGenerator())
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(
            client, "POST", f"{stream_url}/api/v1/query",
            json={"question": FIRST, "conversation_id": conversation},
            headers={"Authorization": f"Bearer {token}"},
        ) as source,
    ):  # fmt: skip
        events = source.iter_sse()
        assert next(events).event == "sources"
        assert [next(events).event for _ in range(3)] == ["token"] * 3
    assert generator.closed.wait(10)
    stored = read(platform, token, conversation).body
    assert stored["conversation"]["turn_count"] == 0 and stored["messages"] == []


def test_an_answer_that_fails_mid_stream_leaves_no_turn(
    platform,
    stream_url,  # noqa: F811
    token,
    use_generator,  # noqa: F811
):
    conversation = new_conversation(platform, token)
    use_generator(FailingGenerator())
    _, events = stream(stream_url, token, {"question": FIRST, "conversation_id": conversation})
    assert [kind for kind, _ in events] == ["sources", "token", "error"]
    assert read(platform, token, conversation).body["messages"] == []


def test_someone_elses_conversation_is_404_before_the_stream(platform, stream_url, token):  # noqa: F811
    stranger = platform.register()["token"]
    theirs = new_conversation(platform, stranger)
    for conversation in (theirs, str(uuid.uuid4())):
        response = httpx.post(
            f"{stream_url}/api/v1/query",
            json={"question": FIRST, "conversation_id": conversation},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert json.loads(response.text)["error"]["code"] == "not_found"
    assert read(platform, stranger, theirs).body["messages"] == []


def test_the_stream_condenses_with_the_model_and_stores_the_standalone_question(
    platform,
    stream_url,  # noqa: F811
    token,
    openai_provider,  # noqa: F811
):
    conversation = new_conversation(platform, token)
    assert ask(platform, token, FIRST, conversation_id=conversation).status == 200  # extractive turn
    standalone = "At what temperature do I bake the apple pie?"
    server = openai_provider(
        ("status", 200, {}, completion(standalone)),
        ("stream", answer_chunks("At 180 degrees ", "Celsius [1]."), "done"),
    )
    _, events = stream(stream_url, token, {"question": FOLLOW_UP, "conversation_id": conversation})
    assert events[0][1]["conversation"]["retrieval"] == {"query": standalone, "method": "condensed"}
    assert events[0][1]["sources"][0]["document_name"] == "recipes.txt"
    assert [data["text"] for kind, data in events if kind == "token"] == ["At 180 degrees ", "Celsius [1]."]
    assert events[-1][1]["usage"]["condense"] == {"input_tokens": 77, "output_tokens": 9}
    assert f"<user>{FIRST}</user>" in server.requests[0]["body"]["messages"][1]["content"]
    stored = read(platform, token, conversation).body["messages"]
    assert stored[2]["retrieval"] == {"query": standalone, "method": "condensed"}
    assert stored[3]["content"] == "At 180 degrees Celsius [1]."


def test_a_failed_condensation_is_a_503_before_the_stream(
    platform,
    stream_url,  # noqa: F811
    token,
    openai_provider,  # noqa: F811
):
    conversation = new_conversation(platform, token)
    assert ask(platform, token, FIRST, conversation_id=conversation).status == 200
    unavailable = ("status", 503, {}, {"error": {"message": "overloaded"}})
    openai_provider(unavailable, unavailable, unavailable)
    response = httpx.post(
        f"{stream_url}/api/v1/query",
        json={"question": FOLLOW_UP, "conversation_id": conversation},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "generation_unavailable"
    assert read(platform, token, conversation).body["conversation"]["turn_count"] == 1
