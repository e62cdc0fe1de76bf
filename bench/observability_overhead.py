"""What observability costs: the import of ragcore.observability at cold start (Tracer and its X-Ray SDK
included), and the per-answer cost of the stage metrics (three timed stages, the tenant property and one
EMF record printed), next to baselines measured in the same run.

    .venv/bin/python bench/observability_overhead.py [--runs 15] [--answers 2000]

Cold start: each import runs in a fresh interpreter; the baseline is what every function imported
before (Powertools Logger and Metrics, and botocore, which reads the secrets). "Tracer on" sets
LAMBDA_TASK_ROOT so the tracer is on and patches its clients, as in AWS; "tracer disabled" has
POWERTOOLS_TRACE_DISABLED, as the local stack does.
Per answer: the baseline is embedding one question with the local model, the cheapest stage of a query.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core" / "python"))

# Every deployed function imports botocore at cold start anyway (its secrets are read with boto3).
BASELINE_IMPORT = (
    "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics(namespace='x'); "
    "import botocore.session"
)
CANDIDATE_IMPORT = "import ragcore.observability"


def import_seconds(statement: str, env: dict[str, str], runs: int) -> list[float]:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT
        )
        out.append(float(done.stdout.strip().splitlines()[-1]))
    return out


def per_answer_seconds(answers: int) -> float:
    from ragcore import observability as o

    org = uuid.uuid4()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        started = time.perf_counter()
        for _ in range(answers):
            with o.scoped_metrics():
                o.tag_tenant(org)
                for name in (o.QUERY_EMBED, o.QUERY_SEARCH, o.QUERY_GENERATE):
                    with o.stage(name):
                        pass
        elapsed = time.perf_counter() - started
    assert sink.getvalue().count('"_aws"') == answers
    return elapsed / answers


def embed_one_question_seconds(repeats: int) -> float:
    from ragcore.embeddings import get_embedder

    embedder = get_embedder()
    question = "Which mill supplies the rye flour for the sourdough of the harbour bakery?"
    embedder.embed([question])  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        embedder.embed([question])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--answers", type=int, default=2000)
    args = parser.parse_args()

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_TASK_ROOT"))}
    base_env["PYTHONPATH"] = str(ROOT / "layers" / "core" / "python")
    lambda_env = {**base_env, "LAMBDA_TASK_ROOT": str(ROOT)}
    local_env = {**base_env, "POWERTOOLS_TRACE_DISABLED": "true"}
    baseline = statistics.median(import_seconds(BASELINE_IMPORT, local_env, args.runs))
    as_lambda = statistics.median(import_seconds(CANDIDATE_IMPORT, lambda_env, args.runs))
    as_local = statistics.median(import_seconds(CANDIDATE_IMPORT, local_env, args.runs))
    print(f"cold import, median of {args.runs} fresh interpreters")
    print(f"  baseline (Logger, Metrics, botocore):   {baseline * 1000:7.1f} ms")
    print(
        f"  ragcore.observability, tracer on:       {as_lambda * 1000:7.1f} ms  ({as_lambda / baseline:.2f}x)"
    )
    print(
        f"  ragcore.observability, tracer disabled: {as_local * 1000:7.1f} ms  ({as_local / baseline:.2f}x)"
    )

    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "bench")
    per_answer = per_answer_seconds(args.answers)
    embed = embed_one_question_seconds(50)
    print(f"per answer, mean of {args.answers}: stage metrics {per_answer * 1e6:.1f} us")
    print(f"  baseline, embedding one question (median of 50): {embed * 1000:.2f} ms")
    print(f"  ratio: {per_answer / embed * 100:.2f} % of one question's embedding")


if __name__ == "__main__":
    main()
