"""application/pdf: the text layer of each page, one section per page, numbered from 1.

pypdf (pure Python) reads the file. The page count is checked against the limit before any text is
extracted. A PDF that needs a password to open is refused; one encrypted only against editing or
printing (an empty user password, common in exported reports) opens as every viewer opens it. Pages
with no text layer give no section, and a PDF where no page has one is refused: it is a scan, which
would need OCR.
"""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PdfStreamError

from . import ExtractedDocument, ExtractionFailed, ExtractionLimits, Section, check_characters

# pypdf logs a warning for every oddity of a damaged but readable file; the outcome is what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)

_CORRUPT = "the PDF is damaged or not a PDF"


def parse(data: bytes, params: dict[str, str], limits: ExtractionLimits) -> ExtractedDocument:
    """One section per page that has text, with its page number."""
    if b"%PDF-" not in data[:1024]:  # where the format puts its header
        raise ExtractionFailed(f"{_CORRUPT} (no PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError):
                opened = 0
            if not opened:
                raise ExtractionFailed("the PDF is encrypted (it needs a password to open)")
        pages = len(reader.pages)
    except ExtractionFailed:
        raise
    except FileNotDecryptedError:
        raise ExtractionFailed("the PDF is encrypted (it needs a password to open)") from None
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ExtractionFailed(f"{_CORRUPT} ({type(exc).__name__})") from None
    if pages > limits.max_pages:
        raise ExtractionFailed(f"the PDF has {pages} pages, more than {limits.max_pages} (the limit)")
    if pages == 0:
        raise ExtractionFailed("the PDF has no pages")
    sections: list[Section] = []
    characters = 0
    for number in range(1, pages + 1):
        try:
            text = reader.pages[number - 1].extract_text() or ""
        except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ExtractionFailed(f"{_CORRUPT} (page {number}: {type(exc).__name__})") from None
        characters += len(text)
        check_characters(characters, limits)
        if text.strip():
            sections.append(Section(text, number, ()))
    if not sections:
        raise ExtractionFailed(f"the PDF has no text layer on any of its {pages} pages (scanned PDF?)")
    return ExtractedDocument(sections, pages=pages)
