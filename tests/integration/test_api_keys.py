"""Tenant API keys through the real auth, documents and query handlers and the real database: creation,
listing and revocation, what each scope may do on every route, and the one 401 for every bad key."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_documents import upload

SECRET = re.compile(r"^rag_[0-9A-Za-z]{43}$")
QUESTION = {"question": "How many vacation days does an employee get?"}


def create_key(platform, token, scope="query", name="ci", **extra):
    result = platform.request(
        "POST", "/api/v1/api-keys", {"name": name, "scope": scope, **extra}, token=token
    )
    assert result.status == 201, result.body
    return result.body


def new_user(platform, admin_token, role="member"):
    created = platform.request(
        "POST",
        "/api/v1/users",
        {"email": f"{uuid.uuid4().hex[:10]}@example.com", "password": "member-pass", "role": role},
        token=admin_token,
    )
    assert created.status == 201, created.body
    return created.body["user"]


def test_create_list_revoke_and_the_secret_is_shown_once(platform):
    org = platform.register()
    created = create_key(platform, org["token"], "write", name="nightly sync")
    secret, key = created["secret"], created["api_key"]
    assert SECRET.match(secret)
    assert set(key) == {"id", "name", "scope", "prefix", "created_at", "last_used_at", "expires_at"}
    assert key["name"] == "nightly sync" and key["scope"] == "write"
    assert key["prefix"] == secret[:12] and key["last_used_at"] is None and key["expires_at"] is None

    assert platform.request("GET", "/api/v1/me", token=secret).status == 200
    listed = platform.request("GET", "/api/v1/api-keys", token=org["token"])
    assert listed.status == 200
    (item,) = listed.body["items"]
    assert item["id"] == key["id"] and item["prefix"] == key["prefix"]
    assert item["last_used_at"] is not None  # the request above used it
    # Neither the secret nor anything past its visible prefix is ever returned again.
    assert secret[12:] not in json.dumps(listed.body)
    assert "secret" not in item and "secret_hash" not in item

    revoked = platform.request("DELETE", f"/api/v1/api-keys/{key['id']}", token=org["token"])
    assert revoked.status == 204
    assert platform.request("GET", "/api/v1/me", token=secret).status == 401  # at once
    assert platform.request("GET", "/api/v1/api-keys", token=org["token"]).body["items"] == []
    again = platform.request("DELETE", f"/api/v1/api-keys/{key['id']}", token=org["token"])
    assert again.status == 404 and again.body["error"]["code"] == "not_found"
    assert platform.request("DELETE", "/api/v1/api-keys/not-a-uuid", token=org["token"]).status == 404


def test_only_the_sha256_of_the_secret_is_stored(platform):
    org = platform.register()
    created = create_key(platform, org["token"], "query")
    secret = created["secret"]
    ((stored_hash, prefix, row_text),) = platform.owner_query(
        "SELECT secret_hash, prefix, k::text FROM api_keys k WHERE id = %s", (created["api_key"]["id"],)
    )
    assert bytes(stored_hash) == hashlib.sha256(secret.encode()).digest()
    assert prefix == secret[:12]
    assert secret[12:] not in row_text  # no column holds the secret


def test_keys_of_distinct_creations_differ(platform):
    org = platform.register()
    secrets = {create_key(platform, org["token"])["secret"] for _ in range(5)}
    assert len(secrets) == 5
    assert len({s[:12] for s in secrets}) == 5


def _routes(doc_id: str, user_id: str, key_id: str) -> list[tuple[str, str, dict | None, int, int]]:
    """(method, path, body, success status, the capability's index in SCOPES_ALLOWED below)."""
    return [
        ("GET", "/api/v1/me", None, 200, 0),
        ("POST", "/api/v1/query/sync", QUESTION, 200, 0),
        ("GET", "/api/v1/documents", None, 200, 1),
        ("GET", f"/api/v1/documents/{doc_id}", None, 200, 1),
        ("POST", "/api/v1/documents", {"name": "n.txt", "content": "Some text to ingest."}, 202, 1),
        (
            "POST",
            "/api/v1/documents/uploads",
            {"name": "n.pdf", "content_type": "application/pdf", "size": 9},
            201,
            1,
        ),
        ("POST", f"/api/v1/documents/{doc_id}/reingest", None, 202, 1),
        ("DELETE", f"/api/v1/documents/{doc_id}", None, 204, 1),
        ("GET", "/api/v1/users", None, 200, 2),
        (
            "POST",
            "/api/v1/users",
            {"email": f"{uuid.uuid4().hex[:8]}@x.test", "password": "pass-word-1"},
            201,
            2,
        ),
        ("DELETE", f"/api/v1/users/{user_id}", None, 204, 2),
        ("GET", "/api/v1/api-keys", None, 200, 2),
        ("POST", "/api/v1/api-keys", {"name": "child", "scope": "query"}, 201, 2),
        ("DELETE", f"/api/v1/api-keys/{key_id}", None, 204, 2),
    ]


# Route groups: asking (0), documents (1), users and keys (2); which scopes reach each group.
SCOPES_ALLOWED = {"query": {0}, "write": {0, 1}, "admin": {0, 1, 2}}


@pytest.mark.parametrize("scope", ["query", "write", "admin"])
def test_each_scope_on_every_route(platform, scope):
    org = platform.register()
    doc = upload(platform, org["token"])
    platform.ingest_all()
    user = new_user(platform, org["token"])
    other_key = create_key(platform, org["token"], "query", name="victim")["api_key"]
    secret = create_key(platform, org["token"], scope)["secret"]
    for method, path, body, success, group in _routes(doc["id"], user["id"], other_key["id"]):
        result = platform.request(method, path, body, token=secret)
        if group in SCOPES_ALLOWED[scope]:
            assert result.status == success, (scope, method, path, result.body)
        else:
            assert result.status == 403, (scope, method, path, result.body)
            assert result.body["error"]["code"] == "forbidden"
            assert scope in result.body["error"]["message"]
    assert platform.request("GET", "/api/v1/health", token=secret).status == 200
    # What a refused key tried did not happen.
    if scope == "query":
        assert platform.request("GET", f"/api/v1/documents/{doc['id']}", token=org["token"]).status == 200
        names = [u["id"] for u in platform.request("GET", "/api/v1/users", token=org["token"]).body["items"]]
        assert user["id"] in names


def test_members_keep_their_rules_and_cannot_manage_keys(platform):
    org = platform.register()
    member = new_user(platform, org["token"])
    login = platform.request(
        "POST", "/api/v1/auth/login", {"email": member["email"], "password": "member-pass"}
    ).body["token"]
    key = create_key(platform, org["token"])["api_key"]
    for method, path, body in [
        ("POST", "/api/v1/api-keys", {"name": "mine", "scope": "admin"}),
        ("GET", "/api/v1/api-keys", None),
        ("DELETE", f"/api/v1/api-keys/{key['id']}", None),
    ]:
        result = platform.request(method, path, body, token=login)
        assert result.status == 403, (method, path, result.body)
        assert result.body["error"] == {"code": "forbidden", "message": "this action needs the admin role"}
    doc = upload(platform, login)  # members still upload
    assert platform.request("DELETE", f"/api/v1/documents/{doc['id']}", token=login).status == 403


def test_every_unusable_key_gets_the_body_of_a_bad_token(platform):
    first, second = platform.register(), platform.register()
    revoked = create_key(platform, first["token"])
    platform.request("DELETE", f"/api/v1/api-keys/{revoked['api_key']['id']}", token=first["token"])
    expired = create_key(platform, first["token"])
    platform.owner_execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s",
        (expired["api_key"]["id"],),
    )
    live = create_key(platform, first["token"])["secret"]
    tampered = live[:-1] + ("A" if live[-1] != "A" else "B")
    unknown = "rag_" + "x" * 43
    bad = {
        "revoked": revoked["secret"],
        "expired": expired["secret"],
        "unknown": unknown,
        "tampered": tampered,
        "too short": live[:20],
        "bad characters": live[:-1] + "-",
        "garbage JWT": "eyJhbGciOiJIUzI1NiJ9.e30.sig",
    }
    for route in [("GET", "/api/v1/me", None), ("POST", "/api/v1/query/sync", QUESTION)]:
        answers = {name: platform.request(*route, token=token) for name, token in bad.items()}
        assert {name: a.status for name, a in answers.items()} == {name: 401 for name in bad}
        bodies = {json.dumps(a.body, sort_keys=True) for a in answers.values()}
        assert bodies == {json.dumps({"error": {"code": "unauthorized", "message": "invalid token"}})}
    # The live key still works, and acts only in its own tenant: the other tenant's resources are
    # unknown to it and cannot be revoked with it.
    doc = upload(platform, second["token"])
    other_key = create_key(platform, second["token"])["api_key"]
    admin_key = create_key(platform, first["token"], "admin")["secret"]
    assert platform.request("GET", f"/api/v1/documents/{doc['id']}", token=admin_key).status == 404
    assert platform.request("GET", "/api/v1/documents", token=admin_key).body["items"] == []
    assert platform.request("DELETE", f"/api/v1/api-keys/{other_key['id']}", token=admin_key).status == 404
    listed = platform.request("GET", "/api/v1/api-keys", token=admin_key).body["items"]
    assert other_key["id"] not in {k["id"] for k in listed}
    me = platform.request("GET", "/api/v1/me", token=admin_key).body
    assert me["org"]["id"] == first["org"]["id"] and me["user"] is None
    assert me["api_key"]["scope"] == "admin"


