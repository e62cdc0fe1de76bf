"""Chunks extracted from files keep their location, and answers (sync and streamed) carry it.

The file's chunks are made by the real pipeline pieces (extraction of a generated PDF and DOCX, chunking
by section, the local embedder) and stored by the ingest store into a document of the tenant; the
questions go through the real query handler and the stream app.
"""

from __future__ import annotations

import io
import uuid

import docx
import pytest
from fpdf import FPDF
from ragcore.config import get_settings
from ragcore.embeddings import embed_in_batches, get_embedder
from ragcore.extractors import DOCX_TYPE, extract
from ragcore.ingest import ClaimedDocument, PgDocumentStore, chunk_document

from tests.integration.test_documents import upload
from tests.integration.test_stream import stream, stream_url  # noqa: F401  (a fixture)

PAGES = [
    "Installation. Unpack the appliance and place it on a level surface away from heat sources.",
    "Warranty. The manufacturer repairs defects free of charge for seventy-two months after purchase.",
]


def make_pdf() -> bytes:
    pdf = FPDF()
    for text in PAGES:
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Employee handbook", 0)
    document.add_paragraph("Welcome to the company. Read this handbook in your first week.")
    document.add_heading("Benefits", 1)
    document.add_heading("Bicycle allowance", 2)
    document.add_paragraph("Staff who cycle to work receive a monthly bicycle allowance of forty euros.")
    document.add_heading("Security", 1)
    document.add_paragraph("Badges must be worn visibly at all times inside the building.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def store_file(platform, tenant, name: str, data: bytes, content_type: str) -> str:
    """A document of the tenant whose chunks are the file's, as the ingest function stores them."""
    document = upload(platform, tenant["token"], name=name, content=f"placeholder for {name}")
    platform.ingest_all()
    settings = get_settings()
    embedder = get_embedder(settings)
    chunks = chunk_document(embedder, extract(data, content_type, name=name).sections, settings)
    vectors = embed_in_batches(embedder, [c.content for c in chunks], settings.embed_batch_size, 1)
    claimed = ClaimedDocument(
        uuid.UUID(tenant["org"]["id"]), uuid.UUID(document["id"]), "", document["content_hash"], 1
    )
    assert PgDocumentStore().save_chunks(claimed, chunks, vectors, embedder.model_name)
    return document["id"]


@pytest.fixture(scope="module")
def files(platform):
    tenant = platform.register()
    pdf = store_file(platform, tenant, "appliance-manual.pdf", make_pdf(), "application/pdf")
    handbook = store_file(platform, tenant, "handbook.docx", make_docx(), DOCX_TYPE)
    return {"token": tenant["token"], "pdf": pdf, "docx": handbook}


def ask(platform, token, **body):
    result = platform.request("POST", "/api/v1/query/sync", body, token=token)
    assert result.status == 200, result.body
    return result.body


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_a_pdf_source_names_its_page(platform, files, mode):
    body = ask(platform, files["token"], question="How long is the warranty?", mode=mode, top_k=2,
               document_ids=[files["pdf"]])  # fmt: skip
    first = body["sources"][0]
    assert first["document_name"] == "appliance-manual.pdf"
    assert "seventy-two months" in first["content"]
    assert (first["page"], first["pages"], first["headings"]) == (2, [2, 2], [])
    if mode != "lexical":  # BM25 returns only chunks sharing a term with the question
        assert [s["page"] for s in body["sources"]] == [2, 1]


def test_a_docx_source_carries_its_heading_path(platform, files):
    body = ask(platform, files["token"], question="What is the monthly bicycle allowance?",
               document_ids=[files["docx"]])  # fmt: skip
    first = body["sources"][0]
    assert "forty euros" in first["content"]
    assert first["headings"] == ["Employee handbook", "Benefits", "Bicycle allowance"]
    assert (first["page"], first["pages"]) == (None, None)


def test_streamed_sources_carry_the_same_locations(platform, stream_url, files):  # noqa: F811
    body = {"question": "How long is the warranty?", "top_k": 2, "document_ids": [files["pdf"]]}
    _, events = stream(stream_url, files["token"], body)
    kind, data = events[0]
    assert kind == "sources"
    assert data["sources"] == ask(platform, files["token"], **body)["sources"]
    assert data["sources"][0]["page"] == 2
