"""Answering a question from the caller's documents: retrieve, then generate.

One code path serves both the synchronous endpoint and the stream: ``answer_events`` yields the events
in the order the stream sends them, and ``answer`` collects them.

With a ``conversation_id`` the question continues one of the caller's conversations: retrieval searches
with the question in the context of the earlier turns (ragcore.condense says how), and once the answer
is complete the question and the answer with its sources are stored in the conversation, before the
``done`` event. An answer that fails, or that nobody reads to the end (the client disconnected), is
not stored.

Abstention: when nothing retrieved is relevant enough (no sentence of the best retrieved chunks has a
cosine similarity to the question at the relevance floor, ``Settings.relevance_floor``), the answer is the
no-answer sentence and no generator runs, whichever is configured: a model asked anyway could only guess
(or quote the nearest unrelated text, as the extractive generator did), and it would cost tokens for
nothing. The sources are still listed, and the answer says ``abstained: true``; it says so too when the
generator itself found nothing to answer with.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from . import conversations, quotas
from .auth import Principal
from .condense import Turn, blend, bound_history, with_history_text
from .config import Settings, get_settings
from .embeddings import Embedder, embed_once, get_embedder
from .generation import (
    NO_ANSWER,
    GenerationEvent,
    Generator,
    TextDelta,
    UsageReport,
    get_generator,
    split_sentences,
    word_groups,
)
from .observability import QUERY_EMBED, QUERY_GENERATE, QUERY_SEARCH, add_time, logger, stage, tag_tenant
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
    embed_query: bool = True,
) -> RetrievalPlan:
    """How to search for ``question`` given the earlier ``turns`` of its conversation (oldest first).

    ``embed_query``: whether a query vector is wanted (dense search, or the relevance floor); without it
    an extractive plan is text only.
    """
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
    if embed_query:
        with stage(QUERY_EMBED):
            vectors = embed_once(embedder, [question, *previous])
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
        with stage(QUERY_SEARCH):
            return lexical_search(org_id, question, top_k, filters, document_ids)
    if query_vector is None:
        with stage(QUERY_EMBED):
            query_vector = embed_once(embedder or get_embedder(get_settings()), [question])[0]
    with stage(QUERY_SEARCH):
        if mode == "dense":
            found = dense_search(org_id, query_vector, top_k, filters, document_ids)
            return [replace(s, retrievers=("dense",)) for s in found]
        return hybrid_search(org_id, question, query_vector, top_k, filters, document_ids)


def timed_generation(events: Iterable[GenerationEvent]) -> Iterator[GenerationEvent]:
    """``events`` unchanged; the time spent producing them (not the consumer's time between them, such
    as a slow client's) is recorded as the generate stage's latency when the iteration ends or stops."""
    iterator = iter(events)
    spent = 0.0
    try:
        while True:
            started = time.perf_counter()
            try:
                event = next(iterator)
            except StopIteration:
                return
            finally:
                spent += time.perf_counter() - started
            yield event
    finally:
        add_time(QUERY_GENERATE, spent)


def answer_events(
    principal: Principal,
    question: str,
    top_k: int = 5,
    filters: dict[str, Any] | None = None,
    mode: Mode = "hybrid",
    document_ids: Sequence[uuid.UUID] | None = None,
    conversation_id: uuid.UUID | None = None,
) -> Iterator[QueryEvent]:
    """Sources first, then answer tokens as the generator produces them, then usage and whether the
    answer abstained (see the module docstring).

    With ``conversation_id`` (one of the caller's conversations, else NotFound before anything else),
    the ``sources`` event also says what retrieval searched with, and the completed turn (an abstention
    included) is stored before ``done``.

    The question counts against the organisation's query quotas before anything is embedded or
    retrieved (QueryQuotaExceeded, 429, when they are used up); the generation tokens are added to its
    usage when the answer is complete.
    """
    principal.require("ask")
    tag_tenant(principal.org_id)
    settings = get_settings()
    embedder = get_embedder(settings)
    generator = get_generator(embedder, settings.generation_provider, settings)
    turns: Sequence[Turn] = ()
    if conversation_id is not None:
        depth = max(settings.conversation_history_max_turns, settings.conversation_context_questions)
        turns = conversations.load_history(principal, conversation_id, depth).turns
    floor = settings.relevance_floor()
    embedded = sum(embedder.count_word_pieces(question.split())) if mode != "lexical" or floor > 0 else 0
    quotas.count_query(principal, embedded)
    plan = plan_retrieval(question, turns, generator, embedder, settings, mode != "lexical")
    # Lexical mode needs no embedding to search, but the floor is a cosine: embedded only when it is on.
    query_vector = plan.vector
    if query_vector is None and (mode != "lexical" or floor > 0):
        with stage(QUERY_EMBED):
            query_vector = embed_once(embedder, [plan.text])[0]
    sources = retrieve(
        principal.org_id, plan.text, top_k, mode, filters, document_ids, embedder, query_vector
    )
    # Counts and ids only: neither the question nor what was found is ever logged.
    logger.debug(
        "retrieved",
        extra={"mode": mode, "top_k": top_k, "sources": len(sources), "retrieval_method": plan.method},
    )
    source_views = [s.to_dict() for s in sources]
    first: dict[str, Any] = {"sources": source_views}
    if conversation_id is not None:
        first["conversation"] = {
            "id": str(conversation_id),
            "retrieval": {"query": plan.text, "method": plan.method},
        }
    yield QueryEvent("sources", first)

    def finish(answer_text: str, usage: dict[str, Any], abstained: bool) -> QueryEvent:
        quotas.record_generation(principal, usage, plan.usage)
        usage = {**usage, "retrieved_chunks": len(sources)}
        if plan.usage is not None:
            usage["condense"] = plan.usage
        if conversation_id is not None:
            conversations.record_turn(
                principal, conversation_id, question, plan.text, plan.method, answer_text, source_views, usage
            )
        return QueryEvent("done", {"usage": usage, "abstained": abstained})

    # A follow-up searched with its conversation's questions (the extractive plan) is judged with them
    # too: alone, "and at what temperature?" is close to nothing, with its history it is a question.
    relevance_vector = query_vector
    if plan.method == "with_history" and floor > 0 and sources:
        relevance_vector = embedder.embed([plan.text])[0]
    best = relevance(relevance_vector, sources, embedder) if floor > 0 and sources else None
    if not sources or (best is not None and best < floor):
        logger.info(
            "answer abstained",
            extra={"relevance": best, "floor": floor, "retrieved_chunks": len(sources)},
        )
        yield from (QueryEvent("token", {"text": piece}) for piece in word_groups(NO_ANSWER))
        usage = {"provider": settings.generation_provider, "input_tokens": 0, "output_tokens": 0}
        yield finish(NO_ANSWER, usage, True)
        return
    usage: dict[str, Any] = {}
    text: list[str] = []
    # closing(): when the consumer stops early (the client went away), the provider's stream is closed
    # at once, not whenever the garbage collector gets to it.
    with (
        closing(generator.stream(plan.answer_question, sources)) as events,
        closing(timed_generation(events)) as timed,
    ):
        for event in timed:
            if isinstance(event, TextDelta):
                text.append(event.text)
                yield QueryEvent("token", {"text": event.text})
            elif isinstance(event, UsageReport):
                usage = event.usage
    answer_text = "".join(text)
    # abstained: the generator found nothing to answer with in sources that cleared the floor.
    yield finish(answer_text, usage, answer_text.strip() == NO_ANSWER)


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
    conversation_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The whole answer at once: {answer, abstained, sources, usage}, and {conversation} with a
    conversation."""
    text: list[str] = []
    result: dict[str, Any] = {"abstained": False, "sources": [], "usage": {}}
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
            result["abstained"] = event.data["abstained"]
    return {"answer": "".join(text), **result}
