"""Per-tenant quotas and usage: what an organisation holds and spends, and the limits that apply to it.

The counters live in one row per organisation (``org_usage``, migration 0009) and every change is a
single conditional UPDATE (``SET used = used + n WHERE used + n <= limit``): PostgreSQL re-checks the
condition on the latest row version after waiting for a concurrent writer's lock, so a limit holds across
any number of Lambda environments. Limits are the configured defaults unless the operator stored an
override for the organisation (``org_quotas``).

What is counted, and when (see docs/decisions.md, "What the usage counters count"):
- documents and stored bytes: reserved when a document is created, in the transaction that inserts it,
  and given back when it is deleted;
- chunks and embedding tokens of ingestion: in the transaction that stores the chunks, so a retried or
  re-delivered ingestion counts once; chunks are checked before anything is embedded, too;
- queries: counted once per request, before retrieval (a refused query costs nothing); the question's
  embedding tokens with it; generation tokens from the generator's usage report when the answer is done.
What is spent (questions, tokens) is also added to the day's row of ``org_usage_days`` in the same
transaction, so the days add up to the totals.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from .config import Settings, get_settings
from .db import tenant_transaction
from .errors import (
    ChunkQuotaExceeded,
    InvalidInput,
    QueryQuotaExceeded,
    QuotaExceeded,
    StorageQuotaExceeded,
)
from .principal import Principal

# The limits an operator can override per organisation, and their columns in org_quotas.
OVERRIDE_COLUMNS = {
    "documents": "max_documents",
    "chunks": "max_chunks",
    "stored_bytes": "max_stored_bytes",
    "queries_per_day": "max_queries_per_day",
    "queries_per_minute": "max_queries_per_minute",
}


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one organisation."""

    documents: int
    chunks: int
    stored_bytes: int
    queries_per_day: int
    queries_per_minute: int


def _ensure_row(conn: psycopg.Connection, org_id: uuid.UUID) -> None:
    # Organisations created after the migration get their row on first use.
    conn.execute("INSERT INTO org_usage (org_id) VALUES (%s) ON CONFLICT (org_id) DO NOTHING", (org_id,))


def _limit(name: str) -> str:
    """SQL for the limit ``name`` of the organisation %(org)s: its override, else the default passed as
    %(default_<name>)s (read in the statement that checks it: one round trip when within the limit)."""
    column = OVERRIDE_COLUMNS[name]
    return f"coalesce((SELECT q.{column} FROM org_quotas q WHERE q.org_id = %(org)s), %(default_{name})s)"


def _defaults(settings: Settings | None = None) -> dict[str, int]:
    s = settings or get_settings()
    return {
        "default_documents": s.quota_max_documents,
        "default_chunks": s.quota_max_chunks,
        "default_stored_bytes": s.quota_max_stored_bytes,
        "default_queries_per_day": s.quota_max_queries_per_day,
        "default_queries_per_minute": s.quota_max_queries_per_minute,
    }


def _update_own_row(conn: psycopg.Connection, org_id: uuid.UUID, sql: str, params: dict) -> dict | None:
    """Run a conditional UPDATE of the organisation's counters; when it matched nothing, make sure the row
    exists and run it once more.

    The second run is not only for a missing row: a row that a concurrent transaction inserted after
    this statement's snapshot was taken is invisible to the first UPDATE, yet present a moment later. The
    insert (ON CONFLICT DO NOTHING) waits for such a transaction, and the second UPDATE, with a snapshot
    of its own, then sees the row: a refusal always reflects committed counts.
    """
    params = {**_defaults(), **params, "org": org_id}
    row = conn.execute(sql, params).fetchone()
    if row is None:
        _ensure_row(conn, org_id)
        row = conn.execute(sql, params).fetchone()
    return row


def _add_to_day(
    conn: psycopg.Connection,
    org_id: uuid.UUID,
    *,
    queries: int = 0,
    embedding_tokens: int = 0,
    generation_input_tokens: int = 0,
    generation_output_tokens: int = 0,
) -> None:
    """Add to the organisation's spending of the current UTC day, in the caller's transaction (the one
    that changes the totals, so the days always add up to them)."""
    conn.execute(
        """INSERT INTO org_usage_days AS d (org_id, day, queries, embedding_tokens, generation_input_tokens,
                                            generation_output_tokens)
           VALUES (%s, (now() AT TIME ZONE 'UTC')::date, %s, %s, %s, %s)
           ON CONFLICT (org_id, day) DO UPDATE SET
               queries = d.queries + EXCLUDED.queries,
               embedding_tokens = d.embedding_tokens + EXCLUDED.embedding_tokens,
               generation_input_tokens = d.generation_input_tokens + EXCLUDED.generation_input_tokens,
               generation_output_tokens = d.generation_output_tokens + EXCLUDED.generation_output_tokens""",
        (org_id, queries, embedding_tokens, generation_input_tokens, generation_output_tokens),
    )


