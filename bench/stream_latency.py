"""Latency of streamed answers (POST /api/v1/query) on the local stack, against the same work in-process.

The local stack runs as `python -m infra.local` in a subprocess (its own embedded PostgreSQL, the
default extractive generator); this process is the HTTP client. The baseline is measured in this process,
on the same database and documents, in the same run: ``ragcore.query.answer_events`` called directly
(retrieval + generation, no HTTP, no auth, no SSE) and the generator alone
(``ExtractiveGenerator.stream`` over the sources the stack returned). HTTP and in-process requests
alternate, so a burst of foreign load on a shared machine affects both.

* time to first byte: request sent -> first byte of the body (the ``sources`` event: the app answers
  once retrieval is done);
* time to first token: request sent -> the first ``token`` event is parsed;
* overhead on the first token: HTTP time to first token minus in-process time to first token
  (p95 of each, and p95 of the per-pair difference) -- target <= 20 ms at p95;
* inter-token gap: time between consecutive ``token`` events; the extractive generator produces them
  back to back (a few microseconds apart in-process), so the gap over HTTP is what the server adds per
  token (worker-thread hop, SSE framing, socket write) plus the client's parsing -- target <= 2 ms at p95.

Two generators, chosen with --generator:

* ``paced`` (the default): the ``openai`` provider against an OpenAI-compatible server on 127.0.0.1 in
  this process that streams a fixed answer, one token every --interval-ms; both the stack and the
  baseline use it, so the generator's cost is known and constant and what remains is the platform's;
* ``extractive``: the offline default generator. Its own first token costs hundreds of milliseconds of
  CPU (it embeds every sentence of the retrieved chunks), whose run-to-run spread on a small machine
  is larger than the overhead being measured.

    .venv/bin/python bench/stream_latency.py [--generator paced|extractive] [--requests 60] [--warmup 5]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "layers" / "core" / "python"))
from _common import machine_line  # noqa: E402

TOPICS = [
    ("vacation", "Every employee accrues {n} days of paid vacation per calendar year in office {i}."),
    ("remote", "Remote work is allowed up to {n} days per week for team {i} with the lead's approval."),
    ("parking", "Parking space {i} is free on weekends and costs {n} euros per day during the week."),
    ("travel", "Train travel for trips under {n} hours is booked second class by the travel desk {i}."),
    ("security", "Badge {i} must be renewed every {n} months at the security office on floor two."),
]
QUESTIONS = [
    "How many days of paid vacation does an employee accrue per year?",
    "How many days per week is remote work allowed?",
    "How much does parking cost during the week?",
    "Which class is used for train travel?",
    "How often must a badge be renewed?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def document_text(index: int) -> str:
    sentences = [
        template.format(n=(index * 7 + k) % 40 + 2, i=index) for k, (_, template) in enumerate(TOPICS)
    ]
    filler = " ".join(f"Section {index}.{k} describes routine procedures of the office." for k in range(20))
    return " ".join(sentences) + "\n\n" + filler


def stream_over_http(client: httpx.Client, url: str, token: str, question: str) -> dict:
    """Timestamps of one streamed answer, read chunk by chunk as the bytes arrive."""
    body = json.dumps({"question": question})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    started = time.perf_counter()
    first_byte = None
    tokens: list[float] = []
    text: list[str] = []
    buffer = ""
    with client.stream("POST", f"{url}/api/v1/query", content=body, headers=headers) as response:
        if response.status_code != 200:
            raise SystemExit(f"POST /api/v1/query answered {response.status_code}: {response.read()!r}")
        for chunk in response.iter_raw():
            now = time.perf_counter()
            if first_byte is None:
                first_byte = now
            buffer += chunk.decode()
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
                if fields.get("event") == "token":
                    tokens.append(now)
                    text.append(json.loads(fields["data"])["text"])
    return {"started": started, "first_byte": first_byte, "tokens": tokens, "text": "".join(text)}


def stream_in_process(principal, question: str) -> dict:
    from ragcore import query

    started = time.perf_counter()
    sources_at = None
    tokens: list[float] = []
    text: list[str] = []
    sources = []
    for event in query.answer_events(principal, question):
        now = time.perf_counter()
        if event.kind == "sources":
            sources_at = now
            sources = event.data["sources"]
        elif event.kind == "token":
            tokens.append(now)
            text.append(event.data["text"])
    return {
        "started": started,
        "first_byte": sources_at,
        "tokens": tokens,
        "text": "".join(text),
        "sources": sources,
    }


class PacedModel:
    """An OpenAI-compatible chat-completions endpoint streaming ``tokens`` pieces, ``interval`` apart."""

    def __init__(self, tokens: int, interval: float):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
            choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else []
            body = {
                "id": "b",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "paced",
                "choices": choices,
            }
            if usage is not None:
                body["usage"] = usage
            return f"data: {json.dumps(body)}\n\n".encode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def send(data: bytes) -> None:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                send(chunk({"role": "assistant", "content": ""}))
                for n in range(tokens):
                    if n:
                        time.sleep(interval)
                    send(chunk({"content": f"word{n} "}))
                send(chunk({}, finish="stop"))
                send(
                    chunk(
                        {},
                        usage={
                            "prompt_tokens": 100,
                            "completion_tokens": tokens,
                            "total_tokens": 100 + tokens,
                        },
                    )
                )
                send(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def environment(self) -> dict[str, str]:
        return {
            "GENERATION_PROVIDER": "openai",
            "GENERATION_MODEL": "paced",
            "OPENAI_BASE_URL": self.base_url,
            "OPENAI_API_KEY": "bench",
        }


def generator_alone(question: str, sources: list[dict]) -> dict:
    from ragcore.embeddings import get_embedder
    from ragcore.generation import TextDelta, get_generator
    from ragcore.retrieval import Source

    generator = get_generator(get_embedder())
    objects = [Source(**s) for s in sources]
    started = time.perf_counter()
    tokens = [time.perf_counter() for e in generator.stream(question, objects) if isinstance(e, TextDelta)]
    return {"started": started, "tokens": tokens}


def gaps(samples: list[dict]) -> list[float]:
    out: list[float] = []
    for s in samples:
        out += [(b - a) * 1000 for a, b in zip(s["tokens"], s["tokens"][1:], strict=False)]
    return out


def start_stack(
    work: Path, app_url: str, owner_url: str, secret: str, extra: dict[str, str]
) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log_path = work / "stack.log"
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "QUEUE_URL")}
    env.update(
        PORT=str(port),
        DATA_DIR=str(work / "data"),
        DATABASE_URL=app_url,
        MIGRATION_DATABASE_URL=owner_url,
        JWT_SECRET=secret,
        PYTHONUNBUFFERED="1",
        POWERTOOLS_LOG_LEVEL="WARNING",
        **extra,
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.local"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the local stack exited:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return process, url, log_path
        if time.monotonic() > deadline:
            raise SystemExit("the local stack did not start within 180 s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="measured requests per side")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--documents", type=int, default=30)
    parser.add_argument("--generator", choices=("paced", "extractive"), default="paced")
    parser.add_argument("--tokens", type=int, default=40, help="paced: tokens per answer")
    parser.add_argument("--interval-ms", type=float, default=5.0, help="paced: time between tokens")
    args = parser.parse_args()
    model = PacedModel(args.tokens, args.interval_ms / 1000) if args.generator == "paced" else None
    extra = model.environment() if model else {}

    from infra.local.postgres import start_postgres

    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        work = Path(tmp)
        database = start_postgres(work, "rag_app")
        secret = "bench-" + uuid.uuid4().hex + uuid.uuid4().hex
        process = None
        try:
            process, url, _ = start_stack(work, database.app_url, database.owner_url, secret, extra)
            # The in-process baseline reads the same database, with the same secret and generator.
            os.environ.update(
                DATABASE_URL=database.app_url, JWT_SECRET=secret, POWERTOOLS_LOG_LEVEL="WARNING", **extra
            )
            from ragcore.config import reset_settings

            reset_settings()
            run(url, args)
        finally:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            from ragcore import db

            db.close_pool()
            database.stop()


def run(url: str, args: argparse.Namespace) -> None:
    from ragcore.auth import verify_token

    client = httpx.Client(timeout=60)
    registered = client.post(
        f"{url}/api/v1/auth/register",
        json={
            "org_name": "Bench",
            "email": f"bench-{uuid.uuid4().hex[:8]}@bench.example",
            "password": "bench pass 42",
        },
    ).json()
    token = registered["token"]
    principal = verify_token(token)
    headers = {"Authorization": f"Bearer {token}"}
    ids = [
        client.post(
            f"{url}/api/v1/documents",
            json={"name": f"doc-{i}.txt", "content": document_text(i)},
            headers=headers,
        ).json()["document"]["id"]
        for i in range(args.documents)
    ]
    deadline = time.monotonic() + 300
    while True:
        items = client.get(f"{url}/api/v1/documents?limit=100", headers=headers).json()["items"]
        if sum(d["status"] == "ready" for d in items) == len(ids):
            break
        if time.monotonic() > deadline or any(d["status"] == "failed" for d in items):
            raise SystemExit("documents did not become ready")
        time.sleep(0.3)

    http: list[dict] = []
    local: list[dict] = []
    alone: list[dict] = []
    for i in range(args.warmup + args.requests):
        question = QUESTIONS[i % len(QUESTIONS)]
        over_http = stream_over_http(client, url, token, question)
        in_process = stream_in_process(principal, question)
        by_itself = generator_alone(question, in_process["sources"])
        if over_http["text"] != in_process["text"]:
            raise SystemExit(f"the stream and the in-process answer differ for {question!r}")
        if i >= args.warmup:
            http.append(over_http)
            local.append(in_process)
            alone.append(by_itself)
    client.close()
    report(http, local, alone, args)


def report(http: list[dict], local: list[dict], alone: list[dict], args: argparse.Namespace) -> None:
    def ms(samples: list[dict], key: str) -> list[float]:
        if key == "first_token":
            return [(s["tokens"][0] - s["started"]) * 1000 for s in samples]
        return [(s[key] - s["started"]) * 1000 for s in samples]

    ttfb_http, ttft_http = ms(http, "first_byte"), ms(http, "first_token")
    sources_local, ttft_local = ms(local, "first_byte"), ms(local, "first_token")
    ttft_alone = ms(alone, "first_token")
    paired = [h - p for h, p in zip(ttft_http, ttft_local, strict=True)]
    gap_http, gap_local = gaps(http), gaps(local)

    def row(name: str, values: list[float], note: str = "") -> str:
        return f"| {name} | {percentile(values, 0.5):.2f} | {percentile(values, 0.95):.2f} | {note} |"

    added_ttft = percentile(ttft_http, 0.95) - percentile(ttft_local, 0.95)
    added_gap = percentile(gap_http, 0.95) - percentile(gap_local, 0.95)
    ratio_ttft_50 = percentile(ttft_http, 0.5) / percentile(ttft_local, 0.5)
    ratio_ttft_95 = percentile(ttft_http, 0.95) / percentile(ttft_local, 0.95)
    ratio_ttfb_50 = percentile(ttfb_http, 0.5) / percentile(sources_local, 0.5)
    ratio_gap_50 = percentile(gap_http, 0.5) / max(percentile(gap_local, 0.5), 1e-6)
    ratio_gap_95 = percentile(gap_http, 0.95) / max(percentile(gap_local, 0.95), 1e-6)
    tokens = statistics.mean(len(s["tokens"]) for s in http)
    generator = (
        f"openai provider, local paced model: {args.tokens} tokens {args.interval_ms:g} ms apart"
        if args.generator == "paced"
        else "extractive generator"
    )
    print(
        f"stream latency, POST /api/v1/query on the local stack ({generator}), "
        f"{datetime.date.today().isoformat()}, {machine_line()}, {args.requests} requests per side after "
        f"{args.warmup} warm-up, {args.documents} documents, {tokens:.1f} token events per answer"
    )
    print()
    print("| measure | p50 ms | p95 ms | note |")
    print("|---|---|---|---|")
    print(row("time to first byte over HTTP (the sources event)", ttfb_http))
    print(row("time to first token over HTTP", ttft_http))
    print(row("sources in-process (answer_events: embed + retrieve)", sources_local, "baseline"))
    print(row("first token in-process (answer_events)", ttft_local, "baseline"))
    print(row("first token of the generator alone (Generator.stream)", ttft_alone, "baseline"))
    print(row("first-token overhead of the platform, per request pair (HTTP - in-process)", paired))
    print(row("inter-token gap over HTTP", gap_http))
    print(row("inter-token gap in-process", gap_local, "baseline"))
    print()
    print(
        f"added to the first token at p95: {added_ttft:.2f} ms (p95 HTTP - p95 in-process; p95 of the "
        f"paired difference {percentile(paired, 0.95):.2f} ms; target <= 20 ms); HTTP / in-process "
        f"first token: p50 {ratio_ttft_50:.2f}x, p95 {ratio_ttft_95:.2f}x; first byte / in-process "
        f"sources at p50: {ratio_ttfb_50:.2f}x"
    )
    print(
        f"inter-token gap added by the server at p95: {added_gap:.3f} ms (target <= 2 ms); "
        f"HTTP / in-process gap: p50 {ratio_gap_50:.2f}x, p95 {ratio_gap_95:.2f}x"
    )


if __name__ == "__main__":
    main()
