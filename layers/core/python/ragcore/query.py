"""Answering a question from the caller's documents: retrieve, then generate.

One code path serves both the synchronous endpoint and the stream: ``answer_events`` yields the events
in the order the stream sends them, and ``answer`` collects them.

With a ``conversation_id`` the question continues one of the caller's conversations: retrieval searches
with the question in the context of the earlier turns (ragcore.condense says how), and once the answer
is complete the question and the answer with its sources are stored in the conversation, before the
``done`` event. An answer that fails, or that nobody reads to the end (the client disconnected), is
not stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from . import conversations, quotas
from .auth import Principal
from .condense import Turn, blend, bound_history, with_history_text
from .config import Settings, get_settings
from .embeddings import Embedder, get_embedder
from .generation import Generator, TextDelta, UsageReport, get_generator
from .retrieval import Source, dense_search, hybrid_search, lexical_search

Mode = Literal["hybrid", "dense", "lexical"]


@dataclass(frozen=True)
class QueryEvent:
    """``kind`` is ``sources``, ``token`` or ``done``; ``data`` is the event's JSON payload."""

    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class RetrievalPlan:
    """What retrieval searches with and what the generator answers.

    ``text`` is the lexical query (and what the client is told was searched); ``vector``, when set,
    is the dense query vector (otherwise ``text`` is embedded); ``method`` is ``question``,
    ``condensed`` or ``with_history`` (see ragcore.condense); ``usage`` is the condensation's cost.
    """

    text: str
    answer_question: str
    method: str = "question"
    vector: np.ndarray | None = None
    usage: dict[str, Any] | None = None


def plan_retrieval(
    question: str,
    turns: Sequence[Turn],
    generator: Generator,
    embedder: Embedder,
    settings: Settings,
    mode: Mode = "hybrid",
) -> RetrievalPlan:
    """How to search for ``question`` given the earlier ``turns`` of its conversation (oldest first)."""
    if not turns:
        return RetrievalPlan(question, question)
    condense = getattr(generator, "condense", None)
    if condense is not None:

        def count(text: str) -> int:
            return sum(embedder.count_word_pieces(text.split()))

        history = bound_history(
            turns,
            settings.conversation_history_max_turns,
            settings.conversation_history_max_tokens,
            count,
        )
        condensed = condense(history, question)
        return RetrievalPlan(condensed.question, condensed.question, "condensed", usage=condensed.usage)
    previous = [t.question for t in turns[-settings.conversation_context_questions :]]
    vector = None
    if mode != "lexical":
        vectors = embedder.embed([question, *previous])
        vector = blend(vectors[0], vectors[1:])
    return RetrievalPlan(with_history_text(previous, question), question, "with_history", vector)


def retrieve(
    org_id: uuid.UUID,
    question: str,
    top_k: int,
    mode: Mode = "hybrid",
    filters: dict[str, Any] | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    embedder: Embedder | None = None,
    query_vector: np.ndarray | None = None,
) -> list[Source]:
    """The tenant's ``top_k`` chunks for ``question`` by the chosen retriever(s), filters applied inside.

    ``query_vector``, when given, is the dense retriever's query instead of the embedding of ``question``.
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
    conversation_id: uuid.UUID | None = None,
) -> Iterator[QueryEvent]:
    """Sources first, then answer tokens as the generator produces them, then usage.

    With ``conversation_id`` (one of the caller's conversations, else NotFound before anything else),
    the ``sources`` event also says what retrieval searched with, and the completed turn is stored
    before ``done``.

    The question counts against the organisation's query quotas before anything is embedded or
    retrieved (QueryQuotaExceeded, 429, when they are used up); the generation tokens are added to its
    usage when the answer is complete.
    """
    principal.require("ask")
    settings = get_settings()
    embedder = get_embedder(settings)
    generator = get_generator(embedder, settings.generation_provider, settings)
    turns: Sequence[Turn] = ()
    if conversation_id is not None:
        depth = max(settings.conversation_history_max_turns, settings.conversation_context_questions)
        turns = conversations.load_history(principal, conversation_id, depth).turns
    embedded = 0 if mode == "lexical" else sum(embedder.count_word_pieces(question.split()))
    quotas.count_query(principal, embedded)
    plan = plan_retrieval(question, turns, generator, embedder, settings, mode)
    sources = retrieve(principal.org_id, plan.text, top_k, mode, filters, document_ids, embedder, plan.vector)
    source_views = [s.to_dict() for s in sources]
    first: dict[str, Any] = {"sources": source_views}
    if conversation_id is not None:
        first["conversation"] = {
            "id": str(conversation_id),
            "retrieval": {"query": plan.text, "method": plan.method},
        }
    yield QueryEvent("sources", first)
    usage: dict[str, Any] = {}
    text: list[str] = []
    # closing(): when the consumer stops early (the client went away), the provider's stream is closed
    # at once, not whenever the garbage collector gets to it.
    with closing(generator.stream(plan.answer_question, sources)) as events:
        for event in events:
            if isinstance(event, TextDelta):
                text.append(event.text)
                yield QueryEvent("token", {"text": event.text})
            elif isinstance(event, UsageReport):
                usage = event.usage
    quotas.record_generation(principal, usage, plan.usage)
    usage = {**usage, "retrieved_chunks": len(sources)}
    if plan.usage is not None:
        usage["condense"] = plan.usage
    if conversation_id is not None:
        conversations.record_turn(
            principal, conversation_id, question, plan.text, plan.method, "".join(text), source_views, usage
        )
    yield QueryEvent("done", {"usage": usage})


def answer(
    principal: Principal,
    question: str,
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
    mode: Mode = "hybrid",
    document_ids: Sequence[uuid.UUID] | None = None,
    conversation_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The whole answer at once: {answer, sources, usage}, and {conversation} with a conversation."""
    text: list[str] = []
    result: dict[str, Any] = {"sources": [], "usage": {}}
    events = answer_events(principal, question, top_k, filters, mode, document_ids, conversation_id)
    for event in events:
        if event.kind == "token":
            text.append(event.data["text"])
        elif event.kind == "sources":
            result["sources"] = event.data["sources"]
            if "conversation" in event.data:
                result["conversation"] = event.data["conversation"]
        elif event.kind == "done":
            result["usage"] = event.data["usage"]
    return {"answer": "".join(text), **result}