def limits_for(conn: psycopg.Connection, org_id: uuid.UUID, settings: Settings | None = None) -> Limits:
    """The organisation's limits: its overrides where the operator set one, the configured defaults else."""
    s = settings or get_settings()
    row = (
        conn.execute(
            """SELECT max_documents, max_chunks, max_stored_bytes, max_queries_per_day, max_queries_per_minute
           FROM org_quotas WHERE org_id = %s""",
            (org_id,),
        ).fetchone()
        or {}
    )

    def pick(column: str, default: int) -> int:
        value = row.get(column)
        return default if value is None else int(value)

    return Limits(
        documents=pick("max_documents", s.quota_max_documents),
        chunks=pick("max_chunks", s.quota_max_chunks),
        stored_bytes=pick("max_stored_bytes", s.quota_max_stored_bytes),
        queries_per_day=pick("max_queries_per_day", s.quota_max_queries_per_day),
        queries_per_minute=pick("max_queries_per_minute", s.quota_max_queries_per_minute),
    )


def reserve_document_in(conn: psycopg.Connection, org_id: uuid.UUID, size_bytes: int) -> None:
    """Count one more document of ``size_bytes`` against the organisation's quotas, inside the caller's
    tenant transaction (the one that inserts the document, so both commit or neither does).

    QuotaExceeded (409) when it already holds its most documents, StorageQuotaExceeded (413) when the
    bytes would exceed its storage quota.
    """
    if size_bytes < 0:
        raise ValueError("size_bytes must not be negative")
    row = _update_own_row(
        conn,
        org_id,
        f"""UPDATE org_usage SET documents = documents + 1, stored_bytes = stored_bytes + %(size)s,
                   updated_at = now()
            WHERE org_id = %(org)s AND documents + 1 <= {_limit("documents")}
              AND stored_bytes + %(size)s <= {_limit("stored_bytes")}
            RETURNING documents""",
        {"size": size_bytes},
    )
    if row is not None:
        return
    limits = limits_for(conn, org_id)
    held = conn.execute(
        "SELECT documents, stored_bytes FROM org_usage WHERE org_id = %s", (org_id,)
    ).fetchone()
    if held["documents"] + 1 > limits.documents:
        raise QuotaExceeded(
            f"the organisation holds {held['documents']} documents, the most its quota allows "
            f"({limits.documents}); delete some or ask the operator for a larger quota"
        )
    raise StorageQuotaExceeded(
        f"the document's {size_bytes} bytes would take the organisation's stored content from "
        f"{held['stored_bytes']} bytes over its quota of {limits.stored_bytes} bytes"
    )


def reserve_document(principal: Principal, size_bytes: int, conn: psycopg.Connection | None = None) -> None:
    """Count a new document of ``size_bytes`` against the caller's organisation, before anything is
    stored or embedded; raises QuotaExceeded (409) or StorageQuotaExceeded (413).

    Pass ``conn`` (a tenant transaction of the caller's organisation) to make the reservation part of the
    transaction that inserts the document; without it the reservation commits on its own and the caller
    must :func:`release_document` it if the document is not created after all.
    """
    if conn is not None:
        reserve_document_in(conn, principal.org_id, size_bytes)
        return
    with tenant_transaction(principal.org_id) as own:
        reserve_document_in(own, principal.org_id, size_bytes)


def release_document(conn: psycopg.Connection, org_id: uuid.UUID, size_bytes: int, chunks: int) -> None:
    """Give back what a deleted document held (one document, its bytes and its chunks), inside the
    transaction that deletes it."""
    conn.execute(
        """UPDATE org_usage SET documents = greatest(documents - 1, 0),
                  stored_bytes = greatest(stored_bytes - %s, 0), chunks = greatest(chunks - %s, 0),
                  updated_at = now()
           WHERE org_id = %s""",
        (size_bytes, chunks, org_id),
    )


def _chunk_refusal(held: int, adding: int, limit: int) -> ChunkQuotaExceeded:
    return ChunkQuotaExceeded(
        f"chunk_quota_exceeded: the document makes {adding} more chunks and the organisation holds "
        f"{held} of the {limit} its quota allows"
    )


def check_chunks(conn: psycopg.Connection, org_id: uuid.UUID, delta: int) -> None:
    """Refuse (ChunkQuotaExceeded) a change of ``delta`` chunks that would exceed the quota, without
    counting it: the check made before a document is embedded."""
    if delta <= 0:
        return
    limits = limits_for(conn, org_id)
    row = conn.execute("SELECT chunks FROM org_usage WHERE org_id = %s", (org_id,)).fetchone()
    held = row["chunks"] if row else 0
    if held + delta > limits.chunks:
        raise _chunk_refusal(held, delta, limits.chunks)


