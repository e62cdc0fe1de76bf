"""Inputs found by fuzzing the API: each gets a 4xx with the documented error body, never a 500."""

import base64
import json
import time
import uuid

import jwt
import pytest
from ragcore.config import get_settings

from .test_documents import upload

DEEP = b"[" * 100_000 + b"]" * 100_000


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "path,raw",
    [
        ("/api/v1/documents", b'{"name": "n", "content": "hello", "metadata": {"x": NaN}}'),
        ("/api/v1/documents", b'{"name": "n", "content": "hello", "metadata": {"x": -Infinity}}'),
        ("/api/v1/documents", b'{"name": "n", "content": "hello", "metadata": {"x": 1e999}}'),
        ("/api/v1/query/sync", b'{"question": "x", "filters": {"a": 1e999}}'),
        ("/api/v1/query/sync", b'{"question": "x", "top_k": 1' + b"0" * 5000 + b"}"),
        ("/api/v1/auth/login", b'{"email": "a@b.co", "password": 1' + b"0" * 5000 + b"}"),
        ("/api/v1/documents", DEEP),
        ("/api/v1/query/sync", b'{"question": "x", "filters": {"a": ' + DEEP + b"}}"),
    ],
)
def test_unparseable_json_is_400(platform, path, raw):
    org = platform.register()
    result = platform.request("POST", path, raw_body=raw, token=org["token"])
    assert result.status == 400, result.body
    assert result.body["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    "path,body",
    [
        ("/api/v1/documents", {"name": "n", "content": "hello", "metadata": {"x": json.loads(nested(500))}}),
        ("/api/v1/query/sync", {"question": "x", "filters": {"a": json.loads(nested(40))}}),
    ],
)
def test_values_nested_too_deeply_are_422(platform, path, body):
    org = platform.register()
    result = platform.request("POST", path, body, token=org["token"])
    assert result.status == 422, result.body
    assert "nest" in result.body["error"]["message"]


def test_metadata_nested_within_the_limit_is_stored(platform):
    org = platform.register()
    metadata = {"x": json.loads(nested(20))}
    doc = upload(platform, org["token"], metadata=metadata)
    assert doc["metadata"] == metadata


@pytest.mark.parametrize(
    "position", [["2020-01-01T00:00:00+00:00", 5], ["2020-01-01T00:00:00+00:00", []], [], "x"]
)
def test_decodable_but_wrong_cursors_are_400(platform, position):
    org = platform.register()
    cursor = base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")
    result = platform.request("GET", "/api/v1/documents", token=org["token"], query=f"cursor={cursor}")
    assert result.status == 400, result.body


def test_cursor_nested_deeply_is_400(platform):
    org = platform.register()
    cursor = base64.urlsafe_b64encode(nested(3000).encode()).decode().rstrip("=")
    assert (
        platform.request("GET", "/api/v1/documents", token=org["token"], query=f"cursor={cursor}").status
        == 400
    )


@pytest.mark.parametrize("org_id", [5, ["x"], {"a": 1}, 1.5])
def test_signed_token_with_a_non_string_org_id_is_401(platform, org_id):
    settings = get_settings()
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "org_id": org_id,
        "role": "admin",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 60,
    }
    token = jwt.encode(claims, settings.require_jwt_secret(), algorithm="HS256")
    result = platform.request("GET", "/api/v1/documents", token=token)
    assert result.status == 401, result.body


def test_a_deleted_users_token_stops_working_everywhere(platform):
    admin = platform.register()
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    user = platform.request(
        "POST",
        "/api/v1/users",
        {"email": email, "password": "second-admin", "role": "admin"},
        token=admin["token"],
    ).body["user"]
    token = platform.request("POST", "/api/v1/auth/login", {"email": email, "password": "second-admin"}).body[
        "token"
    ]
    assert platform.request("DELETE", f"/api/v1/users/{user['id']}", token=admin["token"]).status == 204
    for method, path, body in [
        ("GET", "/api/v1/documents", None),
        ("POST", "/api/v1/documents", {"name": "a", "content": "b"}),
        ("POST", "/api/v1/users", {"email": "z@example.com", "password": "whatever-pass"}),
        ("DELETE", f"/api/v1/users/{admin['user']['id']}", None),
    ]:
        result = platform.request(method, path, body, token=token)
        assert result.status == 401, (method, path, result.body)
    assert platform.request("GET", "/api/v1/me", token=admin["token"]).status == 200


def test_204_responses_have_no_body(platform):
    org = platform.register()
    doc = upload(platform, org["token"])
    headers = [("Authorization", f"Bearer {org['token']}")]
    response = platform.invoke("DELETE", f"/api/v1/documents/{doc['id']}", headers)
    assert response["statusCode"] == 204
    assert not response.get("body")


@pytest.mark.parametrize(
    "path, item",
    [
        ("/api/v1/documents", {"name": "wrapped.txt", "content": "A body inside an array."}),
        ("/api/v1/conversations", {}),
        ("/api/v1/api-keys", {"name": "wrapped", "scope": "query"}),
        ("/api/v1/query/sync", {"question": "What is inside the array?"}),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused_and_nothing_is_stored(platform, path, item):
    org = platform.register()
    for raw in (json.dumps([item]), json.dumps([item, item]), '"text"', "7"):
        result = platform.request("POST", path, raw_body=raw.encode(), token=org["token"])
        assert result.status == 422, (path, raw, result.body)
        assert result.body["error"] == {"code": "validation_error", "message": "body: must be a JSON object"}
    for listing in ("/api/v1/documents", "/api/v1/conversations", "/api/v1/api-keys"):
        assert platform.request("GET", listing, token=org["token"]).body["items"] == []
