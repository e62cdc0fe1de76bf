"""Abstention below the relevance floor, on both routes and for every kind of generator, through the real
handlers, the real database and the real embedding model; model providers are fakes at the wire.

The floor is the calibrated default (bench/abstain_calibration.py, docs/benchmarks.md). The handbook is
the calibration's (tests/integration/data/abstain/hr_handbook.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ragcore.api import QueryAnswer
from ragcore.config import LOCAL_ABSTAIN_MIN_SCORE, get_settings, reset_settings
from ragcore.generation import reset_generation_clients
from ragcore.prompting import NO_ANSWER

from tests.integration.test_documents import upload
from tests.integration.test_stream import openai_provider, stream, stream_url  # noqa: F401 (fixtures)
from tests.unit.test_generation_bedrock import FakeBedrock
from tests.unit.test_generation_bedrock import answer as bedrock_answer
from tests.unit.test_generation_openai import answer_chunks

HANDBOOK = (Path(__file__).parent / "data" / "abstain" / "hr_handbook.md").read_text(encoding="utf-8")
UNRELATED = "What is the capital of France?"
REAL = "How many vacation days do employees get?"


@pytest.fixture(scope="module")
def handbook(platform):
    org = platform.register()
    upload(platform, org["token"], name="handbook.md", content=HANDBOOK)
    platform.ingest_all()
    return org["token"]


def ask(platform, token, question, **extra):
    result = platform.request("POST", "/api/v1/query/sync", {"question": question, **extra}, token=token)
    assert result.status == 200, result.body
    QueryAnswer.model_validate(result.body)  # the documented shape
    return result.body


def test_the_calibrated_floor_is_in_force_by_default():
    assert get_settings().relevance_floor() == LOCAL_ABSTAIN_MIN_SCORE > 0


def test_an_unrelated_question_abstains_and_still_lists_the_sources(platform, handbook):
    body = ask(platform, handbook, UNRELATED)
    assert body["abstained"] is True
    assert body["answer"] == NO_ANSWER
    assert body["sources"] and all(s["document_name"] == "handbook.md" for s in body["sources"])
    assert body["usage"]["input_tokens"] == 0 and body["usage"]["output_tokens"] == 0


def test_a_real_question_answers(platform, handbook):
    body = ask(platform, handbook, REAL)
    assert body["abstained"] is False
    assert "twenty-five days of paid vacation" in body["answer"] and "[1]" in body["answer"]


@pytest.mark.parametrize("mode", ["dense", "lexical"])
def test_every_retrieval_mode_abstains_on_the_unrelated_question(platform, handbook, mode):
    assert ask(platform, handbook, UNRELATED, mode=mode)["abstained"] is True
    assert ask(platform, handbook, REAL, mode=mode)["abstained"] is False


def test_a_floor_of_zero_disables_abstention(platform, handbook, configure):
    configure(abstain_min_score=0)
    body = ask(platform, handbook, UNRELATED)
    # The confident wrong answer the floor exists to prevent.
    assert body["abstained"] is False and body["answer"] != NO_ANSWER


def test_a_floor_above_every_cosine_abstains_even_on_a_real_question(platform, handbook, configure):
    configure(abstain_min_score=1)
    assert ask(platform, handbook, REAL)["abstained"] is True


def test_the_stream_abstains_the_same_way(platform, stream_url, handbook):  # noqa: F811
    response, events = stream(stream_url, handbook, {"question": UNRELATED})
    assert response.status_code == 200
    assert [kind for kind, _ in events][0] == "sources" and events[-1][0] == "done"
    assert events[0][1]["sources"]
    assert "".join(data["text"] for kind, data in events if kind == "token") == NO_ANSWER
    assert events[-1][1]["abstained"] is True
    sync = ask(platform, handbook, UNRELATED)
    assert events[-1][1] == {"usage": sync["usage"], "abstained": True}
    _, answered = stream(stream_url, handbook, {"question": REAL})
    assert answered[-1][1]["abstained"] is False


def test_a_model_provider_is_not_called_below_the_floor(platform, stream_url, handbook, openai_provider):  # noqa: F811
    pieces = ("Employees accrue ", "twenty-five days [1].")
    server = openai_provider(*[("stream", answer_chunks(*pieces), "done")] * 2)
    body = ask(platform, handbook, UNRELATED)
    _, events = stream(stream_url, handbook, {"question": UNRELATED})
    assert body["abstained"] is True and body["answer"] == NO_ANSWER
    assert events[-1][1]["abstained"] is True
    assert body["usage"]["provider"] == "openai"
    assert server.requests == []  # the model was never asked
    # Above the floor the model answers, on both routes.
    assert ask(platform, handbook, REAL)["answer"] == "".join(pieces)
    _, events = stream(stream_url, handbook, {"question": REAL})
    assert [d["text"] for k, d in events if k == "token"] == list(pieces)
    assert events[-1][1]["abstained"] is False
    assert len(server.requests) == 2


def test_a_model_that_finds_nothing_is_reported_as_abstaining(platform, handbook, openai_provider):  # noqa: F811
    openai_provider(("stream", answer_chunks(NO_ANSWER), "done"))
    body = ask(platform, handbook, REAL)
    assert body["answer"] == NO_ANSWER and body["abstained"] is True


@pytest.fixture
def bedrock_provider(monkeypatch):
    servers: list[FakeBedrock] = []

    def configure(*script: tuple) -> FakeBedrock:
        server = FakeBedrock(list(script))
        servers.append(server)
        for key, value in {
            "GENERATION_PROVIDER": "bedrock",
            "GENERATION_MODEL": "anthropic.claude-test-v1:0",
            "AWS_ENDPOINT_URL": server.url,
            "GENERATION_RETRY_BASE_SECONDS": "0",
        }.items():
            monkeypatch.setenv(key, value)
        reset_settings()
        reset_generation_clients()
        return server

    yield configure
    monkeypatch.undo()
    reset_settings()
    reset_generation_clients()
    for server in servers:
        server.close()


def test_bedrock_is_not_called_below_the_floor(platform, handbook, bedrock_provider):
    server = bedrock_provider(("stream", bedrock_answer("Employees accrue ", "twenty-five days [1].")))
    body = ask(platform, handbook, UNRELATED)
    assert body["abstained"] is True and body["answer"] == NO_ANSWER
    assert body["usage"]["provider"] == "bedrock"
    assert server.requests == []
    answered = ask(platform, handbook, REAL)
    assert answered["abstained"] is False
    assert answered["answer"] == "Employees accrue twenty-five days [1]."
    assert len(server.requests) == 1