def commit_chunks(conn: psycopg.Connection, org_id: uuid.UUID, delta: int, embedding_tokens: int) -> None:
    """Count ``delta`` more chunks (negative when a re-ingested document shrank) and the embedding tokens
    spent on them, atomically and within the quota, in the transaction that stores the chunks;
    ChunkQuotaExceeded when they do not fit (the caller's transaction then rolls back)."""
    row = _update_own_row(
        conn,
        org_id,
        f"""UPDATE org_usage SET chunks = greatest(chunks + %(delta)s, 0),
                   embedding_tokens = embedding_tokens + %(tokens)s, updated_at = now()
            WHERE org_id = %(org)s AND (%(delta)s <= 0 OR chunks + %(delta)s <= {_limit("chunks")})
            RETURNING chunks""",
        {"delta": delta, "tokens": max(embedding_tokens, 0)},
    )
    if row is None:
        limits = limits_for(conn, org_id)
        held = conn.execute("SELECT chunks FROM org_usage WHERE org_id = %s", (org_id,)).fetchone()
        raise _chunk_refusal(held["chunks"], delta, limits.chunks)
    if embedding_tokens > 0:
        _add_to_day(conn, org_id, embedding_tokens=embedding_tokens)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def count_query(principal: Principal, embedding_tokens: int = 0) -> None:
    """Count one question of the caller's organisation against its daily and per-minute quotas (with the
    tokens spent embedding it); QueryQuotaExceeded (429, with the seconds until the window that is full
    ends) when either is used up. A refused question is not counted."""
    org_id = principal.org_id
    with tenant_transaction(org_id) as conn:
        row = _update_own_row(
            conn,
            org_id,
            f"""WITH w AS (SELECT (now() AT TIME ZONE 'UTC')::date AS day,
                                  date_trunc('minute', now()) AS minute)
                UPDATE org_usage u SET
                    queries_in_day = CASE WHEN u.queries_day = w.day THEN u.queries_in_day + 1 ELSE 1 END,
                    queries_day = w.day,
                    queries_in_minute = CASE WHEN u.queries_minute = w.minute
                                             THEN u.queries_in_minute + 1 ELSE 1 END,
                    queries_minute = w.minute,
                    queries_total = u.queries_total + 1,
                    embedding_tokens = u.embedding_tokens + %(tokens)s,
                    updated_at = now()
                FROM w
                WHERE u.org_id = %(org)s
                  AND (CASE WHEN u.queries_day = w.day THEN u.queries_in_day ELSE 0 END)
                      < {_limit("queries_per_day")}
                  AND (CASE WHEN u.queries_minute = w.minute THEN u.queries_in_minute ELSE 0 END)
                      < {_limit("queries_per_minute")}
                RETURNING u.queries_in_day""",
            {"tokens": max(embedding_tokens, 0)},
        )
        if row is not None:
            _add_to_day(conn, org_id, queries=1, embedding_tokens=max(embedding_tokens, 0))
            return
        limits = limits_for(conn, org_id)
        held = conn.execute(
            """SELECT queries_day = (now() AT TIME ZONE 'UTC')::date AND queries_in_day >= %s AS day_full,
                      now() AS now
               FROM org_usage WHERE org_id = %s""",
            (limits.queries_per_day, org_id),
        ).fetchone()
    now = held["now"].astimezone(UTC)
    if held["day_full"]:
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        raise QueryQuotaExceeded(
            f"the organisation asked its {limits.queries_per_day} questions of today (UTC); "
            "the quota renews at midnight UTC",
            retry_after_seconds=_seconds_until(midnight, now),
        )
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    raise QueryQuotaExceeded(
        f"the organisation asked its {limits.queries_per_minute} questions of this minute",
        retry_after_seconds=_seconds_until(next_minute, now),
    )


def generation_tokens(report: dict[str, Any] | None) -> tuple[int, int]:
    """(input, output) tokens of a generator's usage report, 0 for what it does not report."""
    if not report:
        return 0, 0
    values = []
    for key in ("input_tokens", "output_tokens"):
        value = report.get(key)
        # Providers that report nothing say None; anything but a positive count adds nothing.
        counted = isinstance(value, int) and not isinstance(value, bool) and value > 0
        values.append(value if counted else 0)
    return values[0], values[1]


