"""Answering a question from the caller's documents: retrieve, then generate.

One code path serves both the synchronous endpoint and the stream: ``answer_events`` yields the events
in the order the stream sends them, and ``answer`` collects them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any, Literal

from .auth import Principal
from .config import get_settings
from .embeddings import Embedder, get_embedder
from .generation import TextDelta, UsageReport, get_generator
from .retrieval import Source, dense_search, hybrid_search, lexical_search

Mode = Literal["hybrid", "dense", "lexical"]


@dataclass(frozen=True)
class QueryEvent:
    """``kind`` is ``sources``, ``token`` or ``done``; ``data`` is the event's JSON payload."""

    kind: str
    data: dict[str, Any]


def retrieve(
    org_id: uuid.UUID,
    question: str,
    top_k: int,
    mode: Mode = "hybrid",
    filters: dict[str, Any] | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    embedder: Embedder | None = None,
) -> list[Source]:
    """The tenant's ``top_k`` chunks for ``question`` by the chosen retriever(s), filters applied inside."""
    if mode == "lexical":
        return lexical_search(org_id, question, top_k, filters, document_ids)
    query_vector = (embedder or get_embedder(get_settings())).embed([question])[0]
    if mode == "dense":
        found = dense_search(org_id, query_vector, top_k, filters, document_ids)
        return [replace(s, retrievers=("dense",)) for s in found]
    return hybrid_search(org_id, question, query_vector, top_k, filters, document_ids)


def answer_events(
    principal: Principal,
    question: str,
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
    mode: Mode = "hybrid",
    document_ids: Sequence[uuid.UUID] | None = None,
) -> Iterator[QueryEvent]:
    """Sources first, then answer tokens as the generator produces them, then usage."""
    principal.require("ask")
    settings = get_settings()
    embedder = get_embedder(settings)
    sources = retrieve(principal.org_id, question, top_k, mode, filters, document_ids, embedder)
    yield QueryEvent("sources", {"sources": [s.to_dict() for s in sources]})
    usage: dict[str, Any] = {}
    # closing(): when the consumer stops early (the client went away), the provider's stream is closed
    # at once, not whenever the garbage collector gets to it.
    generator = get_generator(embedder, settings.generation_provider, settings)
    with closing(generator.stream(question, sources)) as events:
        for event in events:
            if isinstance(event, TextDelta):
                yield QueryEvent("token", {"text": event.text})
            elif isinstance(event, UsageReport):
                usage = event.usage
    yield QueryEvent("done", {"usage": {**usage, "retrieved_chunks": len(sources)}})


def answer(
    principal: Principal,
    question: str,
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
    mode: Mode = "hybrid",
    document_ids: Sequence[uuid.UUID] | None = None,
) -> dict[str, Any]:
    """The whole answer at once: {answer, sources, usage}."""
    text: list[str] = []
    result: dict[str, Any] = {"sources": [], "usage": {}}
    for event in answer_events(principal, question, top_k, filters, mode, document_ids):
        if event.kind == "token":
            text.append(event.data["text"])
        elif event.kind == "sources":
            result["sources"] = event.data["sources"]
        elif event.kind == "done":
            result["usage"] = event.data["usage"]
    return {"answer": "".join(text), **result}
