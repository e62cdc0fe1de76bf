"""Answer generation behind one streaming interface.

A generator turns a question and the retrieved sources into a stream of events: text deltas, then one
usage report. Answers cite sources as [n], n being the 1-based position in ``sources``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .embeddings import Embedder
from .retrieval import Source

NO_ANSWER = "I could not find anything about that in your documents."

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*[-*\u2022]\s)")
_TERM = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its itself just me more most my no nor not now
    of off on once only or other our ours out over own same she should so some such than that the their
    theirs them then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours""".split()
)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class UsageReport:
    usage: dict[str, Any] = field(default_factory=dict)


GenerationEvent = TextDelta | UsageReport


class Generator(Protocol):
    name: str

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[GenerationEvent]: ...


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (a light rule-based splitter: terminal punctuation, blank lines, bullets)."""
    parts = (" ".join(p.split()) for p in _SENTENCE_BREAK.split(text))
    return [p for p in parts if p]


def content_terms(text: str) -> set[str]:
    """Lower-cased terms of ``text`` without stop words, lightly stemmed (plural and -ing/-ed endings)."""
    terms = set()
    for term in _TERM.findall(text.lower()):
        if term in _STOPWORDS:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if len(term) > len(suffix) + 3 and term.endswith(suffix):
                term = term[: -len(suffix)]
                break
        terms.add(term)
    return terms


def word_groups(text: str, words_per_group: int = 3) -> Iterator[str]:
    """``text`` in pieces of a few words, each keeping its trailing space, for streaming."""
    words = text.split(" ")
    for i in range(0, len(words), words_per_group):
        piece = " ".join(words[i : i + words_per_group])
        yield piece + (" " if i + words_per_group < len(words) else "")


class ExtractiveGenerator:
    """The offline generator: answers with the retrieved sentences that best match the question.

    Each sentence is scored by embedding similarity to the question and by the share of the question's
    content terms it contains; the best few are given in order of relevance, each with its citation.
    """

    name = "extractive"

    def __init__(self, embedder: Embedder, max_sentences: int = 3, max_words: int = 120):
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.max_words = max_words

    def select(self, question: str, sources: Sequence[Source]) -> list[tuple[str, int]]:
        """The chosen (sentence, citation number) pairs, best first."""
        candidates: list[tuple[str, int]] = []
        for number, source in enumerate(sources, start=1):
            for sentence in split_sentences(source.content):
                if len(sentence.split()) >= 3:
                    candidates.append((sentence, number))
        if not candidates:
            return []
        vectors = self.embedder.embed([question] + [s for s, _ in candidates])
        similarity = vectors[1:] @ vectors[0]
        question_terms = content_terms(question)
        lexical = np.array(
            [
                len(question_terms & content_terms(s)) / len(question_terms) if question_terms else 0.0
                for s, _ in candidates
            ]
        )
        score = 0.75 * similarity + 0.25 * lexical
        chosen: list[tuple[str, int]] = []
        seen: set[str] = set()
        words = 0
        for i in np.argsort(-score, kind="stable"):
            sentence, number = candidates[i]
            key = sentence.lower()
            if key in seen:  # overlapping chunks repeat sentences
                continue
            if chosen and words + len(sentence.split()) > self.max_words:
                break
            seen.add(key)
            chosen.append((sentence, number))
            words += len(sentence.split())
            if len(chosen) == self.max_sentences:
                break
        return chosen

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[GenerationEvent]:
        """Stream the composed answer in word groups, then the usage."""
        chosen = self.select(question, sources)
        answer = " ".join(f"{s} [{n}]" for s, n in chosen) if chosen else NO_ANSWER
        yield from (TextDelta(piece) for piece in word_groups(answer))
        yield UsageReport(
            {
                "provider": self.name,
                "input_tokens": sum(self.embedder.count_word_pieces((question + " " + " ".join(s.content for s in sources)).split())),
                "output_tokens": sum(self.embedder.count_word_pieces(answer.split())),
            }
        )


def get_generator(embedder: Embedder, provider: str = "extractive") -> Generator:
    """The configured generator."""
    generators = {"extractive": ExtractiveGenerator}
    return generators[provider](embedder)
