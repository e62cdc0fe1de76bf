"""What every retriever returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Source:
    """One retrieved chunk, as returned to clients in ``sources``."""

    document_id: str
    document_name: str
    chunk_index: int
    content: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
