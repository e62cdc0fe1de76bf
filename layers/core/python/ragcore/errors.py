"""Domain errors. Each carries a stable machine-readable code; HTTP mapping happens once, in ragcore.api."""

from __future__ import annotations


class RagError(Exception):
    """Base of every error the platform reports to a client."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(RagError):
    """The request could not be understood (malformed JSON, bad cursor)."""

    code = "bad_request"


class InvalidInput(RagError):
    """The request was understood but a value is not acceptable."""

    code = "validation_error"


class Unauthenticated(RagError):
    """No credentials, or credentials that do not verify."""

    code = "unauthorized"


class Forbidden(RagError):
    """Authenticated, but the role does not allow the action."""

    code = "forbidden"


class NotFound(RagError):
    """The resource does not exist for this tenant (other tenants' resources are indistinguishable)."""

    code = "not_found"


class Conflict(RagError):
    """The action clashes with existing state (taken e-mail)."""

    code = "conflict"


class PayloadTooLarge(RagError):
    """The request body exceeds what the platform accepts."""

    code = "payload_too_large"


class RateLimited(RagError):
    """Too many requests; retry after the given number of seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ServiceUnavailable(RagError):
    """A dependency (queue, provider) is temporarily unavailable."""

    code = "service_unavailable"


class ExtractionFailed(RagError):
    """A file cannot be turned into text: unsupported type, encrypted, corrupt, empty or over a limit.

    The message is the reason shown to the user as the document's ``error``; retrying will not help.
    """

    code = "extraction_failed"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StoredObjectMissing(RagError):
    """An uploaded file is not (or no longer) in the bucket. Never an HTTP answer: ingestion handles it."""

    code = "object_missing"


class QuotaExceeded(Conflict):
    """The organisation holds as many documents (or chunks) as its quota allows."""

    code = "document_quota_exceeded"


class ChunkQuotaExceeded(QuotaExceeded):
    """Storing a document's chunks would take the organisation over its chunk quota."""

    code = "chunk_quota_exceeded"


class StorageQuotaExceeded(PayloadTooLarge):
    """The content would take the organisation over its storage quota (bytes)."""

    code = "storage_quota_exceeded"


class QueryQuotaExceeded(RateLimited):
    """The organisation asked as many questions as its quota allows in the current day or minute."""

    code = "query_quota_exceeded"