def test_an_expiry_applies_from_that_moment(platform):
    org = platform.register()
    soon = datetime.now(UTC) + timedelta(hours=1)
    created = create_key(platform, org["token"], expires_at=soon.isoformat())
    assert datetime.fromisoformat(created["api_key"]["expires_at"]) == soon
    assert platform.request("GET", "/api/v1/me", token=created["secret"]).status == 200
    platform.owner_execute(
        "UPDATE api_keys SET expires_at = now() WHERE id = %s", (created["api_key"]["id"],)
    )
    assert platform.request("GET", "/api/v1/me", token=created["secret"]).status == 401
    # Expired keys stay listed (with their expiry) until revoked, so an admin can see what stopped.
    listed = platform.request("GET", "/api/v1/api-keys", token=org["token"]).body["items"]
    assert [k["id"] for k in listed] == [created["api_key"]["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "k", "scope": "root"},
        {"name": "k"},
        {"name": "   ", "scope": "query"},
        {"name": "", "scope": "query"},
        {"name": "k" * 101, "scope": "query"},
        {"name": "k", "scope": "query", "expires_at": "2020-01-01T00:00:00Z"},
        {"name": "k", "scope": "query", "expires_at": "2999-01-01T00:00:00"},  # no time zone
        {"name": "k", "scope": "query", "expires_at": "tomorrow"},
        {"name": "k", "scope": "query", "secret": "rag_" + "a" * 43},
        {"name": "k\u0000", "scope": "query"},
    ],
)
def test_invalid_key_requests_are_422(platform, body):
    org = platform.register()
    result = platform.request("POST", "/api/v1/api-keys", body, token=org["token"])
    assert result.status == 422, result.body
    assert result.body["error"]["code"] == "validation_error"
    assert platform.request("GET", "/api/v1/api-keys", token=org["token"]).body["items"] == []


