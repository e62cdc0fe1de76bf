"""Retrieval modes and document filters in query bodies, through the real query handler."""

import uuid

import pytest

from tests.integration.test_documents import HANDBOOK, upload
from tests.integration.test_query import RECIPES

# Shares no word with the question below but "vacation": lexical search ranks it on that word alone.
GLOSSARY = "Glossary. Vacation: see leave. Sabbatical: a long paid break granted after seven years."
QUESTION = "How many vacation days does an employee get per year?"


@pytest.fixture(scope="module")
def tenant(platform):
    org = platform.register()
    docs = {
        "handbook": upload(
            platform, org["token"], name="handbook.txt", content=HANDBOOK, metadata={"team": "hr"}
        ),
        "recipes": upload(
            platform, org["token"], name="recipes.txt", content=RECIPES, metadata={"team": "kitchen"}
        ),
        "glossary": upload(
            platform, org["token"], name="glossary.txt", content=GLOSSARY, metadata={"team": "hr"}
        ),
    }
    platform.ingest_all()
    return {"token": org["token"], **{name: doc["id"] for name, doc in docs.items()}}


def ask(platform, token, **body):
    return platform.request("POST", "/api/v1/query/sync", body, token=token)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_every_mode_finds_the_answer_and_says_which_retrievers_did(platform, tenant, mode):
    result = ask(platform, tenant["token"], question=QUESTION, mode=mode, top_k=3)
    assert result.status == 200, result.body
    sources = result.body["sources"]
    assert sources[0]["document_id"] == tenant["handbook"]
    assert "twenty-five days" in result.body["answer"]
    expected = {"hybrid": {"dense", "lexical"}, "dense": {"dense"}, "lexical": {"lexical"}}[mode]
    assert set().union(*(s["retrievers"] for s in sources)) <= expected
    if mode == "hybrid":
        assert sources[0]["retrievers"] == ["dense", "lexical"]
        assert all(0.0 <= s["score"] <= 1.0 for s in sources)
    assert [s["score"] for s in sources] == sorted((s["score"] for s in sources), reverse=True)


def test_lexical_mode_returns_only_chunks_sharing_a_word(platform, tenant):
    result = ask(platform, tenant["token"], question=QUESTION, mode="lexical", top_k=10)
    assert {s["document_id"] for s in result.body["sources"]} == {tenant["handbook"], tenant["glossary"]}


def test_hybrid_is_the_default(platform, tenant):
    default = ask(platform, tenant["token"], question=QUESTION, top_k=3)
    hybrid = ask(platform, tenant["token"], question=QUESTION, top_k=3, mode="hybrid")
    assert default.body["sources"] == hybrid.body["sources"]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_document_ids_and_metadata_filters_hold_in_every_mode(platform, tenant, mode):
    only_glossary = ask(
        platform, tenant["token"], question=QUESTION, mode=mode, top_k=1, document_ids=[tenant["glossary"]]
    )
    assert [s["document_id"] for s in only_glossary.body["sources"]] == [tenant["glossary"]]
    kitchen = ask(
        platform, tenant["token"], question="apple pie baking time", mode=mode, filters={"team": "hr"}
    )
    assert {s["document_id"] for s in kitchen.body["sources"]} <= {tenant["handbook"], tenant["glossary"]}
    both = ask(
        platform,
        tenant["token"],
        question=QUESTION,
        mode=mode,
        filters={"team": "hr"},
        document_ids=[tenant["recipes"], tenant["glossary"]],
    )
    assert {s["document_id"] for s in both.body["sources"]} == {tenant["glossary"]}


def test_another_tenants_document_id_finds_nothing(platform, tenant):
    other = platform.register()
    for mode in ("hybrid", "dense", "lexical"):
        result = ask(
            platform, other["token"], question=QUESTION, mode=mode, document_ids=[tenant["handbook"]]
        )
        assert result.status == 200
        assert result.body["sources"] == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"mode": "semantic"}, "mode"),
        ({"mode": None}, "mode"),
        ({"document_ids": ["not-a-uuid"]}, "document_ids"),
        ({"document_ids": []}, "document_ids"),
        ({"document_ids": [str(uuid.uuid4()) for _ in range(101)]}, "document_ids"),
    ],
)
def test_bad_mode_or_document_ids_is_422_with_the_error_body(platform, tenant, body, field):
    result = ask(platform, tenant["token"], question=QUESTION, **body)
    assert result.status == 422
    assert result.body["error"]["code"] == "validation_error"
    assert field in result.body["error"]["message"]
