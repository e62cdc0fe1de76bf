"""Secrets that rotate while a process is warm: the database password and the JWT signing key.

Settings read secrets once per cold start (``ragcore.config.resolve_secrets``). A warm Lambda, and the
long-lived stream process, outlive a rotation, so two values are read again when they go stale:

* the database password, when PostgreSQL (or RDS Proxy) refuses it: :class:`DatabasePassword` reads
  the secret's current version, and its pending one while a rotation is between setting the new
  password and promoting it;
* the JWT signing key, every ``jwt_secret_refresh_seconds`` and when a token's signature matches no key
  known: :class:`JwtKeyRing`. Tokens are signed with the current key; the previous key (``AWSPREVIOUS``)
  still verifies tokens issued before the rotation reached every process, for as long as such a token
  can live, and never after.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from .config import Settings, get_settings

CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"
# A token whose signature matches no known key triggers a re-read at most this often, so a flood of
# forged tokens cannot turn into a flood of Secrets Manager calls.
MISMATCH_REFRESH_SECONDS = 10.0


@dataclass(frozen=True)
class SecretVersion:
    """One version of a secret: its string and when it was created (Unix time)."""

    value: str
    created_at: float


class SecretStore(Protocol):
    """Reads one staged version of a secret; None when no version has that stage."""

    def read(self, arn: str, stage: str = CURRENT) -> SecretVersion | None: ...


class SecretsManagerStore:
    """The Secrets Manager API (one client per region of the ARNs read)."""

    def __init__(self):
        self._clients: dict[str | None, object] = {}

    def _client(self, arn: str):
        import boto3

        region = arn.split(":")[3] if arn.startswith("arn:") else None
        if region not in self._clients:
            self._clients[region] = boto3.client("secretsmanager", region_name=region)
        return self._clients[region]

    def read(self, arn: str, stage: str = CURRENT) -> SecretVersion | None:
        """The version of ``arn`` labelled ``stage``, or None if no version carries that label."""
        client = self._client(arn)
        try:
            found = client.get_secret_value(SecretId=arn, VersionStage=stage)
        except client.exceptions.ResourceNotFoundException:
            if stage == CURRENT:
                raise
            return None
        created = found.get("CreatedDate")
        return SecretVersion(found["SecretString"], created.timestamp() if created else 0.0)


def _password_of(version: SecretVersion | None) -> str | None:
    return json.loads(version.value)["password"] if version is not None else None


class DatabasePassword:
    """The application role's password, read again from its secret when the database refuses it."""

    def __init__(self, arn: str, store: SecretStore, initial: str):
        self._arn, self._store = arn, store
        self._password = initial
        self._lock = threading.Lock()

    def current(self) -> str:
        """The password new connections use."""
        return self._password

    def refresh(self, refused: str) -> str | None:
        """A password other than ``refused`` to try, or None when the secret holds nothing newer.

        Single-user rotation sets the new password in the database before it labels that version
        AWSCURRENT: in between, only the AWSPENDING version works.
        """
        with self._lock:
            if self._password != refused:  # another thread already found the new one
                return self._password
            for stage in (CURRENT, PENDING):
                candidate = _password_of(self._store.read(self._arn, stage))
                if candidate and candidate != refused:
                    self._password = candidate
                    return candidate
            return None


@dataclass(frozen=True)
class JwtKeys:
    """The signing key and, during a rotation window, the key it replaced."""

    current: bytes
    previous: bytes | None = None
    rotated_at: float = 0.0

    def verification_keys(self, issued_at: float | None, now: float, settings: Settings) -> list[bytes]:
        """Keys that may verify a token issued at ``issued_at``, the current key first.

        The previous key only verifies tokens issued before every warm process can have seen the new key
        (rotation + refresh interval), and only until such a token would have expired anyway: a leaked old
        key cannot mint tokens that outlive the window.
        """
        keys = [self.current]
        if self.previous and issued_at is not None:
            stale_signers_until = self.rotated_at + settings.jwt_secret_refresh_seconds
            if issued_at <= stale_signers_until and now <= stale_signers_until + settings.jwt_ttl_seconds:
                keys.append(self.previous)
        return keys


def _require_length(secret: bytes, what: str) -> bytes:
    if len(secret) < 32:
        raise ValueError(f"{what} must be set and at least 32 bytes long")
    return secret


class JwtKeyRing:
    """The process's JWT keys: fixed when given as values, re-read from ``jwt_secret_arn`` otherwise."""

    def __init__(
        self, settings: Settings, store: SecretStore | None = None, clock: Callable[[], float] = time.time
    ):
        self._settings, self._store, self._clock = settings, store, clock
        self._lock = threading.Lock()
        self._keys: JwtKeys | None = None
        self._read_at = float("-inf")

    @property
    def rotates(self) -> bool:
        """Whether the keys come from Secrets Manager (and so are read again)."""
        return bool(self._settings.jwt_secret_arn and self._store is not None)

    def _static(self) -> JwtKeys:
        s = self._settings
        previous = s.jwt_previous_secret.get_secret_value().encode() or None
        return JwtKeys(s.require_jwt_secret(), previous, s.jwt_secret_rotated_at)

    def _read(self) -> JwtKeys:
        arn = self._settings.jwt_secret_arn
        current = self._store.read(arn, CURRENT)
        previous = self._store.read(arn, PREVIOUS)
        return JwtKeys(
            _require_length(current.value.encode(), "the JWT secret"),
            previous.value.encode() if previous and len(previous.value) >= 32 else None,
            current.created_at,
        )

    def keys(self) -> JwtKeys:
        """The keys to sign and verify with, read again once they are older than the refresh interval."""
        with self._lock:
            if not self.rotates:
                if self._keys is None:
                    self._keys = self._static()
                return self._keys
            now = self._clock()
            if self._keys is None or now - self._read_at >= self._settings.jwt_secret_refresh_seconds:
                self._keys, self._read_at = self._read(), now
            return self._keys

    def refresh_after_mismatch(self) -> bool:
        """Re-read the keys because a signature matched none of them; True when they changed.

        A token signed by a process that already saw a rotation this one has not seen yet looks forged
        until the keys are read again.
        """
        with self._lock:
            if not self.rotates or self._clock() - self._read_at < MISMATCH_REFRESH_SECONDS:
                return False
            before = self._keys
            self._keys, self._read_at = self._read(), self._clock()
            return self._keys != before


@lru_cache(maxsize=1)
def get_jwt_key_ring() -> JwtKeyRing:
    """The process-wide key ring for the process-wide settings."""
    settings = get_settings()
    store = SecretsManagerStore() if settings.jwt_secret_arn else None
    return JwtKeyRing(settings, store)


def database_password(settings: Settings, store: SecretStore | None = None) -> DatabasePassword | None:
    """The rotating password of the application role, when it comes from ``db_secret_arn``."""
    if not settings.db_secret_arn:
        return None
    return DatabasePassword(
        settings.db_secret_arn,
        store or SecretsManagerStore(),
        settings.app_role_password.get_secret_value(),
    )