def test_last_used_is_written_at_most_once_a_minute(platform):
    org = platform.register()
    created = create_key(platform, org["token"])
    key_id, secret = created["api_key"]["id"], created["secret"]

    def row():
        return platform.owner_query("SELECT last_used_at, xmin::text FROM api_keys WHERE id = %s", (key_id,))[
            0
        ]

    assert platform.request("GET", "/api/v1/me", token=secret).status == 200
    first_used, version = row()
    assert first_used is not None
    for _ in range(3):
        assert platform.request("GET", "/api/v1/me", token=secret).status == 200
    assert row() == (first_used, version)  # not even a row version: no write at all
    platform.owner_execute(
        "UPDATE api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = %s", (key_id,)
    )
    stale, _ = row()
    assert platform.request("GET", "/api/v1/me", token=secret).status == 200
    assert row()[0] > stale


def test_keys_belong_to_the_org_and_outlive_their_creator(platform):
    org = platform.register()
    admin = new_user(platform, org["token"], role="admin")
    admin_token = platform.request(
        "POST", "/api/v1/auth/login", {"email": admin["email"], "password": "member-pass"}
    ).body["token"]
    by_user = create_key(platform, admin_token, "admin")
    by_key = create_key(platform, by_user["secret"], "query", name="made by a key")
    assert platform.request("DELETE", f"/api/v1/users/{admin['id']}", token=org["token"]).status == 204
    assert platform.request("GET", "/api/v1/me", token=admin_token).status == 401  # the person is gone
    assert platform.request("GET", "/api/v1/me", token=by_user["secret"]).status == 200  # the key is not
    assert platform.request("GET", "/api/v1/me", token=by_key["secret"]).status == 200
    creators = dict(
        (str(r[0]), (r[1], r[2]))
        for r in platform.owner_query(
            "SELECT id, created_by_user_id, created_by_key_id::text FROM api_keys WHERE org_id = %s",
            (org["org"]["id"],),
        )
    )
    assert creators[by_user["api_key"]["id"]] == (None, None)
    assert creators[by_key["api_key"]["id"]] == (None, by_user["api_key"]["id"])


