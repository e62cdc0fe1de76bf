"""Embedding providers behind one interface: ``local`` (all-MiniLM-L6-v2, offline, the default),
``openai`` (any OpenAI-compatible /embeddings endpoint) and ``bedrock`` (Amazon Titan Text Embeddings v2).

Callers use :func:`get_embedder` (one instance per process per provider configuration) and
:func:`embed_in_batches` (batches of at most 100 texts, retries with exponential backoff and full jitter
on retryable provider errors).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ragcore.embeddings.errors import EmbeddingProviderError, ModelIntegrityError

if TYPE_CHECKING:
    from ragcore.config import Settings

__all__ = [
    "MAX_BATCH_SIZE",
    "Embedder",
    "EmbeddingProviderError",
    "ModelIntegrityError",
    "backoff_delay",
    "embed_in_batches",
    "embed_once",
    "get_embedder",
    "reset_embedders",
]

MAX_BATCH_SIZE = 100


@runtime_checkable
class Embedder(Protocol):
    model_name: str  # stored with each chunk
    dimensions: int
    max_input_tokens: int  # content word pieces read per text, special tokens excluded

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (len(texts), dimensions), rows L2-normalised, in the order of ``texts``."""
        ...

    def count_word_pieces(self, words: Sequence[str]) -> list[int]:
        """How many word pieces each whitespace-separated word becomes."""
        ...


_cache: dict[tuple, Embedder] = {}
_cache_lock = threading.Lock()


def _config_key(settings: Settings) -> tuple:
    provider = settings.embedding_provider
    key: tuple = (provider, settings.embedding_model, settings.embedding_dimensions)
    if provider == "openai":
        # The key itself is not kept in the cache key, only whether it changed.
        import hashlib

        secret = settings.openai_api_key.get_secret_value().encode()
        key += (settings.openai_base_url, hashlib.sha256(secret).hexdigest())
    elif provider == "bedrock":
        key += (settings.aws_region, settings.aws_endpoint_url)
    else:
        key += (_model_cache_setting(settings),)
    return key


def _model_cache_setting(settings: Settings) -> str | None:
    """The build cache directory configured in the settings, or None for the default location."""
    return settings.model_cache_dir or None


def _create(settings: Settings) -> Embedder:
    provider = settings.embedding_provider
    if provider == "local":
        from ragcore.embeddings.local import LocalEmbedder
        from ragcore.embeddings.weights import DIMENSIONS, MODEL_NAME

        if settings.embedding_model != MODEL_NAME or settings.embedding_dimensions != DIMENSIONS:
            raise ValueError(
                f"the local provider serves {MODEL_NAME} with {DIMENSIONS} dimensions, not "
                f"{settings.embedding_model!r} with {settings.embedding_dimensions}"
            )
        return LocalEmbedder(cache_dir=_model_cache_setting(settings))
    if provider == "openai":
        from ragcore.embeddings.openai_compat import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    if provider == "bedrock":
        from ragcore.embeddings.bedrock import BedrockEmbedder

        return BedrockEmbedder.from_settings(settings)
    raise ValueError(f"unknown embedding provider {provider!r}")


def get_embedder(settings: Settings | None = None) -> Embedder:
    """The process-wide embedder for this provider configuration (built on first use, then reused)."""
    if settings is None:
        from ragcore.config import get_settings

        settings = get_settings()
    key = _config_key(settings)
    embedder = _cache.get(key)
    if embedder is None:
        with _cache_lock:
            embedder = _cache.get(key)
            if embedder is None:
                embedder = _create(settings)
                _cache[key] = embedder
    return embedder


def reset_embedders() -> None:
    """Forget the cached embedders (tests)."""
    with _cache_lock:
        _cache.clear()


def backoff_delay(
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 20.0,
    rng: Callable[[], float] = random.random,
    retry_after: float | None = None,
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)].

    A provider's Retry-After is honoured as a lower bound (itself capped at ``cap``).
    """
    delay = rng() * min(cap, base * (2**attempt))
    if retry_after is not None:
        delay = max(delay, min(cap, retry_after))
    return delay


def embed_once(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """One call of the provider, traced (an X-Ray subsegment) and counted: a failure adds to the
    provider error or throttle metrics (see ragcore.observability), then propagates unchanged."""
    from ragcore.observability import provider_failure, tracer

    with tracer.provider.in_subsegment("## embedding provider") as subsegment:
        subsegment.put_annotation("provider", type(embedder).__name__)
        try:
            return embedder.embed(texts)
        except EmbeddingProviderError as error:
            provider_failure("embedding", type(embedder).__name__, throttled=error.status == 429)
            raise


def embed_in_batches(
    embedder: Embedder,
    texts: Sequence[str],
    batch_size: int,
    max_retries: int,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    base_delay: float = 0.5,
    max_delay: float = 20.0,
) -> np.ndarray:
    """Embed ``texts`` in batches of at most ``batch_size`` (and never more than 100).

    A retryable :class:`EmbeddingProviderError` (throttling, 5xx, timeouts) is retried up to
    ``max_retries`` times per batch with exponential backoff and full jitter; a non-retryable one, or
    the last failure, propagates. ``sleep`` and ``rng`` are injectable so tests never wait.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if max_retries < 0:
        raise ValueError("max_retries must be >= 0")
    size = min(batch_size, MAX_BATCH_SIZE)
    texts = list(texts)
    out = np.zeros((len(texts), embedder.dimensions), dtype=np.float32)
    for start in range(0, len(texts), size):
        batch = texts[start : start + size]
        attempt = 0
        while True:
            try:
                vectors = np.asarray(embed_once(embedder, batch), dtype=np.float32)
                break
            except EmbeddingProviderError as error:
                if not error.retryable or attempt >= max_retries:
                    raise
                sleep(
                    backoff_delay(
                        attempt, base=base_delay, cap=max_delay, rng=rng, retry_after=error.retry_after
                    )
                )
                attempt += 1
        if vectors.shape != (len(batch), embedder.dimensions):
            raise EmbeddingProviderError(
                f"provider returned shape {vectors.shape} for {len(batch)} texts", retryable=False
            )
        out[start : start + len(batch)] = vectors
    return out
