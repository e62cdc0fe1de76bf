"""docs/openapi.json says what validation enforces: a body the schema refuses is 422, one it accepts is not.

(5.0 for top_k is the one case the schema cannot state: JSON Schema counts 5.0 as an integer, the API
refuses any number written with a decimal point; tested separately.)
"""

import json
import uuid

import pytest
from jsonschema import Draft202012Validator

from scripts.openapi import OUTPUT

SCHEMAS = json.loads(OUTPUT.read_text())["components"]["schemas"]


def _schema_accepts(name: str, body) -> bool:
    # A root holding the components, so that their references (#/components/schemas/...) resolve.
    root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}}
    return Draft202012Validator(root).is_valid(body)


def _email() -> str:
    return f"{uuid.uuid4().hex[:10]}@example.com"


REGISTER = [
    {"org_name": "Acme", "password": "\u0000bcdefgh"},
    {"org_name": "Acme", "password": "\x1c\x1cabcdefgh"},
    {"org_name": "\x1c", "password": "long enough"},
    {"org_name": "Acme", "password": " " * 8},
    {"org_name": "Acme", "password": "  pass word  "},
    {"org_name": "Acme", "password": " abcdefg "},
    {"org_name": "Acme", "password": "x" * 73},
    {"org_name": "A\u0000B", "password": "long enough"},
    {"org_name": "   ", "password": "long enough"},
    {"org_name": "Acme", "password": "long enough"},
]
QUERY = [
    {"question": "   "},
    {"question": "why\u0000"},
    {"question": "why?", "top_k": "5"},
    {"question": "why?", "top_k": True},
    {"question": "why?", "top_k": 0},
    {"question": "why?", "top_k": 51},
    {"question": "why?", "top_k": 7},
    {"question": " why? "},
    {"question": "why?", "filters": {"team": {"deep": ["ok", "n\u0000l"]}}},
    {"question": "why?", "filters": {"a\u0000": 1}},
    {"question": "why?", "filters": {"team": {"deep": ["ok", 1, None, True]}}},
]
DOCUMENT = [
    {"name": "a\u0000b", "content": "text"},
    {"name": "a", "content": " \n\t "},
    {"name": "a", "content": "text\u0000"},
    {"name": "a", "content": "some text"},
    {"name": "a", "content": "some text", "metadata": {"k": [{"x\u0000": 1}]}},
    {"name": "a", "content": "some text", "metadata": {"k": [{"x": "y\u0000"}]}},
    {"name": "a", "content": "some text", "metadata": {"k": [{"x": "y"}], "n": 1.5}},
]


@pytest.mark.parametrize("body", REGISTER)
def test_registration_schema_and_validation_agree(platform, body):
    body = {**body, "email": _email()}
    result = platform.request("POST", "/api/v1/auth/register", body)
    assert (result.status == 422) == (not _schema_accepts("RegisterRequest", body)), (body, result.body)
    if result.status != 422:
        assert result.status == 201, result.body


@pytest.mark.parametrize("body", QUERY)
def test_query_schema_and_validation_agree(platform, body):
    token = platform.register()["token"]
    result = platform.request("POST", "/api/v1/query/sync", body, token=token)
    assert (result.status == 422) == (not _schema_accepts("QueryRequest", body)), (body, result.body)
    if result.status != 422:
        assert result.status == 200, result.body


@pytest.mark.parametrize("body", DOCUMENT)
def test_document_schema_and_validation_agree(platform, body):
    token = platform.register()["token"]
    result = platform.request("POST", "/api/v1/documents", body, token=token)
    assert (result.status == 422) == (not _schema_accepts("CreateDocumentRequest", body)), (body, result.body)
    if result.status != 422:
        assert result.status == 202, result.body


@pytest.mark.parametrize("top_k", ["5", 5.0, True, False, "five"])
def test_top_k_is_an_integer_and_nothing_that_could_be_coerced_to_one(platform, top_k):
    token = platform.register()["token"]
    result = platform.request("POST", "/api/v1/query/sync", {"question": "why?", "top_k": top_k}, token=token)
    assert result.status == 422, result.body
    assert "top_k" in result.body["error"]["message"]


def test_an_empty_body_is_400_on_the_sync_query_as_on_the_stream(platform):
    token = platform.register()["token"]
    for path in ("/api/v1/query/sync", "/api/v1/documents", "/api/v1/auth/login"):
        result = platform.request("POST", path, token=token, raw_body=b"")
        assert result.status == 400, (path, result.body)
        assert result.body["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    "query,status",
    [("status=", 422), ("status=done", 422), ("cursor=***", 400), ("cursor=" + "a" * 201, 400)],
)
def test_listing_parameters_the_schema_refuses_are_refused(platform, query, status):
    """An empty or unknown status is invalid (422); a cursor outside the documented format is malformed
    (400, like one in the format that does not decode)."""
    token = platform.register()["token"]
    result = platform.request("GET", "/api/v1/documents", token=token, query=query)
    assert result.status == status, result.body
    assert result.body["error"]["code"] == ("validation_error" if status == 422 else "bad_request")
