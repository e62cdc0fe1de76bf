"""Per-tenant HNSW indexes: which tenants have one, and the maintenance that builds and drops them.

A tenant whose chunks reach ``tenant_index_min_chunks`` gets a partial HNSW index over
``WHERE org_id = '<its id>'``: a graph of its own vectors only, so other tenants can never crowd it out of
its results. Every other tenant is searched exactly (see ``dense``). The index is built with
``CREATE INDEX CONCURRENTLY``, which neither blocks ingestion nor can run inside a transaction, so it is
the job of a maintenance run (schema owner, outside any request), never of the ingest or query path.

The move is online because no row moves: the chunks stay where they are and only the path the search
takes changes. Until the registry says ``ready`` and PostgreSQL says the index is valid, the tenant is
searched exactly, so results stay exact during the build, and nothing can be lost or duplicated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from ..config import Settings, get_settings

INDEX_PREFIX = "document_chunks_hnsw_"
# One maintenance run at a time (two would build the same index twice).
_MAINTENANCE_LOCK_KEY = 0x52414732


def index_name(org_id: uuid.UUID) -> str:
    """The name of the tenant's partial HNSW index (fits PostgreSQL's 63-byte identifiers)."""
    return INDEX_PREFIX + uuid.UUID(str(org_id)).hex


# The tenant's registry row counts only when the index it names is valid and ready in the catalog: a
# concurrent build that failed leaves an invalid index behind, which must never be trusted.
READY_INDEX_SQL = """EXISTS (
    SELECT 1 FROM tenant_vector_indexes t
    JOIN pg_index i ON i.indexrelid = to_regclass(t.index_name)
    WHERE t.org_id = %(org)s AND t.state = 'ready' AND i.indisvalid AND i.indisready)"""


class IndexBuildError(RuntimeError):
    """A tenant's index is not valid after its build."""


@dataclass
class MaintenanceReport:
    """What one maintenance run did."""

    built: list[uuid.UUID] = field(default_factory=list)
    dropped: list[uuid.UUID] = field(default_factory=list)
    orphans_dropped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: bool = False


def maintain_tenant_indexes(
    owner_url: str | None = None, settings: Settings | None = None
) -> MaintenanceReport:
    """Build the indexes of tenants that crossed the threshold, drop those of tenants that shrank.

    Runs as the schema owner on a direct connection (not through RDS Proxy: the build takes minutes and
    sets session parameters). Idempotent, and safe to run on a schedule: a second concurrent run returns
    at once with ``skipped``; a build interrupted by a timeout is resumed or redone by the next run.
    """
    settings = settings or get_settings()
    owner_url = owner_url or settings.migration_database_url
    if not owner_url:
        raise RuntimeError("MIGRATION_DATABASE_URL is not configured")
    report = MaintenanceReport()
    with psycopg.connect(owner_url, autocommit=True) as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (_MAINTENANCE_LOCK_KEY,)).fetchone()[0]:
            report.skipped = True
            return report
        try:
            # Session settings are fine here: a direct connection of its own, closed after the run. An
            # invocation killed mid-build leaves its session behind holding the lock; once the build is
            # done and the session idle, idle_session_timeout ends it and frees the lock.
            conn.execute(
                sql.SQL("SET maintenance_work_mem = {}; SET idle_session_timeout = '60s'").format(
                    sql.Literal(f"{settings.tenant_index_build_memory_mb}MB")
                )
            )
            _maintain(conn, settings, report)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MAINTENANCE_LOCK_KEY,))
    return report


def _maintain(conn: psycopg.Connection, settings: Settings, report: MaintenanceReport) -> None:
    promote_at = settings.tenant_index_min_chunks
    demote_below = promote_at // 2
    # Sizes from the documents' chunk counts: a few rows per document instead of a count over all chunks.
    sizes = dict(
        conn.execute("SELECT org_id, sum(chunk_count)::bigint FROM documents GROUP BY org_id").fetchall()
    )
    registry = {
        org: state
        for org, state in conn.execute("SELECT org_id, state FROM tenant_vector_indexes").fetchall()
    }
    for org_id, state in registry.items():
        if state == "retiring" or sizes.get(org_id, 0) < demote_below:
            _retire(conn, org_id)
            report.dropped.append(org_id)
    for org_id, size in sorted(sizes.items(), key=lambda item: -item[1]):
        # A ready entry whose index is gone or invalid (dropped or broken by hand) is built again.
        needs_build = registry.get(org_id) in (None, "building") or (
            registry.get(org_id) == "ready" and not _index_state(conn, index_name(org_id))
        )
        if size >= promote_at and org_id not in report.dropped and needs_build:
            try:
                _build(conn, org_id, size, settings)
                report.built.append(org_id)
            except (psycopg.Error, IndexBuildError) as exc:
                report.failed[str(org_id)] = str(exc)
    # Indexes of tenants that were deleted (their registry row went with the organization).
    registered = {row[0] for row in conn.execute("SELECT index_name FROM tenant_vector_indexes").fetchall()}
    for (name,) in conn.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'document_chunks' AND indexname LIKE %s",
        (INDEX_PREFIX + "%",),
    ).fetchall():
        if name not in registered:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))
            report.orphans_dropped.append(name)


def _index_state(conn: psycopg.Connection, name: str) -> bool | None:
    """True when the index exists and is valid, False when it exists but is not, None when absent."""
    row = conn.execute(
        "SELECT i.indisvalid AND i.indisready FROM pg_index i WHERE i.indexrelid = to_regclass(%s)", (name,)
    ).fetchone()
    return None if row is None else bool(row[0])


def _build(conn: psycopg.Connection, org_id: uuid.UUID, size: int, settings: Settings) -> None:
    name = index_name(org_id)
    conn.execute(
        """INSERT INTO tenant_vector_indexes (org_id, index_name, state, chunk_count)
           VALUES (%s, %s, 'building', %s)
           ON CONFLICT (org_id) DO UPDATE SET state = 'building', chunk_count = EXCLUDED.chunk_count,
               updated_at = now()""",
        (org_id, name, size),
    )
    # Holding the maintenance lock, an invalid index of ours is the remains of a build that died.
    if _index_state(conn, name) is False:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))
    # The id is a validated UUID; the predicate must be a literal for the planner to match it at all.
    conn.execute(
        sql.SQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON document_chunks"
            " USING hnsw (embedding halfvec_cosine_ops) WITH (m = {m}, ef_construction = {ef})"
            " WHERE org_id = {org}::uuid"
        ).format(
            name=sql.Identifier(name),
            m=sql.Literal(settings.tenant_index_m),
            ef=sql.Literal(settings.tenant_index_ef_construction),
            org=sql.Literal(str(uuid.UUID(str(org_id)))),
        )
    )
    if not _index_state(conn, name):
        raise IndexBuildError(f"index {name} is not valid after its build")
    conn.execute(
        "UPDATE tenant_vector_indexes SET state = 'ready', updated_at = now() WHERE org_id = %s", (org_id,)
    )


def _retire(conn: psycopg.Connection, org_id: uuid.UUID) -> None:
    # Searches stop choosing the index once 'retiring' commits; DROP INDEX CONCURRENTLY then waits for the
    # transactions that might still be using it.
    conn.execute(
        "UPDATE tenant_vector_indexes SET state = 'retiring', updated_at = now() WHERE org_id = %s", (org_id,)
    )
    conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(index_name(org_id))))
    conn.execute("DELETE FROM tenant_vector_indexes WHERE org_id = %s", (org_id,))
