"""Logger, tracer and metrics shared by every function.

Logs are JSON lines (service name from POWERTOOLS_SERVICE_NAME); metrics are CloudWatch Embedded Metric
Format lines in the namespace "RagPlatform" (the dashboard and alarms of the stack read that namespace).

Metrics keep CloudWatch's cardinality bounded: the only dimension is the function's ``service``; the
tenant (``org_id``) travels as a property of the EMF blob, searchable with Logs Insights, never as a
dimension (see docs/decisions.md, "Metrics per stage, tenants as properties").

Domain code records with :func:`stage` (a latency in milliseconds, plus an X-Ray subsegment),
:func:`count` and :func:`provider_failure`. They go to the metrics of the current unit of work when one
was opened (:func:`scoped_metrics` around a request or an SQS message, :func:`request_metrics` for a
streamed answer, whose requests share a process), otherwise to the function-wide :data:`metrics` that
``@metrics.log_metrics`` flushes at the end of each invocation.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

NAMESPACE = "RagPlatform"

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)
# Outside Lambda (tests, the local stack) or with POWERTOOLS_TRACE_DISABLED, the tracer records nothing.
# Only the AWS SDK and the standard library's http.client (the OpenAI-compatible embedder) are patched,
# and only when tracing is on: the OpenAI SDK's calls are the generators' own subsegments, and patching
# httpx would import it into every function at cold start.
tracer = Tracer(auto_patch=False)
if not tracer.disabled:
    tracer.patch(("botocore", "httplib"))

# Latency metrics of each stage (milliseconds).
QUERY_EMBED = "QueryEmbedLatency"
QUERY_SEARCH = "QuerySearchLatency"
QUERY_GENERATE = "QueryGenerateLatency"
INGEST_CHUNK = "IngestChunkLatency"  # extraction and chunking
INGEST_EMBED = "IngestEmbedLatency"
INGEST_STORE = "IngestStoreLatency"
CHUNKS_EMBEDDED = "ChunksEmbedded"

ProviderKind = Literal["embedding", "generation"]

_current: ContextVar[Metrics | EphemeralMetrics | None] = ContextVar("ragcore_request_metrics", default=None)


def _sink() -> Metrics | EphemeralMetrics:
    return _current.get() or metrics


def count(name: str, value: float = 1, unit: str = MetricUnit.Count) -> None:
    """Add ``value`` to the metric ``name`` of the current request (or invocation)."""
    _sink().add_metric(name=name, unit=unit, value=value)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as the latency metric ``name`` (milliseconds), in an X-Ray subsegment of that name.

    The latency is recorded whether the block succeeds or fails: a stage that times out is exactly the
    one an operator wants to see.
    """
    started = time.perf_counter()
    try:
        with tracer.provider.in_subsegment(f"## {name}"):
            yield
    finally:
        count(name, (time.perf_counter() - started) * 1000, MetricUnit.Milliseconds)


def add_time(name: str, seconds: float) -> None:
    """Record ``seconds`` measured elsewhere as the latency metric ``name`` (milliseconds)."""
    count(name, seconds * 1000, MetricUnit.Milliseconds)


def provider_failure(kind: ProviderKind, provider: str, *, throttled: bool) -> None:
    """Count one failed call of an embedding or generation provider, retried or not.

    Throttles (HTTP 429, Bedrock's ThrottlingException) and other errors are separate metrics
    (``EmbeddingProviderThrottles``, ``GenerationProviderErrors``...): a throttle asks for more quota,
    an error for a look at the provider. The provider's name is a property, not a dimension.
    """
    prefix = "Embedding" if kind == "embedding" else "Generation"
    sink = _sink()
    sink.add_metadata(key=f"{kind}_provider", value=provider)
    count(f"{prefix}Provider{'Throttles' if throttled else 'Errors'}")


def tag_tenant(org_id: object) -> None:
    """Attach the tenant to the metrics of the current request as a property (not a dimension)."""
    _sink().add_metadata(key="org_id", value=str(org_id))


def request_metrics() -> EphemeralMetrics:
    """Open the metrics of one request in the current context (an ASGI request's own task): what is
    recorded in it, and in the worker threads it starts, stays apart from concurrent requests of the same
    process. The caller prints them with :func:`flush` when the request ends."""
    own = EphemeralMetrics(namespace=NAMESPACE)
    _current.set(own)
    return own


@contextmanager
def scoped_metrics() -> Iterator[EphemeralMetrics]:
    """Metrics of one unit of work (a request, one message of a batch) printed as their own EMF blob
    when the block ends, so that the tenant property of each blob is the tenant of its work."""
    own = EphemeralMetrics(namespace=NAMESPACE)
    token = _current.set(own)
    try:
        yield own
    finally:
        _current.reset(token)
        flush(own)


def flush(sink: Metrics | EphemeralMetrics) -> None:
    """Print ``sink``'s metrics as EMF and clear them; nothing when nothing was recorded."""
    if sink.metric_set:
        sink.flush_metrics()
    else:
        sink.clear_metrics()


# A correlation id a client sends (X-Request-Id) is kept when it looks like one: short, and only
# characters that cannot forge or break a log line.
REQUEST_ID_HEADER = "x-request-id"
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def correlation_id_from(headers: Mapping[str, str]) -> str:
    """The correlation id of a request that API Gateway did not see (the stream's Function URL).

    ``headers`` have lower-case names. In order: the client's ``X-Request-Id`` when well formed, the
    request id of the Function URL (the Lambda Web Adapter passes the request context in
    ``x-amzn-request-context``), or a new UUID.
    """
    given = headers.get(REQUEST_ID_HEADER, "")
    if _CORRELATION_ID.fullmatch(given):
        return given
    try:
        context = json.loads(headers.get("x-amzn-request-context", ""))
        request_id = context.get("requestId") if isinstance(context, dict) else None
    except ValueError:
        request_id = None
    if isinstance(request_id, str) and _CORRELATION_ID.fullmatch(request_id):
        return request_id
    return str(uuid.uuid4())


__all__ = [
    "CHUNKS_EMBEDDED",
    "INGEST_CHUNK",
    "INGEST_EMBED",
    "INGEST_STORE",
    "NAMESPACE",
    "REQUEST_ID_HEADER",
    "QUERY_EMBED",
    "QUERY_GENERATE",
    "QUERY_SEARCH",
    "MetricUnit",
    "add_time",
    "correlation_id_from",
    "count",
    "flush",
    "logger",
    "metrics",
    "provider_failure",
    "request_metrics",
    "scoped_metrics",
    "stage",
    "tag_tenant",
    "tracer",
]
