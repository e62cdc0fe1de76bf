"""Ingestion end to end (upload -> ready, over HTTP on the local stack) next to the embedder alone.

Usage: .venv/bin/python bench/ingest_throughput.py --data <scifact dir> [--documents 40] [--words 1500]

Both figures are chunks per second on the same chunk texts in the same run; the target is that the
platform stays within 80% of the embedder alone (the database and the queue are never the bottleneck).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import load_scifact, machine_line, scifact_dir  # noqa: E402
from bench._stack import register, running_stack, wait_until_ready  # noqa: E402


def documents_from(corpus: list[str], count: int, words: int) -> list[str]:
    """``count`` documents of about ``words`` words, made of consecutive SciFact abstracts."""
    stream = " ".join(corpus).split()
    if len(stream) < count * words:
        raise SystemExit("not enough text in the corpus")
    return [" ".join(stream[i * words : (i + 1) * words]) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="SciFact directory (BEIR format); else $SCIFACT_DIR")
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--words", type=int, default=1500)
    args = parser.parse_args()
    _, corpus, *_ = load_scifact(scifact_dir(args.data))
    texts = documents_from(corpus, args.documents, args.words)

    with running_stack() as api:
        from ragcore.config import get_settings
        from ragcore.embeddings import embed_in_batches, get_embedder
        from ragcore.ingest import chunk_for

        settings = get_settings()
        embedder = get_embedder(settings)
        embedder.embed(["warm-up"])  # the model is loaded before either measurement starts
        token = register(api)["token"]
        headers = {"Authorization": f"Bearer {token}"}

        started = time.monotonic()
        for number, text in enumerate(texts):
            response = requests.post(
                f"{api}/documents",
                json={"name": f"doc-{number}.txt", "content": text},
                headers=headers,
                timeout=30,
            )
            response.raise_for_status()
        finished = wait_until_ready(api, token, len(texts))
        end_to_end_seconds = finished - started
        listing = requests.get(f"{api}/documents", params={"limit": 100}, headers=headers, timeout=30).json()
        chunk_total = sum(d["chunk_count"] for d in listing["items"])

        chunks = [c.content for text in texts for c in chunk_for(embedder, text, settings)]
        assert len(chunks) == chunk_total, (len(chunks), chunk_total)
        started = time.monotonic()
        for text in texts:  # one document at a time, as the ingest function embeds them
            document_chunks = [c.content for c in chunk_for(embedder, text, settings)]
            embed_in_batches(embedder, document_chunks, settings.embed_batch_size, settings.embed_max_retries)
        embedder_seconds = time.monotonic() - started

    end_to_end = chunk_total / end_to_end_seconds
    alone = chunk_total / embedder_seconds
    today = datetime.date.today().isoformat()
    print(
        f"documents {len(texts)}, chunks {chunk_total} (at most {embedder.max_input_tokens} word pieces each)"
    )
    print(f"embedder alone:         {alone:7.1f} chunks/s ({embedder_seconds:.1f} s)")
    print(f"upload -> ready (HTTP): {end_to_end:7.1f} chunks/s ({end_to_end_seconds:.1f} s)")
    print(f"ratio end-to-end / embedder: {end_to_end / alone:.2f} (target >= 0.80)")
    print(
        f"| {today} | {machine_line()} | ingest end to end {end_to_end:.1f} chunks/s | embedder alone "
        f"{alone:.1f} chunks/s | ratio {end_to_end / alone:.2f} |"
    )


if __name__ == "__main__":
    main()