def record_generation(principal: Principal, *reports: dict[str, Any] | None) -> None:
    """Add the tokens of the generator's usage reports (``input_tokens``, ``output_tokens``; a provider
    that reports none counts 0) to the caller's organisation."""
    spent = [generation_tokens(r) for r in reports]
    tokens_in, tokens_out = sum(i for i, _ in spent), sum(o for _, o in spent)
    if not tokens_in and not tokens_out:
        return
    with tenant_transaction(principal.org_id) as conn:
        _ensure_row(conn, principal.org_id)
        conn.execute(
            """UPDATE org_usage SET generation_input_tokens = generation_input_tokens + %s,
                      generation_output_tokens = generation_output_tokens + %s, updated_at = now()
               WHERE org_id = %s""",
            (tokens_in, tokens_out, principal.org_id),
        )
        _add_to_day(
            conn, principal.org_id, generation_input_tokens=tokens_in, generation_output_tokens=tokens_out
        )


MAX_USAGE_DAYS = 90


def get_usage(principal: Principal, days: int = 7) -> dict[str, Any]:
    """The caller's organisation's counters, the limits that apply to it, and what it spent on each of
    the last ``days`` UTC days that saw any use, newest first (any member, admin or key)."""
    principal.require("read_usage")
    if not 1 <= days <= MAX_USAGE_DAYS:
        raise InvalidInput(f"days must be between 1 and {MAX_USAGE_DAYS}")
    with tenant_transaction(principal.org_id) as conn:
        limits = limits_for(conn, principal.org_id)
        row = conn.execute(
            """SELECT documents, chunks, stored_bytes, embedding_tokens, generation_input_tokens,
                      generation_output_tokens, queries_total,
                      CASE WHEN queries_day = (now() AT TIME ZONE 'UTC')::date
                           THEN queries_in_day ELSE 0 END AS queries_today,
                      CASE WHEN queries_minute = date_trunc('minute', now())
                           THEN queries_in_minute ELSE 0 END AS queries_this_minute,
                      (now() AT TIME ZONE 'UTC')::date AS day
               FROM org_usage WHERE org_id = %s""",
            (principal.org_id,),
        ).fetchone()
        if row is None:
            day = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date AS day").fetchone()["day"]
            row = dict.fromkeys(
                (
                    "documents",
                    "chunks",
                    "stored_bytes",
                    "embedding_tokens",
                    "generation_input_tokens",
                    "generation_output_tokens",
                    "queries_total",
                    "queries_today",
                    "queries_this_minute",
                ),
                0,
            ) | {"day": day}
        history = conn.execute(
            """SELECT day, queries, embedding_tokens, generation_input_tokens, generation_output_tokens
               FROM org_usage_days
               WHERE org_id = %s AND day > (now() AT TIME ZONE 'UTC')::date - %s::integer
               ORDER BY day DESC""",
            (principal.org_id, days),
        ).fetchall()
    usage = {key: int(value) for key, value in row.items() if key != "day"}
    usage["generation_tokens"] = usage["generation_input_tokens"] + usage["generation_output_tokens"]
    usage["day"] = row["day"].isoformat()
    spent = [
        {**{key: int(value) for key, value in day.items() if key != "day"}, "day": day["day"].isoformat()}
        for day in history
    ]
    return {"usage": usage, "limits": asdict(limits), "days": spent}


def set_overrides(owner_url: str, org_id: uuid.UUID | str, limits: dict[str, Any]) -> dict[str, Any]:
    """Operator: store limits of one organisation (``{"documents": 100, "queries_per_day": None}``; None
    goes back to the configured default; limits not named keep their value). Runs as the schema owner,
    the only role that may write org_quotas. Returns the organisation's overrides as stored.

    ValueError for an unknown limit, a value that is not a non-negative integer, or an unknown org.
    """
    org = uuid.UUID(str(org_id))
    if not isinstance(limits, dict) or not limits:
        raise ValueError(f"limits must name at least one of {', '.join(OVERRIDE_COLUMNS)}")
    unknown = sorted(set(limits) - set(OVERRIDE_COLUMNS))
    if unknown:
        raise ValueError(f"unknown limits {unknown}; known: {', '.join(OVERRIDE_COLUMNS)}")
    for name, value in limits.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a non-negative integer or null, got {value!r}")
    columns = [OVERRIDE_COLUMNS[name] for name in limits]
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    with psycopg.connect(owner_url) as conn:
        try:
            conn.execute(
                f"""INSERT INTO org_quotas (org_id, {", ".join(columns)})
                    VALUES (%s, {", ".join(["%s"] * len(columns))})
                    ON CONFLICT (org_id) DO UPDATE SET {assignments}, updated_at = now()""",
                (org, *limits.values()),
            )
        except psycopg.errors.ForeignKeyViolation as exc:
            raise ValueError(f"no organisation {org}") from exc
        row = conn.execute(
            f"SELECT {', '.join(OVERRIDE_COLUMNS.values())} FROM org_quotas WHERE org_id = %s", (org,)
        ).fetchone()
    return {"org_id": str(org), **dict(zip(OVERRIDE_COLUMNS, row, strict=True))}
