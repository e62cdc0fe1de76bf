"""HTML, PDF and DOCX extraction; every fixture is made here (fpdf2, python-docx, zipfile)."""

import io
import zipfile

import docx
import pytest
from fpdf import FPDF
from ragcore.errors import ExtractionFailed
from ragcore.extractors import DOCX_TYPE, ExtractionLimits, Section, extract

LIMITS = ExtractionLimits()


def reason(data, content_type, limits=LIMITS):
    with pytest.raises(ExtractionFailed) as info:
        extract(data, content_type, limits=limits)
    return info.value.reason


def make_pdf(pages, *, user_password=None, owner_password=None, blank=()):
    pdf = FPDF()
    if owner_password or user_password:
        pdf.set_encryption(owner_password=owner_password or "owner", user_password=user_password)
    for number, text in enumerate(pages, start=1):
        pdf.add_page()
        if number in blank:
            pdf.rect(20, 20, 100, 100, style="F")  # drawn, like a scanned image: no text layer
            continue
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_docx(build):
    document = docx.Document()
    build(document)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# ---- HTML -----------------------------------------------------------------------------------------

PAGE = b"""<!doctype html>
<html><head><title>Handbook</title><style>.x { color: red }</style>
<script>var tracking = "do not index";</script></head>
<body>
<header><a href="/">Acme</a> <a href="/login">Sign in</a></header>
<nav><ul><li>Home</li><li>Products</li></ul></nav>
<div role="navigation">Breadcrumbs &gt; here</div>
<main>
<h1>Employee <em>handbook</em></h1>
<p>Welcome to   Acme.<br>Read this first.</p>
<h2>Leave</h2>
<p>Every employee accrues <b>twenty-five</b> days of paid vacation.</p>
<table><tr><th>Kind</th><th>Days</th></tr><tr><td>Sick</td><td>10</td></tr></table>
<h3>Parental</h3>
<p>Sixteen weeks.</p>
<div hidden>hidden text</div><p style="display: none">invisible</p>
<noscript>enable JavaScript</noscript>
<h2>Remote work</h2>
<pre>line one
line two</pre>
</main>
<aside>Related articles</aside>
<form><input value="search"><button>Go</button></form>
<footer>Copyright Acme</footer>
</body></html>"""


def test_html_keeps_visible_text_by_heading():
    doc = extract(PAGE, "text/html; charset=utf-8", limits=LIMITS)
    assert [s.headings for s in doc.sections] == [
        ("Employee handbook",),
        ("Employee handbook", "Leave"),
        ("Employee handbook", "Leave", "Parental"),
        ("Employee handbook", "Remote work"),
    ]
    everything = "\n".join(s.text for s in doc.sections)
    for boilerplate in ("tracking", "Sign in", "Products", "Breadcrumbs", "hidden text", "invisible",
                        "enable JavaScript", "Related", "search", "Go", "Copyright", "color"):  # fmt: skip
        assert boilerplate not in everything, boilerplate
    first, leave = doc.sections[0].text, doc.sections[1].text
    assert first.startswith("Employee handbook\n")
    assert "Welcome to Acme.\nRead this first." in first
    assert "Every employee accrues twenty-five days of paid vacation." in leave
    assert "Kind | Days\nSick | 10" in leave
    assert "line one\nline two" in doc.sections[3].text
    assert all(s.page is None for s in doc.sections)


def test_html_encoding_comes_from_the_page():
    page = '<html><head><meta charset="iso-8859-1"></head><body><p>Café crème</p></body></html>'
    doc = extract(page.encode("latin-1"), "text/html", limits=LIMITS)
    assert doc.sections == [Section("Café crème")]


def test_html_without_visible_text_fails():
    assert reason(b"<html><head><script>x()</script></head><body><nav>menu</nav></body></html>",
                  "text/html") == "the file contains no text"  # fmt: skip


def test_blank_html_has_no_text():
    assert reason(b"  <!-- only a comment -->  ", "text/html") == "the file contains no text"


def test_html_character_limit_stops_the_walk():
    page = b"<p>" + b"word " * 1000 + b"</p>"
    assert reason(page, "text/html", ExtractionLimits(max_characters=100)).startswith(
        "the file holds more than 100 characters"
    )


# ---- PDF ------------------------------------------------------------------------------------------


def test_pdf_pages_are_sections_with_their_numbers():
    doc = extract(make_pdf(["Alpha on page one.", "Beta on page two.", "Gamma."]), "application/pdf",
                  limits=LIMITS)  # fmt: skip
    assert doc.pages == 3
    assert [(s.page, s.text) for s in doc.sections] == [
        (1, "Alpha on page one."),
        (2, "Beta on page two."),
        (3, "Gamma."),
    ]


def test_pdf_pages_without_text_are_skipped_but_counted():
    doc = extract(make_pdf(["First.", "", "Third."], blank={2}), "application/pdf", limits=LIMITS)
    assert doc.pages == 3
    assert [s.page for s in doc.sections] == [1, 3]


