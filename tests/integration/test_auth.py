import uuid

import pytest


def test_register_login_me(platform):
    email = f"{uuid.uuid4().hex[:8]}@Example.com"
    registered = platform.register("Acme Research", email, "s3cret-passw0rd")
    assert registered["user"]["role"] == "admin"
    assert registered["org"]["name"] == "Acme Research"
    assert "password_hash" not in registered["user"]

    login = platform.request(
        "POST", "/api/v1/auth/login", {"email": email.lower(), "password": "s3cret-passw0rd"}
    )
    assert login.status == 200
    assert login.body["org"]["id"] == registered["org"]["id"]

    me = platform.request("GET", "/api/v1/me", token=login.body["token"])
    assert me.status == 200
    assert me.body["user"]["email"] == email
    assert me.body["org"]["name"] == "Acme Research"


def test_wrong_password_and_unknown_email_get_the_same_401(platform):
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    platform.register(email=email, password="right-password")
    wrong = platform.request("POST", "/api/v1/auth/login", {"email": email, "password": "wrong-password"})
    unknown = platform.request("POST", "/api/v1/auth/login", {"email": "nobody@example.com", "password": "x"})
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body
    assert wrong.body["error"]["code"] == "invalid_credentials"


def test_taken_email_is_409_whatever_the_case(platform):
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    platform.register(email=email)
    again = platform.request(
        "POST",
        "/api/v1/auth/register",
        {"org_name": "Other", "email": email.upper(), "password": "another-pass"},
    )
    assert again.status == 409
    assert again.body["error"]["code"] == "email_taken"


@pytest.mark.parametrize(
    "body",
    [
        {"org_name": "A", "email": "not-an-email", "password": "long-enough"},
        {"org_name": "A", "email": "a@b.co", "password": "short"},
        {"org_name": "   ", "email": "a@b.co", "password": "long-enough"},
        {"email": "a@b.co", "password": "long-enough"},
        {"org_name": "A", "email": "a@b.co", "password": "long-enough", "extra": 1},
        {"org_name": "A", "email": "a@b.co", "password": "é" * 40},
        {"org_name": "A", "email": "a@b.co", "password": " " * 8},
        {"org_name": "A", "email": "a@b.co", "password": "  short  "},
        ["not", "an", "object"],
    ],
)
def test_invalid_registration_is_422_with_error_body(platform, body):
    result = platform.request("POST", "/api/v1/auth/register", body)
    assert result.status == 422
    assert result.body["error"]["code"] == "validation_error"
    assert result.body["error"]["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe"])
def test_malformed_body_is_400(platform, raw):
    result = platform.request("POST", "/api/v1/auth/login", raw_body=raw)
    assert result.status in (400, 422)
    assert result.body["error"]["code"] in ("bad_request", "validation_error")
    if raw == b"{not json":
        assert result.status == 400


@pytest.mark.parametrize("token", [None, "garbage", "eyJhbGciOiJIUzI1NiJ9.e30.sig"])
def test_protected_routes_need_a_valid_token(platform, token):
    for method, path in [("GET", "/api/v1/me"), ("GET", "/api/v1/documents"), ("POST", "/api/v1/query/sync")]:
        result = platform.request(method, path, {"question": "hi"} if method == "POST" else None, token=token)
        assert result.status == 401, (path, result.body)
        assert result.body["error"]["code"] == "unauthorized"


def test_admin_manages_users_and_members_cannot(platform):
    admin = platform.register()
    created = platform.request(
        "POST",
        "/api/v1/users",
        {"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "member-pass", "role": "member"},
        token=admin["token"],
    )
    assert created.status == 201
    member_login = platform.request(
        "POST", "/api/v1/auth/login", {"email": created.body["user"]["email"], "password": "member-pass"}
    )
    member_token = member_login.body["token"]
    assert member_login.body["user"]["role"] == "member"

    forbidden = platform.request(
        "POST", "/api/v1/users", {"email": "x@example.com", "password": "whatever-pass"}, token=member_token
    )
    assert forbidden.status == 403
    listed = platform.request("GET", "/api/v1/users", token=admin["token"])
    assert {u["email"] for u in listed.body["items"]} == {
        admin["user"]["email"],
        created.body["user"]["email"],
    }
    # The user list is a directory of e-mail addresses: admins only; a member sees itself through /me.
    refused = platform.request("GET", "/api/v1/users", token=member_token)
    assert refused.status == 403
    assert refused.body["error"]["code"] == "forbidden"
    assert platform.request("GET", "/api/v1/me", token=member_token).body["user"]["role"] == "member"

    assert (
        platform.request("DELETE", f"/api/v1/users/{admin['user']['id']}", token=member_token).status == 403
    )
    assert (
        platform.request("DELETE", f"/api/v1/users/{admin['user']['id']}", token=admin["token"]).status == 409
    )
    assert (
        platform.request("DELETE", f"/api/v1/users/{created.body['user']['id']}", token=admin["token"]).status
        == 204
    )
    # The deleted member's token no longer works.
    assert platform.request("GET", "/api/v1/me", token=member_token).status == 401


def test_users_of_another_tenant_are_invisible(platform):
    first, second = platform.register(), platform.register()
    listed = platform.request("GET", "/api/v1/users", token=second["token"])
    assert first["user"]["id"] not in {u["id"] for u in listed.body["items"]}
    gone = platform.request("DELETE", f"/api/v1/users/{first['user']['id']}", token=second["token"])
    assert gone.status == 404
    assert platform.request("GET", "/api/v1/me", token=first["token"]).status == 200
