"""Hybrid retrieval: the dense and lexical retrievers run on the same filters and their lists are fused.

Three fusions, chosen by ``HYBRID_FUSION``; ``w`` is ``HYBRID_DENSE_WEIGHT``:

- ``zscore`` (default, the best on SciFact's train queries): each list's scores become z-scores
  (minus the list's mean, over its standard deviation), a chunk a retriever did not return gets that
  list's lowest z-score, and the fused value ``w * z_dense + (1 - w) * z_lexical`` is passed through the
  logistic function: 0.5 is an average candidate, values near 1 stand far above both lists.
- ``convex``: each list's scores are divided by that list's best score (the best hit is 1, a missing
  chunk 0) and the fused score is ``w * dense + (1 - w) * lexical``.
- ``rrf``: reciprocal rank fusion, ``w / (k + rank_dense) + (1 - w) / (k + rank_lexical)``, divided by
  its largest possible value ``1 / (k + 1)``.

Each way the fused score is in [0, 1] and orders the sources; each source names the retrievers that
found it.
"""

from __future__ import annotations

import math
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
    if method == "zscore":
        values = np.array([s.score for s in sources], dtype=np.float64)
        spread = float(values.std()) or 1.0
        return {_key(s): (s.score - float(values.mean())) / spread for s in sources}
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
    method: Literal["zscore", "convex", "rrf"] = "zscore",
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
    # What a retriever that missed a chunk contributes: its weakest hit's z-score, or 0 on the other scales.
    missing = {
        name: min(scores.values(), default=0.0) if method == "zscore" else 0.0
        for name, (scores, _) in parts.items()
    }
    fused = []
    for order, (key, source) in enumerate(found.items()):
        score = sum(weight * scores.get(key, missing[name]) for name, (scores, weight) in parts.items())
        if method == "zscore":
            score = 1.0 / (1.0 + math.exp(-score))
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
