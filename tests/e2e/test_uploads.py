"""File uploads on the local stack (`python -m infra.local`, real HTTP): the presigned PUT goes to the
stack's S3 endpoint, whose event reaches the ingest queue; answers then cite the file."""

from __future__ import annotations

import io
import time

import docx
import pytest
import requests
from fpdf import FPDF

from tests.e2e.conftest import INGEST_TIMEOUT, register

pytestmark = pytest.mark.e2e

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def two_page_pdf() -> bytes:
    """Page 1 says nothing about the question; the answer is only on page 2."""
    pdf = FPDF()
    for text in (
        "Boiler manual, page one. Mount the boiler on a wall that can carry its weight, and keep thirty "
        "centimetres free on each side for servicing.",
        "Boiler manual, page two. The pressure gauge should read between one and one and a half bar when "
        "the heating is cold; below that, top up through the filling loop.",
    ):
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def handbook_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Field guide", 0)
    document.add_paragraph("This guide is for volunteers of the coastal survey.")
    document.add_heading("Equipment", 1)
    document.add_heading("Tide tables", 2)
    document.add_paragraph("Volunteers collect the printed tide tables from the harbour master every Friday.")
    document.add_heading("Safety", 1)
    document.add_paragraph("Never walk the sandbanks alone.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def upload(base_url: str, session: requests.Session, name: str, content_type: str, data: bytes) -> dict:
    """POST /documents/uploads, PUT the bytes to the presigned URL, wait for ready (or failed)."""
    created = session.post(
        f"{base_url}/api/v1/documents/uploads",
        json={"name": name, "content_type": content_type, "size": len(data)},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    document, target = created.json()["document"], created.json()["upload"]
    assert target["url"].startswith("http://127.0.0.1:"), target["url"]
    put = requests.put(target["url"], data=data, headers=target["headers"], timeout=30)
    assert put.status_code == 200, put.text
    deadline = time.monotonic() + INGEST_TIMEOUT
    while document["status"] not in ("ready", "failed"):
        assert time.monotonic() < deadline, f"document still {document['status']} after {INGEST_TIMEOUT}s"
        time.sleep(0.5)
        response = session.get(f"{base_url}/api/v1/documents/{document['id']}", timeout=30)
        assert response.status_code == 200, response.text
        document = response.json()["document"]
    return document


def ask(base_url: str, session: requests.Session, question: str) -> dict:
    response = session.post(f"{base_url}/api/v1/query/sync", json={"question": question}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_text_file_uploaded_to_the_local_bucket_is_ingested_and_cited(base_url):
    session = register(base_url, "Lighthouse")
    data = (
        b"Keeper's log of the Cape Orrin lighthouse.\n\n"
        b"The lamp is lit thirty minutes before sunset and its lens is polished every Tuesday. "
        b"Supplies arrive by the Gannet supply boat on the first Monday of each month."
    )
    document = upload(base_url, session, "keeper.txt", "text/plain", data)
    assert document["status"] == "ready", document["error"]
    answer = ask(base_url, session, "Which boat brings the supplies to the lighthouse?")
    assert answer["sources"][0]["document_id"] == document["id"]
    assert answer["sources"][0]["document_name"] == "keeper.txt"


def test_a_put_that_does_not_match_the_signed_size_is_refused_locally_too(base_url):
    session = register(base_url, "Signed")
    created = session.post(
        f"{base_url}/api/v1/documents/uploads",
        json={"name": "a.txt", "content_type": "text/plain", "size": 5},
        timeout=30,
    ).json()
    target = created["upload"]
    refused = requests.put(target["url"], data=b"longer than five", headers=target["headers"], timeout=30)
    assert refused.status_code == 403 and "SignatureDoesNotMatch" in refused.text
    wrong_type = requests.put(target["url"], data=b"hello", headers={"Content-Type": "text/html"}, timeout=30)
    assert wrong_type.status_code == 403


def test_a_two_page_pdf_uploaded_through_the_presigned_url_is_cited_by_page(base_url):
    session = register(base_url, "Boilers")
    document = upload(base_url, session, "boiler-manual.pdf", "application/pdf", two_page_pdf())
    assert document["status"] == "ready", document["error"]
    answer = ask(base_url, session, "What should the pressure gauge read when the heating is cold?")
    first = answer["sources"][0]
    assert (first["document_id"], first["document_name"]) == (document["id"], "boiler-manual.pdf")
    assert first["page"] == 2, first
    assert "one and a half bar" in first["content"]


def test_a_docx_uploaded_through_the_presigned_url_is_cited_with_its_heading(base_url):
    session = register(base_url, "Survey")
    document = upload(base_url, session, "field-guide.docx", DOCX_TYPE, handbook_docx())
    assert document["status"] == "ready", document["error"]
    answer = ask(base_url, session, "Where do volunteers collect the tide tables?")
    first = answer["sources"][0]
    assert (first["document_id"], first["document_name"]) == (document["id"], "field-guide.docx")
    assert first["headings"] == ["Field guide", "Equipment", "Tide tables"], first
