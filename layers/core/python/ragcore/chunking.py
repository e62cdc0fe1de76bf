"""Splitting documents into overlapping chunks that the active embedder reads in full.

:func:`chunk_text` slides a window over one text; :func:`chunk_sections` applies it to each section of an
extracted file (a PDF page, the body under a heading) so that no chunk straddles two places, and gives
every chunk the location it came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

_WORD = re.compile(r"\S+")
# A run of non-space characters longer than this (a URL, a base64 blob) is cut, so that no single "word"
# can exceed what the embedder reads even if every character becomes its own word piece.
MAX_WORD_CHARS = 64


@dataclass(frozen=True)
class Chunk:
    index: int
    content: str
    token_count: int
    # Where the chunk comes from: pages of a paged file (None otherwise) and the heading path above it.
    page_start: int | None = None
    page_end: int | None = None
    headings: tuple[str, ...] = ()


class LocatedText(Protocol):
    """A section of a document (see ragcore.extractors.Section): text, its page, its heading path."""

    @property
    def text(self) -> str: ...

    @property
    def page(self) -> int | None: ...

    @property
    def headings(self) -> tuple[str, ...]: ...


def _word_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for match in _WORD.finditer(text):
        start, end = match.span()
        while end - start > MAX_WORD_CHARS:
            spans.append((start, start + MAX_WORD_CHARS))
            start += MAX_WORD_CHARS
        spans.append((start, end))
    return spans


def chunk_text(
    text: str,
    *,
    size_words: int = 512,
    overlap_words: int = 64,
    max_tokens: int | None = None,
    count_word_pieces: Callable[[Sequence[str]], list[int]] | None = None,
) -> list[Chunk]:
    """Slide a window of ``size_words`` words with ``overlap_words`` of overlap over ``text``.

    When the embedder reads at most ``max_tokens`` word pieces, a window closes early as soon as the next
    word would not fit, so no chunk is truncated when embedded; the overlap then shrinks in proportion.
    Chunks keep the original text between their first and last word (line breaks included).
    """
    if overlap_words >= size_words:
        raise ValueError("overlap_words must be smaller than size_words")
    spans = _word_spans(text)
    if not spans:
        return []
    words = [text[s:e] for s, e in spans]
    pieces = count_word_pieces(words) if count_word_pieces else [1] * len(words)
    budget = max_tokens if max_tokens is not None else sum(pieces)

    chunks: list[Chunk] = []
    start = 0
    while start < len(words):
        end, tokens = start, 0
        while end < len(words) and end - start < size_words and tokens + pieces[end] <= budget:
            tokens += pieces[end]
            end += 1
        if end == start:  # one word alone exceeds the budget: keep it rather than loop forever
            tokens, end = pieces[start], start + 1
        chunks.append(
            Chunk(index=len(chunks), content=text[spans[start][0] : spans[end - 1][1]], token_count=tokens)
        )
        if end >= len(words):
            break
        window = end - start
        overlap = min(overlap_words, overlap_words * window // size_words)
        start = max(end - overlap, start + 1)
    return chunks


def chunk_sections(
    sections: Iterable[LocatedText],
    *,
    size_words: int = 512,
    overlap_words: int = 64,
    max_tokens: int | None = None,
    count_word_pieces: Callable[[Sequence[str]], list[int]] | None = None,
) -> list[Chunk]:
    """Chunks of each section in turn (with :func:`chunk_text`'s window), numbered across the document.

    A chunk never spans two sections, so each one has a single location: ``page_start`` = ``page_end`` =
    the section's page (None for formats without pages) and the section's heading path. A document of
    one section without location (plain text) gives exactly the chunks :func:`chunk_text` gives.
    """
    chunks: list[Chunk] = []
    for section in sections:
        for piece in chunk_text(
            section.text,
            size_words=size_words,
            overlap_words=overlap_words,
            max_tokens=max_tokens,
            count_word_pieces=count_word_pieces,
        ):
            chunks.append(
                replace(
                    piece,
                    index=len(chunks),
                    page_start=section.page,
                    page_end=section.page,
                    headings=tuple(section.headings),
                )
            )
    return chunks
