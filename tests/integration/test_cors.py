"""Browsers can use the API from the configured origins: every response of the REST functions (through
real API Gateway events) and of the stream app (over HTTP), successes and refusals alike, carries
Access-Control-Allow-Origin for an allowed Origin and none for any other."""

from __future__ import annotations

import httpx
import pytest
from ragcore.config import reset_settings

from tests.integration.test_stream import QUESTION, stream_url, tenant  # noqa: F401 (fixtures)

APP, ADMIN, EVIL = "https://app.example.com", "https://admin.example.com", "https://evil.example.net"


@pytest.fixture
def origins(monkeypatch):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", f"{APP},{ADMIN}")
    reset_settings()
    yield
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS")
    reset_settings()


def rest(platform, method, path, origin=None, body=b"", token=None) -> tuple[int, dict[str, str]]:
    headers = [("Content-Type", "application/json"), ("Host", "localhost")]
    if origin:
        headers.append(("Origin", origin))
    if token:
        headers.append(("Authorization", f"Bearer {token}"))
    response = platform.invoke(method, path, headers, body)
    merged = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        merged[key.lower()] = ", ".join(values)
    return response["statusCode"], merged


@pytest.mark.usefixtures("origins")
@pytest.mark.parametrize("origin", [APP, ADMIN])
def test_rest_responses_carry_the_allowed_origin_success_and_errors(platform, origin):
    token = platform.register()["token"]
    cases = [
        ("GET", "/api/v1/me", b"", token, 200),
        ("GET", "/api/v1/me", b"", None, 401),
        ("GET", "/api/v1/documents/not-a-document", b"", token, 404),
        ("POST", "/api/v1/auth/login", b'{"email": "x@example.com"}', None, 422),
        ("POST", "/api/v1/auth/login", b"{not json", None, 400),
        ("GET", "/api/v1/health", b"", None, 200),
    ]
    for method, path, body, bearer, status in cases:
        got, headers = rest(platform, method, path, origin, body, bearer)
        assert got == status, (method, path, got)
        assert headers.get("access-control-allow-origin") == origin, (method, path, headers)
        assert "origin" in headers.get("vary", "").lower(), (method, path, headers)
        assert "retry-after" in headers.get("access-control-expose-headers", "").lower()


@pytest.mark.usefixtures("origins")
def test_rest_responses_to_other_origins_carry_no_allow_origin(platform):
    token = platform.register()["token"]
    for origin in (EVIL, None, APP + ".evil.net", "null"):
        status, headers = rest(platform, "GET", "/api/v1/me", origin, token=token)
        assert status == 200
        assert "access-control-allow-origin" not in headers, (origin, headers)
        assert "origin" in headers.get("vary", "").lower()  # caches must key on the Origin


def test_without_configured_origins_there_are_no_cors_headers(platform):
    status, headers = rest(platform, "GET", "/api/v1/health", APP)
    assert status == 200
    assert not {k for k in headers if k.startswith("access-control-")}


def post_stream(url, origin, token=None, body=None) -> httpx.Response:
    headers = {"Origin": origin} if origin else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(timeout=30) as client:
        return client.post(f"{url}/api/v1/query", json=body or {"question": QUESTION}, headers=headers)


@pytest.mark.usefixtures("origins")
def test_stream_responses_carry_the_allowed_origin_success_and_errors(stream_url, tenant):  # noqa: F811
    answered = post_stream(stream_url, APP, tenant)
    assert answered.status_code == 200
    assert answered.headers["content-type"].startswith("text/event-stream")
    assert "event: done" in answered.text
    refusals = [
        (post_stream(stream_url, ADMIN), 401),
        (post_stream(stream_url, ADMIN, tenant, {"question": ""}), 422),
        (post_stream(stream_url, ADMIN, tenant, {"question": "x", "topk": 3}), 422),
    ]
    for response, status in [(answered, 200), *refusals]:
        assert response.status_code == status
        origin = response.request.headers["origin"]
        assert response.headers.get("access-control-allow-origin") == origin, response.headers
        assert "origin" in response.headers.get("vary", "").lower()
    assert refusals[0][0].json()["error"]["code"] == "unauthorized"  # the body is unchanged


@pytest.mark.usefixtures("origins")
def test_stream_responses_to_other_origins_carry_no_allow_origin(stream_url, tenant):  # noqa: F811
    for response in (post_stream(stream_url, EVIL, tenant), post_stream(stream_url, EVIL)):
        assert "access-control-allow-origin" not in response.headers
        assert "origin" in response.headers.get("vary", "").lower()


@pytest.mark.usefixtures("origins")
def test_stream_answers_the_preflight_of_an_allowed_origin_only(stream_url):  # noqa: F811
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with httpx.Client(timeout=10) as client:
        allowed = client.options(f"{stream_url}/api/v1/query", headers={"Origin": APP, **ask})
        other = client.options(f"{stream_url}/api/v1/query", headers={"Origin": EVIL, **ask})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == APP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in other.headers
    assert other.status_code == 405 and other.json()["error"]["code"] == "method_not_allowed"


def test_stream_without_configured_origins_has_no_cors_headers(stream_url):  # noqa: F811
    response = post_stream(stream_url, APP)
    assert response.status_code == 401
    assert not {k for k in response.headers if k.lower().startswith("access-control-")}
