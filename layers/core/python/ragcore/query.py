"""Answering a question from the caller's documents: retrieve, then generate.

One code path serves both the synchronous endpoint and the stream: ``answer_events`` yields the events
in the order the stream sends them, and ``answer`` collects them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from .auth import Principal
from .config import get_settings
from .embeddings import get_embedder
from .generation import TextDelta, UsageReport, get_generator
from .retrieval import dense_search


@dataclass(frozen=True)
class QueryEvent:
    """``kind`` is ``sources``, ``token`` or ``done``; ``data`` is the event's JSON payload."""

    kind: str
    data: dict[str, Any]


def answer_events(
    principal: Principal, question: str, top_k: int = 5, filters: dict[str, Any] | None = None
) -> Iterator[QueryEvent]:
    """Sources first, then answer tokens as the generator produces them, then usage."""
    settings = get_settings()
    embedder = get_embedder(settings)
    query_vector = embedder.embed([question])[0]
    sources = dense_search(principal.org_id, query_vector, top_k, filters)
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
    principal: Principal, question: str, top_k: int = 5, filters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole answer at once: {answer, sources, usage}."""
    text: list[str] = []
    result: dict[str, Any] = {"sources": [], "usage": {}}
    for event in answer_events(principal, question, top_k, filters):
        if event.kind == "token":
            text.append(event.data["text"])
        elif event.kind == "sources":
            result["sources"] = event.data["sources"]
        elif event.kind == "done":
            result["usage"] = event.data["usage"]
    return {"answer": "".join(text), **result}
