import pytest

from tests.integration.test_documents import HANDBOOK, upload

RECIPES = (
    "Grandmother's apple pie. Peel and slice six apples. Mix them with sugar and cinnamon. "
    "Bake the pie at 180 degrees Celsius for forty-five minutes until the crust is golden."
)


@pytest.fixture(scope="module")
def tenant(platform):
    org = platform.register()
    handbook = upload(platform, org["token"], name="handbook.txt", content=HANDBOOK, metadata={"team": "hr"})
    recipes = upload(
        platform, org["token"], name="recipes.txt", content=RECIPES, metadata={"team": "kitchen"}
    )
    platform.ingest_all()
    return {"token": org["token"], "handbook": handbook, "recipes": recipes}


def ask(platform, token, **body):
    return platform.request("POST", "/api/v1/query/sync", body, token=token)


def test_answer_comes_from_the_right_document_with_citations(platform, tenant):
    result = ask(platform, tenant["token"], question="How many vacation days does an employee get per year?")
    assert result.status == 200, result.body
    sources = result.body["sources"]
    assert sources[0]["document_name"] == "handbook.txt"
    assert sources[0]["document_id"] == tenant["handbook"]["id"]
    fields = {"document_id", "document_name", "chunk_index", "content", "score", "retrievers"}
    assert set(sources[0]) == fields | {"page", "pages", "headings"}
    # a text document has no location
    assert (sources[0]["page"], sources[0]["pages"], sources[0]["headings"]) == (None, None, [])
    assert set(sources[0]["retrievers"]) <= {"dense", "lexical"} and sources[0]["retrievers"]
    assert "twenty-five days of paid vacation" in result.body["answer"]
    assert "[1]" in result.body["answer"]
    assert result.body["usage"]["retrieved_chunks"] == len(sources)


def test_top_k_and_filters_limit_sources(platform, tenant):
    one = ask(platform, tenant["token"], question="How long do I bake the apple pie?", top_k=1)
    assert [s["document_name"] for s in one.body["sources"]] == ["recipes.txt"]
    assert "forty-five minutes" in one.body["answer"]
    filtered = ask(
        platform, tenant["token"], question="How long do I bake the apple pie?", filters={"team": "hr"}
    )
    assert {s["document_name"] for s in filtered.body["sources"]} == {"handbook.txt"}


def test_another_tenant_never_sees_these_documents(platform, tenant):
    stranger = platform.register()
    result = ask(
        platform, stranger["token"], question="How many vacation days does an employee get per year?"
    )
    assert result.status == 200
    assert result.body["sources"] == []
    assert "twenty-five" not in result.body["answer"]


@pytest.mark.parametrize(
    "body",
    [
        {"question": ""},
        {"question": "   "},
        {"question": "x", "top_k": 0},
        {"question": "x", "top_k": 51},
        {"question": "x", "filters": []},
        {},
    ],
)
def test_invalid_questions_are_422(platform, tenant, body):
    result = platform.request("POST", "/api/v1/query/sync", body, token=tenant["token"])
    assert result.status == 422
    assert result.body["error"]["code"] == "validation_error"


def test_health_needs_no_token(platform):
    result = platform.request("GET", "/api/v1/health")
    assert result.status == 200 and result.body == {"status": "ok"}


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_json_body_is_read_whatever_the_content_type(platform, tenant, content_type):
    import json

    headers = [("Authorization", f"Bearer {tenant['token']}")]
    if content_type:
        headers.append(("Content-Type", content_type))
    body = json.dumps({"question": "How long do I bake the apple pie?"}).encode()
    response = platform.invoke("POST", "/api/v1/query/sync", headers, body)
    assert response["statusCode"] == 200, response["body"]
    assert "forty-five minutes" in json.loads(response["body"])["answer"]


@pytest.mark.parametrize(
    "raw", [b'{"question": "nul \\u0000 here"}', b'{"question": "x", "filters": {"k": "\\u0000"}}']
)
def test_questions_postgres_cannot_take_are_422(platform, tenant, raw):
    result = platform.request("POST", "/api/v1/query/sync", raw_body=raw, token=tenant["token"])
    assert result.status == 422, result.body
