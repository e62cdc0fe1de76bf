"""The ``bedrock`` provider (ConverseStream), at the wire.

Two doubles, each for what it can represent:

* a real HTTP server on 127.0.0.1 that answers ConverseStream with ``application/vnd.amazon.eventstream``
  bytes encoded here (prelude, headers, payload, CRCs), so boto3 signs a real request and botocore's own
  event-stream parser decodes the answer; it also sends HTTP 429 before the stream and exception messages
  inside it;
* botocore's Stubber for the errors before the stream. Stubber validates a stubbed response against the
  output shape, which wants a dict for the ``stream`` member, so it cannot stand for a successful
  ConverseStream (its value is an EventStream to iterate): the successes come from the server above.
"""

from __future__ import annotations

import binascii
import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.stub import Stubber
from ragcore.config import Settings
from ragcore.errors import ServiceUnavailable
from ragcore.generation import (
    BedrockGenerator,
    TextDelta,
    UsageReport,
    get_generator,
    reset_generation_clients,
)
from ragcore.retrieval import Source

from tests.fakes import BagOfWordsEmbedder

MODEL = "anthropic.claude-test-v1:0"
SOURCES = [Source("d1", "handbook.txt", 0, "Employees get 25 vacation days.", 0.9)]


def _header(name: str, value: str) -> bytes:
    key, text = name.encode(), value.encode()
    return struct.pack("!B", len(key)) + key + b"\x07" + struct.pack("!H", len(text)) + text  # 7: string


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: total and header lengths, prelude CRC, headers, payload, CRC."""
    encoded_headers = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack("!II", 12 + len(encoded_headers) + len(payload) + 4, len(encoded_headers))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + encoded_headers + payload
    return message + struct.pack("!I", binascii.crc32(message))


def event(kind: str, payload: dict) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, json.dumps(payload).encode())


def exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, json.dumps({"message": message}).encode())


def answer(*pieces: str, stop: str = "end_turn") -> list[bytes]:
    return [
        event("messageStart", {"role": "assistant"}),
        *[event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}) for p in pieces],
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": stop}),
        event(
            "metadata",
            {
                "usage": {"inputTokens": 57, "outputTokens": 9, "totalTokens": 66},
                "metrics": {"latencyMs": 12},
            },
        ),
    ]


class FakeBedrock:
    """Each request takes the next entry: ("stream", [messages]), ("status", code, error_type, message)
    or ("json", body) (a 200 JSON answer, as Converse gives)."""

    def __init__(self, script: list[tuple]):
        self.script = list(script)
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                fake.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                entry = fake.script.pop(0)
                if entry[0] == "json":
                    body = json.dumps(entry[1]).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if entry[0] == "status":
                    _, code, error_type, message = entry
                    body = json.dumps({"message": message}).encode()
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("x-amzn-ErrorType", error_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.amazon.eventstream")
                self.send_header("Connection", "close")
                self.end_headers()
                for message in entry[1]:
                    self.wfile.write(message)
                    self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bedrock(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    servers: list[FakeBedrock] = []
    sleeps: list[float] = []

    def make(*script: tuple, **overrides) -> tuple[FakeBedrock, BedrockGenerator]:
        server = FakeBedrock(list(script))
        servers.append(server)
        settings = Settings(
            generation_provider="bedrock",
            generation_model=MODEL,
            aws_region="eu-west-1",
            aws_endpoint_url=server.url,
            **overrides,
        )
        generator = get_generator(BagOfWordsEmbedder(), settings=settings)
        assert isinstance(generator, BedrockGenerator)
        generator.sleep, generator.rng = sleeps.append, (lambda: 1.0)
        return server, generator

    make.sleeps = sleeps
    yield make
    for server in servers:
        server.close()
    reset_generation_clients()


def test_streams_text_deltas_then_usage(bedrock):
    server, generator = bedrock(("stream", answer("Employees get ", "25 days ", "[1].")))
    events = list(generator.stream("How many vacation days?", SOURCES))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Employees get ", "25 days ", "[1]."]
    assert events[-1] == UsageReport(
        {
            "provider": "bedrock",
            "model": MODEL,
            "input_tokens": 57,
            "output_tokens": 9,
            "stop_reason": "end_turn",
        }
    )


def test_request_is_a_signed_converse_stream_call_with_the_fenced_prompt(bedrock):
    server, generator = bedrock(("stream", answer("ok")), generation_max_tokens=256)
    list(generator.stream("Vacation?", SOURCES))
    (request,) = server.requests
    assert request["path"] == f"/model/{MODEL.replace(':', '%3A')}/converse-stream"
    assert request["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/eu-west-1/bedrock/aws4_request" in request["headers"]["authorization"]
    body = request["body"]
    assert "only" in body["system"][0]["text"] and "[n]" in body["system"][0]["text"]
    (message,) = body["messages"]
    assert message["role"] == "user"
    assert '<source id="1" name="handbook.txt">' in message["content"][0]["text"]
    assert body["inferenceConfig"] == {"maxTokens": 256}


def test_throttling_before_the_stream_is_retried(bedrock):
    server, generator = bedrock(
        ("status", 429, "ThrottlingException", "Too many requests, please wait before trying again."),
        ("status", 503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
        ("stream", answer("fine")),
        generation_retry_base_seconds=0.25,
    )
    events = list(generator.stream("q", SOURCES))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "fine"
    assert len(server.requests) == 3
    assert bedrock.sleeps == [0.25, 0.5]


def test_throttling_inside_the_stream_before_any_text_is_retried(bedrock):
    server, generator = bedrock(
        (
            "stream",
            [event("messageStart", {"role": "assistant"}), exception("throttlingException", "slow down")],
        ),
        ("stream", answer("second")),
    )
    events = list(generator.stream("q", SOURCES))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["second"]
    assert len(server.requests) == 2


def test_model_stream_error_after_text_is_raised_not_retried(bedrock):
    head = answer("Employees ", "get ")[:3]  # messageStart, two deltas
    server, generator = bedrock(("stream", [*head, exception("modelStreamErrorException", "model failed")]))
    received = []
    with pytest.raises(ServiceUnavailable) as caught:
        for e in generator.stream("q", SOURCES):
            received.append(e.text)
    assert received == ["Employees ", "get "]
    assert caught.value.code == "generation_unavailable"
    assert "incomplete" in caught.value.message
    assert len(server.requests) == 1 and bedrock.sleeps == []


def test_stream_without_message_stop_is_an_error(bedrock):
    server, generator = bedrock(("stream", answer("cut ")[:2]), generation_max_retries=0)
    with pytest.raises(ServiceUnavailable) as caught:
        list(generator.stream("q", SOURCES))
    assert caught.value.code == "generation_unavailable"


# ------------------------------------------------------------------------------------------- Stubber


def stubbed(max_retries: int = 2) -> tuple[BedrockGenerator, Stubber, list[float]]:
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    settings = Settings(
        generation_provider="bedrock", generation_model=MODEL, generation_max_retries=max_retries
    )
    sleeps: list[float] = []
    generator = BedrockGenerator(settings, client=client, sleep=sleeps.append, rng=lambda: 0.0)
    return generator, Stubber(client), sleeps


def test_stubbed_throttling_exhausts_the_retries(bedrock):
    generator, stubber, sleeps = stubbed(max_retries=2)
    for _ in range(3):
        stubber.add_client_error(
            "converse_stream", "ThrottlingException", "Too many requests", http_status_code=429
        )
    with stubber, pytest.raises(ServiceUnavailable) as caught:
        list(generator.stream("q", SOURCES))
    stubber.assert_no_pending_responses()
    assert caught.value.code == "generation_rate_limited"
    assert len(sleeps) == 2


def test_stubbed_validation_error_is_not_retried(bedrock):
    generator, stubber, sleeps = stubbed()
    stubber.add_client_error(
        "converse_stream",
        "ValidationException",
        "The provided model identifier is invalid.",
        http_status_code=400,
        expected_params={
            "modelId": MODEL,
            "system": [{"text": generator_system()}],
            "messages": [{"role": "user", "content": [{"text": generator_user()}]}],
            "inferenceConfig": {"maxTokens": 1024},
        },
    )
    with stubber, pytest.raises(ServiceUnavailable) as caught:
        list(generator.stream("q", SOURCES))
    stubber.assert_no_pending_responses()
    assert caught.value.code == "generation_failed"
    assert "ValidationException" in caught.value.message and sleeps == []


def generator_system() -> str:
    from ragcore.prompting import build_prompt

    return build_prompt("q", SOURCES).system


def generator_user() -> str:
    from ragcore.prompting import build_prompt

    return build_prompt("q", SOURCES).user
