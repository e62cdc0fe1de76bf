"""DOCX (Word): paragraphs in reading order, sections cut at headings, tables as rows of text.

python-docx reads the document. A DOCX is a zip archive, so its directory is checked first: the sizes
its members unpack to are added up (a decompression bomb is refused before anything is inflated; the
zip reader stops at the declared size, so a member cannot unpack to more than it says). Headings are
paragraphs whose style is "Title" or "Heading N" (or a style based on one); table rows become lines with
their cells separated by " | ".
"""

from __future__ import annotations

import io
import re
import zipfile

from . import ExtractedDocument, ExtractionFailed, ExtractionLimits, Section, check_characters

_NOT_DOCX = "the file is not a Word document (.docx) or is damaged"
_MAX_MEMBERS = 10_000
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.I)


def check_archive(data: bytes, limits: ExtractionLimits) -> None:
    """Refuse a zip that is not a DOCX, or that would unpack to more than the limit."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
        raise ExtractionFailed(_NOT_DOCX) from None
    if len(members) > _MAX_MEMBERS:
        raise ExtractionFailed(f"the DOCX holds {len(members)} files, more than {_MAX_MEMBERS}")
    unpacked = sum(m.file_size for m in members)
    if unpacked > limits.max_unpacked_bytes:
        raise ExtractionFailed(
            f"the DOCX unpacks to {unpacked} bytes, more than {limits.max_unpacked_bytes} (the limit)"
        )
    if "word/document.xml" not in {m.filename for m in members}:
        raise ExtractionFailed(_NOT_DOCX)


def _heading_level(paragraph) -> int | None:
    style, depth = paragraph.style, 0
    while style is not None and depth < 5:  # custom styles are often based on a built-in heading
        name = (style.name or "").strip()
        if name.lower() == "title":
            return 0
        match = _HEADING_STYLE.match(name)
        if match:
            return int(match.group(1))
        style, depth = style.base_style, depth + 1
    return None


def _rows(table) -> list[str]:
    lines = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell is listed once per grid column it spans
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append(" | ".join(cells))
    return lines


def parse(data: bytes, params: dict[str, str], limits: ExtractionLimits) -> ExtractedDocument:
    """Sections of a Word document by heading."""
    check_archive(data, limits)
    import docx  # imported after the archive check: nothing is parsed before it passes
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ExtractionFailed(f"{_NOT_DOCX} ({type(exc).__name__})") from None
    except SyntaxError:  # lxml's XMLSyntaxError: a part is not well-formed XML
        raise ExtractionFailed(f"{_NOT_DOCX} (malformed XML)") from None

    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    characters = 0

    def close() -> None:
        text = "\n".join(lines).strip()
        if text:
            sections.append(Section(text, None, tuple(t for _, t in path)))
        lines.clear()

    for block in blocks:
        if isinstance(block, Table):
            new = _rows(block)
        else:
            text = block.text.strip()
            level = _heading_level(block) if text else None
            if level is not None:
                close()
                while path and path[-1][0] >= level:
                    path.pop()
                path.append((level, " ".join(text.split())))
            new = [text] if text else []
        characters += sum(len(line) + 1 for line in new)
        check_characters(characters, limits)
        lines.extend(new)
    close()
    return ExtractedDocument(sections, pages=None)
