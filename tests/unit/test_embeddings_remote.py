"""Remote providers at the wire (a real local HTTP server; botocore's Stubber) and the batching/retry
helper. No sleeps, no external network."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from ragcore.embeddings import (
    EmbeddingProviderError,
    backoff_delay,
    embed_in_batches,
    get_embedder,
    reset_embedders,
)
from ragcore.embeddings.bedrock import BedrockEmbedder
from ragcore.embeddings.openai_compat import OpenAIEmbedder

DIMS = 8


def fake_vector(text: str) -> list[float]:
    rng = np.random.default_rng(abs(hash(text)) % (2**32))
    return (rng.standard_normal(DIMS) * 3).tolist()


class EmbeddingsServer:
    """An OpenAI-compatible /embeddings endpoint; ``script`` holds statuses to answer before success."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                if server.script:
                    status = server.script.pop(0)
                    payload = json.dumps({"error": {"message": "scripted", "code": status}}).encode()
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                else:
                    inputs = body["input"]
                    data = [
                        {"object": "embedding", "index": i, "embedding": fake_vector(t)}
                        for i, t in enumerate(inputs)
                    ]
                    data.reverse()  # servers may answer out of order: the index is what counts
                    payload = json.dumps(
                        {
                            "object": "list",
                            "data": data,
                            "model": body["model"],
                            "usage": {"prompt_tokens": 1, "total_tokens": 1},
                        }
                    ).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with EmbeddingsServer() as s:
        yield s


def openai_embedder(url: str, **kw) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        base_url=url, api_key="sk-test", model="test-embed", dimensions=DIMS, timeout=5, **kw
    )


def expected(texts):
    v = np.asarray([fake_vector(t if t.strip() else " ") for t in texts], dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_openai_wire_format_and_order(server):
    embedder = openai_embedder(server.url)
    texts = ["alpha", "beta", "", "gamma"]
    vectors = embedder.embed(texts)
    np.testing.assert_allclose(vectors, expected(texts), rtol=1e-6)
    request = server.requests[0]
    assert request["path"] == "/v1/embeddings"
    assert request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "test-embed"
    assert request["body"]["input"] == ["alpha", "beta", " ", "gamma"]
    assert "dimensions" not in request["body"]


def test_openai_429_then_success_through_embed_in_batches(server):
    server.script = [429, 503]
    sleeps: list[float] = []
    texts = [f"text {i}" for i in range(7)]
    vectors = embed_in_batches(
        openai_embedder(server.url), texts, batch_size=3, max_retries=3, sleep=sleeps.append, rng=lambda: 0.5
    )
    np.testing.assert_allclose(vectors, expected(texts), rtol=1e-6)
    assert len(sleeps) == 2
    assert [len(r["body"]["input"]) for r in server.requests] == [3, 3, 3, 3, 1]


def test_openai_client_errors_are_not_retried(server):
    server.script = [400]
    sleeps: list[float] = []
    with pytest.raises(EmbeddingProviderError) as info:
        embed_in_batches(
            openai_embedder(server.url), ["x"], batch_size=10, max_retries=5, sleep=sleeps.append
        )
    assert info.value.retryable is False and info.value.status == 400
    assert sleeps == [] and len(server.requests) == 1


def test_openai_retries_exhausted(server):
    server.script = [500, 500, 500]
    sleeps: list[float] = []
    with pytest.raises(EmbeddingProviderError) as info:
        embed_in_batches(
            openai_embedder(server.url), ["x"], batch_size=10, max_retries=2, sleep=sleeps.append
        )
    assert info.value.retryable is True
    assert len(sleeps) == 2 and len(server.requests) == 3


def test_openai_unreachable_is_retryable():
    embedder = openai_embedder("http://127.0.0.1:9/v1")  # discard port: connection refused
    with pytest.raises(EmbeddingProviderError) as info:
        embedder.embed(["x"])
    assert info.value.retryable is True


def test_openai_dimension_mismatch_is_an_error(server):
    embedder = OpenAIEmbedder(base_url=server.url, api_key="", model="test-embed", dimensions=DIMS + 1)
    with pytest.raises(EmbeddingProviderError, match="dimensions"):
        embedder.embed(["x"])
    assert server.requests[0]["auth"] is None


def test_openai_sends_dimensions_for_v3_models(server):
    embedder = OpenAIEmbedder(
        base_url=server.url, api_key="k", model="text-embedding-3-small", dimensions=DIMS
    )
    embedder.embed(["x"])
    assert server.requests[0]["body"]["dimensions"] == DIMS
    assert embedder.max_input_tokens == 8000


def test_batch_size_is_capped_at_100(server):
    texts = [f"t{i}" for i in range(250)]
    embed_in_batches(openai_embedder(server.url), texts, batch_size=500, max_retries=0)
    assert [len(r["body"]["input"]) for r in server.requests] == [100, 100, 50]


def test_backoff_full_jitter():
    assert backoff_delay(0, base=0.5, cap=20, rng=lambda: 1.0) == 0.5
    assert backoff_delay(3, base=0.5, cap=20, rng=lambda: 1.0) == 4.0
    assert backoff_delay(10, base=0.5, cap=20, rng=lambda: 1.0) == 20.0
    assert backoff_delay(3, base=0.5, cap=20, rng=lambda: 0.0) == 0.0
    assert backoff_delay(0, rng=lambda: 0.0, retry_after=3) == 3


def test_count_word_pieces_estimate_is_conservative():
    embedder = openai_embedder("http://127.0.0.1:9/v1")
    counts = embedder.count_word_pieces(["the", "unaffable", "", "a" * 40])
    assert counts[0] == 1 and counts[1] >= 3 and counts[2] == 0 and counts[3] >= 10


# --- Bedrock (botocore Stubber) ---------------------------------------------------------------


def bedrock_client():
    import boto3

    return boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def titan_response(vector):
    payload = json.dumps({"embedding": vector, "inputTextTokenCount": 3}).encode()
    from botocore.response import StreamingBody

    return {"body": StreamingBody(io.BytesIO(payload), len(payload)), "contentType": "application/json"}


def test_bedrock_titan_v2_one_call_per_text_then_throttling_retry():
    from botocore.stub import Stubber

    client = bedrock_client()
    embedder = BedrockEmbedder(client, model="amazon.titan-embed-text-v2:0", dimensions=256)
    v1, v2 = [1.0] + [0.0] * 255, [0.0, 2.0] + [0.0] * 254
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_model",
            titan_response(v1),
            {
                "modelId": "amazon.titan-embed-text-v2:0",
                "contentType": "application/json",
                "accept": "application/json",
                "body": json.dumps({"inputText": "first", "dimensions": 256, "normalize": True}),
            },
        )
        stub.add_client_error("invoke_model", "ThrottlingException", "slow down", 429)
        # The failed batch is retried as a whole: both texts again.
        stub.add_response("invoke_model", titan_response(v1))
        stub.add_response("invoke_model", titan_response(v2))
        sleeps: list[float] = []
        vectors = embed_in_batches(
            embedder, ["first", "second"], batch_size=2, max_retries=2, sleep=sleeps.append
        )
        stub.assert_no_pending_responses()
    np.testing.assert_allclose(vectors[0], v1)
    np.testing.assert_allclose(vectors[1], [0.0, 1.0] + [0.0] * 254)  # normalised
    assert len(sleeps) == 1


