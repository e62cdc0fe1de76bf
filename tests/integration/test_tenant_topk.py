"""Every tenant gets its true top-k, whatever its size: small and mid tenants by an exact scan, a large
tenant through an HNSW index of its own, which is built, used and dropped while the tenant keeps working."""

from __future__ import annotations

import re
import threading
import time
import uuid

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector
from psycopg import sql
from ragcore.chunking import Chunk
from ragcore.config import get_settings
from ragcore.db import tenant_transaction
from ragcore.ingest import ClaimedDocument, PgDocumentStore
from ragcore.retrieval import dense_search
from ragcore.retrieval.dense import search_statement
from ragcore.retrieval.tenant_index import index_name, maintain_tenant_indexes

DIMS = 384
THRESHOLD = 1_500  # the large tenant crosses it, the mid one does not


class Tenant:
    """A tenant with clustered vectors drawn from centres it shares with the others."""

    def __init__(self, rng: np.random.Generator, centres: np.ndarray, picks: np.ndarray):
        self.org_id = uuid.uuid4()
        self.rng, self.centres, self.picks = rng, centres, picks
        self.vectors: dict[tuple[str, int], np.ndarray] = {}
        with tenant_transaction(self.org_id) as conn:
            conn.execute("INSERT INTO organizations (id, name) VALUES (%s, 'topk')", (self.org_id,))

    def draw(self, n: int, picks: np.ndarray | None = None) -> np.ndarray:
        picks = self.picks if picks is None else picks
        x = self.centres[self.rng.choice(picks, n)] + 0.08 * self.rng.standard_normal((n, DIMS))
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float16).astype(np.float32)  # as stored (halfvec)

    def add_document(self, n: int, metadata: str = "{}", picks: np.ndarray | None = None) -> uuid.UUID:
        document_id, vectors = uuid.uuid4(), self.draw(n, picks)
        with tenant_transaction(self.org_id) as conn:
            conn.execute(
                "INSERT INTO documents (id, org_id, name, content, content_hash, metadata)"
                " VALUES (%s, %s, 'doc', '', 'h', %s)",
                (document_id, self.org_id, metadata),
            )
        chunks = [Chunk(i, f"chunk {i}", 3) for i in range(n)]
        assert PgDocumentStore().save_chunks(
            ClaimedDocument(self.org_id, document_id, "", "h", 1), chunks, vectors, "test"
        )
        for i, vector in enumerate(vectors):
            self.vectors[(str(document_id), i)] = vector
        return document_id

    def exact_top(self, query: np.ndarray, k: int, documents: set[str] | None = None) -> list[float]:
        # Cosine of the stored (half-precision, so not quite unit) vectors, as the database computes it.
        scores = [
            float(v @ query / (np.linalg.norm(v) * np.linalg.norm(query)))
            for key, v in self.vectors.items()
            if documents is None or key[0] in documents
        ]
        return sorted(scores, reverse=True)[:k]


def assert_true_top_k(tenant: Tenant, query: np.ndarray, k: int = 10, **kwargs) -> None:
    results = dense_search(tenant.org_id, query, k, **kwargs)
    expected = tenant.exact_top(query, k)
    assert len(results) == len(expected)
    # Every returned chunk is the tenant's and as close as the true k-th (scores are rounded to 1e-6).
    for result in results:
        assert (result.document_id, result.chunk_index) in tenant.vectors
    assert [r.score for r in results] == pytest.approx(expected, abs=5e-6)


@pytest.fixture(scope="module")
def world(platform):
    rng = np.random.default_rng(2026)
    centres = rng.standard_normal((12, DIMS))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Overlapping subsets of the centres: every tenant lands where the others are.
    large = Tenant(rng, centres, np.arange(0, 6))
    mid = Tenant(rng, centres, np.arange(3, 9))
    small = Tenant(rng, centres, np.arange(2, 5))
    for _ in range(10):
        large.add_document(200)
    for _ in range(5):
        mid.add_document(200)
    small.add_document(25)  # under 1% of the chunks
    settings = get_settings().model_copy(update={"tenant_index_min_chunks": THRESHOLD})
    report = maintain_tenant_indexes(platform.owner_url, settings)
    assert large.org_id in report.built and mid.org_id not in report.built
    return {"large": large, "mid": mid, "small": small, "settings": settings, "rng": rng}


