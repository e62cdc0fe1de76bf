"""The stream app (functions/stream/app.py) served by uvicorn on 127.0.0.1, over real HTTP, on the real
platform of conftest.py (embedded PostgreSQL, migrations, the handlers of template-local.yaml).

Events are read with an SSE client (httpx-sse). Generators that must pause wait on events that the test
sets, so nothing here waits on a clock.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from httpx_sse import connect_sse
from ragcore.config import reset_settings
from ragcore.errors import ServiceUnavailable
from ragcore.generation import TextDelta, UsageReport, reset_generation_clients

from tests.integration.test_documents import HANDBOOK, upload
from tests.unit.test_generation_openai import FakeOpenAI, answer_chunks, chunk

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "How many vacation days does an employee get per year?"


def _load_stream_app():
    path = ROOT / "functions" / "stream" / "app.py"
    spec = importlib.util.spec_from_file_location("_stream_app_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


@pytest.fixture(scope="module")
def stream_url(platform):
    server = uvicorn.Server(
        uvicorn.Config(_load_stream_app(), host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the stream app did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def tenant(platform):
    org = platform.register()
    upload(platform, org["token"], name="handbook.txt", content=HANDBOOK)
    platform.ingest_all()
    return org["token"]


def stream(url: str, token: str | None, body: dict) -> tuple[httpx.Response, list[tuple[str, dict]]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(client, "POST", f"{url}/api/v1/query", json=body, headers=headers) as source,
    ):
        events = [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]
        return source.response, events


def test_events_arrive_in_order_with_sse_headers(stream_url, tenant):
    response, events = stream(stream_url, tenant, {"question": QUESTION})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"token"} and len(kinds) >= 4
    assert events[0][1]["sources"][0]["document_name"] == "handbook.txt"
    assert events[-1][1]["usage"]["provider"] == "extractive"


def test_stream_and_sync_give_the_same_answer_and_sources(platform, stream_url, tenant):
    _, events = stream(stream_url, tenant, {"question": QUESTION, "top_k": 3})
    sync = platform.request("POST", "/api/v1/query/sync", {"question": QUESTION, "top_k": 3}, token=tenant)
    assert sync.status == 200
    assert "".join(data["text"] for kind, data in events if kind == "token") == sync.body["answer"]
    assert events[0][1]["sources"] == sync.body["sources"]
    assert events[-1][1]["usage"] == sync.body["usage"]
    assert "twenty-five days" in sync.body["answer"]


def test_stream_honours_mode_and_document_ids(platform, stream_url, tenant):
    body = {"question": QUESTION, "top_k": 3, "mode": "lexical"}
    _, events = stream(stream_url, tenant, body)
    sync = platform.request("POST", "/api/v1/query/sync", body, token=tenant)
    assert events[0][1]["sources"] == sync.body["sources"]
    assert {r for s in sync.body["sources"] for r in s["retrievers"]} == {"lexical"}
    _, none = stream(stream_url, tenant, {"question": QUESTION, "document_ids": [str(uuid.uuid4())]})
    assert none[0] == ("sources", {"sources": []})


@pytest.mark.parametrize(
    "authorization, message",
    [(None, "missing Authorization header"), ("Bearer not-a-jwt", "invalid token"), ("Basic abc", "Bearer")],
)
def test_bad_or_missing_token_is_401_json_before_any_stream(stream_url, authorization, message):
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(f"{stream_url}/api/v1/query", json={"question": "q"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "unauthorized" and message in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"question": ""},
        {"question": "  "},
        {"question": "x", "top_k": 0},
        {"question": "x", "topk": 3},
        {},
        [],
    ],
)
def test_invalid_body_is_422_before_any_stream(stream_url, tenant, body):
    response = httpx.post(
        f"{stream_url}/api/v1/query", json=body, headers={"Authorization": f"Bearer {tenant}"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"question": ',
        b"\xff\xfe",
        b"",
        b'{"question": "x", "filters": {"a": NaN}}',
        b'{"question": "x", "filters": {"a": 1e999}}',
        b'{"question": "x", "top_k": 1' + b"0" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        '{"question": "utf-16"}'.encode("utf-16"),
    ],
)
def test_malformed_json_is_400(stream_url, tenant, raw):
    response = httpx.post(
        f"{stream_url}/api/v1/query", content=raw, headers={"Authorization": f"Bearer {tenant}"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "bad_request", "message": "request body is not valid JSON"}


def test_oversized_body_is_413(stream_url, tenant):
    response = httpx.post(
        f"{stream_url}/api/v1/query",
        json={"question": "x" * 300_000},
        headers={"Authorization": f"Bearer {tenant}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_health_and_unknown_routes(stream_url):
    assert httpx.get(f"{stream_url}/api/v1/health").json() == {"status": "ok"}
    missing = httpx.get(f"{stream_url}/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong_method = httpx.get(f"{stream_url}/api/v1/query")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"


# --------------------------------------------------------------- generators the test controls


class GatedGenerator:
    """Yields one token, then waits until the test opens the gate before the rest."""

    name = "gated"

    def __init__(self):
        self.gate = threading.Event()
        self.opened_in_time: bool | None = None

    def stream(self, question, sources) -> Iterator:
        yield TextDelta("first ")
        self.opened_in_time = self.gate.wait(20)
        yield TextDelta("second")
        yield UsageReport({"provider": self.name})


class EndlessGenerator:
    """Produces tokens for as long as someone reads them, and records being closed."""

    name = "endless"

    def __init__(self):
        self.produced = 0
        self.closed = threading.Event()

    def stream(self, question, sources) -> Iterator:
        try:
            while True:
                self.produced += 1
                yield TextDelta(f"t{self.produced} ")
        finally:
            self.closed.set()


class FailingGenerator:
    name = "failing"

    def stream(self, question, sources) -> Iterator:
        yield TextDelta("Employees get ")
        raise ServiceUnavailable("the generation provider failed (500: boom); the answer is incomplete",
                                 code="generation_unavailable")  # fmt: skip


@pytest.fixture
def use_generator(monkeypatch):
    def install(generator):
        monkeypatch.setattr("ragcore.query.get_generator", lambda *args, **kwargs: generator)
        return generator

    return install


def test_tokens_are_sent_as_produced_not_buffered(stream_url, tenant, use_generator):
    generator = use_generator(GatedGenerator())
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(
            client, "POST", f"{stream_url}/api/v1/query", json={"question": QUESTION},
            headers={"Authorization": f"Bearer {tenant}"},
        ) as source,
    ):  # fmt: skip
        events = source.iter_sse()
        assert next(events).event == "sources"
        first = next(events)  # arrives while the generator is still held at the gate
        assert (first.event, json.loads(first.data)) == ("token", {"text": "first "})
        assert generator.opened_in_time is None
        generator.gate.set()
        rest = [(e.event, json.loads(e.data)) for e in events]
    assert generator.opened_in_time is True
    assert rest == [
        ("token", {"text": "second"}),
        ("done", {"usage": {"provider": "gated", "retrieved_chunks": 1}, "abstained": False}),
    ]


def read_three_tokens_then_disconnect(stream_url: str, tenant: str) -> None:
    """Start a stream, read its sources and three tokens, and close the connection mid-answer."""
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(
            client, "POST", f"{stream_url}/api/v1/query", json={"question": QUESTION},
            headers={"Authorization": f"Bearer {tenant}"},
        ) as source,
    ):  # fmt: skip
        events = source.iter_sse()
        assert next(events).event == "sources"
        assert [next(events).event for _ in range(3)] == ["token"] * 3


def test_client_disconnect_closes_the_generator(stream_url, tenant, use_generator):
    generator = use_generator(EndlessGenerator())
    read_three_tokens_then_disconnect(stream_url, tenant)
    # The connection is closed here, mid-answer.
    # Closed means finished: a closed Python generator never produces again.
    assert generator.closed.wait(10), "the generator was left running after the client went away"


def test_provider_failure_mid_stream_ends_with_an_error_event(stream_url, tenant, use_generator):
    use_generator(FailingGenerator())
    response, events = stream(stream_url, tenant, {"question": QUESTION})
    assert response.status_code == 200
    assert [kind for kind, _ in events] == ["sources", "token", "error"]
    assert events[-1][1] == {
        "code": "generation_unavailable",
        "message": "the generation provider failed (500: boom); the answer is incomplete",
    }


# ------------------------------------------------------------- the openai provider end to end


@pytest.fixture
def openai_provider(monkeypatch):
    servers: list[FakeOpenAI] = []

    def configure(*script: tuple) -> FakeOpenAI:
        server = FakeOpenAI(list(script))
        servers.append(server)
        for key, value in {
            "GENERATION_PROVIDER": "openai",
            "GENERATION_MODEL": "gpt-test",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-test",
            "GENERATION_RETRY_BASE_SECONDS": "0",
        }.items():
            monkeypatch.setenv(key, value)
        reset_settings()
        return server

    yield configure
    monkeypatch.undo()
    reset_settings()
    reset_generation_clients()
    for server in servers:
        server.close()


def test_openai_provider_gives_the_same_answer_on_both_endpoints(
    platform, stream_url, tenant, openai_provider
):
    pieces = ("Every employee ", "accrues twenty-five ", "days [1].")
    server = openai_provider(
        ("stream", answer_chunks(*pieces), "done"), ("stream", answer_chunks(*pieces), "done")
    )
    _, events = stream(stream_url, tenant, {"question": QUESTION})
    sync = platform.request("POST", "/api/v1/query/sync", {"question": QUESTION}, token=tenant)
    assert [data["text"] for kind, data in events if kind == "token"] == list(pieces)
    assert sync.body["answer"] == "".join(pieces)
    assert events[0][1]["sources"] == sync.body["sources"]
    assert events[-1] == ("done", {"usage": sync.body["usage"], "abstained": False})
    assert sync.body["abstained"] is False
    assert sync.body["usage"]["model"] == "gpt-test" and sync.body["usage"]["input_tokens"] == 42
    assert len(server.requests) == 2


def test_openai_error_mid_stream_is_an_error_event_and_a_503_for_sync(
    platform, stream_url, tenant, openai_provider
):
    openai_provider(
        ("stream", [chunk(""), chunk("Every employee ")], "error"),
        ("status", 429, {"Retry-After": "0"}, {"error": {"message": "slow down"}}),
        ("status", 429, {"Retry-After": "0"}, {"error": {"message": "slow down"}}),
        ("status", 429, {"Retry-After": "0"}, {"error": {"message": "slow down"}}),
    )
    _, events = stream(stream_url, tenant, {"question": QUESTION})
    assert [kind for kind, _ in events] == ["sources", "token", "error"]
    assert events[-1][1]["code"] == "generation_failed"
    sync = platform.request("POST", "/api/v1/query/sync", {"question": QUESTION}, token=tenant)
    assert sync.status == 503
    assert sync.body["error"]["code"] == "generation_rate_limited"


def test_disconnect_closes_the_providers_connection(stream_url, tenant, openai_provider):
    """The whole chain: client gone -> stream app -> answer_events -> OpenAIGenerator -> HTTP to the model."""
    server = openai_provider(("drip",))
    read_three_tokens_then_disconnect(stream_url, tenant)
    assert server.client_went_away.wait(10), "the model was still streaming to the server"
    assert server.dripped < 1000
