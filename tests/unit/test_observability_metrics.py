"""The metrics each stage emits, read back from the Embedded Metric Format lines printed to stdout (what
CloudWatch Logs turns into metrics), and the correlation id rules of the stream.

No clock is waited on: durations come from a fake perf_counter where their value matters.
"""

from __future__ import annotations

import json
import uuid

import pytest
from ragcore import observability, query
from ragcore.config import Settings
from ragcore.embeddings import EmbeddingProviderError, embed_in_batches
from ragcore.errors import ServiceUnavailable
from ragcore.ingest import Outcome, ingest_document
from ragcore.observability import correlation_id_from, scoped_metrics

from tests.fakes import BagOfWordsEmbedder, InMemoryDocumentStore
from tests.unit.test_generation_openai import SOURCES, answer_chunks, fake, generator  # noqa: F401

SETTINGS = Settings(chunk_size_words=50, chunk_overlap_words=10, embed_batch_size=4, ingest_max_attempts=3)
TEXT = " ".join(f"word{i}" for i in range(230))


def emf_blobs(captured: str) -> list[dict]:
    """The EMF objects among the printed lines."""
    blobs = []
    for line in captured.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def total(blob: dict, name: str) -> float:
    """The sum of the values recorded for ``name`` (EMF holds a value or a list of values)."""
    value = blob[name]
    return sum(value) if isinstance(value, list) else value


def metric_names(blob: dict) -> set[str]:
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    return {m["Name"] for m in directive["Metrics"]}


def dimensions(blob: dict) -> list[list[str]]:
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    return directive["Dimensions"]


def test_ingestion_emits_each_stage_and_the_chunk_count_with_the_tenant_as_a_property(capsys):
    store, embedder = InMemoryDocumentStore(), BagOfWordsEmbedder()
    org, doc = store.add(TEXT)
    with scoped_metrics():
        outcome = ingest_document(org, doc, store=store, embedder=embedder, settings=SETTINGS)
    assert outcome is Outcome.READY
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "RagPlatform"
    assert {
        "IngestChunkLatency",
        "IngestEmbedLatency",
        "IngestStoreLatency",
        "ChunksEmbedded",
    } <= metric_names(blob)
    assert total(blob, "ChunksEmbedded") == len(store.chunks[doc])
    for stage in ("IngestChunkLatency", "IngestEmbedLatency", "IngestStoreLatency"):
        assert total(blob, stage) >= 0
    # The tenant is searchable in the blob, and never a dimension (cardinality stays bounded).
    assert blob["org_id"] == str(org)
    assert all("org_id" not in dims for dims in dimensions(blob))


def test_a_document_that_fails_emits_no_chunk_count(capsys):
    store = InMemoryDocumentStore()
    org, doc = store.add("   ")
    with scoped_metrics():
        outcome = ingest_document(org, doc, store=store, embedder=BagOfWordsEmbedder(), settings=SETTINGS)
    assert outcome is Outcome.FAILED
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert "ChunksEmbedded" not in metric_names(blob)
    assert "IngestChunkLatency" in metric_names(blob)


def test_each_unit_of_work_prints_its_own_blob_with_its_own_tenant(capsys):
    store, embedder = InMemoryDocumentStore(), BagOfWordsEmbedder()
    first, second = store.add(TEXT), store.add("a short second document")
    for org, doc in (first, second):
        with scoped_metrics():
            ingest_document(org, doc, store=store, embedder=embedder, settings=SETTINGS)
    blobs = emf_blobs(capsys.readouterr().out)
    assert [b["org_id"] for b in blobs] == [str(first[0]), str(second[0])]
    assert [total(b, "ChunksEmbedded") for b in blobs] == [len(store.chunks[first[1]]), 1]


def test_provider_throttles_and_errors_are_counted_apart(capsys):
    class Flaky(BagOfWordsEmbedder):
        failures = [
            EmbeddingProviderError("slow down", retryable=True, status=429),
            EmbeddingProviderError("slow down", retryable=True, status=429),
            EmbeddingProviderError("bad gateway", retryable=True, status=502),
        ]

        def embed(self, texts):
            if self.failures:
                raise self.failures.pop(0)
            return super().embed(texts)

    with scoped_metrics():
        vectors = embed_in_batches(Flaky(), ["a", "b"], 10, 5, sleep=lambda _s: None)
    assert vectors.shape == (2, 64)
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert total(blob, "EmbeddingProviderThrottles") == 2
    assert total(blob, "EmbeddingProviderErrors") == 1
    assert blob["embedding_provider"] == "Flaky"


