"""File uploads next to text documents on the local stack: request -> ready, over HTTP, same texts.

Usage: .venv/bin/python bench/upload_latency.py [--documents 20] [--words 600]

Each text is ingested twice, one document at a time: as a text document (POST /documents, the baseline)
and as a file (POST /documents/uploads, PUT to the presigned URL, the S3 event through the queue). The
figures are the median and 90th percentile seconds from the first request to `ready`, and the ratio of
the medians (file / text): what the S3 leg (presign, PUT, event, GetObject, extraction) adds.
"""

from __future__ import annotations

import argparse
import datetime
import random
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_line  # noqa: E402
from bench._stack import percentile, register, running_stack  # noqa: E402

WORDS = [
    "harbour",
    "ledger",
    "invoice",
    "turbine",
    "glacier",
    "orchard",
    "lantern",
    "copper",
    "meadow",
    "signal",
    "quarry",
    "beacon",
    "canal",
    "furnace",
    "granite",
    "willow",
    "compass",
    "tariff",
    "vessel",
    "archive",
    "pylon",
    "thicket",
    "ferry",
    "mortar",
]


def texts(count: int, words: int, seed: int = 7) -> list[str]:
    """Distinct texts (each names its number, so none is a duplicate of another)."""
    rng = random.Random(seed)
    out = []
    for number in range(count):
        body = " ".join(rng.choice(WORDS) for _ in range(words))
        out.append(f"Report number {number}. " + body.capitalize() + ".")
    return out


def wait_ready(api: str, headers: dict, document_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = requests.get(f"{api}/documents/{document_id}", headers=headers, timeout=30).json()[
            "document"
        ]
        if document["status"] == "ready":
            return
        if document["status"] == "failed":
            raise SystemExit(f"ingestion failed: {document['error']}")
        time.sleep(0.02)
    raise SystemExit("document did not become ready in time")


def as_text(api: str, headers: dict, number: int, text: str) -> float:
    started = time.monotonic()
    response = requests.post(
        f"{api}/documents",
        json={"name": f"report-{number}.txt", "content": text},
        headers=headers,
        timeout=30,
    )
    response.raise_for_status()
    wait_ready(api, headers, response.json()["document"]["id"])
    return time.monotonic() - started


def as_file(api: str, headers: dict, number: int, text: str) -> float:
    data = text.encode()
    started = time.monotonic()
    response = requests.post(
        f"{api}/documents/uploads",
        json={"name": f"report-{number}.txt", "content_type": "text/plain", "size": len(data)},
        headers=headers,
        timeout=30,
    )
    response.raise_for_status()
    created = response.json()
    put = requests.put(created["upload"]["url"], data=data, headers=created["upload"]["headers"], timeout=30)
    put.raise_for_status()
    wait_ready(api, headers, created["document"]["id"])
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--words", type=int, default=600)
    args = parser.parse_args()
    corpus = texts(args.documents, args.words)
    with running_stack() as api:
        text_headers = {"Authorization": f"Bearer {register(api)['token']}"}
        file_headers = {"Authorization": f"Bearer {register(api)['token']}"}
        as_text(api, text_headers, -1, "warm-up text document, loads the model")
        as_file(api, file_headers, -1, "warm-up file, loads the extractor")
        text_seconds, file_seconds = [], []
        for number, text in enumerate(corpus):  # interleaved, so both see the same machine load
            text_seconds.append(as_text(api, text_headers, number, text))
            file_seconds.append(as_file(api, file_headers, number, text))
    text_median, file_median = statistics.median(text_seconds), statistics.median(file_seconds)
    today = datetime.date.today().isoformat()
    print(f"documents {args.documents} x {args.words} words, each as text and as an uploaded file")
    print(f"text document -> ready: median {text_median:.3f} s, p90 {percentile(text_seconds, 90):.3f} s")
    print(f"file upload   -> ready: median {file_median:.3f} s, p90 {percentile(file_seconds, 90):.3f} s")
    print(f"ratio file / text (medians): {file_median / text_median:.2f}")
    print(
        f"| {today} | {machine_line()} | upload -> ready median {file_median:.3f} s "
        f"(p90 {percentile(file_seconds, 90):.3f}) | text -> ready median {text_median:.3f} s "
        f"(p90 {percentile(text_seconds, 90):.3f}) | ratio {file_median / text_median:.2f} |"
    )


if __name__ == "__main__":
    main()
