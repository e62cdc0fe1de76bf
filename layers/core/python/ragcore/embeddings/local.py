"""The ``local`` provider: all-MiniLM-L6-v2 on onnxruntime, int8, offline, no torch.

Texts are tokenized (WordPiece, lower-cased, truncated to 256 pieces with [CLS]/[SEP]), sorted by
length and cut into batches that are padded only to their own longest text; the order is restored at
the end. Mean pooling over the mask and L2 normalisation happen in numpy.

Batches of very short texts (at most :data:`FLOAT_MAX_PIECES` pieces, special tokens included) run on
the float32 build instead: with so few tokens the mean pooling averages no quantization error away
(cosine to the reference drops towards 0.99 below about six pieces), and they cost next to nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragcore.embeddings.weights import (
    DIMENSIONS,
    MAX_CONTENT_PIECES,
    MODEL_NAME,
    load_tokenizer,
)

# A batch holds at most this many texts and this many padded positions (rows x longest).
DEFAULT_MAX_BATCH = 32
DEFAULT_MAX_BATCH_TOKENS = 8 * 256
FLOAT_MAX_PIECES = 16


def count_pieces(tokenizer, words: Sequence[str]) -> list[int]:
    """Word pieces each word becomes (a non-truncating tokenizer; one pre-tokenized encode for all)."""
    words = list(words)
    if not words:
        return []
    encoding = tokenizer.encode(words, is_pretokenized=True, add_special_tokens=False)
    counts = np.bincount([wid for wid in encoding.word_ids if wid is not None], minlength=len(words))
    return counts.tolist()


def length_batches(lengths: Sequence[int], max_batch: int, max_tokens: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (longest first), each within both limits."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = lengths[order[start]]
        size = max(1, min(max_batch, max_tokens // max(longest, 1)))
        batches.append(order[start : start + size])
        start += size
    return batches


def pad_batch(id_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ids (pad id 0) and the 0/1 attention mask, int32, padded to the longest row."""
    width = max(len(ids) for ids in id_lists)
    ids = np.zeros((len(id_lists), width), dtype=np.int32)
    mask = np.zeros((len(id_lists), width), dtype=np.int32)
    for row, seq in enumerate(id_lists):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class LocalEmbedder:
    """all-MiniLM-L6-v2, 384 dims, run by onnxruntime on all available cores."""

    model_name = MODEL_NAME
    dimensions = DIMENSIONS
    max_input_tokens = MAX_CONTENT_PIECES

    def __init__(
        self,
        *,
        variant: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        model_directory: Path | None = None,
        threads: int | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> None:
        from ragcore.embeddings.onnx_build import DEFAULT_VARIANT, ensure_model

        self.variant = variant or DEFAULT_VARIANT
        self.model_path = ensure_model(self.variant, cache_dir, model_directory)
        self._cache_dir, self._model_directory = cache_dir, model_directory
        self.tokenizer = load_tokenizer(model_directory)
        self._counter = load_tokenizer(model_directory, truncate=False)
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens
        self.threads = threads or available_cores()
        self.session = self._session(self.model_path)
        self._float_session = None  # for very short texts, created on first use
        # One run at a time: the session already uses every core, concurrent runs would only contend.
        self._lock = threading.Lock()

    def _session(self, path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _session_for(self, longest: int):
        if longest > FLOAT_MAX_PIECES or self.variant == "fp32":
            return self.session
        if self._float_session is None:
            from ragcore.embeddings.onnx_build import ensure_model

            self._float_session = self._session(ensure_model("fp32", self._cache_dir, self._model_directory))
        return self._float_session

    def count_word_pieces(self, words: Sequence[str]) -> list[int]:
        return count_pieces(self._counter, words)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        for index in length_batches(lengths, self.max_batch, self.max_batch_tokens):
            ids, mask = pad_batch([encodings[i].ids for i in index])
            with self._lock:
                session = self._session_for(ids.shape[1])
                (hidden,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
            m = mask.astype(np.float32)[:, :, None]
            pooled = (hidden * m).sum(axis=1) / m.sum(axis=1)
            out[index] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out