def test_a_final_provider_failure_is_counted_then_raised(capsys):
    embedder = BagOfWordsEmbedder(
        fail_times=1, error=EmbeddingProviderError("no", retryable=False, status=400)
    )
    with scoped_metrics(), pytest.raises(EmbeddingProviderError):
        embed_in_batches(embedder, ["a"], 10, 5, sleep=lambda _s: None)
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert total(blob, "EmbeddingProviderErrors") == 1
    assert "EmbeddingProviderThrottles" not in blob


def test_generation_throttles_and_errors_are_counted_per_attempt(fake, capsys):  # noqa: F811
    limited = ("status", 429, {}, {"error": {"message": "Rate limit reached", "type": "requests"}})
    broken = ("status", 500, {}, {"error": {"message": "overloaded", "type": "server_error"}})
    server = fake(limited, broken, ("stream", answer_chunks("fine [1]"), "done"))
    with scoped_metrics():
        events = list(generator(server, generation_max_retries=3).stream("q", SOURCES))
    assert events
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert total(blob, "GenerationProviderThrottles") == 1
    assert total(blob, "GenerationProviderErrors") == 1
    assert blob["generation_provider"] == "openai"


def test_generation_giving_up_counts_every_throttled_attempt(fake, capsys):  # noqa: F811
    limited = ("status", 429, {}, {"error": {"message": "Rate limit reached", "type": "requests"}})
    server = fake(limited, limited, limited)
    with scoped_metrics(), pytest.raises(ServiceUnavailable):
        list(generator(server, generation_max_retries=2).stream("q", SOURCES))
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert total(blob, "GenerationProviderThrottles") == 3


def test_generate_latency_counts_the_generators_time_not_the_consumers(monkeypatch, capsys):
    clock = [0.0]
    monkeypatch.setattr(query.time, "perf_counter", lambda: clock[0])

    def slow_generator():
        for piece in ("a", "b", "c"):
            clock[0] += 0.002  # 2 ms to produce each piece
            yield piece
        clock[0] += 0.001

    with scoped_metrics():
        for _ in query.timed_generation(slow_generator()):
            clock[0] += 1.0  # a slow client reading the stream
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert total(blob, "QueryGenerateLatency") == pytest.approx(7.0)


def test_generate_latency_is_recorded_when_the_client_goes_away(capsys):
    with scoped_metrics():
        events = query.timed_generation(iter(["a", "b", "c"]))
        next(events)
        events.close()
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert "QueryGenerateLatency" in blob


def test_a_stage_that_fails_still_records_its_latency(capsys):
    with scoped_metrics(), pytest.raises(RuntimeError), observability.stage(observability.QUERY_SEARCH):
        raise RuntimeError("database went away")
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert total(blob, "QuerySearchLatency") >= 0


def test_nothing_is_printed_for_a_unit_of_work_without_metrics(capsys):
    with scoped_metrics():
        pass
    assert emf_blobs(capsys.readouterr().out) == []


def test_correlation_id_keeps_a_well_formed_client_id():
    assert correlation_id_from({"x-request-id": "client-42.a:b_c"}) == "client-42.a:b_c"


@pytest.mark.parametrize("given", ["", "has space", "new\nline", '"quoted"', "x" * 129])
def test_correlation_id_replaces_a_malformed_client_id(given):
    made = correlation_id_from({"x-request-id": given})
    assert made != given
    uuid.UUID(made)


def test_correlation_id_falls_back_to_the_function_url_request_id():
    context = json.dumps({"requestId": "c0ffee-1234", "stage": "$default"})
    assert correlation_id_from({"x-amzn-request-context": context}) == "c0ffee-1234"
    uuid.UUID(correlation_id_from({"x-amzn-request-context": "not json"}))


def test_the_only_dimension_is_the_function(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ingest")
    store = InMemoryDocumentStore()
    org, doc = store.add(TEXT)
    with scoped_metrics():
        ingest_document(org, doc, store=store, embedder=BagOfWordsEmbedder(), settings=SETTINGS)
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert dimensions(blob) == [["service"]] and blob["service"] == "ingest"
