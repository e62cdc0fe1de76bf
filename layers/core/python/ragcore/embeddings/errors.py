"""Errors of the embedding providers."""

from __future__ import annotations


class EmbeddingProviderError(Exception):
    """A provider failed to embed. ``retryable`` says whether trying again later can help.

    ``retry_after`` (seconds), when the provider said so (HTTP Retry-After), is a lower bound for the
    next attempt.
    """

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class ModelIntegrityError(RuntimeError):
    """The local model's files are missing or are not the pinned ones: nothing is loaded."""