def test_scanned_pdf_without_text_layer_fails():
    assert reason(make_pdf(["", ""], blank={1, 2}), "application/pdf") == (
        "the PDF has no text layer on any of its 2 pages (scanned PDF?)"
    )


def test_password_protected_pdf_fails():
    assert reason(make_pdf(["Secret."], user_password="pw"), "application/pdf") == (
        "the PDF is encrypted (it needs a password to open)"
    )


def test_pdf_encrypted_only_against_editing_opens():
    doc = extract(make_pdf(["Readable by anyone."], owner_password="owner"), "application/pdf",
                  limits=LIMITS)  # fmt: skip
    assert doc.sections == [Section("Readable by anyone.", 1)]


def test_corrupt_pdfs_fail():
    assert reason(b"this is not a pdf at all", "application/pdf") == (
        "the PDF is damaged or not a PDF (no PDF header)"
    )
    good = make_pdf(["Some text."])
    assert reason(good[: len(good) // 3], "application/pdf").startswith("the PDF is damaged or not a PDF")
    assert reason(b"%PDF-1.7\n" + bytes(range(256)) * 20, "application/pdf").startswith(
        "the PDF is damaged or not a PDF"
    )


def test_page_limit_is_checked_before_extracting_text():
    data = make_pdf([f"Page {n}." for n in range(1, 6)])
    limits = ExtractionLimits(max_pages=4)
    assert reason(data, "application/pdf", limits) == "the PDF has 5 pages, more than 4 (the limit)"
    # Fewer characters allowed than the first page holds: had text been extracted, that would be the error.
    limits = ExtractionLimits(max_pages=4, max_characters=1)
    assert reason(data, "application/pdf", limits).startswith("the PDF has 5 pages")


def test_pdf_character_limit():
    data = make_pdf(["x" * 50, "y" * 50])
    assert reason(data, "application/pdf", ExtractionLimits(max_characters=60)).startswith(
        "the file holds more than 60 characters"
    )


# ---- DOCX -----------------------------------------------------------------------------------------


def handbook(document):
    document.add_heading("Handbook", 0)
    document.add_paragraph("Read this first.")
    document.add_heading("Leave", 1)
    document.add_paragraph("Twenty-five days of paid vacation.")
    document.add_heading("Parental leave", 2)
    document.add_paragraph("Sixteen weeks.")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate([("Kind", "Days", "Paid"), ("Sick", "10", "yes"), ("Unpaid", "30", "no")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(2, 1).merge(table.cell(2, 2))
    document.add_heading("Remote work", 1)
    document.add_paragraph("")
    document.add_paragraph("Three days per week.")


def test_docx_headings_paragraphs_and_tables():
    doc = extract(make_docx(handbook), DOCX_TYPE, limits=LIMITS)
    assert doc.pages is None
    assert doc.sections == [
        Section("Handbook\nRead this first.", None, ("Handbook",)),
        Section("Leave\nTwenty-five days of paid vacation.", None, ("Handbook", "Leave")),
        Section(
            "Parental leave\nSixteen weeks.\nKind | Days | Paid\nSick | 10 | yes\nUnpaid | 30 no",
            None,
            ("Handbook", "Leave", "Parental leave"),
        ),
        Section("Remote work\nThree days per week.", None, ("Handbook", "Remote work")),
    ]


def test_docx_custom_style_based_on_a_heading_is_a_heading():
    def build(document):
        style = document.styles.add_style("Chapter", 1)  # paragraph style
        style.base_style = document.styles["Heading 1"]
        document.add_paragraph("Chapter one", style="Chapter")
        document.add_paragraph("Body.")

    doc = extract(make_docx(build), DOCX_TYPE, limits=LIMITS)
    assert doc.sections == [Section("Chapter one\nBody.", None, ("Chapter one",))]


def test_corrupt_docx_fails():
    assert reason(b"PK\x03\x04 not really a zip", DOCX_TYPE) == (
        "the file is not a Word document (.docx) or is damaged"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "a zip, but no Word document")
    assert reason(out.getvalue(), DOCX_TYPE) == "the file is not a Word document (.docx) or is damaged"
    good = make_docx(handbook)
    assert reason(good[:-200], DOCX_TYPE).startswith("the file is not a Word document (.docx) or is damaged")


def test_docx_zip_bomb_is_refused_from_its_directory():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<" + b"a" * (64 * 1024 * 1024))
    bomb = out.getvalue()
    assert len(bomb) < 100 * 1024  # some 64 KB that would inflate to 64 MB
    limits = ExtractionLimits(max_unpacked_bytes=16 * 1024 * 1024)
    assert reason(bomb, DOCX_TYPE, limits) == (
        f"the DOCX unpacks to {64 * 1024 * 1024 + 1} bytes, more than {16 * 1024 * 1024} (the limit)"
    )


def test_docx_character_limit():
    assert reason(make_docx(handbook), DOCX_TYPE, ExtractionLimits(max_characters=40)).startswith(
        "the file holds more than 40 characters"
    )
