"""Extraction throughput of files next to embedding throughput of the chunks they make.

Usage: .venv/bin/python bench/ingest_files.py [--pages 100] [--words-per-page 350] [--repeat 3]
       [--formats PDF,DOCX,HTML,Markdown] [--no-embedding]

Generates a PDF of ``--pages`` pages (fpdf2) and the same text as DOCX, HTML and Markdown (one heading per
page), then measures, in one run:

* extraction through ``ragcore.extractors.extract`` (the child interpreter under the time budget, as the
  ingest function runs it), and the same parse in this process, to show what the sandbox costs;
* chunking by section (``ragcore.ingest.chunk_document``) and embedding those chunks with the configured
  embedder (the local model by default): the baseline, since it is what ingestion spends most on.

Figures are the median of ``--repeat`` runs: pages/s and MB/s of extraction, chunks/s of embedding, and the
ratio of extraction time to embedding time for the same file.
"""

from __future__ import annotations

import argparse
import datetime
import io
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_line  # noqa: E402

_WORDS = (
    "the a of to and in for on with by from at as is are was were be been has have had this that these "
    "warranty device battery charge cycle temperature sensor firmware update network signal cable port "
    "screen display brightness contrast volume speaker microphone button switch power supply voltage "
    "current resistance capacitor module board connector housing screw bracket mount surface level "
    "install remove replace clean inspect check adjust measure record report contact service center "
    "customer user operator technician manual guide section chapter page figure table note warning "
    "caution danger safety hazard risk damage failure defect repair maintenance interval schedule"
)
VOCABULARY = _WORDS.split()


def page_texts(pages: int, words: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for number in range(1, pages + 1):
        sentences, count = [], 0
        while count < words:
            length = rng.randint(8, 20)
            sentence = " ".join(rng.choice(VOCABULARY) for _ in range(length))
            sentences.append(sentence[0].upper() + sentence[1:] + ".")
            count += length
        texts.append(f"Part {number}. " + " ".join(sentences))
    return texts


def make_pdf(texts: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(False)
    for text in texts:
        pdf.add_page()
        pdf.set_font("helvetica", size=9)
        pdf.multi_cell(0, 4, text)
    return bytes(pdf.output())


def make_docx(texts: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for number, text in enumerate(texts, start=1):
        document.add_heading(f"Part {number}", 1)
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_html(texts: list[str]) -> bytes:
    body = "".join(f"<h2>Part {n}</h2><p>{t}</p>" for n, t in enumerate(texts, start=1))
    return f"<html><head><title>Manual</title></head><body><nav>Home</nav>{body}</body></html>".encode()


def make_markdown(texts: list[str]) -> bytes:
    return "\n\n".join(f"## Part {n}\n\n{t}" for n, t in enumerate(texts, start=1)).encode()


def timed(function, repeat: int):
    results, seconds = None, []
    for _ in range(repeat):
        started = time.perf_counter()
        results = function()
        seconds.append(time.perf_counter() - started)
    return results, statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--words-per-page", type=int, default=350)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="PDF,DOCX,HTML,Markdown")
    parser.add_argument(
        "--no-embedding", action="store_true", help="extraction only (e.g. at the page limit, 2000 pages)"
    )
    args = parser.parse_args()

    from ragcore.config import get_settings
    from ragcore.embeddings import embed_in_batches, get_embedder
    from ragcore.extractors import DOCX_TYPE, ExtractionLimits, extract, finish, parse_in_process
    from ragcore.ingest import chunk_document

    settings = get_settings()
    limits = ExtractionLimits.from_settings(settings)
    embedder = get_embedder(settings)
    embedder.embed(["warm-up"])  # the model is loaded before anything is measured
    texts = page_texts(args.pages, args.words_per_page)
    makers = {
        "PDF": (make_pdf, "application/pdf"),
        "DOCX": (make_docx, DOCX_TYPE),
        "HTML": (make_html, "text/html"),
        "Markdown": (make_markdown, "text/markdown"),
    }
    files = {label: (makers[label][0](texts), makers[label][1]) for label in args.formats.split(",")}
    extract(b"warm-up", "text/plain", limits=limits)  # the interpreter's files are in the page cache

    today = datetime.date.today().isoformat()
    print(f"{args.pages} pages of about {args.words_per_page} words; median of {args.repeat} runs; {today}")
    print(f"machine: {machine_line()}; embedder {embedder.model_name} ({settings.embedding_provider})")
    rows = []
    for label, (data, content_type) in files.items():
        document, sandboxed = timed(lambda d=data, t=content_type: extract(d, t, limits=limits), args.repeat)
        _, in_process = timed(
            lambda d=data, t=content_type: finish(parse_in_process(d, t, {}, limits), limits), args.repeat
        )
        chunks = chunk_document(embedder, document.sections, settings)
        contents = [c.content for c in chunks]
        if args.no_embedding:
            rows.append((label, len(data) / 1e6, len(document.sections), document.characters, sandboxed,
                         in_process, len(chunks), float("nan")))  # fmt: skip
            continue
        _, embedding = timed(
            lambda c=contents: embed_in_batches(
                embedder, c, settings.embed_batch_size, settings.embed_max_retries
            ),
            1 if label != "PDF" else args.repeat,
        )
        megabytes = len(data) / 1e6
        rows.append(
            (label, megabytes, len(document.sections), document.characters, sandboxed, in_process,
             len(chunks), embedding)
        )  # fmt: skip

    print()
    print("| file | size MB | sections | characters | extract s (child) | in-process s | pages/s | MB/s "
          "| chunks | embed s | chunks/s | extract / embed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, megabytes, sections, characters, sandboxed, in_process, chunks, embedding in rows:
        print(
            f"| {label} | {megabytes:.2f} | {sections} | {characters:,} | {sandboxed:.3f} | {in_process:.3f} "
            f"| {args.pages / sandboxed:.0f} | {megabytes / sandboxed:.2f} | {chunks} | {embedding:.2f} "
            f"| {chunks / embedding:.1f} | {sandboxed / embedding:.3f} |"
        )


if __name__ == "__main__":
    main()
