"""The parse runs in a child interpreter: a spinning, hungry or crashing parser costs the worker nothing."""

import io
import os
import time
import zlib

import pytest
from ragcore.errors import ExtractionFailed
from ragcore.extractors import ExtractionLimits, extract
from ragcore.extractors.sandbox import run_with_budget

HERE = __name__  # the child imports the parsers below by this module's name


def spin(data, media_type, params, limits):
    while True:
        pass


def hog(data, media_type, params, limits):
    chunks = []
    while True:
        chunks.append(bytearray(16 * 1024 * 1024))


def crash(data, media_type, params, limits):
    os._exit(3)


def echo(data, media_type, params, limits):
    from ragcore.extractors import ExtractedDocument, Section

    return ExtractedDocument([Section(data.decode(), 7, ("Ä", "b"))], pages=9)


def slow_pdf(operations: int) -> bytes:
    """A one-page PDF whose content stream repeats a text operation ``operations`` times: a few KB that
    keep pypdf's text extraction busy for a long time (about 10,000 operations a second)."""
    content = b"BT /F1 12 Tf " + b"1 0 0 1 10 10 Tm (x) Tj " * operations + b"ET"
    stream = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def test_a_slow_pdf_is_stopped_at_the_time_budget():
    data = slow_pdf(500_000)  # tens of seconds of work
    assert len(data) < 64 * 1024
    started = time.monotonic()
    with pytest.raises(ExtractionFailed) as info:
        extract(data, "application/pdf", limits=ExtractionLimits(time_budget_seconds=1.5))
    assert info.value.reason == "extracting the file took longer than 1.5 s (the time budget)"
    assert time.monotonic() - started < 5
    # and a small one of the same kind goes through
    small = extract(slow_pdf(50), "application/pdf", limits=ExtractionLimits(time_budget_seconds=30))
    assert small.pages == 1 and small.sections[0].text.count("x") == 50


def test_a_spinning_parser_is_killed():
    started = time.monotonic()
    with pytest.raises(ExtractionFailed) as info:
        run_with_budget(b"x", "text/plain", {}, ExtractionLimits(time_budget_seconds=0.5), f"{HERE}:spin")
    assert info.value.reason == "extracting the file took longer than 0.5 s (the time budget)"
    assert time.monotonic() - started < 4


def test_memory_is_capped_in_the_child():
    limits = ExtractionLimits(max_memory_mb=128, time_budget_seconds=30)
    with pytest.raises(ExtractionFailed) as info:
        run_with_budget(b"x", "text/plain", {}, limits, f"{HERE}:hog")
    assert info.value.reason == "extracting the file needed more than 128 MB of memory (the limit)"


def test_a_crashing_parser_is_reported():
    with pytest.raises(ExtractionFailed) as info:
        run_with_budget(b"x", "text/plain", {}, ExtractionLimits(), f"{HERE}:crash")
    assert info.value.reason.startswith(
        "extracting the file failed: the parser stopped unexpectedly (exit code 3)"
    )


def test_the_result_crosses_back_intact():
    doc = run_with_budget("héllo\x00 wörld".encode(), "text/plain", {}, ExtractionLimits(), f"{HERE}:echo")
    assert doc.pages == 9
    assert [(s.text, s.page, s.headings) for s in doc.sections] == [("héllo\x00 wörld", 7, ("Ä", "b"))]


def broken(data, media_type, params, limits):
    return {}["a library's own bug"]


def test_a_library_error_becomes_a_reason():
    with pytest.raises(ExtractionFailed) as info:
        run_with_budget(b"x", "text/plain", {}, ExtractionLimits(), f"{HERE}:broken")
    assert info.value.reason == "the file could not be read (KeyError)"
    with pytest.raises(ExtractionFailed) as info:
        extract(b"<p>x</p>", "text/html; charset=no-such-charset", limits=ExtractionLimits())
    assert info.value.reason == "unknown character set no-such-charset"
