"""text/plain: the whole file as one section."""

from __future__ import annotations

import codecs

from . import ExtractedDocument, ExtractionFailed, ExtractionLimits, Section, check_characters

# Byte order marks, longest first (UTF-32 LE starts with UTF-16 LE's mark).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_UTF8_NAMES = {"utf-8", "utf8", "us-ascii", "ascii"}


def decode(data: bytes, params: dict[str, str]) -> str:
    """Text from bytes: a byte order mark wins, then a ``charset`` parameter, else strict UTF-8.

    Line ends are normalised to ``\\n``. ExtractionFailed for bytes that are not text in that encoding.
    """
    encoding = None
    for bom, name in _BOMS:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], name
            break
    if encoding is None:
        charset = params.get("charset", "utf-8").lower()
        if charset in _UTF8_NAMES:
            encoding = "utf-8"
        else:
            try:
                encoding = codecs.lookup(charset).name
            except LookupError:
                raise ExtractionFailed(f"unknown character set {charset}") from None
    try:
        text = data.decode(encoding, errors="strict")
    except UnicodeDecodeError as exc:
        raise ExtractionFailed(
            f"the file is not valid {encoding.upper()} text (byte {exc.start}); "
            "save it as UTF-8 or name its charset in the content type"
        ) from None
    if "\x00" in text:
        # Real text never holds NUL; this is a binary file (or UTF-16 without its byte order mark).
        raise ExtractionFailed("the file is not text (it contains NUL bytes)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse(data: bytes, params: dict[str, str], limits: ExtractionLimits) -> ExtractedDocument:
    """One section holding the decoded text."""
    text = decode(data, params)
    check_characters(len(text), limits)
    return ExtractedDocument([Section(text)], pages=None)
