"""Turning uploaded files into text sections that keep their location (page, heading path).

One module per format (``text``, ``markdown``, ``html``, ``pdf``, ``docx``), each with a
``parse(data, media_type, limits) -> ExtractedDocument``. :func:`extract` picks the module from the
content type, enforces the limits that can be checked before parsing, and runs the parse under the
time budget (see :mod:`ragcore.extractors.sandbox`). Every failure a user can act on is an
:class:`~ragcore.errors.ExtractionFailed` whose message says why.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ..errors import ExtractionFailed

if TYPE_CHECKING:  # the settings (pydantic, psycopg) are not imported by the parsing child
    from ..config import Settings

__all__ = [
    "SUPPORTED_CONTENT_TYPES",
    "ExtractedDocument",
    "ExtractionFailed",
    "ExtractionLimits",
    "Section",
    "extract",
    "media_type_of",
]

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

# The media type of each supported format and the module that parses it.
_MODULE_OF = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/html": "html",
    "application/pdf": "pdf",
    DOCX_TYPE: "docx",
}
SUPPORTED_CONTENT_TYPES: tuple[str, ...] = tuple(_MODULE_OF)
# Other names clients and browsers use for the same formats.
_ALIASES = {
    "text/x-markdown": "text/markdown",
    "application/xhtml+xml": "text/html",
    "application/x-pdf": "application/pdf",
}
# When a client only says "some bytes", the file name decides.
_GENERIC = {"", "application/octet-stream", "binary/octet-stream"}
_BY_SUFFIX = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": DOCX_TYPE,
}


@dataclass(frozen=True)
class Section:
    """A run of text from one place in a file: a page of a PDF, the body under a heading."""

    text: str
    page: int | None = None
    headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtractedDocument:
    """The text of a file in reading order; ``pages`` is the page count of paged formats (PDF)."""

    sections: list[Section]
    pages: int | None = None

    @property
    def characters(self) -> int:
        return sum(len(s.text) for s in self.sections)


@dataclass(frozen=True)
class ExtractionLimits:
    """What one file may cost. Defaults come from the settings (``EXTRACT_*``)."""

    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    max_characters: int = 10_000_000
    time_budget_seconds: float = 60.0
    # The unpacked size of a zip container (DOCX), read from its directory before anything is inflated.
    max_unpacked_bytes: int = 200 * 1024 * 1024
    # The address space the parsing process may grow by.
    max_memory_mb: int = 1024

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ExtractionLimits:
        """The limits configured for this deployment."""
        from ..config import get_settings

        s = settings or get_settings()
        return cls(
            max_bytes=s.extract_max_bytes,
            max_pages=s.extract_max_pages,
            max_characters=s.extract_max_characters,
            time_budget_seconds=s.extract_time_budget_seconds,
            max_unpacked_bytes=s.extract_max_unpacked_bytes,
            max_memory_mb=s.extract_max_memory_mb,
        )


def media_type_of(content_type: str, name: str = "") -> tuple[str, dict[str, str]]:
    """The supported media type named by ``content_type`` (parameters apart), or by ``name``'s suffix
    when the type is generic; ExtractionFailed for anything else."""
    base, _, rest = (content_type or "").partition(";")
    media = base.strip().lower()
    params: dict[str, str] = {}
    for item in rest.split(";"):
        key, sep, value = item.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    media = _ALIASES.get(media, media)
    if media in _GENERIC:
        guessed = _BY_SUFFIX.get(PurePosixPath(name).suffix.lower())
        if guessed is None:
            shown = media or "(none)"
            raise ExtractionFailed(
                f"unsupported file type {shown}: name the type, or use a file name ending in "
                f"{', '.join(sorted(_BY_SUFFIX))}"
            )
        media = guessed
    if media not in _MODULE_OF:
        raise ExtractionFailed(
            f"unsupported file type {media}; supported: {', '.join(SUPPORTED_CONTENT_TYPES)}"
        )
    return media, params


def parse_in_process(data: bytes, media_type: str, params: dict[str, str], limits: ExtractionLimits):
    """Run the format's parser here, in this process (the sandbox calls it in its child)."""
    module = importlib.import_module(f"{__name__}.{_MODULE_OF[media_type]}")
    return module.parse(data, params, limits)


def extract(
    data: bytes, content_type: str, *, name: str = "", limits: ExtractionLimits | None = None
) -> ExtractedDocument:
    """The text sections of a file, each with its location.

    Checks, in this order and before any parsing: a supported type, a non-empty file, the byte limit.
    The parser then runs under the time budget; pages are counted before text is extracted, and the
    characters are counted as they come out. Sections without text are dropped, and NUL characters
    (which PostgreSQL cannot store) removed. Raises ExtractionFailed with a reason a user understands.
    """
    limits = limits or ExtractionLimits.from_settings()
    media, params = media_type_of(content_type, name)
    if not data:
        raise ExtractionFailed("file is empty")
    if len(data) > limits.max_bytes:
        raise ExtractionFailed(f"file is {len(data)} bytes; the limit is {limits.max_bytes}")
    from .sandbox import run_with_budget  # here: importing the package must stay cheap

    document = run_with_budget(data, media, params, limits)
    return finish(document, limits)


def finish(document: ExtractedDocument, limits: ExtractionLimits) -> ExtractedDocument:
    """Drop empty sections and NULs; refuse a document with no text or too many characters."""
    sections = []
    for section in document.sections:
        text = section.text.replace("\x00", "").strip()
        if text:
            sections.append(Section(text, section.page, section.headings))
    result = ExtractedDocument(sections, document.pages)
    if not sections:
        raise ExtractionFailed("the file contains no text")
    check_characters(result.characters, limits)
    return result


def check_characters(count: int, limits: ExtractionLimits) -> None:
    """ExtractionFailed once more than ``limits.max_characters`` characters have been extracted."""
    if count > limits.max_characters:
        raise ExtractionFailed(
            f"the file holds more than {limits.max_characters} characters of text (the limit)"
        )
