"""Answering a question from the caller's documents: retrieve, then generate.

One code path serves both the synchronous endpoint and the stream: ``answer_events`` yields the events
in the order the stream sends them, and ``answer`` collects them.

Abstention: when nothing retrieved is relevant enough (no sentence of the best retrieved chunks has a
cosine similarity to the question at the relevance floor, ``Settings.relevance_floor``), the answer is the
no-answer sentence and no generator runs, whichever is configured: a model asked anyway could only guess
(or quote the nearest unrelated text, as the extractive generator did), and it would cost tokens for
nothing. The sources are still listed, and the answer says ``abstained: true``; it says so too when the
generator itself found nothing to answer with.
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
from .generation import NO_ANSWER, TextDelta, UsageReport, get_generator, split_sentences, word_groups
from .observability import logger
from .retrieval import Source, dense_search, hybrid_search, lexical_search

# The relevance signal reads the sentences of the best few sources, as it was calibrated (top_k 5), and
# at most so many of them, so its cost stays flat whatever top_k.
RELEVANCE_SOURCES = 5
RELEVANCE_MAX_SENTENCES = 64

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
    query_vector: Any = None,
) -> list[Source]:
    """The tenant's ``top_k`` chunks for ``question`` by the chosen retriever(s), filters applied inside.

    ``query_vector``: the question's embedding when the caller has it already.
    """
    if mode == "lexical":
        return lexical_search(org_id, question, top_k, filters, document_ids)
    if query_vector is None:
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
    """Sources first, then answer tokens as the generator produces them, then usage and whether the
    answer abstained (see the module docstring)."""
    settings = get_settings()
    embedder = get_embedder(settings)
    floor = settings.relevance_floor()
    # Lexical mode needs no embedding to search, but the floor is a cosine: embedded only when it is on.
    query_vector = embedder.embed([question])[0] if mode != "lexical" or floor > 0 else None
    sources = retrieve(principal.org_id, question, top_k, mode, filters, document_ids, embedder, query_vector)
    yield QueryEvent("sources", {"sources": [s.to_dict() for s in sources]})
    best = relevance(query_vector, sources, embedder) if floor > 0 and sources else None
    if not sources or (best is not None and best < floor):
        logger.info(
            "answer abstained",
            extra={"relevance": best, "floor": floor, "retrieved_chunks": len(sources)},
        )
        yield from (QueryEvent("token", {"text": piece}) for piece in word_groups(NO_ANSWER))
        usage = {"provider": settings.generation_provider, "input_tokens": 0, "output_tokens": 0}
        yield QueryEvent("done", {"usage": {**usage, "retrieved_chunks": len(sources)}, "abstained": True})
        return
    usage: dict[str, Any] = {}
    text: list[str] = []
    # closing(): when the consumer stops early (the client went away), the provider's stream is closed
    # at once, not whenever the garbage collector gets to it.
    generator = get_generator(embedder, settings.generation_provider, settings)
    with closing(generator.stream(question, sources)) as events:
        for event in events:
            if isinstance(event, TextDelta):
                text.append(event.text)
                yield QueryEvent("token", {"text": event.text})
            elif isinstance(event, UsageReport):
                usage = event.usage
    yield QueryEvent(
        "done",
        {
            "usage": {**usage, "retrieved_chunks": len(sources)},
            # The generator found nothing to answer with in sources that cleared the floor.
            "abstained": "".join(text).strip() == NO_ANSWER,
        },
    )


def relevance(query_vector: Any, sources: Sequence[Source], embedder: Embedder) -> float:
    """How relevant the retrieved text is: the highest cosine similarity between the question's embedding
    and a sentence of the best ``RELEVANCE_SOURCES`` sources (0 without any). Compared with the floor.

    Sentences rather than whole chunks: a chunk covers several topics and its embedding is an average of
    them, so a question answered by one of its sentences can sit far from the chunk as a whole, while an
    unrelated question sits far from every sentence (docs/benchmarks.md: on the calibration data the
    best sentence separates answerable from unanswerable questions better than the best chunk).
    """
    sentences = [
        sentence
        for source in sources[:RELEVANCE_SOURCES]
        for sentence in (split_sentences(source.content) or [source.content])
    ]
    sentences = list(dict.fromkeys(s for s in sentences if len(s.split()) >= 3) or sentences)
    sentences = sentences[:RELEVANCE_MAX_SENTENCES]
    if not sentences:
        return 0.0
    return float((embedder.embed(sentences) @ query_vector).max())


def answer(
    principal: Principal,
    question: str,
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
    mode: Mode = "hybrid",
    document_ids: Sequence[uuid.UUID] | None = None,
) -> dict[str, Any]:
    """The whole answer at once: {answer, abstained, sources, usage}."""
    text: list[str] = []
    result: dict[str, Any] = {"abstained": False, "sources": [], "usage": {}}
    for event in answer_events(principal, question, top_k, filters, mode, document_ids):
        if event.kind == "token":
            text.append(event.data["text"])
        elif event.kind == "sources":
            result["sources"] = event.data["sources"]
        elif event.kind == "done":
            result["usage"] = event.data["usage"]
            result["abstained"] = event.data["abstained"]
    return {"answer": "".join(text), **result}
