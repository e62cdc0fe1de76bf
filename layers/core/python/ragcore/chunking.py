"""Splitting documents into overlapping chunks that the active embedder reads in full."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_WORD = re.compile(r"\S+")
# A run of non-space characters longer than this (a URL, a base64 blob) is cut, so that no single "word"
# can exceed what the embedder reads even if every character becomes its own word piece.
MAX_WORD_CHARS = 64


@dataclass(frozen=True)
class Chunk:
    index: int
    content: str
    token_count: int


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
