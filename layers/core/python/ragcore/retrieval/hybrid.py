"""Hybrid retrieval: the dense and lexical retrievers run on the same filters and their lists are fused.

Two fusions, chosen by ``HYBRID_FUSION``:

- ``convex`` (default): each list's scores are divided by that list's best score, so both lie in
  [0, 1] with the best hit at 1; a chunk's fused score is ``w * dense + (1 - w) * lexical``, where a
  retriever that did not return the chunk contributes 0. ``w`` is ``HYBRID_DENSE_WEIGHT``.
- ``rrf``: reciprocal rank fusion, ``w / (k + rank_dense) + (1 - w) / (k + rank_lexical)``, divided by
  its largest possible value ``1 / (k + 1)`` so that it too lies in [0, 1].

Either way the fused score is in [0, 1], 1 meaning "the best hit of every retriever", and each source
names the retrievers that found it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from ..config import get_settings
from .dense import dense_search
from .lexical import lexical_search
from .types import Source

DENSE = "dense"
LEXICAL = "lexical"


def _key(source: Source) -> tuple[str, int]:
    return source.document_id, source.chunk_index


def _normalised(sources: Sequence[Source], method: str, rrf_k: int) -> dict[tuple[str, int], float]:
    if not sources:
        return {}
    if method == "rrf":
        return {_key(s): (rrf_k + 1) / (rrf_k + rank) for rank, s in enumerate(sources, start=1)}
    best = max(s.score for s in sources)
    if best <= 0:
        return {_key(s): 0.0 for s in sources}
    return {_key(s): max(s.score, 0.0) / best for s in sources}


def fuse(
    dense: Sequence[Source],
    lexical: Sequence[Source],
    top_k: int,
    *,
    method: Literal["convex", "rrf"] = "convex",
    dense_weight: float = 0.5,
    rrf_k: int = 60,
) -> list[Source]:
    """The ``top_k`` best chunks of two ranked lists, by fused score (ties: dense order, then lexical)."""
    parts = {
        DENSE: (_normalised(dense, method, rrf_k), dense_weight),
        LEXICAL: (_normalised(lexical, method, rrf_k), 1.0 - dense_weight),
    }
    found: dict[tuple[str, int], Source] = {}
    for source in (*dense, *lexical):
        found.setdefault(_key(source), source)
    fused = []
    for order, (key, source) in enumerate(found.items()):
        score = sum(weight * scores.get(key, 0.0) for scores, weight in parts.values())
        retrievers = tuple(name for name, (scores, _) in parts.items() if key in scores)
        fused.append((score, order, replace(source, score=round(score, 6), retrievers=retrievers)))
    fused.sort(key=lambda item: (-item[0], item[1]))
    return [source for _, _, source in fused[:top_k]]


def hybrid_search(
    org_id: uuid.UUID,
    question: str,
    query_vector: np.ndarray,
    top_k: int,
    metadata_filter: dict[str, Any] | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
) -> list[Source]:
    """The ``top_k`` chunks of the tenant by fused dense and lexical score (see the module docstring)."""
    settings = get_settings()
    depth = max(top_k, settings.hybrid_candidates)
    dense = dense_search(org_id, query_vector, depth, metadata_filter, document_ids)
    lexical = lexical_search(org_id, question, depth, metadata_filter, document_ids)
    return fuse(
        dense,
        lexical,
        top_k,
        method=settings.hybrid_fusion,
        dense_weight=settings.hybrid_dense_weight,
        rrf_k=settings.hybrid_rrf_k,
    )
