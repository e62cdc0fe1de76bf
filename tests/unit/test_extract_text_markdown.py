"""The extraction contract, text/plain and text/markdown."""

import codecs

import pytest
from ragcore.errors import ExtractionFailed
from ragcore.extractors import (
    SUPPORTED_CONTENT_TYPES,
    ExtractionLimits,
    Section,
    extract,
    media_type_of,
)

LIMITS = ExtractionLimits()


def reason(data, content_type, **kwargs):
    with pytest.raises(ExtractionFailed) as info:
        extract(data, content_type, limits=kwargs.pop("limits", LIMITS), **kwargs)
    return info.value.reason


def test_plain_text_is_one_section_without_location():
    doc = extract(b"Hello world.\r\nSecond line.", "text/plain", limits=LIMITS)
    assert doc.sections == [Section("Hello world.\nSecond line.")]
    assert doc.pages is None


def test_byte_order_marks_are_honoured_and_removed():
    text = "Über café"
    for bom, encoding in [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
    ]:
        doc = extract(bom + text.encode(encoding), "text/plain; charset=utf-8", limits=LIMITS)
        assert doc.sections[0].text == text, encoding


def test_strict_utf8_refuses_other_bytes_naming_the_position():
    assert reason(b"abc \xff def", "text/plain") == (
        "the file is not valid UTF-8 text (byte 4); save it as UTF-8 or name its charset in the content type"
    )


def test_a_declared_charset_is_used():
    doc = extract("café".encode("latin-1"), "text/plain; charset=ISO-8859-1", limits=LIMITS)
    assert doc.sections[0].text == "café"
    assert reason(b"abc", "text/plain; charset=klingon") == "unknown character set klingon"


def test_binary_content_is_not_text():
    assert reason("text".encode("utf-16-le"), "text/plain") == "the file is not text (it contains NUL bytes)"


def test_unsupported_types_are_named():
    assert reason(b"PK\x03\x04", "application/zip").startswith("unsupported file type application/zip;")
    assert reason(b"x", "application/octet-stream", name="a.exe").startswith(
        "unsupported file type application/octet-stream"
    )


def test_generic_types_fall_back_to_the_file_name():
    assert media_type_of("application/octet-stream", "Notes.MD") == ("text/markdown", {})
    assert media_type_of("", "report.pdf")[0] == "application/pdf"
    assert media_type_of("Text/Markdown; charset=UTF-8")[0] == "text/markdown"
    assert media_type_of("text/x-markdown")[0] == "text/markdown"
    assert set(SUPPORTED_CONTENT_TYPES) >= {"text/plain", "text/markdown", "text/html", "application/pdf"}


def test_empty_and_blank_files_fail():
    assert reason(b"", "text/plain") == "file is empty"
    assert reason(b"  \n\t ", "text/plain") == "the file contains no text"


def test_byte_limit_is_checked_before_parsing():
    # Not UTF-8 at all: the size refusal proves nothing was decoded.
    limits = ExtractionLimits(max_bytes=10)
    assert reason(b"\xff" * 11, "text/plain", limits=limits) == "file is 11 bytes; the limit is 10"
    assert extract(b"a" * 10, "text/plain", limits=limits).sections[0].text == "a" * 10


def test_character_limit():
    limits = ExtractionLimits(max_characters=5)
    assert reason(b"abcdef", "text/plain", limits=limits) == (
        "the file holds more than 5 characters of text (the limit)"
    )
    assert reason(b"# T\nabcdef", "text/markdown", limits=limits).startswith("the file holds more than 5")


MARKDOWN = """Preamble before any heading.

# Guide

Intro paragraph.

## Install
Run the installer.

```sh
# not a heading: a comment in a code block
make install
```

### Linux
Use the package.

Setext heading
--------------

Under the setext heading.

# Appendix
Last words.

---

After a thematic break.
"""


def test_markdown_sections_follow_headings_with_their_path():
    doc = extract(MARKDOWN.encode(), "text/markdown", limits=LIMITS)
    assert [s.headings for s in doc.sections] == [
        (),
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "Linux"),
        ("Guide", "Setext heading"),
        ("Appendix",),
    ]
    assert doc.sections[0].text == "Preamble before any heading."
    install = doc.sections[2].text
    assert install.startswith("## Install\nRun the installer.")
    assert "# not a heading" in install and "make install" in install
    assert doc.sections[4].text == "Setext heading\n--------------\nUnder the setext heading."
    assert doc.sections[5].text.endswith("After a thematic break.")
    assert all(s.page is None for s in doc.sections)


def test_a_heading_with_nothing_under_it_only_names_the_path():
    doc = extract(b"# Title\n## Part\nBody text.\n", "text/markdown", limits=LIMITS)
    assert doc.sections == [Section("## Part\nBody text.", None, ("Title", "Part"))]


def test_markdown_without_headings_is_one_section():
    doc = extract(b"Just text,\nno headings.", "text/markdown", limits=LIMITS)
    assert doc.sections == [Section("Just text,\nno headings.")]


def test_limits_come_from_settings(monkeypatch):
    from ragcore.config import reset_settings

    monkeypatch.setenv("EXTRACT_MAX_BYTES", "123")
    monkeypatch.setenv("EXTRACT_TIME_BUDGET_SECONDS", "2.5")
    reset_settings()
    limits = ExtractionLimits.from_settings()
    assert (limits.max_bytes, limits.time_budget_seconds, limits.max_pages) == (123, 2.5, 2000)
    assert reason(b"x" * 124, "text/plain", limits=None) == "file is 124 bytes; the limit is 123"


def test_an_extraction_failure_is_a_422_with_its_reason_if_it_reaches_http():
    from ragcore.api import http_status

    failure = ExtractionFailed("file is empty")
    assert (http_status(failure), failure.code, failure.message) == (
        422,
        "extraction_failed",
        "file is empty",
    )
