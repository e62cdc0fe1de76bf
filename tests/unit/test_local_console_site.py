"""The local gateway serving the web console's files at / beside the API (in process, no network)."""

from __future__ import annotations

import textwrap

import pytest
from starlette.testclient import TestClient

from infra.local.console import CONTENT_SECURITY_POLICY, ConsoleSite
from infra.local.events import RouteTable
from infra.local.functions import LocalFunction
from infra.local.gateway import Gateway
from infra.local.template import FunctionSpec, Route

HANDLER = """
    import json
    def lambda_handler(event, context):
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"path": event["path"]})}
"""


def _gateway(tmp_path, site_dir):
    code = tmp_path / "functions" / "api"
    code.mkdir(parents=True)
    (code / "handler.py").write_text(textwrap.dedent(HANDLER))
    function = LocalFunction(
        FunctionSpec(
            name="api",
            code_uri="functions/api/",
            handler="handler.lambda_handler",
            timeout=10,
            memory_size=256,
            environment={},
        ),
        tmp_path,
    )
    routes = RouteTable([Route("GET", "/api/v1/health", "api"), Route("POST", "/api/v1/items", "api")])
    return Gateway(routes, {"api": function}, stage="v1", site=ConsoleSite(site_dir))


@pytest.fixture
def site(tmp_path):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>console</title>")
    (dist / "assets" / "index-abc123.js").write_text("console.log('hi')")
    (dist / "config.json").write_text('{"apiBaseUrl": "/api/v1"}')
    (tmp_path / "secret.txt").write_text("outside the site")
    return dist


@pytest.fixture
def client(tmp_path, site):
    gateway = _gateway(tmp_path, site)
    with TestClient(gateway, base_url="http://127.0.0.1:8080") as test_client:
        yield test_client
    gateway.close()


def test_index_at_root_with_security_headers_and_no_cache(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!doctype html>")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def test_hashed_assets_are_immutable_and_config_is_not(client):
    asset = client.get("/assets/index-abc123.js")
    assert asset.status_code == 200
    assert "javascript" in asset.headers["content-type"]
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    config = client.get("/config.json")
    assert config.json() == {"apiBaseUrl": "/api/v1"}
    assert config.headers["cache-control"] == "no-cache"
    assert client.head("/").status_code == 200


def test_api_paths_are_never_served_from_the_site(client, site):
    # A file where a route is must not shadow it, nor answer for an unknown API path.
    (site / "api" / "v1").mkdir(parents=True)
    (site / "api" / "v1" / "health").write_text("shadow")
    assert client.get("/api/v1/health").json() == {"path": "/api/v1/health"}
    unknown = client.get("/api/v1/nothing")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    # Other methods outside /api/ are the API's too (and so 404, never a file).
    assert client.post("/index.html").status_code == 404


def test_missing_files_and_traversal_get_the_error_body(client):
    for path in ("/nope.js", "/../secret.txt", "/%2e%2e/secret.txt", "/assets/../../secret.txt"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
        assert "outside the site" not in response.text


def test_an_unbuilt_console_says_how_to_build_it(tmp_path):
    gateway = _gateway(tmp_path, tmp_path / "no-dist")
    with TestClient(gateway, base_url="http://127.0.0.1:8080") as test_client:
        response = test_client.get("/")
        assert test_client.get("/api/v1/health").status_code == 200
    gateway.close()
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "console_not_built"
    assert "make run" in error["message"]


def test_the_page_may_also_reach_the_origins_it_is_given(tmp_path):
    # The local S3 endpoint of the upload URLs: the console PUTs files there (another port).
    (tmp_path / "index.html").write_text("<!doctype html><title>console</title>")
    site = ConsoleSite(tmp_path, connect=("http://127.0.0.1:4566",))
    policy = TestClient(site).get("/").headers["content-security-policy"]
    assert "connect-src 'self' http://127.0.0.1:4566;" in policy
    assert policy.replace(" http://127.0.0.1:4566", "") == CONTENT_SECURITY_POLICY
