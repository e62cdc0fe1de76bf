"""Test doubles for the small interfaces of ragcore (no network, no model)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

import numpy as np
from ragcore.errors import ChunkQuotaExceeded
from ragcore.generation import content_terms
from ragcore.ingest import ClaimedDocument


class BagOfWordsEmbedder:
    """Hashes content terms into a unit vector: texts sharing words are similar, others are not."""

    model_name = "test/bag-of-words"
    dimensions = 64
    max_input_tokens = 254

    def __init__(self, fail_times: int = 0, error: Exception | None = None):
        self.calls = 0
        self.fail_times = fail_times
        self.error = error

    def count_word_pieces(self, words: Sequence[str]) -> list[int]:
        return [1 + len(w) // 6 for w in words]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise self.error or RuntimeError("provider unavailable")
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in content_terms(text):
                out[row, int(hashlib.md5(term.encode()).hexdigest(), 16) % self.dimensions] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


class InMemoryDocumentStore:
    """DocumentStore keeping documents in a dict, mirroring the PostgreSQL store's rules."""

    def __init__(self, max_chunks: int | None = None):
        self.docs: dict[uuid.UUID, dict] = {}
        self.chunks: dict[uuid.UUID, list] = {}
        self.max_chunks = max_chunks  # per document here: the fake has one document per organisation

    def add(self, content: str) -> tuple[uuid.UUID, uuid.UUID]:
        org_id, doc_id = uuid.uuid4(), uuid.uuid4()
        self.docs[doc_id] = {
            "org_id": org_id,
            "content": content,
            "hash": hashlib.sha256(content.encode()).hexdigest(),
            "status": "pending",
            "attempts": 0,
            "ingested_hash": None,
            "error": None,
        }
        return org_id, doc_id

    def claim(self, org_id, document_id):
        doc = self.docs.get(document_id)
        if doc is None or doc["org_id"] != org_id:
            return None
        if doc["status"] == "ready" and doc["ingested_hash"] == doc["hash"]:
            return None
        doc["status"], doc["attempts"] = "processing", doc["attempts"] + 1
        return ClaimedDocument(org_id, document_id, doc["content"], doc["hash"], doc["attempts"])

    def check_chunk_quota(self, claimed, count):
        if self.max_chunks is not None and count > self.max_chunks:
            raise ChunkQuotaExceeded(f"chunk_quota_exceeded: {count} chunks, the quota is {self.max_chunks}")

    def save_chunks(self, claimed, chunks, vectors, model):
        doc = self.docs.get(claimed.document_id)
        if doc is None or doc["hash"] != claimed.content_hash:
            return False
        self.chunks[claimed.document_id] = list(zip(chunks, vectors, strict=True))
        doc.update(status="ready", ingested_hash=doc["hash"], error=None)
        return True

    def mark_failed(self, org_id, document_id, reason):
        self.docs[document_id].update(status="failed", error=reason)

    def held_by_another_org(self, org_id, document_id):
        doc = self.docs.get(document_id)
        return doc is not None and doc["org_id"] != org_id

    def upload_state(self, org_id, document_id):
        return None  # text documents only: uploaded files are tested on PostgreSQL and S3
