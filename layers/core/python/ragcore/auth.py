"""Identity: password hashing, signed tokens, registration, login and user management."""

from __future__ import annotations

import time
import uuid
from functools import lru_cache
from typing import Any

import bcrypt
import jwt
import psycopg

from .api_keys import KEY_COLUMNS, key_view, looks_like_api_key, principal_from_api_key
from .config import Settings, get_settings
from .db import anonymous_transaction, tenant_transaction
from .errors import Conflict, NotFound, Unauthenticated
from .principal import Principal, Role
from .secrets import JwtKeyRing, get_jwt_key_ring
from .throttle import LoginThrottle

# bcrypt reads at most 72 bytes of a password; longer ones are refused rather than silently truncated.
MAX_PASSWORD_BYTES = 72


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verifying against a real hash when the e-mail is unknown keeps login time independent of whether
    # the e-mail exists; computed lazily so cold starts do not pay for it.
    return hash_password("no such user")


def hash_password(password: str, rounds: int | None = None) -> str:
    """A bcrypt hash of ``password`` (cost from settings, at least 12)."""
    rounds = rounds or get_settings().password_bcrypt_rounds
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches ``password_hash``; never raises on malformed hashes."""
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:
        return False


def issue_token(
    principal: Principal,
    settings: Settings | None = None,
    now: int | None = None,
    *,
    keys: JwtKeyRing | None = None,
) -> str:
    """A signed HS256 JWT carrying sub, org_id, role, iss, aud, iat and exp, signed with the current key
    of ``keys`` (by default the process's key ring)."""
    ring = keys or _key_ring(settings)
    settings = settings or get_settings()
    issued_at = int(now if now is not None else time.time())
    claims = {
        "sub": str(principal.user_id),
        "org_id": str(principal.org_id),
        "role": principal.role,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued_at,
        "exp": issued_at + settings.jwt_ttl_seconds,
    }
    return jwt.encode(claims, ring.keys().current, algorithm="HS256")


def _key_ring(settings: Settings | None) -> JwtKeyRing:
    # Settings passed explicitly (tests, tools) carry their keys as values; the process-wide ring
    # re-reads rotated keys from Secrets Manager.
    return get_jwt_key_ring() if settings is None else JwtKeyRing(settings)


def _decode(token: str, key: bytes, settings: Settings) -> dict[str, Any]:
    return jwt.decode(
        token,
        key,
        algorithms=["HS256"],
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway=settings.jwt_leeway_seconds,
        options={"require": ["sub", "org_id", "role", "iss", "aud", "iat", "exp"]},
    )


def _verified_claims(token: str, ring: JwtKeyRing, settings: Settings, now: float) -> dict[str, Any]:
    """The claims of ``token`` checked against every key that may have signed it.

    After a rotation, a token may be signed by the previous key (issued before the rotation reached its
    signer) or by a key this process has not read yet (issued by a process that already has it).
    """
    try:
        issued_at = jwt.decode(token, options={"verify_signature": False}).get("iat")
        issued_at = float(issued_at) if isinstance(issued_at, int | float) else None
    except jwt.InvalidTokenError:
        issued_at = None
    for attempt in (1, 2):
        keys = ring.keys().verification_keys(issued_at, now, settings)
        for key in keys:
            try:
                return _decode(token, key, settings)
            except jwt.InvalidSignatureError:
                continue
        if attempt == 1 and not ring.refresh_after_mismatch():
            break
    raise jwt.InvalidSignatureError("Signature verification failed")


def verify_token(
    token: str, settings: Settings | None = None, now: float | None = None, *, keys: JwtKeyRing | None = None
) -> Principal:
    """The principal of a valid token; Unauthenticated for anything expired, forged or malformed.

    ``keys`` (by default the process's key ring) holds the current key and, during a rotation window,
    the previous one.
    """
    ring = keys or _key_ring(settings)
    settings = settings or get_settings()
    try:
        claims = _verified_claims(token, ring, settings, time.time() if now is None else now)
        role = claims["role"]
        if role not in ("admin", "member"):
            raise Unauthenticated("invalid token")
        return Principal(user_id=uuid.UUID(claims["sub"]), org_id=uuid.UUID(claims["org_id"]), role=role)
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("token expired") from exc
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise Unauthenticated("invalid token") from exc


def principal_from_authorization(header: str | None) -> Principal:
    """Parse ``Authorization: Bearer <token>``, where the token is a JWT or an API key (``rag_...``).

    A JWT is verified and its user confirmed to exist; the role comes from the database, not the token:
    a deleted user's tokens stop working at once, and a changed role applies from the next request. An
    API key is looked up by its hash (revoked, expired and unknown keys get the same 401 as a bad JWT).
    """
    if not header:
        raise Unauthenticated("missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <token>'")
    if looks_like_api_key(token.strip()):
        return principal_from_api_key(token.strip())
    claimed = verify_token(token.strip())
    with tenant_transaction(claimed.org_id) as conn:
        row = conn.execute(
            "SELECT role FROM users WHERE org_id = %s AND id = %s", (claimed.org_id, claimed.user_id)
        ).fetchone()
    if row is None:
        raise Unauthenticated("user no longer exists")
    return Principal(user_id=claimed.user_id, org_id=claimed.org_id, role=row["role"])


def _user_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "email": row["email"],
        "role": row["role"],
        "org_id": str(row["org_id"]),
        "created_at": row["created_at"].isoformat(),
    }


def _org_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "created_at": row["created_at"].isoformat()}


