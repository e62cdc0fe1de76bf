"""Recall@10 and latency of dense retrieval per tenant size, at up to a million chunks.

Usage: .venv/bin/python bench/tenant_recall.py [--chunks 1000000] [--tenants 1000] [--queries 100]
           [--db <owner connection URL>] [--skip-seed] [--ef-search 100,200] [--exact-all]

Synthetic but adversarial data: ``--chunks`` vectors of 384 dims in ``--tenants`` tenants whose sizes
follow a Zipf law (the largest tenant holds ``--largest-share`` of all chunks), around a few hundred
gaussian centres; each tenant uses its own random subset of centres, so tenants overlap and crowd each
other's regions of a shared graph; each document (50 chunks) has a topic near one of its tenant's centres.
Documents are loaded in random order (tenants interleaved on disk, as many tenants ingesting at once
leave them) by binary COPY into the seed's schema (the project's migrations before 0003), the indexes
built after the load and the tables vacuumed (as autovacuum would). The seed is measured there; then the
remaining migrations are applied to the loaded table and the project's index maintenance is run with the
configured settings (TENANT_INDEX_MIN_CHUNKS, TENANT_INDEX_M, ...), and ours is measured.

Searched as the application role, per size class (under 1k, 1k-10k, 10k+ chunks) with recall@10 against
an exact search of the tenant in numpy (mean and worst query) and p50/p95 latency:
  ours  - ragcore.retrieval.dense_search (exact scan, or the tenant's own HNSW index);
  seed  - the seed's query over one shared HNSW index (iterative scan, ef_search 100), same data, same run.
Without --db an embedded PostgreSQL is started in a temporary directory (superuser: the owner loads the
rows of every tenant).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_line  # noqa: E402
from bench._stack import percentile  # noqa: E402

DIMS = 384
PER_DOCUMENT = 50
CLASSES = (("under 1k", 0, 1_000), ("1k-10k", 1_000, 10_000), ("10k+", 10_000, 1 << 62))
SEED_INDEX = "document_chunks_embedding_hnsw"
# The first migration of this design: the seed is measured on the schema of the migrations before it.
DESIGN_MIGRATION = "0003"


def zipf_sizes(chunks: int, tenants: int, largest_share: float) -> np.ndarray:
    """Tenant sizes proportional to rank^-s, s solved so the largest holds ``largest_share``; sum = chunks."""
    ranks = np.arange(1, tenants + 1, dtype=np.float64)
    low, high = 0.0, 5.0
    for _ in range(100):
        s = (low + high) / 2
        weights = ranks**-s
        if weights[0] / weights.sum() < largest_share:
            low = s
        else:
            high = s
    sizes = np.maximum(1, np.floor(weights / weights.sum() * chunks)).astype(np.int64)
    sizes[0] += chunks - sizes.sum()
    return sizes


class Corpus:
    """Clustered unit vectors per tenant (float16, as stored) and the queries' generator.

    Each document (50 chunks) has a topic: one of its tenant's centres moved by ``spread`` per dimension;
    its chunks scatter around the topic by ``noise`` per dimension (chunks of one document are alike, as
    real ones are). Queries are new chunks of a random document of the tenant.
    """

    def __init__(
        self, sizes: np.ndarray, centres: int, per_tenant: int, spread: float, noise: float, seed: int
    ):
        self.rng = np.random.default_rng(seed)
        self.centres = self._unit(self.rng.standard_normal((centres, DIMS)))
        self.noise = noise
        self.sizes = sizes
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.vectors = np.empty((int(sizes.sum()), DIMS), dtype=np.float16)
        self.topics: list[np.ndarray] = []
        for tenant, size in enumerate(sizes):
            documents = -(-int(size) // PER_DOCUMENT)
            picks = self.rng.choice(self.rng.choice(centres, per_tenant, replace=False), documents)
            self.topics.append(
                (self.centres[picks] + spread * self.rng.standard_normal((documents, DIMS))).astype(
                    np.float32
                )
            )
            start = int(self.offsets[tenant])
            for document in range(documents):
                n = min(PER_DOCUMENT, int(size) - document * PER_DOCUMENT)
                first = start + document * PER_DOCUMENT
                self.vectors[first : first + n] = self.draw(tenant, document, n)

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def draw(self, tenant: int, document: int, n: int) -> np.ndarray:
        return self._unit(self.topics[tenant][document] + self.noise * self.rng.standard_normal((n, DIMS)))

    def query(self, tenant: int) -> np.ndarray:
        return self.draw(tenant, int(self.rng.integers(len(self.topics[tenant]))), 1)[0]

    def tenant_vectors(self, tenant: int) -> np.ndarray:
        return self.vectors[self.offsets[tenant] : self.offsets[tenant + 1]].astype(np.float32)


def copy_header() -> bytes:
    return b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")


def chunk_rows(org: uuid.UUID, doc: uuid.UUID, start: int, vectors: np.ndarray, content_bytes: int) -> bytes:
    """Binary COPY tuples of document_chunks (org_id, document_id, chunk_index, content, token_count,
    embedding, embedding_model); every tuple has the same layout, so numpy writes them all at once."""
    n = len(vectors)
    model = b"bench"
    dtype = np.dtype(
        [
            ("nf", ">i2"),
            ("l1", ">i4"), ("org", "V16"),
            ("l2", ">i4"), ("doc", "V16"),
            ("l3", ">i4"), ("idx", ">i4"),
            ("l4", ">i4"), ("content", f"S{content_bytes}"),
            ("l5", ">i4"), ("tokens", ">i4"),
            ("l6", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("vec", ">f2", (DIMS,)),
            ("l7", ">i4"), ("model", f"S{len(model)}"),
        ]
    )  # fmt: skip
    rows = np.zeros(n, dtype=dtype)
    rows["nf"] = 7
    rows["l1"], rows["org"] = 16, np.void(org.bytes)
    rows["l2"], rows["doc"] = 16, np.void(doc.bytes)
    rows["l3"], rows["idx"] = 4, np.arange(n)
    filler = ("lorem ipsum dolor sit amet " * (content_bytes // 20 + 2)).encode()
    rows["l4"] = content_bytes
    rows["content"] = [(f"chunk {start + i} ".encode() + filler)[:content_bytes] for i in range(n)]
    rows["l5"], rows["tokens"] = 4, 100
    rows["l6"], rows["dim"], rows["vec"] = 4 + 2 * DIMS, DIMS, vectors
    rows["l7"], rows["model"] = len(model), model
    return rows.tobytes()


def load(
    owner_url: str, corpus: Corpus, orgs: list[uuid.UUID], content_bytes: int, seed: int, skip: set[str]
) -> None:
    """Documents of 50 chunks in random order by binary COPY; the table's indexes (but ``skip``) rebuilt
    after the load, as building them is much faster than maintaining them row by row."""
    import psycopg

    rng = np.random.default_rng(seed + 1)
    documents = [
        (tenant, start)
        for tenant, size in enumerate(corpus.sizes)
        for start in range(0, int(size), PER_DOCUMENT)
    ]
    order = rng.permutation(len(documents))
    with psycopg.connect(owner_url, autocommit=True) as conn:
        saved = conn.execute(
            """SELECT indexname, indexdef FROM pg_indexes i WHERE tablename = 'document_chunks'
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"""
        ).fetchall()
        for name, _ in saved:
            conn.execute(f'DROP INDEX "{name}"')
        with conn.cursor().copy("COPY organizations (id, name) FROM STDIN") as copy:
            for number, org in enumerate(orgs):
                copy.write_row((org, f"tenant {number}"))
        doc_ids = [uuid.uuid4() for _ in documents]
        with conn.cursor().copy(
            "COPY documents (id, org_id, name, content, content_hash, status, chunk_count, ingested_hash)"
            " FROM STDIN"
        ) as copy:
            for (tenant, start), doc_id in zip(documents, doc_ids, strict=True):
                count = min(PER_DOCUMENT, int(corpus.sizes[tenant]) - start)
                copy.write_row(
                    (doc_id, orgs[tenant], f"doc {start}", "", str(doc_id), "ready", count, str(doc_id))
                )
        started = time.monotonic()
        columns = "org_id, document_id, chunk_index, content, token_count, embedding, embedding_model"
        with conn.cursor().copy(f"COPY document_chunks ({columns}) FROM STDIN (FORMAT binary)") as copy:
            copy.write(copy_header())
            for position in order:
                tenant, start = documents[position]
                first = int(corpus.offsets[tenant]) + start
                count = min(PER_DOCUMENT, int(corpus.sizes[tenant]) - start)
                copy.write(
                    chunk_rows(orgs[tenant], doc_ids[position], start, corpus.vectors[first : first + count],
                               content_bytes)
                )  # fmt: skip
            copy.write((-1).to_bytes(2, "big", signed=True))
        print(
            f"  copied {int(corpus.sizes.sum()):,} chunks in {time.monotonic() - started:.0f} s", flush=True
        )
        conn.execute("SET maintenance_work_mem = '2GB'")
        for name, definition in saved:
            if name in skip:
                continue
            started = time.monotonic()
            conn.execute(definition)
            print(f"  built {name} in {time.monotonic() - started:.0f} s", flush=True)
        conn.execute("VACUUM (ANALYZE) organizations, documents, document_chunks")


def seed_search(conn, org: uuid.UUID, query: np.ndarray, top_k: int) -> list[tuple[str, int]]:
    """The seed's query: tenant predicate over the shared HNSW index, iterative scan, ef_search 100.

    On the seed's schema the planner may also pick the org btree and a sort (an exact scan) when its
    statistics say the tenant is small, and a prepared statement's generic plan cannot know; the issue
    measured the shared-index path, so the sort is disabled for this transaction to take that path.
    """
    from pgvector import HalfVector

    with conn.transaction():
        conn.execute(
            "SELECT set_config('app.org_id', %s, true), set_config('hnsw.ef_search', '100', true),"
            " set_config('hnsw.iterative_scan', 'relaxed_order', true),"
            " set_config('enable_sort', 'off', true)",
            (str(org),),
        )
        rows = conn.execute(
            """SELECT document_id, chunk_index FROM document_chunks WHERE org_id = %s
               ORDER BY embedding <=> %s LIMIT %s""",
            (org, HalfVector(query), top_k),
        ).fetchall()
    return [(str(r[0]), r[1]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=100, help="queries per size class")
    parser.add_argument("--largest-share", type=float, default=0.156)
    parser.add_argument("--centres", type=int, default=400)
    parser.add_argument("--centres-per-tenant", type=int, default=8)
    parser.add_argument(
        "--spread", type=float, default=0.06, help="per-dimension spread of document topics around centres"
    )
    parser.add_argument(
        "--noise", type=float, default=0.04, help="per-dimension spread of chunks around their topic"
    )
    parser.add_argument("--content-bytes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="owner (superuser) URL of an empty database; default: embedded server")
    parser.add_argument(
        "--skip-seed", action="store_true", help="do not build the shared index nor run the seed"
    )
    parser.add_argument(
        "--ef-search",
        type=lambda v: [int(x) for x in v.split(",")],
        help="ef_search values to measure, e.g. 100,200",
    )
    parser.add_argument("--exact-all", action="store_true", help="also time the exact path for every class")
    args = parser.parse_args()

    print(f"tenant recall: {args.chunks:,} chunks, {args.tenants} tenants, {args.queries} queries per class,"
          f" {machine_line()}, {datetime.date.today()}", flush=True)  # fmt: skip
    sizes = zipf_sizes(args.chunks, args.tenants, args.largest_share)
    started = time.monotonic()
    corpus = Corpus(sizes, args.centres, args.centres_per_tenant, args.spread, args.noise, args.seed)
    shares = []
    for label, lo, hi in CLASSES:
        members = sizes[(sizes >= lo) & (sizes < hi)]
        shares.append(f"{label}: {len(members)} tenants, {int(members.sum()):,} chunks")
    print(f"  largest tenant {sizes[0]:,}; " + "; ".join(shares), flush=True)
    print(f"  vectors drawn in {time.monotonic() - started:.0f} s", flush=True)
    orgs = [uuid.uuid4() for _ in sizes]

    with tempfile.TemporaryDirectory(prefix="tenant-recall-") as tmp:
        server = None
        if args.db:
            owner_url = args.db
        else:
            import pgserver
            import psycopg

            server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE rag")
            owner_url = server.get_uri("rag")
        try:
            run(args, corpus, orgs, owner_url, Path(tmp))
        finally:
            from ragcore import db

            db.close_pool()
            if server is not None:
                server.cleanup()


def run(args, corpus: Corpus, orgs: list[uuid.UUID], owner_url: str, tmp: Path) -> None:
    """The seed on the seed's schema (migrations before this design's), then the upgrade, then ours."""
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    app_url = make_conninfo(**{**conninfo_to_dict(owner_url), "user": "rag_app", "password": ""})
    os.environ.update({"DATABASE_URL": app_url, "MIGRATION_DATABASE_URL": owner_url})
    from ragcore.config import get_settings, reset_settings
    from ragcore.migrations import apply_migrations, default_migrations_dir
    from ragcore.retrieval import dense_search
    from ragcore.retrieval.tenant_index import maintain_tenant_indexes

    reset_settings()
    seed_dir = tmp / "seed-migrations"
    seed_dir.mkdir()
    for path in sorted(default_migrations_dir().glob("*.sql")):
        if path.name < DESIGN_MIGRATION:
            shutil.copy(path, seed_dir / path.name)
    apply_migrations(owner_url, migrations_dir=seed_dir)
    started = time.monotonic()
    load(
        owner_url, corpus, orgs, args.content_bytes, args.seed, skip={SEED_INDEX} if args.skip_seed else set()
    )
    print(f"  loaded and indexed (seed schema) in {time.monotonic() - started:.0f} s", flush=True)

    rng = np.random.default_rng(args.seed + 2)
    with psycopg.connect(owner_url) as conn:
        doc_rows = conn.execute("SELECT id, name FROM documents").fetchall()
    # (document id, chunk index) -> position of the vector within its tenant.
    base = {str(doc): int(name.split()[1]) for doc, name in doc_rows}
    queries = []
    for label, lo, hi in CLASSES:
        members = np.flatnonzero((corpus.sizes >= lo) & (corpus.sizes < hi))
        for _ in range(args.queries if len(members) else 0):
            tenant = int(rng.choice(members))
            # Rounded as the database rounds it (halfvec), so exact means exact.
            query = corpus.query(tenant).astype(np.float16).astype(np.float32)
            # Cosine of the stored (half-precision, not quite unit) vectors, as the database computes it.
            stored = corpus.tenant_vectors(tenant)
            exact = stored @ query / (np.linalg.norm(stored, axis=1) * np.linalg.norm(query))
            top = np.sort(exact)[::-1][: min(10, len(exact))]
            queries.append((label, tenant, query, exact, top))

    def recall(results: list[tuple[str, int]], exact: np.ndarray, top: np.ndarray) -> float:
        # A result counts when it is as close as the true 10th (ties within float rounding count too).
        found = sum(1 for doc, index in results[:10] if exact[base[doc] + index] >= top[-1] - 1e-5)
        return min(found, len(top)) / len(top)

    def measure(name: str, search) -> None:
        for _, tenant, query, _, _ in queries:  # warm the caches, as a running service has them
            search(orgs[tenant], query)
        per_class: dict[str, list[tuple[float, float]]] = {}
        for label, tenant, query, exact, top in queries:
            t0 = time.perf_counter()
            results = search(orgs[tenant], query)
            elapsed = (time.perf_counter() - t0) * 1000
            per_class.setdefault(label, []).append((recall(results, exact, top), elapsed))
        for label, _, _ in CLASSES:
            if label not in per_class:
                continue
            recalls = [r for r, _ in per_class[label]]
            times = [t for _, t in per_class[label]]
            print(
                f"  {name:<26} {label:<9} recall@10 mean {np.mean(recalls):.3f} worst {min(recalls):.2f}"
                f"  p50 {percentile(times, 50):6.1f} ms  p95 {percentile(times, 95):6.1f} ms",
                flush=True,
            )

    if not args.skip_seed:
        with psycopg.connect(app_url) as conn:
            register_vector(conn)
            measure("seed (shared HNSW)", lambda org, query: seed_search(conn, org, query, 10))
            with conn.transaction():
                label, tenant, query, _, _ = queries[-1]
                conn.execute(
                    "SELECT set_config('app.org_id', %s, true), set_config('enable_sort', 'off', true)",
                    (str(orgs[tenant]),),
                )
                plan = conn.execute(
                    "EXPLAIN SELECT document_id, chunk_index FROM document_chunks WHERE org_id = %s"
                    " ORDER BY embedding <=> %s LIMIT 10",
                    (orgs[tenant], query),
                ).fetchall()
                print(
                    f"  seed plan ({label}): " + " / ".join(r[0].strip() for r in plan if "Scan" in r[0]),
                    flush=True,
                )

    started = time.monotonic()
    applied = apply_migrations(owner_url)
    print(f"  migrations {', '.join(applied)} applied in {time.monotonic() - started:.0f} s", flush=True)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) document_chunks")
    settings = get_settings()
    started = time.monotonic()
    report = maintain_tenant_indexes(owner_url, settings)
    print(
        f"  index maintenance: {len(report.built)} tenant indexes in {time.monotonic() - started:.0f} s"
        f" (threshold {settings.tenant_index_min_chunks:,} chunks, m {settings.tenant_index_m},"
        f" ef_construction {settings.tenant_index_ef_construction})",
        flush=True,
    )
    if report.failed:
        raise SystemExit(f"index builds failed: {report.failed}")

    for ef_search in args.ef_search or [settings.hnsw_ef_search]:
        os.environ["HNSW_EF_SEARCH"] = str(ef_search)
        reset_settings()
        measure(
            f"ours, ef_search {ef_search}",
            lambda org, query: [(s.document_id, s.chunk_index) for s in dense_search(org, query, 10)],
        )
    if args.exact_all:
        measure(
            "ours, exact path only",
            lambda org, query: [
                (s.document_id, s.chunk_index) for s in dense_search(org, query, 10, exact=True)
            ],
        )


if __name__ == "__main__":
    main()
