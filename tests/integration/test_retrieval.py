"""Dense retrieval gives every tenant its true top-k, however small it is next to the others."""

import uuid

import numpy as np
import pytest
from ragcore.chunking import Chunk
from ragcore.db import tenant_transaction
from ragcore.ingest import ClaimedDocument, PgDocumentStore
from ragcore.retrieval import dense_search


def _unit(rng, n, dims=384):
    vectors = rng.standard_normal((n, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _load(org_id, vectors, per_document=50):
    store = PgDocumentStore()
    for start in range(0, len(vectors), per_document):
        document_id, block = uuid.uuid4(), vectors[start : start + per_document]
        with tenant_transaction(org_id) as conn:
            conn.execute(
                "INSERT INTO organizations (id, name) VALUES (%s, 'x') ON CONFLICT DO NOTHING", (org_id,)
            )
            conn.execute(
                "INSERT INTO documents (id, org_id, name, content, content_hash) VALUES (%s, %s, %s, '', %s)",
                (document_id, org_id, f"doc-{start}", str(start)),
            )
        chunks = [Chunk(i, f"chunk {start + i}", 3) for i in range(len(block))]
        store.save_chunks(ClaimedDocument(org_id, document_id, "", str(start), 1), chunks, block, "test")


@pytest.fixture(scope="module")
def tenants(platform):
    rng = np.random.default_rng(7)
    big, small = uuid.uuid4(), uuid.uuid4()
    small_vectors = _unit(rng, 12)
    _load(big, _unit(rng, 4000))
    _load(small, small_vectors, per_document=4)
    return big, small, small_vectors, rng


def test_a_small_tenant_gets_its_exact_top_k_next_to_a_large_one(tenants):
    _, small, small_vectors, rng = tenants
    for query in _unit(rng, 5):
        results = dense_search(small, query, top_k=10)
        assert len(results) == 10
        expected = sorted(small_vectors @ query, reverse=True)[:10]
        assert [r.score for r in results] == pytest.approx(expected, abs=2e-3)  # halfvec precision


def test_top_k_larger_than_the_tenant_returns_all_it_has(tenants):
    _, small, _, rng = tenants
    assert len(dense_search(small, _unit(rng, 1)[0], top_k=50)) == 12