def _insert_user(conn: psycopg.Connection, org_id: uuid.UUID, email: str, password: str, role: Role):
    try:
        with conn.transaction():
            return conn.execute(
                """INSERT INTO users (id, org_id, email, password_hash, role)
                   VALUES (%s, %s, %s, %s, %s)
                   RETURNING id, org_id, email, role, created_at""",
                (uuid.uuid4(), org_id, email, hash_password(password), role),
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict("a user with this e-mail already exists", code="email_taken") from exc


def register(
    org_name: str,
    email: str,
    password: str,
    client_address: str | None = None,
    throttle: LoginThrottle | None = None,
) -> dict[str, Any]:
    """Create an organisation and its first admin; returns {token, user, org}.

    Each attempt counts against the client address (RateLimited past the limit): a taken e-mail is
    answered with Conflict, so registration is rate limited to keep account enumeration slow.
    """
    (throttle or LoginThrottle()).before_register(client_address)
    org_id = uuid.uuid4()
    with tenant_transaction(org_id) as conn:
        org = conn.execute(
            "INSERT INTO organizations (id, name) VALUES (%s, %s) RETURNING id, name, created_at",
            (org_id, org_name),
        ).fetchone()
        user = _insert_user(conn, org_id, email, password, "admin")
    principal = Principal(user_id=user["id"], org_id=org_id, role="admin")
    return {"token": issue_token(principal), "user": _user_view(user), "org": _org_view(org)}


def login(
    email: str, password: str, client_address: str | None = None, throttle: LoginThrottle | None = None
) -> dict[str, Any]:
    """Exchange e-mail and password for {token, user, org}; one error for every kind of failure.

    The attempt is counted per account and per client address before the password is checked
    (RateLimited with the wait once either is over its limit, whether or not the account exists); a
    successful sign-in clears the account's count.
    """
    throttle = throttle or LoginThrottle()
    throttle.before_login(email, client_address)
    with anonymous_transaction() as conn:
        found = conn.execute(
            "SELECT id, org_id, email, password_hash, role FROM auth_find_user_by_email(%s)", (email,)
        ).fetchone()
    if found is None:
        verify_password(password, _dummy_hash())
        raise Unauthenticated("invalid e-mail or password", code="invalid_credentials")
    if not verify_password(password, found["password_hash"]):
        raise Unauthenticated("invalid e-mail or password", code="invalid_credentials")
    throttle.login_succeeded(email, client_address)
    principal = Principal(user_id=found["id"], org_id=found["org_id"], role=found["role"])
    profile = me(principal)
    return {"token": issue_token(principal), **profile}


def me(principal: Principal) -> dict[str, Any]:
    """The caller's user and organisation; for an API key, {user: None, org, api_key} (a key belongs to
    the organisation, not to a person)."""
    if principal.kind == "api_key":
        return _key_profile(principal)
    with tenant_transaction(principal.org_id) as conn:
        user = conn.execute(
            "SELECT id, org_id, email, role, created_at FROM users WHERE org_id = %s AND id = %s",
            (principal.org_id, principal.user_id),
        ).fetchone()
        org = conn.execute(
            "SELECT id, name, created_at FROM organizations WHERE id = %s", (principal.org_id,)
        ).fetchone()
    if user is None or org is None:
        # The token is genuine but its user was deleted since it was issued.
        raise Unauthenticated("user no longer exists")
    return {"user": _user_view(user), "org": _org_view(org)}


def _key_profile(principal: Principal) -> dict[str, Any]:
    with tenant_transaction(principal.org_id) as conn:
        key = conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = %s AND id = %s",
            (principal.org_id, principal.key_id),
        ).fetchone()
        org = conn.execute(
            "SELECT id, name, created_at FROM organizations WHERE id = %s", (principal.org_id,)
        ).fetchone()
    if key is None or org is None:  # removed since the lookup a moment ago
        raise Unauthenticated("invalid token")
    return {"user": None, "org": _org_view(org), "api_key": key_view(key)}


def create_user(principal: Principal, email: str, password: str, role: Role) -> dict[str, Any]:
    """Add a user to the caller's organisation (admin users and admin API keys only)."""
    principal.require("manage_users")
    with tenant_transaction(principal.org_id) as conn:
        user = _insert_user(conn, principal.org_id, email, password, role)
    return _user_view(user)


def list_users(principal: Principal) -> list[dict[str, Any]]:
    """Every user of the caller's organisation, oldest first (admins only: the list is a directory of
    e-mail addresses; a member sees itself through ``me``)."""
    principal.require("manage_users")
    with tenant_transaction(principal.org_id) as conn:
        rows = conn.execute(
            """SELECT id, org_id, email, role, created_at FROM users
               WHERE org_id = %s ORDER BY created_at, id""",
            (principal.org_id,),
        ).fetchall()
    return [_user_view(r) for r in rows]


def delete_user(principal: Principal, user_id: uuid.UUID) -> None:
    """Remove a user of the caller's organisation (admins only; an admin cannot delete itself).

    The API keys the user created stay: they belong to the organisation (their creator becomes unknown).
    """
    principal.require("manage_users")
    if user_id == principal.user_id:
        raise Conflict("an admin cannot delete its own account", code="cannot_delete_self")
    with tenant_transaction(principal.org_id) as conn:
        deleted = conn.execute(
            "DELETE FROM users WHERE org_id = %s AND id = %s", (principal.org_id, user_id)
        ).rowcount
    if not deleted:
        raise NotFound("user not found")
