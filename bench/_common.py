"""Helpers shared by the benchmarks: SciFact (BEIR format) loading and fixed-length benchmark texts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

SCIFACT_ENV = "SCIFACT_DIR"


def scifact_dir(argument: str | None) -> Path:
    """The BEIR SciFact directory: the command-line argument, else $SCIFACT_DIR."""
    chosen = argument or os.environ.get(SCIFACT_ENV)
    if not chosen:
        raise SystemExit(f"give the SciFact directory (BEIR format) as --data or in ${SCIFACT_ENV}")
    path = Path(chosen)
    if not (path / "corpus.jsonl").is_file():
        raise SystemExit(f"{path} holds no corpus.jsonl")
    return path


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_scifact(path: Path, split: str = "test"):
    """(corpus ids, corpus texts, query ids, query texts, qrels {qid: {docid: grade}}) of one split.

    Document text follows the BEIR convention: title + " " + text.
    """
    corpus = read_jsonl(path / "corpus.jsonl")
    doc_ids = [str(d["_id"]) for d in corpus]
    doc_texts = [(d.get("title") or "") + " " + (d.get("text") or "") for d in corpus]
    qrels: dict[str, dict[str, int]] = {}
    with open(path / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0] == "query-id":
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(path / "queries.jsonl")}
    query_ids = [qid for qid in queries if qid in qrels]
    return doc_ids, doc_texts, query_ids, [queries[q] for q in query_ids], qrels


def fixed_length_texts(embedder, sources: list[str], count: int, pieces: int) -> list[str]:
    """``count`` texts of exactly ``pieces`` content word pieces, made of whole words of ``sources``.

    Words are taken in order; a word that would overflow the current text is skipped until a shorter
    one fits, so every text ends exactly at ``pieces``.
    """
    words = " ".join(sources).split()
    counts = embedder.count_word_pieces(words)
    texts: list[str] = []
    current: list[str] = []
    used = 0
    for word, n in zip(words, counts, strict=True):
        if n == 0 or used + n > pieces:
            continue
        current.append(word)
        used += n
        if used == pieces:
            texts.append(" ".join(current))
            current, used = [], 0
            if len(texts) == count:
                return texts
    raise SystemExit(f"not enough source text for {count} texts of {pieces} pieces")


def machine_line() -> str:
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(os.cpu_count())
    return f"nproc {nproc}"
