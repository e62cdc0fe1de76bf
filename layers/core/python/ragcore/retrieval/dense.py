"""Dense retrieval: the tenant's chunks nearest to the question's embedding (pgvector, cosine)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from pgvector import HalfVector
from psycopg.types.json import Jsonb

from ..config import get_settings
from ..db import tenant_transaction
from .types import Source


def dense_search(
    org_id: uuid.UUID,
    query_vector: np.ndarray,
    top_k: int,
    metadata_filter: dict[str, Any] | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
) -> list[Source]:
    """The ``top_k`` chunks of the tenant closest to ``query_vector`` by cosine similarity.

    The HNSW scan is iterative (pgvector >= 0.8), so rows of other tenants, which the tenant predicate
    discards, do not leave the result short.
    """
    settings = get_settings()
    vector = HalfVector(np.asarray(query_vector, dtype=np.float32))
    document_clause = ""
    params: dict[str, Any] = {"org": org_id, "q": vector, "k": top_k}
    if metadata_filter:
        document_clause = (
            "AND c.document_id IN (SELECT d.id FROM documents d WHERE d.org_id = %(org)s "
            "AND d.metadata @> %(meta)s)"
        )
        params["meta"] = Jsonb(metadata_filter)
    if document_ids is not None:
        document_clause += " AND c.document_id = ANY(%(document_ids)s)"
        params["document_ids"] = list(document_ids)
    with tenant_transaction(org_id) as conn:
        conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, true),"
            " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
            (str(max(settings.hnsw_ef_search, top_k)),),
        )
        rows = conn.execute(
            f"""WITH nearest AS MATERIALIZED (
                    SELECT c.document_id, c.chunk_index, c.content, c.embedding <=> %(q)s AS distance
                    FROM document_chunks c
                    WHERE c.org_id = %(org)s {document_clause}
                    ORDER BY c.embedding <=> %(q)s
                    LIMIT %(k)s)
                SELECT n.document_id, d.name, n.chunk_index, n.content, n.distance
                FROM nearest n JOIN documents d ON d.org_id = %(org)s AND d.id = n.document_id
                ORDER BY n.distance, n.document_id, n.chunk_index""",
            params,
        ).fetchall()
    return [
        Source(
            document_id=str(r["document_id"]),
            document_name=r["name"],
            chunk_index=r["chunk_index"],
            content=r["content"],
            score=round(1.0 - float(r["distance"]), 6),
        )
        for r in rows
    ]
