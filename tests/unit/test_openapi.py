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
        ("post", "/api/v1/api-keys"),
        ("get", "/api/v1/api-keys"),
        ("delete", "/api/v1/api-keys/{key_id}"),
        ("post", "/api/v1/documents"),
        ("post", "/api/v1/documents/uploads"),
        ("get", "/api/v1/documents"),
        ("get", "/api/v1/documents/{document_id}"),
        ("delete", "/api/v1/documents/{document_id}"),
        ("post", "/api/v1/documents/{document_id}/reingest"),
        ("get", "/api/v1/usage"),
        ("post", "/api/v1/query/sync"),
        ("post", "/api/v1/query"),
        ("post", "/api/v1/conversations"),
        ("get", "/api/v1/conversations"),
        ("get", "/api/v1/conversations/{conversation_id}"),
        ("delete", "/api/v1/conversations/{conversation_id}"),
        ("get", "/api/v1/health"),
    }
    assert {(m, p) for p, ops in paths.items() for m in ops} == expected


def test_both_bearer_kinds_are_accepted_on_every_authenticated_operation():
    document = build_openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["bearerFormat"] == "JWT"
    assert schemes["apiKey"]["scheme"] == "bearer" and schemes["apiKey"]["bearerFormat"].startswith("rag_")
    public = {("post", "/api/v1/auth/register"), ("post", "/api/v1/auth/login"), ("get", "/api/v1/health")}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            expected = None if (method, path) in public else [{"bearer": []}, {"apiKey": []}]
            assert operation.get("security") == expected, (method, path)
