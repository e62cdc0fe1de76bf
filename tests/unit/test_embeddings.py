"""The local embedder: integrity check, agreement with the float32 reference, batching, word pieces."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ragcore.embeddings import Embedder, ModelIntegrityError
from ragcore.embeddings.local import LocalEmbedder, length_batches
from ragcore.embeddings.reference import ReferenceEmbedder
from ragcore.embeddings.weights import model_dir, verified_weights_path

TEXTS = [
    "",
    "hello",
    "A man is playing a guitar on stage.",
    "Mitochondrial DNA mutations accumulate with age in human skeletal muscle fibres.",
    "Quarterly revenue rose 12% year over year; EBITDA margin: 31.4% (vs. 28.9%).",
    "¿Dónde está la biblioteca? Die Straße ist lang. 東京は日本の首都です。",
    "def embed(texts):\n    return [model(t) for t in texts]  # code, too",
    " ".join(["Retrieval augmented generation grounds answers in documents."] * 60),  # > 256 pieces
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def local(cache_dir) -> LocalEmbedder:
    return LocalEmbedder(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def reference() -> ReferenceEmbedder:
    return ReferenceEmbedder()


def test_refuses_tampered_weights(tmp_path):
    source = model_dir()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        shutil.copy(source / name, tmp_path / name)
    verified_weights_path(tmp_path)  # the intact copy passes
    with open(tmp_path / "model.safetensors", "r+b") as handle:
        handle.seek(-1000, 2)
        byte = handle.read(1)
        handle.seek(-1000, 2)
        handle.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        verified_weights_path(tmp_path)
    with pytest.raises(ModelIntegrityError):
        ReferenceEmbedder(tmp_path)
    with pytest.raises(ModelIntegrityError):
        LocalEmbedder(model_directory=tmp_path, cache_dir=tmp_path / "cache")


def test_interface(local):
    assert isinstance(local, Embedder)
    assert local.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    assert local.dimensions == 384
    assert local.max_input_tokens == 254


def test_matches_reference_unit_length(local, reference):
    fast = local.embed(TEXTS)
    exact = reference.embed(TEXTS)
    assert fast.dtype == np.float32 and fast.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(exact, axis=1), 1.0, atol=1e-5)
    cosines = (fast * exact).sum(axis=1)
    assert cosines.min() >= 0.99, cosines


def test_long_text_is_truncated_not_failing(local):
    long_text = TEXTS[-1]
    assert len(local.tokenizer.encode(long_text).ids) == 256
    longer = long_text + " " + "completely different trailing words about astronomy " * 50
    vectors = local.embed([long_text, longer])
    # Only the first 254 pieces are read, and those are the same.
    assert float(vectors[0] @ vectors[1]) > 0.9999


def test_order_preserved_with_mixed_lengths(local, reference):
    texts = [f"sentence number {i} about topic {i * 7 % 11} " * (1 + (i * 5) % 13) for i in range(23)]
    together = local.embed(texts)
    exact = reference.embed(texts)
    # Each row matches its own text's reference far better than any other text's.
    similarity = together @ exact.T
    assert (np.diag(similarity) >= 0.99).all()
    assert (np.argmax(similarity, axis=1) == np.arange(len(texts))).all()
    one_by_one = np.stack([local.embed([t])[0] for t in texts])
    assert ((together * one_by_one).sum(axis=1) > 0.99).all()


def test_empty_input(local):
    assert local.embed([]).shape == (0, 384)


def test_semantic_similarity(local):
    a, b, c = local.embed(
        [
            "The cat sat on the mat.",
            "A kitten was sitting on the rug.",
            "Interest rates were raised by the central bank.",
        ]
    )
    assert a @ b > a @ c + 0.2
    assert a @ b > b @ c + 0.2


def test_count_word_pieces(local):
    counts = local.count_word_pieces(["the", "unaffable", "Hello,", "", "tokenization", "東京"])
    assert counts[0] == 1
    assert counts[1] >= 3  # un ##aff ##able
    assert counts[2] == 2  # "hello" ","
    assert counts[3] == 0
    assert counts[4] == 2  # token ##ization
    assert counts[5] == 2  # CJK characters are split one by one
    words = ("Retrieval augmented generation grounds answers in documents. " * 40).split()
    assert sum(local.count_word_pieces(words)) == len(
        local._counter.encode(" ".join(words), add_special_tokens=False).ids
    )


def test_count_word_pieces_fast_for_thousands(local):
    import time

    words = ("mitochondrial heteroplasmy quantification unaffable x " * 2000).split()
    started = time.perf_counter()
    counts = local.count_word_pieces(words)
    assert len(counts) == len(words)
    assert time.perf_counter() - started < 1.0


def test_length_batches_limits():
    lengths = [5, 256, 3, 256, 100, 7, 256]
    batches = length_batches(lengths, max_batch=3, max_tokens=600)
    seen = sorted(int(i) for b in batches for i in b)
    assert seen == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) * max(lengths[i] for i in batch) <= 600 or len(batch) == 1


def test_cached_build_is_reused(local, cache_dir):
    from ragcore.embeddings.onnx_build import cached_model_path, ensure_model

    path = cached_model_path(cache_dir=cache_dir)
    assert local.model_path == path and path.is_file()
    mtime = path.stat().st_mtime_ns
    assert ensure_model(cache_dir=cache_dir) == path
    assert path.stat().st_mtime_ns == mtime  # not rebuilt
    assert not list(cache_dir.glob("*.tmp"))  # no leftovers of the atomic write
