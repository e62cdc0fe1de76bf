"""Running a parser under the time budget."""

from __future__ import annotations

from . import ExtractedDocument, ExtractionLimits, parse_in_process


def run_with_budget(
    data: bytes, media_type: str, params: dict[str, str], limits: ExtractionLimits
) -> ExtractedDocument:
    """Parse ``data`` as ``media_type`` within ``limits``."""
    return parse_in_process(data, media_type, params, limits)
