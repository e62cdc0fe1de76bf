"""Logs and metrics of real requests through the real handlers and database: the correlation id of each
request (API Gateway's request id; the stream's X-Request-Id or a generated one, returned to the client),
the caller on every line after authentication, and the per-stage metrics of the answers (EMF on stdout).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid

import pytest
from ragcore.generation import TextDelta, UsageReport
from ragcore.observability import logger

from infra.local.events import build_proxy_event
from tests.integration.test_api_keys import create_key
from tests.integration.test_documents import HANDBOOK, upload
from tests.integration.test_stream import QUESTION, stream_url  # noqa: F401 (a fixture)

QUERY_STAGES = {"QueryEmbedLatency", "QuerySearchLatency", "QueryGenerateLatency"}


@pytest.fixture(scope="module")
def org(platform):
    org = platform.register()
    upload(platform, org["token"], name="handbook.txt", content=HANDBOOK)
    platform.ingest_all()
    return org


@pytest.fixture
def log_lines():
    """The JSON lines of the platform's logger while the test runs, at DEBUG."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    level = logger.log_level
    logger.addHandler(handler)
    logger.setLevel("DEBUG")

    def read() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    yield read
    logger.removeHandler(handler)
    logger.setLevel(level)


def emf_blobs(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def metric_names(blob: dict) -> set[str]:
    return {m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def invoke(platform, method: str, path: str, token: str, body: dict | None, request_id: str) -> dict:
    """The function's proxy response to an API Gateway event with this request id."""
    match = platform.routes.match(method, path)
    event = build_proxy_event(
        method=method,
        path=path,
        route=match.route,
        path_parameters=match.path_parameters,
        headers=[("Content-Type", "application/json"), ("Authorization", f"Bearer {token}")],
        body=json.dumps(body).encode() if body is not None else b"",
        request_id=request_id,
    )
    return platform.functions[match.route.function].invoke(event)


def test_rest_lines_carry_api_gateways_request_id_and_the_caller(platform, org, log_lines):
    request_id = f"req-{uuid.uuid4()}"
    response = invoke(
        platform, "POST", "/api/v1/query/sync", org["token"], {"question": QUESTION}, request_id
    )
    assert response["statusCode"] == 200, response["body"]
    lines = log_lines()
    (handled,) = [line for line in lines if line["message"] == "request handled"]
    assert handled["correlation_id"] == request_id
    assert handled["org_id"] == org["org"]["id"] and handled["user_id"] == org["user"]["id"]
    assert handled["auth"] == "user"
    assert handled["route"] == "/api/v1/query/sync" and handled["status"] == 200
    assert all(line.get("correlation_id") == request_id for line in lines)


def test_a_later_request_does_not_inherit_the_previous_caller(platform, org, log_lines):
    invoke(platform, "GET", "/api/v1/me", org["token"], None, "first")
    response = invoke(platform, "GET", "/api/v1/me", "not-a-token", None, "second")
    assert response["statusCode"] == 401
    (second,) = [line for line in log_lines() if line.get("correlation_id") == "second"]
    assert second["status"] == 401
    assert "org_id" not in second and "user_id" not in second


def test_an_api_key_is_named_by_its_id_never_its_secret(platform, org, log_lines):
    key = create_key(platform, org["token"], scope="query")
    response = invoke(
        platform, "POST", "/api/v1/query/sync", key["secret"], {"question": QUESTION}, "key-req"
    )
    assert response["statusCode"] == 200, response["body"]
    lines = [line for line in log_lines() if line.get("correlation_id") == "key-req"]
    (handled,) = [line for line in lines if line["message"] == "request handled"]
    (retrieved,) = [line for line in lines if line["message"] == "retrieved"]  # ragcore's line, at DEBUG
    assert retrieved["api_key_id"] == key["api_key"]["id"] and retrieved["org_id"] == org["org"]["id"]
    assert handled["auth"] == "api_key" and handled["api_key_id"] == key["api_key"]["id"]
    assert handled["org_id"] == org["org"]["id"] and "user_id" not in handled
    assert key["secret"] not in json.dumps(log_lines())


def test_a_sync_answer_emits_each_query_stage_tagged_with_the_tenant(platform, org, capsys):
    result = platform.request("POST", "/api/v1/query/sync", {"question": QUESTION}, token=org["token"])
    assert result.status == 200
    blobs = [b for b in emf_blobs(capsys.readouterr().out) if metric_names(b) >= QUERY_STAGES]
    assert len(blobs) == 1
    (blob,) = blobs
    assert blob["org_id"] == org["org"]["id"]
    assert all("org_id" not in dims for d in blob["_aws"]["CloudWatchMetrics"] for dims in d["Dimensions"])


def test_a_lexical_answer_embeds_nothing_without_a_relevance_floor(platform, org, capsys, configure):
    body = {"question": QUESTION, "mode": "lexical"}
    configure(abstain_min_score=0)
    assert platform.request("POST", "/api/v1/query/sync", body, token=org["token"]).status == 200
    (blob,) = [b for b in emf_blobs(capsys.readouterr().out) if "QuerySearchLatency" in metric_names(b)]
    assert "QueryEmbedLatency" not in metric_names(blob)
    # The floor is a cosine: with it on (the default), the question is embedded even for BM25.
    configure(abstain_min_score=0.4)
    assert platform.request("POST", "/api/v1/query/sync", body, token=org["token"]).status == 200
    (blob,) = [b for b in emf_blobs(capsys.readouterr().out) if "QuerySearchLatency" in metric_names(b)]
    assert "QueryEmbedLatency" in metric_names(blob)


def test_ingestion_emits_each_stage_for_the_documents_tenant(platform, org, capsys, log_lines):
    upload(platform, org["token"], name="second.txt", content="Parking is free for staff on weekends.")
    capsys.readouterr()
    assert platform.ingest_all() >= 1
    blobs = [b for b in emf_blobs(capsys.readouterr().out) if "ChunksEmbedded" in metric_names(b)]
    assert [b["org_id"] for b in blobs] == [org["org"]["id"]]
    assert {"IngestChunkLatency", "IngestEmbedLatency", "IngestStoreLatency"} <= metric_names(blobs[0])
    (processed,) = [line for line in log_lines() if line["message"] == "document processed"]
    assert processed["org_id"] == org["org"]["id"] and processed["correlation_id"]  # the SQS message id


def test_the_stream_returns_the_clients_request_id_and_tags_its_lines(
    stream_url,  # noqa: F811
    org,
    log_lines,
    capsys,
):
    request_id = f"client-{uuid.uuid4().hex}"
    response, events = stream_with_headers(stream_url, org["token"], {"X-Request-Id": request_id})
    assert response.status_code == 200 and events[-1][0] == "done"
    assert response.headers["x-request-id"] == request_id
    (finished,) = [line for line in log_lines() if line["message"] == "stream finished"]
    assert finished["correlation_id"] == request_id
    assert finished["org_id"] == org["org"]["id"] and finished["user_id"] == org["user"]["id"]
    (blob,) = [b for b in emf_blobs(capsys.readouterr().out) if metric_names(b) >= QUERY_STAGES]
    assert blob["org_id"] == org["org"]["id"]


def test_the_stream_makes_up_a_request_id_when_the_client_sends_none(
    stream_url,  # noqa: F811
    org,
    log_lines,
):
    response, _ = stream_with_headers(stream_url, org["token"], {})
    made = response.headers["x-request-id"]
    uuid.UUID(made)
    (finished,) = [line for line in log_lines() if line["message"] == "stream finished"]
    assert finished["correlation_id"] == made
    refused, _ = stream_with_headers(stream_url, "not-a-token", {"X-Request-Id": "bad id with spaces"})
    assert refused.status_code == 401
    assert refused.headers["x-request-id"] not in (made, "bad id with spaces")


def stream_with_headers(url: str, token: str, headers: dict[str, str]):
    import httpx

    with httpx.Client(timeout=30) as client:
        response = client.post(
            f"{url}/api/v1/query",
            json={"question": QUESTION},
            headers={"Authorization": f"Bearer {token}", **headers},
        )
    events = []
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for frame in response.text.replace("\r\n", "\n").split("\n\n"):
            fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
            if "event" in fields:
                events.append((fields["event"], json.loads(fields["data"])))
    return response, events


class MeetingGenerator:
    """Two answers that wait for each other mid-stream, then log: both requests are in flight at once."""

    name = "meeting"

    def __init__(self):
        self.barrier = threading.Barrier(2, timeout=20)

    def stream(self, question, sources):
        yield TextDelta("first ")
        self.barrier.wait()
        logger.info("both answers in flight")
        yield TextDelta("second")
        yield UsageReport({"provider": self.name})


def test_concurrent_streams_of_two_tenants_keep_their_own_keys(
    platform,
    stream_url,  # noqa: F811
    org,
    log_lines,
    monkeypatch,
):
    other = platform.register()
    upload(platform, other["token"], name="handbook.txt", content=HANDBOOK)
    platform.ingest_all()
    generator = MeetingGenerator()
    monkeypatch.setattr("ragcore.query.get_generator", lambda *args, **kwargs: generator)
    callers = {"stream-a": org, "stream-b": other}
    results = {}

    def ask(request_id: str) -> None:
        results[request_id] = stream_with_headers(
            stream_url, callers[request_id]["token"], {"X-Request-Id": request_id}
        )

    threads = [threading.Thread(target=ask, args=(request_id,)) for request_id in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert {rid: r[1][-1][0] for rid, r in results.items()} == {"stream-a": "done", "stream-b": "done"}
    lines = [line for line in log_lines() if line.get("correlation_id") in callers]
    in_flight = [line for line in lines if line["message"] == "both answers in flight"]
    assert len(in_flight) == 2
    for line in lines:
        caller = callers[line["correlation_id"]]
        assert line["org_id"] == caller["org"]["id"] and line["user_id"] == caller["user"]["id"], line
