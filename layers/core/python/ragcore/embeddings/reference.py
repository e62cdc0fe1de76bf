"""A plain numpy float32 forward pass of all-MiniLM-L6-v2: the oracle and the speed baseline.

BERT (post-LayerNorm, exact erf GELU), mean pooling over the attention mask, L2 normalisation, exactly
as sentence-transformers computes it. Slow by design (no fusion, no quantization): the shipped embedder
(:mod:`ragcore.embeddings.local`) is checked against it in the tests and measured against it in
``bench/embedder.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragcore.embeddings.weights import (
    DIMENSIONS,
    MAX_CONTENT_PIECES,
    MODEL_NAME,
    load_config,
    load_tokenizer,
    load_weights,
)

_ERF_P = np.float32(0.3275911)
_ERF_A = [np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)]


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, computed in place on ``x`` to spare memory traffic.

    erf to about 1.5e-7 (Abramowitz and Stegun 7.1.26): exact at float32 precision.
    """
    z = x * np.float32(0.7071067811865476)  # x / sqrt(2)
    sign = np.sign(z)
    np.abs(z, out=z)
    t = _ERF_P * z
    t += 1.0
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = _ERF_A
    poly = a5 * t
    for coefficient in (a4, a3, a2, a1):
        poly += coefficient
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # poly * exp(-z^2)
    np.subtract(1.0, poly, out=poly)  # erf(|z|)
    poly *= sign
    poly += 1.0
    poly *= x
    poly *= np.float32(0.5)
    return poly


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(eps)) * gamma + beta


def mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the unmasked positions, then unit length (float32, (batch, hidden))."""
    m = mask.astype(np.float32)[:, :, None]
    summed = (hidden * m).sum(axis=1)
    pooled = summed / np.maximum(m.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


class ReferenceEmbedder:
    """Float32 numpy implementation; same interface as the shipped embedder."""

    model_name = MODEL_NAME
    dimensions = DIMENSIONS
    max_input_tokens = MAX_CONTENT_PIECES

    def __init__(self, model_directory: Path | None = None, batch_size: int = 16) -> None:
        self.setup(
            load_weights(model_directory),
            load_config(model_directory),
            load_tokenizer(model_directory),
            load_tokenizer(model_directory, truncate=False),
            batch_size,
        )

    def setup(self, weights: dict, config, tokenizer, counter, batch_size: int = 16) -> None:
        self.config = config
        self.w = {k: v.astype(np.float32) for k, v in weights.items()}
        self.tokenizer = tokenizer
        self._counter = counter
        self.batch_size = batch_size
        # Pre-transpose the dense weights once: y = x @ W.T + b.
        self._t = {
            k: np.ascontiguousarray(v.T)
            for k, v in self.w.items()
            if k.endswith("dense.weight") or k.endswith(("query.weight", "key.weight", "value.weight"))
        }

    def count_word_pieces(self, words: Sequence[str]) -> list[int]:
        from ragcore.embeddings.local import count_pieces

        return count_pieces(self._counter, words)

    def forward(self, ids: np.ndarray, mask: np.ndarray, tap=None) -> np.ndarray:
        """Last hidden states (batch, seq, hidden) for right-padded ids and their 0/1 mask.

        ``tap(name, activations)``, when given, sees the input of every dense layer (names as in
        :mod:`ragcore.embeddings.onnx_build`: ``l{i}_qkv``, ``l{i}_attn_out``, ``l{i}_ffn_in``,
        ``l{i}_ffn_out``); the quantized build calibrates itself with it.
        """
        if tap is None:

            def tap(name, activations):
                return None

        c, w, t = self.config, self.w, self._t
        b, s = ids.shape
        heads, hd = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:s][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], c.layer_norm_eps)
        bias = ((1.0 - mask.astype(np.float32)) * np.float32(np.finfo(np.float32).min))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(hd))
        for i in range(c.num_hidden_layers):
            p = f"encoder.layer.{i}."

            def dense(v, name, p=p):
                return v @ t[p + name + ".weight"] + w[p + name + ".bias"]

            def split(v):
                return v.reshape(b, s, heads, hd).transpose(0, 2, 1, 3)

            tap(f"l{i}_qkv", x)
            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = (q * scale) @ k.transpose(0, 1, 3, 2)
            scores += bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores, out=scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, c.hidden_size)
            tap(f"l{i}_attn_out", ctx)
            x = layer_norm(
                dense(ctx, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                c.layer_norm_eps,
            )
            tap(f"l{i}_ffn_in", x)
            h = gelu(dense(x, "intermediate.dense"))
            tap(f"l{i}_ffn_out", h)
            x = layer_norm(
                dense(h, "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                c.layer_norm_eps,
            )
        return x

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from ragcore.embeddings.local import length_batches, pad_batch

        texts = list(texts)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(texts)
        for index in length_batches([len(e.ids) for e in encodings], self.batch_size, 1 << 30):
            ids, mask = pad_batch([encodings[i].ids for i in index])
            out[index] = mean_pool_normalise(self.forward(ids, mask), mask)
        return out
