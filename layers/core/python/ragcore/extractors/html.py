"""text/html: the visible text, one section per heading (h1-h6) with its heading path.

Parsed with lxml's HTML parser (libxml2), which copes with the broken markup real exports contain and
finds the encoding from the bytes (BOM, ``<meta charset>``). What a reader never sees as content is
dropped: scripts, styles, templates, forms, embedded objects, hidden elements, and the page chrome of
navigation, headers, footers and asides.
"""

from __future__ import annotations

import re

import lxml.etree
import lxml.html

from . import ExtractedDocument, ExtractionFailed, ExtractionLimits, Section, check_characters

_INVISIBLE = {
    "head", "script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "math",
    "canvas", "button", "select", "option", "datalist", "input", "textarea",
}  # fmt: skip
_BOILERPLATE = {"nav", "header", "footer", "aside", "form", "dialog", "menu"}
_BOILERPLATE_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
# Elements that break a line; inline elements (a, span, em...) flow into their paragraph.
_BLOCKS = {
    "p", "div", "section", "article", "main", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr",
    "blockquote", "pre", "figure", "figcaption", "address", "hr", "caption", "tbody", "thead",
    "tfoot", "details", "summary", "body", "html", "br",
}  # fmt: skip
_CELLS = {"td", "th"}
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")


def _skipped(element) -> bool:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag in _INVISIBLE or tag in _BOILERPLATE:
        return True
    if element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    if (element.get("role") or "").lower() in _BOILERPLATE_ROLES:
        return True
    style = (element.get("style") or "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


class _Collector:
    """Walks the tree in document order, cutting sections at headings."""

    def __init__(self, limits: ExtractionLimits):
        self.limits = limits
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.parts: list[str] = []
        self.characters = 0

    def text(self, value: str | None) -> None:
        if value:
            self.parts.append(value)
            self.characters += len(value)
            check_characters(self.characters, self.limits)

    def close_section(self) -> None:
        lines = (_SPACES.sub(" ", line).strip() for line in "".join(self.parts).split("\n"))
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        if text:
            self.sections.append(Section(text, None, tuple(t for _, t in self.path)))
        self.parts = []

    def walk(self, element) -> None:
        tag = element.tag if isinstance(element.tag, str) else None
        if tag is None:  # comments, processing instructions: only their tail is content
            self.text(element.tail)
            return
        tag = tag.lower()
        if _skipped(element):
            self.text(element.tail)
            return
        if tag in _HEADINGS:
            title = " ".join(element.text_content().split())
            if title:
                self.close_section()
                level = _HEADINGS[tag]
                while self.path and self.path[-1][0] >= level:
                    self.path.pop()
                self.path.append((level, title))
                self.text(title + "\n")
            self.text(element.tail)
            return
        if tag == "br":
            self.text("\n")
            self.text(element.tail)
            return
        pre = tag == "pre"
        if tag in _BLOCKS:
            self.text("\n")
        if pre:
            # Keep a preformatted block's own line breaks (collapsing spaces inside it is harmless).
            self.text(element.text_content())
        else:
            self.text(element.text)
            for child in element:
                self.walk(child)
        if tag in _CELLS:
            self.text(" | ")
        elif tag in _BLOCKS:
            self.text("\n")
        self.text(element.tail)


def parse(data: bytes, params: dict[str, str], limits: ExtractionLimits) -> ExtractedDocument:
    """Visible text of an HTML page, sectioned by its headings."""
    charset = params.get("charset")
    try:
        parser = lxml.html.HTMLParser(
            encoding=charset, remove_comments=True, remove_pis=True, no_network=True
        )
    except LookupError:
        raise ExtractionFailed(f"unknown character set {charset}") from None
    try:
        root = lxml.html.document_fromstring(data, parser=parser)
    except lxml.etree.ParserError as exc:
        if "empty" in str(exc).lower():  # only blanks and comments
            raise ExtractionFailed("the file contains no text") from None
        raise ExtractionFailed(f"the HTML could not be read ({exc})") from None
    except (ValueError, LookupError) as exc:
        raise ExtractionFailed(f"the HTML could not be read ({exc})") from None
    collector = _Collector(limits)
    body = root.find("body")
    collector.walk(body if body is not None else root)
    collector.close_section()
    # Table rows end in the cell separator; remove the trailing one.
    sections = [
        Section(re.sub(r"\s*\|\s*$", "", s.text, flags=re.M), s.page, s.headings) for s in collector.sections
    ]
    return ExtractedDocument(sections, pages=None)
