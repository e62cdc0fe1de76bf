import json

from scripts.openapi import OUTPUT, build_openapi


def test_committed_openapi_matches_the_code():
    committed = json.loads(OUTPUT.read_text())
    assert committed == build_openapi(), "docs/openapi.json is stale: run `make openapi`"


def test_every_documented_route_is_described():
    paths = build_openapi()["paths"]
    expected = {
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/login"),
        ("get", "/api/v1/me"),
        ("post", "/api/v1/users"),
        ("get", "/api/v1/users"),
        ("delete", "/api/v1/users/{user_id}"),
        ("post", "/api/v1/documents"),
        ("post", "/api/v1/documents/uploads"),
        ("get", "/api/v1/documents"),
        ("get", "/api/v1/documents/{document_id}"),
        ("delete", "/api/v1/documents/{document_id}"),
        ("post", "/api/v1/documents/{document_id}/reingest"),
        ("post", "/api/v1/query/sync"),
        ("post", "/api/v1/query"),
        ("get", "/api/v1/health"),
    }
    assert {(m, p) for p, ops in paths.items() for m in ops} == expected