def test_the_key_lookup_is_a_unique_index_on_the_hash(platform):
    indexes = platform.owner_query(
        """SELECT i.indisunique, pg_get_indexdef(i.indexrelid) FROM pg_index i
           WHERE i.indrelid = 'api_keys'::regclass"""
    )
    assert any(unique and "(secret_hash)" in definition for unique, definition in indexes)
    with_plan = platform.owner_query(
        "EXPLAIN (FORMAT JSON) SELECT * FROM api_keys WHERE secret_hash = %s", (b"\x00" * 32,)
    )
    assert "api_keys_secret_hash" in json.dumps(with_plan)


def test_an_organisation_holds_a_bounded_number_of_keys(platform, configure):
    configure(api_keys_max_per_org=2)
    org = platform.register()
    first = create_key(platform, org["token"])
    create_key(platform, org["token"])
    refused = platform.request(
        "POST", "/api/v1/api-keys", {"name": "third", "scope": "query"}, token=org["token"]
    )
    assert refused.status == 409 and refused.body["error"]["code"] == "too_many_api_keys"
    # Revoking one makes room; other organisations are not affected.
    platform.request("DELETE", f"/api/v1/api-keys/{first['api_key']['id']}", token=org["token"])
    create_key(platform, org["token"])
    create_key(platform, platform.register()["token"])


def test_concurrent_creations_never_exceed_the_bound(platform, configure):
    from ragcore.api_keys import create_api_key
    from ragcore.errors import Conflict
    from ragcore.principal import Principal

    configure(api_keys_max_per_org=3)
    org = platform.register()
    admin = Principal(uuid.UUID(org["user"]["id"]), uuid.UUID(org["org"]["id"]), "admin")
    barrier = threading.Barrier(8)

    def attempt(number: int) -> str:
        barrier.wait()
        try:
            create_api_key(admin, f"racer {number}", "query")
            return "created"
        except Conflict:
            return "refused"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert sorted(outcomes) == ["created"] * 3 + ["refused"] * 5
    ((held,),) = platform.owner_query("SELECT count(*) FROM api_keys WHERE org_id = %s", (org["org"]["id"],))
    assert held == 3


@pytest.fixture
def captured_logs():
    """The JSON lines ragcore's logger writes, at INFO, while the test runs."""
    from ragcore.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    previous_stream, previous_level = handler.stream, logger.log_level
    handler.setStream(buffer)
    logger.setLevel("INFO")
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    finally:
        handler.setStream(previous_stream)
        logger.setLevel(previous_level)


def test_log_lines_name_the_key_and_never_hold_a_secret(platform, captured_logs):
    org = platform.register()
    admin_key = create_key(platform, org["token"], "admin")
    created = create_key(platform, admin_key["secret"], "query", name="made by a key")
    revoked = platform.request(
        "DELETE", f"/api/v1/api-keys/{created['api_key']['id']}", token=admin_key["secret"]
    )
    assert revoked.status == 204
    lines = captured_logs()
    by_key = [line for line in lines if line.get("auth") == "api_key"]
    messages = {line["message"] for line in by_key}
    assert {"api key created", "api key revoked"} <= messages
    for line in by_key:
        assert line["api_key_id"] == admin_key["api_key"]["id"] and line["org_id"] == org["org"]["id"]
        assert "user_id" not in line
    text = json.dumps(lines)
    for secret in (admin_key["secret"], created["secret"]):
        assert secret[12:] not in text
    # The same lines from a person's request name the user.
    create_key(platform, org["token"])
    by_user = [line for line in captured_logs() if line.get("auth") == "user"]
    assert by_user and all(line["user_id"] == org["user"]["id"] for line in by_user)


def test_conversations_belong_to_users_so_a_key_cannot_hold_one(platform):
    org = platform.register()
    upload(platform, org["token"])
    platform.ingest_all()
    secret = create_key(platform, org["token"], "admin")["secret"]
    conversation = platform.request("POST", "/api/v1/conversations", {}, token=org["token"]).body[
        "conversation"
    ]
    for method, path, body in [
        ("POST", "/api/v1/conversations", {}),
        ("GET", "/api/v1/conversations", None),
        ("GET", f"/api/v1/conversations/{conversation['id']}", None),
        ("DELETE", f"/api/v1/conversations/{conversation['id']}", None),
        ("POST", "/api/v1/query/sync", {**QUESTION, "conversation_id": conversation["id"]}),
    ]:
        result = platform.request(method, path, body, token=secret)
        assert result.status == 403, (method, path, result.body)
        assert "API key" in result.body["error"]["message"]
    # A key still asks without a conversation, and the user's conversation is untouched.
    assert platform.request("POST", "/api/v1/query/sync", QUESTION, token=secret).status == 200
    mine = platform.request("GET", f"/api/v1/conversations/{conversation['id']}", token=org["token"])
    assert mine.status == 200 and mine.body["messages"] == []
