"""Conversations through the real handlers and database: the CRUD routes, who may see what, follow-up
questions (extractive and with an OpenAI-compatible server at the wire), bounded history, and what
deleting a document or a user does to stored conversations."""

from __future__ import annotations

import json
import uuid

import pytest
from ragcore.condense import CONDENSE_SYSTEM_PROMPT
from ragcore.config import reset_settings
from ragcore.generation import reset_generation_clients

from tests.integration.test_documents import HANDBOOK, upload
from tests.integration.test_query import RECIPES
from tests.unit.test_generation_openai import FakeOpenAI, answer_chunks

FIRST = "How long do I bake the apple pie?"
FOLLOW_UP = "And at what temperature?"


@pytest.fixture(scope="module")
def tenant(platform):
    org = platform.register()
    upload(platform, org["token"], name="handbook.txt", content=HANDBOOK)
    upload(platform, org["token"], name="recipes.txt", content=RECIPES)
    platform.ingest_all()
    return org


def create(platform, token, **body):
    return platform.request("POST", "/api/v1/conversations", body, token=token)


def new_conversation(platform, token, **body) -> str:
    result = create(platform, token, **body)
    assert result.status == 201, result.body
    return result.body["conversation"]["id"]


def read(platform, token, conversation_id, query=""):
    return platform.request("GET", f"/api/v1/conversations/{conversation_id}", token=token, query=query)


def ask(platform, token, question, **body):
    return platform.request("POST", "/api/v1/query/sync", {"question": question, **body}, token=token)


def add_member(platform, admin_token, role="member") -> str:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    created = platform.request(
        "POST", "/api/v1/users", {"email": email, "password": "member-pass", "role": role}, token=admin_token
    )
    assert created.status == 201, created.body
    login = platform.request("POST", "/api/v1/auth/login", {"email": email, "password": "member-pass"})
    assert login.status == 200, login.body
    return login.body["token"]


# ----------------------------------------------------------------------------------------- CRUD


def test_create_list_get_delete(platform):
    token = platform.register()["token"]
    titled = create(platform, token, title="Vacation questions")
    assert titled.status == 201
    conversation = titled.body["conversation"]
    assert set(conversation) == {"id", "title", "turn_count", "created_at", "updated_at"}
    assert conversation["title"] == "Vacation questions" and conversation["turn_count"] == 0
    untitled = create(platform, token)
    assert untitled.status == 201 and untitled.body["conversation"]["title"] is None

    listed = platform.request("GET", "/api/v1/conversations", token=token)
    assert listed.status == 200
    assert [c["id"] for c in listed.body["items"]] == [
        untitled.body["conversation"]["id"],
        conversation["id"],
    ]
    assert listed.body["next_cursor"] is None

    got = read(platform, token, conversation["id"])
    assert got.status == 200
    assert got.body == {"conversation": conversation, "messages": [], "next_cursor": None}

    assert (
        platform.request("DELETE", f"/api/v1/conversations/{conversation['id']}", token=token).status == 204
    )
    assert read(platform, token, conversation["id"]).status == 404
    again = platform.request("DELETE", f"/api/v1/conversations/{conversation['id']}", token=token)
    assert again.status == 404 and again.body["error"]["code"] == "not_found"


