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
    The location comes from the file the chunk was extracted from: its pages (PDF) and heading path
    (Markdown, HTML, DOCX); a text document has neither.
    """

    document_id: str
    document_name: str
    chunk_index: int
    content: str
    score: float
    retrievers: tuple[str, ...] = ()
    page_start: int | None = None
    page_end: int | None = None
    headings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The public shape: ``page`` (the first page, or None), ``pages`` ([first, last], or None) and
        ``headings`` (the heading path, outermost first; empty when there is none)."""
        data = asdict(self)
        del data["page_start"], data["page_end"]
        data["retrievers"] = list(self.retrievers)
        data["page"] = self.page_start
        data["pages"] = None if self.page_start is None else [self.page_start, self.page_end]
        data["headings"] = list(self.headings)
        return data


# The location columns of a chunk row, as every retriever selects them (alias ``c``).
LOCATION_COLUMNS = "c.page_start, c.page_end, c.headings"


def location_of(row: dict[str, Any]) -> dict[str, Any]:
    """Source keyword arguments for the location columns of a result row."""
    return {
        "page_start": row["page_start"],
        "page_end": row["page_end"],
        "headings": tuple(row["headings"] or ()),
    }


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