@pytest.mark.parametrize("size", ["small", "mid", "large"])
def test_every_tenant_gets_its_true_top_k(world, size):
    tenant = world[size]
    for query in tenant.draw(8):
        assert_true_top_k(tenant, query)


def _plan(org_id: uuid.UUID, statement: sql.Composed) -> str:
    """The generic plan of ``statement``: what a prepared statement runs for any parameter values."""
    with tenant_transaction(org_id) as conn:
        text = statement.as_string(conn)
        numbers: dict[str, int] = {}
        text = re.sub(r"%\((\w+)\)s", lambda m: f"${numbers.setdefault(m.group(1), len(numbers) + 1)}", text)
        rows = conn.execute(f"EXPLAIN (GENERIC_PLAN) {text}").fetchall()
    return "\n".join(row["QUERY PLAN"] for row in rows)


def test_the_planner_uses_the_large_tenants_own_index_even_in_a_generic_plan(world):
    # (With a metadata filter the planner may rightly prefer the few matching documents' chunks, read by
    # their key and sorted: exact too. The filter's results are checked below, whichever plan it takes.)
    large = world["large"]
    plan = _plan(large.org_id, search_statement(large.org_id, indexed=True, filtered=False))
    assert f"Index Scan using {index_name(large.org_id)}" in plan, plan


def test_the_exact_path_never_takes_a_graph(world):
    large = world["large"]
    plan = _plan(large.org_id, search_statement(large.org_id, indexed=False, filtered=False))
    assert "hnsw" not in plan, plan
    # The nearest-chunks scan reads the tenant's btree range (index-only, or bitmap, as the planner likes).
    nearest = plan.split("CTE nearest")[1].split("\n  ->")[0]
    assert "document_chunks_org_vectors" in nearest, plan


def test_a_metadata_filter_applies_inside_the_large_tenants_index_scan(world):
    large = world["large"]
    # A document far from the questions (a centre the tenant never uses): a post-filter on a short list
    # of nearest chunks would find none of it.
    kept = large.add_document(15, metadata='{"team": "far"}', picks=np.arange(10, 12))
    try:
        query = large.draw(1)[0]
        results = dense_search(large.org_id, query, 10, metadata_filter={"team": "far"})
        assert {r.document_id for r in results} == {str(kept)}
        assert [r.score for r in results] == pytest.approx(large.exact_top(query, 10, {str(kept)}), abs=5e-6)
    finally:
        with tenant_transaction(large.org_id) as conn:
            conn.execute("DELETE FROM documents WHERE id = %s", (kept,))
        for key in [key for key in large.vectors if key[0] == str(kept)]:
            del large.vectors[key]


def _registry_state(owner_url: str, org_id: uuid.UUID) -> tuple[str | None, bool | None]:
    with psycopg.connect(owner_url) as conn:
        state = conn.execute(
            "SELECT state FROM tenant_vector_indexes WHERE org_id = %s", (org_id,)
        ).fetchone()
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (index_name(org_id),)
        ).fetchone()
    return (state[0] if state else None, valid[0] if valid else None)


