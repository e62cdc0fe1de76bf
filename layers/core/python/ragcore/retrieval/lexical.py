"""Lexical retrieval: Okapi BM25 computed inside PostgreSQL from the chunks' tsvectors.

Term frequencies are the position counts in ``content_tsv`` and a chunk's length is its token count
(``lexical_length``); the number of chunks, their average length and each term's chunk frequency are
the tenant's own (``bm25_corpus_stats``, ``bm25_term_stats``, kept exact by triggers, see migration
0002). The candidates are the tenant's chunks holding at least one query term, found through the GIN
index on ``content_tsv``; every candidate is scored, so the top-k is exact. A candidate's tsvector is
first cut down to the query's lexemes in C (``setweight`` marks them, ``ts_filter`` keeps them), which
is several times faster than unnesting the whole vector in SQL.

    idf(t)   = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))
    score(c) = sum over query terms t in c of idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avglen))
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from ..config import get_settings
from ..db import tenant_transaction
from .types import LOCATION_COLUMNS, Source, chunk_filter_sql, location_of

RETRIEVER = "lexical"


def lexical_search(
    org_id: uuid.UUID,
    question: str,
    top_k: int,
    metadata_filter: dict[str, Any] | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    *,
    k1: float | None = None,
    b: float | None = None,
) -> list[Source]:
    """The ``top_k`` chunks of the tenant with the highest BM25 score for ``question``.

    ``k1`` and ``b`` default to the settings (``BM25_K1``, ``BM25_B``). Chunks sharing no term with
    the question are never returned, so the list may be shorter than ``top_k``; ``score`` is the BM25
    score.
    """
    settings = get_settings()
    params: dict[str, Any] = {
        "org": org_id,
        "q": question,
        "k": top_k,
        "k1": settings.bm25_k1 if k1 is None else k1,
        "b": settings.bm25_b if b is None else b,
    }
    filters = chunk_filter_sql(params, metadata_filter, document_ids)
    with tenant_transaction(org_id) as conn:
        terms = conn.execute("SELECT bm25_query_terms(%s) AS terms", (question,)).fetchone()["terms"]
        if not terms:  # only stop words or punctuation: nothing can match
            return []
        params["terms"] = terms
        rows = conn.execute(
            f"""WITH stats AS (
                    SELECT chunk_count::float8 AS n,
                           GREATEST(total_length::float8 / NULLIF(chunk_count, 0), 1.0) AS avglen
                    FROM bm25_corpus_stats WHERE org_id = %(org)s),
                terms AS (
                    SELECT t.term, ln(1 + (s.n - t.chunk_freq + 0.5) / (t.chunk_freq + 0.5)) AS idf
                    FROM bm25_term_stats t CROSS JOIN stats s
                    WHERE t.org_id = %(org)s AND t.term = ANY(%(terms)s::text[])),
                matches AS MATERIALIZED (
                    SELECT c.id, c.lexical_length,
                           ts_filter(setweight(c.content_tsv, 'A', %(terms)s::text[]), '{{a}}') AS hits
                    FROM document_chunks c
                    WHERE c.org_id = %(org)s AND c.content_tsv @@ bm25_any_term(%(terms)s::text[]) {filters}),
                scored AS (
                    SELECT m.id,
                           sum(t.idf * f.tf * (%(k1)s + 1)
                               / (f.tf + %(k1)s * (1 - %(b)s + %(b)s * m.lexical_length / s.avglen))) AS score
                    FROM matches m CROSS JOIN stats s
                    CROSS JOIN LATERAL (
                        SELECT u.lexeme, COALESCE(array_length(u.positions, 1), 1)::float8 AS tf
                        FROM unnest(m.hits) AS u) AS f
                    JOIN terms t ON t.term = f.lexeme
                    GROUP BY m.id
                    ORDER BY score DESC, m.id
                    LIMIT %(k)s)
                SELECT c.document_id, d.name, c.chunk_index, c.content, sc.score, {LOCATION_COLUMNS}
                FROM scored sc
                JOIN document_chunks c ON c.org_id = %(org)s AND c.id = sc.id
                JOIN documents d ON d.org_id = %(org)s AND d.id = c.document_id
                ORDER BY sc.score DESC, c.id""",
            params,
        ).fetchall()
    return [
        Source(
            document_id=str(r["document_id"]),
            document_name=r["name"],
            chunk_index=r["chunk_index"],
            content=r["content"],
            score=round(float(r["score"]), 6),
            retrievers=(RETRIEVER,),
            **location_of(r),
        )
        for r in rows
    ]
