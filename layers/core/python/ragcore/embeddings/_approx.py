"""Word-piece estimates for the remote providers, whose tokenizers are not available offline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=1)
def _bert_counter():
    try:
        from ragcore.embeddings.weights import load_tokenizer

        return load_tokenizer(truncate=False)
    except Exception:  # the model package is optional for remote providers
        return None


def estimate_word_pieces(words: Sequence[str]) -> list[int]:
    """A conservative (rather high) estimate of the tokens each word costs a remote model.

    With the local MiniLM tokenizer installed: the larger of its WordPiece count and ceil(len/4);
    WordPiece splits words into at least as many pieces as the byte-pair encodings of OpenAI and Titan
    do for ordinary text. Without it: ceil(characters / 4), at least 1 per non-empty word.
    """
    words = list(words)
    chars = [math.ceil(len(w) / 4) for w in words]
    tokenizer = _bert_counter()
    if tokenizer is None:
        return [max(1, c) if w.strip() else 0 for w, c in zip(words, chars, strict=True)]
    from ragcore.embeddings.local import count_pieces

    pieces = count_pieces(tokenizer, words)
    return [max(p, c) if p else 0 for p, c in zip(pieces, chars, strict=True)]


def normalise_rows(vectors):
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
