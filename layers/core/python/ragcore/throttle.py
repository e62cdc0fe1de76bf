"""Brute-force throttling of sign-in and registration, with the counts kept in the database.

Every Lambda environment sees the same counts because they live in one table, updated atomically by the
SECURITY DEFINER functions of migration 0004 (one upsert per key, in a fixed key order). An attempt is
counted *before* the password is checked, so concurrent guesses cannot all slip through between a check
and an increment; a successful sign-in then forgets the account's failures and gives the attempt back to
the client address.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from .config import Settings, get_settings
from .db import anonymous_transaction
from .errors import RateLimited


def throttle_key(scope: str, subject: str) -> str:
    """The stored key of ``subject`` under ``scope``: a sha256, so no e-mail or address is kept in clear."""
    return hashlib.sha256(f"{scope}:{subject}".encode()).hexdigest()


@dataclass(frozen=True)
class Limit:
    key: str
    max_attempts: int


class ThrottleStore(Protocol):
    def hit(self, limits: list[Limit], window_seconds: int) -> int:
        """Count one attempt against every key; seconds to wait (0 when all are within their limit)."""
        ...

    def forgive(self, reset: list[str], refund: list[str]) -> None:
        """Delete the ``reset`` keys' counts and take one attempt back from the ``refund`` keys."""
        ...


class PgThrottleStore:
    """ThrottleStore over PostgreSQL (table auth_throttle, reached only through its functions)."""

    def hit(self, limits: list[Limit], window_seconds: int) -> int:
        with anonymous_transaction() as conn:
            row = conn.execute(
                "SELECT auth_throttle_hit(%s, %s, %s) AS wait",
                ([lim.key for lim in limits], [lim.max_attempts for lim in limits], window_seconds),
            ).fetchone()
        return int(row["wait"])

    def forgive(self, reset: list[str], refund: list[str]) -> None:
        with anonymous_transaction() as conn:
            conn.execute("SELECT auth_throttle_forgive(%s, %s)", (reset, refund))


def _account(email: str) -> str:
    return throttle_key("login-account", email.strip().lower())


def _address(scope: str, client_address: str | None) -> str:
    # No address (a direct invocation, not through API Gateway) shares one bucket rather than escaping.
    return throttle_key(scope, client_address or "unknown")


class LoginThrottle:
    """Limits sign-in attempts per account and per client address, and registrations per address."""

    def __init__(self, store: ThrottleStore | None = None, settings: Settings | None = None):
        self.store = store or PgThrottleStore()
        self.settings = settings or get_settings()

    def before_login(self, email: str, client_address: str | None) -> None:
        """Count a sign-in attempt; RateLimited (with the wait) when the account or address is over its limit.

        The same for known and unknown e-mails, so the throttle reveals nothing about which accounts exist.
        """
        s = self.settings
        wait = self.store.hit(
            [
                Limit(_account(email), s.login_max_failures_per_account),
                Limit(_address("login-address", client_address), s.login_max_failures_per_address),
            ],
            s.login_window_seconds,
        )
        if wait:
            raise RateLimited("too many failed sign-in attempts; try again later", retry_after_seconds=wait)

    def login_succeeded(self, email: str, client_address: str | None) -> None:
        """Forget the account's failures; the address keeps only its failures."""
        self.store.forgive([_account(email)], [_address("login-address", client_address)])

    def before_register(self, client_address: str | None) -> None:
        """Count a registration attempt; RateLimited when the address made too many in the window."""
        s = self.settings
        wait = self.store.hit(
            [Limit(_address("register-address", client_address), s.register_max_per_address)],
            s.register_window_seconds,
        )
        if wait:
            raise RateLimited(
                "too many registrations from this address; try again later", retry_after_seconds=wait
            )