def test_bedrock_validation_error_not_retryable():
    from botocore.stub import Stubber

    client = bedrock_client()
    embedder = BedrockEmbedder(client, dimensions=512)
    with Stubber(client) as stub:
        stub.add_client_error("invoke_model", "ValidationException", "bad input", 400)
        with pytest.raises(EmbeddingProviderError) as info:
            embedder.embed(["x"])
    assert info.value.retryable is False


def test_bedrock_server_error_retryable():
    from botocore.stub import Stubber

    client = bedrock_client()
    embedder = BedrockEmbedder(client, dimensions=512)
    with Stubber(client) as stub:
        stub.add_client_error("invoke_model", "InternalServerException", "oops", 500)
        with pytest.raises(EmbeddingProviderError) as info:
            embedder.embed(["x"])
    assert info.value.retryable is True


def test_bedrock_rejects_unsupported_dimensions():
    with pytest.raises(ValueError, match="256, 512, 1024"):
        BedrockEmbedder(bedrock_client(), dimensions=384)


def test_get_embedder_caches_per_configuration(monkeypatch, server):
    from ragcore.config import Settings

    reset_embedders()
    settings = Settings(
        embedding_provider="openai",
        openai_base_url=server.url,
        openai_api_key="k",
        embedding_model="test-embed",
        embedding_dimensions=DIMS,
    )
    first = get_embedder(settings)
    assert get_embedder(settings) is first
    other = Settings(
        embedding_provider="openai",
        openai_base_url=server.url,
        openai_api_key="k2",
        embedding_model="test-embed",
        embedding_dimensions=DIMS,
    )
    assert get_embedder(other) is not first
    reset_embedders()