def test_list_pages_with_a_cursor_most_recently_active_first(platform, tenant):
    token = add_member(platform, tenant["token"])
    ids = [new_conversation(platform, token, title=f"c{n}") for n in range(5)]
    # A turn in the oldest conversation makes it the most recently active.
    assert ask(platform, token, FIRST, conversation_id=ids[0]).status == 200
    seen, cursor = [], None
    while True:
        page = platform.request(
            "GET",
            "/api/v1/conversations",
            token=token,
            query="limit=2" + (f"&cursor={cursor}" if cursor else ""),
        )
        assert page.status == 200, page.body
        assert len(page.body["items"]) <= 2
        seen += [c["id"] for c in page.body["items"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert seen == [ids[0], *reversed(ids[1:])]


@pytest.mark.parametrize(
    "body", [{"title": ""}, {"title": "   "}, {"title": "x" * 201}, {"title": 5}, {"name": "x"}]
)
def test_invalid_conversation_bodies_are_422(platform, tenant, body):
    result = create(platform, tenant["token"], **body)
    assert result.status == 422 and result.body["error"]["code"] == "validation_error"


@pytest.mark.parametrize("raw", [b"", b"{", b"[1"])
def test_malformed_conversation_bodies_are_400(platform, tenant, raw):
    result = platform.request("POST", "/api/v1/conversations", raw_body=raw, token=tenant["token"])
    assert result.status == 400 and result.body["error"]["code"] == "bad_request"


@pytest.mark.parametrize("cursor", ["bm90LWEtY3Vyc29y", "WyJ4IiwieSJd", "abc", "WyIxIl0"])
def test_bad_cursors_are_400(platform, tenant, cursor):
    listed = platform.request("GET", "/api/v1/conversations", token=tenant["token"], query=f"cursor={cursor}")
    assert listed.status == 400 and listed.body["error"]["code"] == "bad_request"
    conversation = new_conversation(platform, tenant["token"])
    messages = read(platform, tenant["token"], conversation, query=f"cursor={cursor}x")
    assert messages.status == 400 and messages.body["error"]["code"] == "bad_request"


def test_unknown_and_malformed_ids_are_404_and_tokens_are_required(platform, tenant):
    for path in (f"/api/v1/conversations/{uuid.uuid4()}", "/api/v1/conversations/not-a-uuid"):
        assert platform.request("GET", path, token=tenant["token"]).status == 404
        assert platform.request("DELETE", path, token=tenant["token"]).status == 404
    assert platform.request("GET", "/api/v1/conversations").status == 401
    assert platform.request("POST", "/api/v1/conversations", {}).status == 401
    unknown = ask(platform, tenant["token"], FIRST, conversation_id=str(uuid.uuid4()))
    assert unknown.status == 404 and unknown.body["error"]["message"] == "conversation not found"
    invalid = ask(platform, tenant["token"], FIRST, conversation_id="nope")
    assert invalid.status == 422


# ------------------------------------------------------------------------------------ isolation


def test_only_the_owner_sees_a_conversation_admins_and_other_tenants_get_404(platform, tenant):
    owner = add_member(platform, tenant["token"])
    other_member = add_member(platform, tenant["token"])
    admin = tenant["token"]
    stranger = platform.register()["token"]
    conversation = new_conversation(platform, owner, title="private")
    assert ask(platform, owner, FIRST, conversation_id=conversation).status == 200

    for token in (other_member, admin, stranger):
        assert read(platform, token, conversation).status == 404
        assert conversation not in [
            c["id"] for c in platform.request("GET", "/api/v1/conversations", token=token).body["items"]
        ]
        # Neither reading through a query nor writing into it.
        asked = ask(platform, token, FOLLOW_UP, conversation_id=conversation)
        assert asked.status == 404 and asked.body["error"]["code"] == "not_found"
        assert platform.request("DELETE", f"/api/v1/conversations/{conversation}", token=token).status == 404

    owned = read(platform, owner, conversation)
    assert owned.status == 200 and owned.body["conversation"]["turn_count"] == 1
    assert [m["role"] for m in owned.body["messages"]] == ["user", "assistant"]


def test_rows_of_another_tenant_are_invisible_to_the_application_role(platform, tenant):
    conversation = new_conversation(platform, tenant["token"])
    assert ask(platform, tenant["token"], FIRST, conversation_id=conversation).status == 200
    stranger = platform.register()
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    url = make_conninfo(**{**conninfo_to_dict(platform.owner_url), "user": "rag_app"})
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('app.org_id', %s, true)", (stranger["org"]["id"],))
        assert conn.execute("SELECT count(*) FROM conversations").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM conversation_messages").fetchone()[0] == 0


# ------------------------------------------------------------------------- follow-ups, extractive


def test_extractive_follow_up_searches_with_the_previous_question(platform, tenant):
    token = tenant["token"]
    # Alone, the follow-up shares no word with any document: BM25 finds nothing.
    alone = ask(platform, token, FOLLOW_UP, mode="lexical")
    assert alone.status == 200 and alone.body["sources"] == []
    assert "conversation" not in alone.body

    conversation = new_conversation(platform, token)
    first = ask(platform, token, FIRST, mode="lexical", conversation_id=conversation)
    assert first.status == 200
    assert first.body["conversation"] == {
        "id": conversation,
        "retrieval": {"query": FIRST, "method": "question"},
    }
    follow = ask(platform, token, FOLLOW_UP, mode="lexical", conversation_id=conversation)
    assert follow.status == 200
    assert follow.body["conversation"]["retrieval"] == {
        "query": f"{FIRST}\n{FOLLOW_UP}",
        "method": "with_history",
    }
    assert [s["document_name"] for s in follow.body["sources"]] == ["recipes.txt"]
    assert "180 degrees" in follow.body["answer"]

    # In hybrid mode too, the context brings the recipe first.
    hybrid = ask(platform, token, FOLLOW_UP, conversation_id=conversation)
    assert hybrid.body["sources"][0]["document_name"] == "recipes.txt"
    assert "180 degrees" in hybrid.body["answer"]

    stored = read(platform, token, conversation)
    assert stored.body["conversation"]["title"] == FIRST
    assert stored.body["conversation"]["turn_count"] == 3
    messages = stored.body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert [m["content"] for m in messages[0::2]] == [FIRST, FOLLOW_UP, FOLLOW_UP]
    assert messages[2]["retrieval"] == {"query": f"{FIRST}\n{FOLLOW_UP}", "method": "with_history"}
    assert messages[3]["content"] == follow.body["answer"]
    assert messages[3]["sources"] == follow.body["sources"]
    assert messages[3]["usage"] == follow.body["usage"]


def test_messages_page_backwards_from_the_latest(platform, tenant):
    token = tenant["token"]
    conversation = new_conversation(platform, token)
    questions = [FIRST, FOLLOW_UP, "How many vacation days does an employee get?"]
    for question in questions:
        assert ask(platform, token, question, conversation_id=conversation, top_k=1).status == 200
    latest = read(platform, token, conversation, query="limit=4")
    assert [m["content"] for m in latest.body["messages"] if m["role"] == "user"] == questions[1:]
    earlier = read(platform, token, conversation, query=f"limit=4&cursor={latest.body['next_cursor']}")
    assert [m["role"] for m in earlier.body["messages"]] == ["user", "assistant"]
    assert earlier.body["messages"][0]["content"] == FIRST and earlier.body["next_cursor"] is None


def test_a_page_of_messages_stops_before_its_byte_budget(platform, tenant, monkeypatch):
    token = tenant["token"]
    conversation = new_conversation(platform, token)
    for question in (FIRST, FOLLOW_UP):
        assert ask(platform, token, question, conversation_id=conversation).status == 200
    whole = read(platform, token, conversation).body["messages"]
    # Room for the last two messages (the answer with its sources is the larger), not three.
    monkeypatch.setattr("ragcore.conversations.MAX_PAGE_BYTES", len(json.dumps(whole[-2:])) + 10)
    seen, cursor = [], None
    while True:
        page = read(platform, token, conversation, query=f"cursor={cursor}" if cursor else "")
        assert 1 <= len(page.body["messages"]) <= 2
        seen = page.body["messages"] + seen
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert seen == whole


def test_a_full_conversation_refuses_more_turns_with_409(platform, tenant, configure):
    conversation = new_conversation(platform, tenant["token"])
    configure(conversation_max_turns=1)
    assert ask(platform, tenant["token"], FIRST, conversation_id=conversation).status == 200
    full = ask(platform, tenant["token"], FOLLOW_UP, conversation_id=conversation)
    assert full.status == 409 and full.body["error"]["code"] == "conversation_full"
    assert read(platform, tenant["token"], conversation).body["conversation"]["turn_count"] == 1


# ----------------------------------------------------------------- follow-ups, OpenAI at the wire


def completion(text: str) -> dict:
    """A non-streamed chat completion, as the condensation request gets it."""
    return {
        "id": "c2",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 77, "completion_tokens": 9, "total_tokens": 86},
    }


@pytest.fixture
def openai_provider(monkeypatch):
    servers: list[FakeOpenAI] = []

    def install(*script: tuple, **settings: object) -> FakeOpenAI:
        server = FakeOpenAI(list(script))
        servers.append(server)
        values = {
            "GENERATION_PROVIDER": "openai",
            "GENERATION_MODEL": "gpt-test",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-test",
            "GENERATION_RETRY_BASE_SECONDS": "0",
            **{k.upper(): str(v) for k, v in settings.items()},
        }
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        reset_settings()
        reset_generation_clients()
        return server

    yield install
    monkeypatch.undo()
    reset_settings()
    reset_generation_clients()
    for server in servers:
        server.close()


def test_openai_condenses_the_history_into_the_standalone_question_it_searches_with(
    platform, tenant, openai_provider
):
    token = tenant["token"]
    standalone = "At what temperature do I bake the apple pie?"
    server = openai_provider(
        ("stream", answer_chunks("Bake it for ", "forty-five minutes [1]."), "done"),
        ("status", 200, {}, completion(f"Standalone question: {standalone}")),
        ("stream", answer_chunks("At 180 degrees ", "Celsius [1]."), "done"),
    )
    conversation = new_conversation(platform, token)
    first = ask(platform, token, FIRST, mode="lexical", conversation_id=conversation)
    assert first.status == 200 and first.body["conversation"]["retrieval"]["method"] == "question"
    assert len(server.requests) == 1  # no history yet: nothing to condense

    follow = ask(platform, token, FOLLOW_UP, mode="lexical", conversation_id=conversation)
    assert follow.status == 200, follow.body
    condense, answer = server.requests[1]["body"], server.requests[2]["body"]
    # The condensation request: not streamed, bounded output, the history fenced as data.
    assert "stream" not in condense and condense["max_tokens"] == 200
    assert condense["messages"][0] == {"role": "system", "content": CONDENSE_SYSTEM_PROMPT}
    user = condense["messages"][1]["content"]
    assert f"<user>{FIRST}</user>" in user
    assert "<assistant>Bake it for forty-five minutes [1].</assistant>" in user
    assert user.rstrip().endswith(f"Follow-up: {FOLLOW_UP}\n\nStandalone question:")
    # Retrieval used the standalone question ("apple pie", "bake" found the recipe), and the model
    # answered it.
    assert follow.body["conversation"]["retrieval"] == {"query": standalone, "method": "condensed"}
    assert [s["document_name"] for s in follow.body["sources"]] == ["recipes.txt"]
    assert answer["stream"] is True
    assert answer["messages"][1]["content"].endswith(f"Question: {standalone}")
    assert follow.body["answer"] == "At 180 degrees Celsius [1]."
    assert follow.body["usage"]["condense"] == {"input_tokens": 77, "output_tokens": 9}

    stored = read(platform, token, conversation).body["messages"]
    assert stored[2]["content"] == FOLLOW_UP
    assert stored[2]["retrieval"] == {"query": standalone, "method": "condensed"}
    assert stored[3]["content"] == "At 180 degrees Celsius [1]."


def test_a_failed_condensation_is_a_503_and_stores_nothing(platform, tenant, openai_provider):
    token = tenant["token"]
    conversation = new_conversation(platform, token)
    assert ask(platform, token, FIRST, conversation_id=conversation).status == 200  # extractive turn
    error = {"error": {"message": "bad key", "type": "invalid_request_error"}}
    openai_provider(("status", 401, {}, error))
    failed = ask(platform, token, FOLLOW_UP, conversation_id=conversation)
    assert failed.status == 503 and failed.body["error"]["code"] == "generation_failed"
    assert read(platform, token, conversation).body["conversation"]["turn_count"] == 1


def test_history_sent_to_the_model_is_bounded_by_turns_and_tokens(platform, tenant, openai_provider):
    token = tenant["token"]
    conversation = new_conversation(platform, token)
    questions = [
        "How many vacation days does an employee get?",
        "Can unused vacation days be carried over?",
        "How many days of remote work are allowed?",
    ]
    for question in questions:  # three extractive turns
        assert ask(platform, token, question, conversation_id=conversation).status == 200

    long_answer = "Yes, the office is closed on public holidays [1]. " * 12
    server = openai_provider(
        ("status", 200, {}, completion("Is the office closed on public holidays?")),
        ("stream", answer_chunks(long_answer), "done"),
        conversation_history_max_turns=2,
    )
    assert ask(platform, token, "Is it closed on holidays?", conversation_id=conversation).status == 200
    user = server.requests[0]["body"]["messages"][1]["content"]
    assert questions[0] not in user
    assert questions[1] in user and questions[2] in user
    assert user.count("<user>") == 2

    # A token budget smaller than the latest turn keeps that turn only, its answer cut to fit.
    server = openai_provider(
        ("status", 200, {}, completion("Is the office closed between Christmas and New Year?")),
        ("stream", answer_chunks("Yes [1]."), "done"),
        conversation_history_max_turns=10,
        conversation_history_max_tokens=64,
    )
    assert ask(platform, token, "And at Christmas?", conversation_id=conversation).status == 200
    user = server.requests[0]["body"]["messages"][1]["content"]
    assert user.count("<user>") == 1
    assert "<user>Is it closed on holidays?</user>" in user
    kept = user.split("<assistant>")[1].split("</assistant>")[0]
    assert kept and long_answer.strip().startswith(kept) and len(kept) < len(long_answer.strip())
    from ragcore.embeddings import get_embedder

    count = get_embedder().count_word_pieces
    assert sum(count(["Is", "it", "closed", "on", "holidays?"])) + sum(count(kept.split())) <= 64


# ----------------------------------------------------------------------- deleting what they refer to


def test_deleting_a_document_removes_its_text_from_stored_sources(platform):
    org = platform.register()
    token = org["token"]
    handbook = upload(platform, token, name="handbook.txt", content=HANDBOOK)
    upload(platform, token, name="recipes.txt", content=RECIPES)
    platform.ingest_all()
    conversation = new_conversation(platform, token)
    asked = ask(platform, token, "vacation days and apple pie", conversation_id=conversation, top_k=2)
    assert {s["document_name"] for s in asked.body["sources"]} == {"handbook.txt", "recipes.txt"}

    assert platform.request("DELETE", f"/api/v1/documents/{handbook['id']}", token=token).status == 204
    sources = read(platform, token, conversation).body["messages"][1]["sources"]
    assert [s["document_name"] for s in sources] == [s["document_name"] for s in asked.body["sources"]]
    for source in sources:
        if source["document_id"] == handbook["id"]:
            assert source["content"] == "" and source["document_deleted"] is True
        else:
            assert source["content"] == RECIPES and "document_deleted" not in source


def test_deleting_a_user_deletes_their_conversations(platform):
    org = platform.register()
    member = add_member(platform, org["token"])
    conversation = new_conversation(platform, member)
    assert ask(platform, member, FIRST, conversation_id=conversation).status == 200
    member_id = platform.request("GET", "/api/v1/me", token=member).body["user"]["id"]
    assert platform.request("DELETE", f"/api/v1/users/{member_id}", token=org["token"]).status == 204
    assert platform.owner_query("SELECT count(*) FROM conversations WHERE id = %s", (conversation,)) == [(0,)]
    assert platform.owner_query(
        "SELECT count(*) FROM conversation_messages WHERE conversation_id = %s", (conversation,)
    ) == [(0,)]
