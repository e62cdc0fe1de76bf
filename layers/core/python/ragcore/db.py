"""PostgreSQL access: one connection pool per process and tenant-scoped transactions.

The tenant is set per transaction with ``set_config('app.org_id', ..., true)``: a warm Lambda reuses its
connections, so a session-level setting could leak one tenant's id into another tenant's request.

A warm process outlives the things its connections depend on. RDS Proxy closes a client connection
idle for 30 minutes, and a connection can die with its server: every connection is checked before it
is handed out and replaced when dead. The password rotates every 30 days: a connection refused for
its password reads the secret again and retries once with the new one (see ragcore.secrets).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from .config import Settings, get_settings
from .secrets import DatabasePassword, database_password

# SQLSTATE 28P01 (invalid_password) and 28000 (invalid_authorization_specification): what PostgreSQL and
# RDS Proxy answer to a stale password.
_AUTH_FAILURES = ("28P01", "28000")

_pool: ConnectionPool | None = None
_pool_lock = threading.Lock()


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)
    conn.row_factory = dict_row


def _refused_credentials(exc: psycopg.OperationalError) -> bool:
    if exc.sqlstate in _AUTH_FAILURES:
        return True
    # libpq reports a failed login before a session exists, often without a SQLSTATE.
    return "password authentication failed" in str(exc)


def connection_class(password: DatabasePassword | None) -> type[psycopg.Connection]:
    """The connection class of the pool: with a rotating password, a refused login retries once with
    the password the secret holds now."""
    if password is None:
        return psycopg.Connection

    class RotatingPasswordConnection(psycopg.Connection):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any):  # type: ignore[override]
            tried = password.current()
            try:
                return super().connect(conninfo, **{**kwargs, "password": tried})
            except psycopg.OperationalError as exc:
                if not _refused_credentials(exc):
                    raise
                fresh = password.refresh(tried)
                if fresh is None:
                    raise
                return super().connect(conninfo, **{**kwargs, "password": fresh})

    return RotatingPasswordConnection


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection options from the settings (server-side prepared statements off behind RDS Proxy)."""
    return {} if settings.db_prepared_statements else {"prepare_threshold": None}


def create_pool(settings: Settings, password: DatabasePassword | None = None) -> ConnectionPool:
    """A pool for the application role whose connections are checked before use and re-authenticated
    after a password rotation."""
    return ConnectionPool(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        kwargs=connection_kwargs(settings),
        connection_class=connection_class(password),
        configure=_configure,
        # One empty query per checkout: a connection the proxy or the server closed is replaced
        # instead of failing the request that gets it.
        check=ConnectionPool.check_connection,
        open=True,
        name="ragcore",
    )


def get_pool() -> ConnectionPool:
    """The process-wide pool for the application role (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            settings = get_settings()
            if not settings.database_url:
                raise RuntimeError("DATABASE_URL is not configured")
            _pool = create_pool(settings, database_password(settings))
        return _pool


def close_pool() -> None:
    """Close the pool (tests and the local stack call this when the database goes away)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


@contextmanager
def tenant_transaction(org_id: uuid.UUID | str) -> Iterator[psycopg.Connection]:
    """A transaction in which row-level security admits only the rows of ``org_id``."""
    with get_pool().connection() as conn, conn.transaction():
        conn.execute("SELECT set_config('app.org_id', %s, true)", (str(org_id),))
        yield conn


@contextmanager
def anonymous_transaction() -> Iterator[psycopg.Connection]:
    """A transaction with no tenant set: RLS hides every tenant row (used for login lookups)."""
    with get_pool().connection() as conn, conn.transaction():
        yield conn
