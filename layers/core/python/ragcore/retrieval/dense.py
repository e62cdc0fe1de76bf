"""Dense retrieval: the tenant's chunks nearest to the question's embedding (pgvector, cosine).

Two paths, chosen per tenant (decision 33 in docs/decisions.md):

* exact: most tenants are small enough for an exact scan of their own rows (one btree range of
  ``document_chunks_org_vectors``, which carries the vectors) to be fast, and exact is their true top-k;
* own graph: a tenant with a ready partial HNSW index (``tenant_index``) is searched through it; the graph
  holds no other tenant's vectors, so none can crowd this tenant's results out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from pgvector import HalfVector
from psycopg import sql
from psycopg.types.json import Jsonb

from ..config import get_settings
from ..db import tenant_transaction
from .tenant_index import READY_INDEX_SQL
from .types import LOCATION_COLUMNS, Source, location_of

# ``+ 0`` makes the sort key an expression no HNSW index can serve, so the exact path stays exact even
# while the tenant's index is being built or dropped, or if a shared graph ever comes back.
_EXACT_ORDER = sql.SQL("(c.embedding <=> %(q)s) + 0")
_INDEXED_ORDER = sql.SQL("c.embedding <=> %(q)s")


def search_statement(
    org_id: uuid.UUID, *, indexed: bool, filtered: bool, restricted: bool = False
) -> sql.Composed:
    """The nearest-chunks statement of one path, with parameters ``org``, ``q``, ``k`` (``meta`` when
    ``filtered``, ``document_ids`` when ``restricted`` to some documents).

    ``indexed``: through the tenant's own HNSW index, whose predicate ``org_id = '<id>'`` the planner
    matches only against a constant (a parameter in a generic plan, as psycopg prepares repeated
    statements, would never prove it), so the validated id is written as a literal. Otherwise the exact
    path: a bound parameter (one plan serves every tenant) and a sort key no HNSW index can serve.
    """
    if indexed:
        tenant = sql.SQL("{}::uuid").format(sql.Literal(str(uuid.UUID(str(org_id)))))
        order = _INDEXED_ORDER
    else:
        tenant, order = sql.SQL("%(org)s"), _EXACT_ORDER
    document_clause = sql.SQL(
        (
            "AND c.document_id IN (SELECT d.id FROM documents d WHERE d.org_id = %(org)s "
            "AND d.metadata @> %(meta)s)"
            if filtered
            else ""
        )
        + (" AND c.document_id = ANY(%(document_ids)s)" if restricted else "")
    )
    return sql.SQL(
        """WITH nearest AS MATERIALIZED (
            SELECT c.document_id, c.chunk_index, c.embedding <=> %(q)s AS distance
            FROM document_chunks c
            WHERE c.org_id = {tenant} {document_clause}
            ORDER BY {order}
            LIMIT %(k)s)
        SELECT n.document_id, d.name, n.chunk_index, c.content, n.distance, {location}
        FROM nearest n
        JOIN document_chunks c
          ON c.org_id = %(org)s AND c.document_id = n.document_id AND c.chunk_index = n.chunk_index
        JOIN documents d ON d.org_id = %(org)s AND d.id = n.document_id
        ORDER BY n.distance, n.document_id, n.chunk_index"""
    ).format(tenant=tenant, document_clause=document_clause, order=order, location=sql.SQL(LOCATION_COLUMNS))


def dense_search(
    org_id: uuid.UUID,
    query_vector: np.ndarray,
    top_k: int,
    metadata_filter: dict[str, Any] | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    *,
    exact: bool = False,
) -> list[Source]:
    """The ``top_k`` chunks of the tenant closest to ``query_vector`` by cosine similarity.

    The tenant's own HNSW index is used when it has a ready one, else its chunks are scanned exactly;
    ``exact=True`` scans exactly in any case. A metadata filter is part of the scan on either path (the
    index scan is iterative), so it never leaves the result short.
    """
    settings = get_settings()
    org_id = uuid.UUID(str(org_id))
    params: dict[str, Any] = {
        "org": org_id,
        "q": HalfVector(np.asarray(query_vector, dtype=np.float32)),
        "k": top_k,
    }
    if metadata_filter:
        params["meta"] = Jsonb(metadata_filter)
    if document_ids is not None:
        params["document_ids"] = list(document_ids)
    with tenant_transaction(org_id) as conn:
        # One round trip: the index settings (transaction-local, as RDS Proxy needs) and the path.
        indexed = conn.execute(
            sql.SQL(
                "SELECT set_config('hnsw.ef_search', %(ef)s, true),"
                " set_config('hnsw.iterative_scan', 'relaxed_order', true), {ready} AS indexed"
            ).format(ready=sql.SQL(READY_INDEX_SQL)),
            {"org": org_id, "ef": str(max(settings.hnsw_ef_search, top_k))},
        ).fetchone()["indexed"]
        statement = search_statement(
            org_id,
            indexed=indexed and not exact,
            filtered=bool(metadata_filter),
            restricted=document_ids is not None,
        )
        rows = conn.execute(statement, params).fetchall()
    return [
        Source(
            document_id=str(r["document_id"]),
            document_name=r["name"],
            chunk_index=r["chunk_index"],
            content=r["content"],
            score=round(1.0 - float(r["distance"]), 6),
            **location_of(r),
        )
        for r in rows
    ]
