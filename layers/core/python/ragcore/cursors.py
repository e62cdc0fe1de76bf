"""Opaque page cursors shared by every paged listing: a JSON list of strings, base64url without padding."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from .errors import BadRequest


def encode_cursor(values: list[str]) -> str:
    """The cursor holding ``values``."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[str]:
    """The ``size`` strings a cursor holds; BadRequest for anything else."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(values, list) and len(values) == size and all(isinstance(v, str) for v in values)):
            raise ValueError("not a cursor of this list")
        return values
    except (ValueError, TypeError, RecursionError, binascii.Error) as exc:
        raise BadRequest("invalid cursor") from exc


def encode_position(at: datetime, row_id: uuid.UUID) -> str:
    """The cursor of a keyset position ``(timestamp, id)``, for listings ordered newest first."""
    return encode_cursor([at.isoformat(), str(row_id)])


def decode_position(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The ``(timestamp, id)`` position a cursor points after; BadRequest for anything malformed."""
    at, row_id = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(at), uuid.UUID(row_id)
    except ValueError as exc:
        raise BadRequest("invalid cursor") from exc
