"""Tenant API keys: created by admins, shown once, stored as a SHA-256 hash, revocable at once.

A secret is ``rag_`` followed by 43 base62 characters (256 random bits). Only ``sha256(secret)`` is
stored: with that much entropy a preimage search is hopeless, so a fast unkeyed hash protects a leaked
table as well as bcrypt would, at the cost of one hash and one unique-index probe per request (see
docs/decisions.md, "API keys are hashed with SHA-256").
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from .config import get_settings
from .db import anonymous_transaction, tenant_transaction
from .errors import Conflict, InvalidInput, NotFound, Unauthenticated
from .observability import logger
from .principal import Principal, Scope

SECRET_PREFIX = "rag_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_BYTES = 32
_BODY_LENGTH = 43  # 62**43 > 2**256: every 32-byte value fits
SECRET_PATTERN = re.compile(rf"^{SECRET_PREFIX}[0-9A-Za-z]{{{_BODY_LENGTH}}}$")
VISIBLE_PREFIX_LENGTH = 12  # "rag_" and 8 characters: enough to tell keys apart, ~48 bits not secret
# The one answer to any key that does not let the caller in, whatever the reason (the body of a bad JWT).
INVALID = "invalid token"

# What key_view shows: never the hash.
KEY_COLUMNS = "id, name, scope, prefix, created_at, last_used_at, expires_at"


def looks_like_api_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (rather than a JWT)."""
    return token.startswith(SECRET_PREFIX)


def generate_secret() -> str:
    """A new secret: ``rag_`` and 256 random bits in base62 (URL- and shell-safe, one double-click)."""
    value = int.from_bytes(secrets.token_bytes(_RANDOM_BYTES), "big")
    digits = []
    for _ in range(_BODY_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(_ALPHABET[digit])
    return SECRET_PREFIX + "".join(reversed(digits))


def hash_secret(secret: str) -> bytes:
    """The stored form of a secret: its SHA-256 digest."""
    return hashlib.sha256(secret.encode()).digest()


def key_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of a key: never its secret nor its hash."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "scope": row["scope"],
        "prefix": row["prefix"],
        "created_at": row["created_at"].isoformat(),
        "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
        "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
    }


def create_api_key(
    principal: Principal, name: str, scope: Scope, expires_at: datetime | None = None
) -> dict[str, Any]:
    """Create a key of the caller's organisation (admin users and admin keys only).

    Returns {api_key, secret}: the secret is in this answer and nowhere else, ever. Conflict when the
    organisation already holds ``API_KEYS_MAX_PER_ORG`` keys that are not revoked.
    """
    principal.require("manage_keys")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput("expires_at must carry a time zone (e.g. 2030-01-01T00:00:00Z)")
        if expires_at <= datetime.now(UTC):
            raise InvalidInput("expires_at must be in the future")
    secret = generate_secret()
    limit = get_settings().api_keys_max_per_org
    with tenant_transaction(principal.org_id) as conn:
        # The organisation's row is the lock: concurrent creations are counted one after the other.
        conn.execute("SELECT 1 FROM organizations WHERE id = %s FOR UPDATE", (principal.org_id,))
        held = conn.execute(
            "SELECT count(*) AS n FROM api_keys WHERE org_id = %s AND revoked_at IS NULL",
            (principal.org_id,),
        ).fetchone()["n"]
        if held >= limit:
            raise Conflict(
                f"the organisation holds {held} API keys, the most allowed; revoke one first",
                code="too_many_api_keys",
            )
        row = conn.execute(
            f"""INSERT INTO api_keys (id, org_id, name, scope, prefix, secret_hash, expires_at,
                                      created_by_user_id, created_by_key_id)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {KEY_COLUMNS}""",
            (
                uuid.uuid4(),
                principal.org_id,
                name,
                scope,
                secret[:VISIBLE_PREFIX_LENGTH],
                hash_secret(secret),
                expires_at,
                principal.user_id,
                principal.key_id,
            ),
        ).fetchone()
    logger.info("api key created", extra={"created_api_key_id": str(row["id"]), "scope": scope})
    return {"api_key": key_view(row), "secret": secret}


def list_api_keys(principal: Principal) -> list[dict[str, Any]]:
    """The organisation's keys that are not revoked (expired ones included, so they can be seen and
    removed), oldest first."""
    principal.require("manage_keys")
    with tenant_transaction(principal.org_id) as conn:
        rows = conn.execute(
            f"""SELECT {KEY_COLUMNS} FROM api_keys
                WHERE org_id = %s AND revoked_at IS NULL ORDER BY created_at, id""",
            (principal.org_id,),
        ).fetchall()
    return [key_view(r) for r in rows]


def revoke_api_key(principal: Principal, key_id: uuid.UUID) -> None:
    """Revoke a key at once: the next request made with it is refused. NotFound for an unknown, already
    revoked or other organisation's key."""
    principal.require("manage_keys")
    with tenant_transaction(principal.org_id) as conn:
        revoked = conn.execute(
            """UPDATE api_keys SET revoked_at = now()
               WHERE org_id = %s AND id = %s AND revoked_at IS NULL""",
            (principal.org_id, key_id),
        ).rowcount
    if not revoked:
        raise NotFound("API key not found")
    logger.info("api key revoked", extra={"revoked_api_key_id": str(key_id)})


def principal_from_api_key(secret: str) -> Principal:
    """The principal of a usable key; Unauthenticated, with one message for every reason, otherwise.

    A malformed key is refused without touching the database; a well-formed one costs one probe of the
    unique index on the hash (through a SECURITY DEFINER function: the tenant is not known yet).
    """
    if not SECRET_PATTERN.match(secret):
        raise Unauthenticated(INVALID)
    with anonymous_transaction() as conn:
        row = conn.execute(
            "SELECT id, org_id, scope FROM auth_find_api_key(%s, %s)",
            (hash_secret(secret), get_settings().api_key_touch_seconds),
        ).fetchone()
    if row is None:
        raise Unauthenticated(INVALID)
    return Principal.for_api_key(row["id"], row["org_id"], row["scope"])
