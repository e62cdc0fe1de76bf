"""text/markdown: one section per heading (ATX ``#`` or setext underlines), with its heading path.

The headings are found by a CommonMark parser (markdown-it-py), so a ``#`` line inside a fenced code
block or a ``---`` that is a thematic break is not taken for a heading. Sections keep the Markdown source
of their lines (the heading line included), which reads well both to people and to the embedder.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

from . import ExtractedDocument, ExtractionLimits, Section, check_characters
from .text import decode


def _headings(text: str) -> list[tuple[int, int, int, str]]:
    """(first line, line after, level, text) of every top-level heading, in order."""
    tokens = MarkdownIt("commonmark").parse(text)
    found = []
    for i, token in enumerate(tokens):
        # level 0: a heading of the document itself, not one quoted in a block quote or a list item.
        if token.type == "heading_open" and token.level == 0 and token.map:
            inline = tokens[i + 1]
            title = " ".join(inline.content.split())
            found.append((token.map[0], token.map[1], int(token.tag[1]), title))
    return found


def sections_of(text: str) -> list[Section]:
    """Sections of Markdown ``text``: the lines before the first heading, then each heading's lines
    up to the next heading, each with the path of headings above it (its own last)."""
    lines = text.split("\n")
    headings = _headings(text)
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    starts = [(0, 0, 0, "")] + headings
    for n, (first, after, level, title) in enumerate(starts):
        if n > 0:
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, title))
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        body = "\n".join(lines[after:end]).strip()
        if not body:
            continue  # a heading directly followed by another: its title lives on in the path
        own = "\n".join(lines[first:after]).strip() if n > 0 else ""
        content = f"{own}\n{body}" if own else body
        sections.append(Section(content, None, tuple(t for _, t in path)))
    return sections


def parse(data: bytes, params: dict[str, str], limits: ExtractionLimits) -> ExtractedDocument:
    """Markdown sections by heading."""
    text = decode(data, params)
    check_characters(len(text), limits)
    return ExtractedDocument(sections_of(text), pages=None)
