"""Throughput of the shipped local embedder against the numpy float32 reference, in the same run.

Texts are real SciFact abstracts cut at word boundaries to exactly 254 content word pieces (256 with
[CLS]/[SEP]: the model's full window), so one text is one "chunk of 256 tokens". Both implementations use
every core of the machine. The machine may be shared: the two are measured in alternating rounds and
each one's best round is reported (plus the median), so a burst of foreign load does not favour either.

    .venv/bin/python bench/embedder.py --data <scifact dir>   (or SCIFACT_DIR=<scifact dir>)
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fixed_length_texts, load_scifact, machine_line, scifact_dir  # noqa: E402
from ragcore.embeddings.local import LocalEmbedder, available_cores  # noqa: E402
from ragcore.embeddings.reference import ReferenceEmbedder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="SciFact directory in BEIR format (default: $SCIFACT_DIR)")
    parser.add_argument("--texts", type=int, default=64, help="benchmark texts (chunks of 256 tokens)")
    parser.add_argument("--reference-texts", type=int, default=16, help="texts per reference round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--variant", default=None, help="build variant of the local embedder (default: shipped)"
    )
    args = parser.parse_args()

    _, docs, *_ = load_scifact(scifact_dir(args.data))
    reference = ReferenceEmbedder()
    texts = fixed_length_texts(reference, docs, args.texts, 254)
    assert {len(e.ids) for e in reference.tokenizer.encode_batch(texts)} == {256}

    started = time.perf_counter()
    fast = LocalEmbedder(variant=args.variant)
    print(
        f"local embedder ready in {time.perf_counter() - started:.1f} s (variant {fast.variant}, "
        f"{fast.model_path.name})"
    )

    reference_vectors = reference.embed(texts)
    fast_vectors = fast.embed(texts)
    cosines = (reference_vectors * fast_vectors).sum(axis=1)

    ref_rates, fast_rates = [], []
    ref_texts = texts[: args.reference_texts]
    for _ in range(args.rounds):
        t = time.perf_counter()
        reference.embed(ref_texts)
        ref_rates.append(len(ref_texts) / (time.perf_counter() - t))
        t = time.perf_counter()
        fast.embed(texts)
        fast_rates.append(len(texts) / (time.perf_counter() - t))

    ref_best, fast_best = max(ref_rates), max(fast_rates)
    ref_med, fast_med = statistics.median(ref_rates), statistics.median(fast_rates)
    cores = available_cores()
    print(
        f"reference numpy float32: best {ref_best:6.2f} chunks/s, median {ref_med:6.2f}  "
        f"(rounds: {', '.join(f'{r:.1f}' for r in ref_rates)})"
    )
    print(
        f"shipped ({fast.variant}):        best {fast_best:6.2f} chunks/s, median {fast_med:6.2f}  "
        f"(rounds: {', '.join(f'{r:.1f}' for r in fast_rates)})"
    )
    print(f"ratio: best/best {fast_best / ref_best:.2f}x, median/median {fast_med / ref_med:.2f}x")
    print(f"cosine vs reference over {len(texts)} texts: min {cosines.min():.5f}, mean {cosines.mean():.5f}")
    print(
        f"| {datetime.date.today().isoformat()} | {machine_line()} ({cores} cores used) | "
        f"reference {ref_best:.1f} chunks/s | {fast.variant} {fast_best:.1f} chunks/s | "
        f"{fast_best / ref_best:.2f}x | min cosine {cosines.min():.4f} |"
    )
    assert np.isfinite(cosines).all()


if __name__ == "__main__":
    main()
