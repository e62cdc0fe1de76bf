"""PostgreSQL access: one connection pool per process and tenant-scoped transactions.

The tenant is set per transaction with ``set_config('app.org_id', ..., true)``: a warm Lambda reuses its
connections, so a session-level setting could leak one tenant's id into another tenant's request.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from .config import get_settings

_pool: ConnectionPool | None = None
_pool_lock = threading.Lock()


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)
    conn.row_factory = dict_row


def get_pool() -> ConnectionPool:
    """The process-wide pool for the application role (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            settings = get_settings()
            if not settings.database_url:
                raise RuntimeError("DATABASE_URL is not configured")
            _pool = ConnectionPool(
                settings.database_url,
                min_size=settings.db_pool_min_size,
                max_size=settings.db_pool_max_size,
                configure=_configure,
                open=True,
                name="ragcore",
            )
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
