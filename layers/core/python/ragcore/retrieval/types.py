"""What every retriever returns, and the filters every retriever applies inside its search."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class Source:
    """One retrieved chunk, as returned to clients in ``sources``.

    ``score`` is the retriever's own score (cosine similarity for dense, BM25 for lexical) or, in
    hybrid mode, the fused score in [0, 1]. ``retrievers`` names the retrievers that found the chunk.
    """

    document_id: str
    document_name: str
    chunk_index: int
    content: str
    score: float
    retrievers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["retrievers"] = list(self.retrievers)
        return data


def chunk_filter_sql(
    params: dict[str, Any],
    metadata_filter: dict[str, Any] | None,
    document_ids: Sequence[uuid.UUID] | None,
    alias: str = "c",
) -> str:
    """SQL conditions (``AND ...``) restricting chunks ``alias`` to the filters; fills ``params``.

    The conditions go inside the search itself, so a filter never shortens a list after the fact.
    ``params`` must already hold the tenant as ``org``.
    """
    clause = ""
    if metadata_filter:
        clause += (
            f" AND {alias}.document_id IN (SELECT d.id FROM documents d WHERE d.org_id = %(org)s"
            " AND d.metadata @> %(meta)s)"
        )
        params["meta"] = Jsonb(metadata_filter)
    if document_ids is not None:
        clause += f" AND {alias}.document_id = ANY(%(document_ids)s)"
        params["document_ids"] = list(document_ids)
    return clause