def test_a_tenant_moves_to_its_own_index_and_back_online_losing_nothing(platform, world):
    """The tenant keeps ingesting and searching while its index is built and later dropped: an ingest
    transaction is open when the build starts, searches stay exact meanwhile, and every chunk written
    around the build is found through the new index afterwards, once."""
    rng = world["rng"]
    tenant = Tenant(rng, world["large"].centres, np.arange(0, 6))
    documents = [tenant.add_document(200) for _ in range(8)]
    build_report: dict = {}
    build = threading.Thread(
        target=lambda: build_report.update(
            done=maintain_tenant_indexes(platform.owner_url, world["settings"])
        )
    )
    written_around_build: list[uuid.UUID] = []
    pending, pending_vectors = uuid.uuid4(), tenant.draw(20)
    with tenant_transaction(tenant.org_id) as conn:
        conn.execute(
            "INSERT INTO documents (id, org_id, name, content, content_hash) VALUES (%s, %s, 'p', '', 'h')",
            (pending, tenant.org_id),
        )
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO document_chunks
                   (org_id, document_id, chunk_index, content, token_count, embedding, embedding_model)
                   VALUES (%s, %s, %s, 'x', 1, %s, 'test')""",
                [(tenant.org_id, pending, i, HalfVector(v)) for i, v in enumerate(pending_vectors)],
            )
        build.start()
        # The index is in the catalog, not valid yet: the build waits for this transaction.
        deadline = time.monotonic() + 30
        while _registry_state(platform.owner_url, tenant.org_id) != ("building", False):
            assert time.monotonic() < deadline, "the build did not start"
            time.sleep(0.02)
        for query in tenant.draw(3):
            assert_true_top_k(tenant, query)
    for i, vector in enumerate(pending_vectors):
        tenant.vectors[(str(pending), i)] = vector
    written_around_build.append(pending)
    while build.is_alive() and len(written_around_build) < 6:
        written_around_build.append(tenant.add_document(5))
        assert_true_top_k(tenant, tenant.draw(1)[0])
    build.join()
    assert tenant.org_id in build_report["done"].built
    assert _registry_state(platform.owner_url, tenant.org_id) == ("ready", True)

    # Through the index now: each chunk written around the build is its own nearest neighbour.
    plan = _plan(tenant.org_id, search_statement(tenant.org_id, indexed=True, filtered=False))
    assert index_name(tenant.org_id) in plan
    for key, vector in tenant.vectors.items():
        if uuid.UUID(key[0]) in written_around_build:
            nearest = dense_search(tenant.org_id, vector, 1)[0]
            assert (nearest.document_id, nearest.chunk_index) == key
    for query in tenant.draw(5):
        assert_true_top_k(tenant, query)
    with tenant_transaction(tenant.org_id) as conn:
        stored = conn.execute("SELECT count(*) AS n FROM document_chunks WHERE org_id = %s", (tenant.org_id,))
        assert stored.fetchone()["n"] == len(tenant.vectors)

    # An index dropped behind the registry's back: exact meanwhile, built again by the next run.
    with psycopg.connect(platform.owner_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index_name(tenant.org_id))))
    assert_true_top_k(tenant, tenant.draw(1)[0])
    assert tenant.org_id in maintain_tenant_indexes(platform.owner_url, world["settings"]).built
    assert _registry_state(platform.owner_url, tenant.org_id) == ("ready", True)

    # The tenant shrinks below half the threshold: back to exact scans, the index dropped.
    gone = documents[1:] + written_around_build
    with tenant_transaction(tenant.org_id) as conn:
        conn.execute("DELETE FROM documents WHERE id = ANY(%s)", (gone,))
    for key in [key for key in tenant.vectors if uuid.UUID(key[0]) in gone]:
        del tenant.vectors[key]
    report = maintain_tenant_indexes(platform.owner_url, world["settings"])
    assert tenant.org_id in report.dropped
    assert _registry_state(platform.owner_url, tenant.org_id) == (None, None)
    for query in tenant.draw(5):
        assert_true_top_k(tenant, query)


def test_the_scheduled_maintenance_applies_the_configured_threshold(platform, world):
    """The migrate function's scheduled task, with the default threshold (20,000 chunks): the large
    tenant of this module (2,000 chunks) is under half of it, so its index goes and it is searched exactly."""
    large = world["large"]
    migrate = next(f for f in platform.functions.values() if f.spec.code_uri.rstrip("/").endswith("migrate"))
    result = migrate.invoke({"task": "tenant_indexes"})
    assert result["skipped"] is False and result["failed"] == {}
    assert str(large.org_id) in result["dropped"]
    assert _registry_state(platform.owner_url, large.org_id) == (None, None)
    for query in large.draw(3):
        assert_true_top_k(large, query)
