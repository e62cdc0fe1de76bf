"""Cold start of an embedding function: importing its handler, then its first embeddings, in a fresh process.

Three ways to get the model, each measured in its own fresh interpreter, in rounds that rotate their
order (the machine may be shared: a burst of foreign load hits all of them alike):

* ``build``    how the layer worked before the model was prebuilt: the safetensors weights are hash-checked
               and the int8 graph (then the float32 one, for the first short text) is built at start into
               an empty cache directory, as in a new Lambda execution environment (empty /tmp).
* ``cached``   the same code with the builds already in the cache directory (a warm machine: local runs;
               in Lambda only a reused environment, which is not a cold start).
* ``shipped``  the model as the embed layer now ships it (``make build``: the prebuilt package on
               sys.path), hash-checked against its manifest, nothing built.

Each process times: ``import handler`` of the query function, the first question embedded (a short
text: loads the float32 graph too), and the first passage embedded (int8 graph), plus the whole process
from launch to exit. Medians over the rounds, and shipped / build and shipped / cached ratios.

    .venv/bin/python bench/cold_start.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line  # noqa: E402

QUESTION = "How many vacation days do employees get?"
PASSAGE = (
    "Every employee accrues twenty-five days of paid vacation per year, prorated in the first year. " * 3
)

CHILD = """
import json, sys, time
started = time.perf_counter()
sys.path[0:0] = json.loads(sys.argv[1])
import handler  # the query function's module: ragcore, Powertools, pydantic, numpy
imported = time.perf_counter()
from ragcore.config import Settings
from ragcore.embeddings import get_embedder
embedder = get_embedder(Settings(model_cache_dir=sys.argv[2]))
embedder.embed([sys.argv[3]])
question = time.perf_counter()
embedder.embed([sys.argv[4]])
passage = time.perf_counter()
print(json.dumps({"import": imported - started, "question": question - imported,
                  "passage": passage - question, "model": str(embedder.model_path)}))
"""

MEASURES = ("import", "question", "passage", "first embeddings", "process")


def run_once(paths: list[Path], cache: Path) -> dict:
    launched = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([str(p) for p in paths]), str(cache), QUESTION, PASSAGE],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    timings = json.loads(result.stdout.splitlines()[-1])
    timings["process"] = time.perf_counter() - launched
    timings["first embeddings"] = timings["question"] + timings["passage"]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from ragcore.embeddings.prebuilt import PACKAGE, write_prebuilt

    work = Path(tempfile.mkdtemp(prefix="cold-start-"))
    try:
        started = time.perf_counter()
        write_prebuilt(work / "layer" / PACKAGE)
        print(f"prebuilt model written in {time.perf_counter() - started:.1f} s (what make build does)")
        handler_dir = ROOT / "functions" / "query"
        warm_cache = work / "warm"
        run_once([handler_dir], warm_cache)  # fills the cache of the "cached" runs
        ways = {
            "build": lambda r: ([handler_dir], work / f"empty-{r}"),
            "cached": lambda r: ([handler_dir], warm_cache),
            "shipped": lambda r: ([handler_dir, work / "layer"], work / f"unused-{r}"),
        }
        results: dict[str, list[dict]] = {name: [] for name in ways}
        names = list(ways)
        for r in range(args.rounds):
            for name in names[r % 3 :] + names[: r % 3]:  # each way takes each position in turn
                paths, cache = ways[name](r)
                timing = run_once(paths, cache)
                if name == "shipped":
                    assert timing["model"].startswith(str(work / "layer")), timing["model"]
                    assert not cache.exists(), "the shipped model must not build anything"
                results[name].append(timing)
                print(f"round {r + 1} {name:8s} " + " ".join(f"{m} {timing[m]:.3f}" for m in MEASURES))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians = {n: {m: statistics.median(t[m] for t in runs) for m in MEASURES} for n, runs in results.items()}
    print()
    print(f"{datetime.date.today()}, {machine_line()}, {args.rounds} rounds, medians in seconds")
    print(
        "| measure | build (before, new environment) | cached (before, warm machine) | shipped (now) "
        "| shipped / build | shipped / cached |"
    )
    print("|---|---|---|---|---|---|")
    for m in MEASURES:
        b, c, s = medians["build"][m], medians["cached"][m], medians["shipped"][m]
        print(f"| {m} | {b:.3f} | {c:.3f} | {s:.3f} | {s / b:.2f}x | {s / c:.2f}x |")


if __name__ == "__main__":
    main()
