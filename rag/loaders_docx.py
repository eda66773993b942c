"""Word (.docx) → blocks → pages, through python-docx.

A paragraph is a heading when its style is a heading style ("Heading 2", "标题 2", "Title") or has an outline
level; a numbered heading in body text ("第一条 …", "1.2 …") is left to the outline machinery, which knows
numbers. A contents list that Word generated (TOC styles) repeats the headings and is skipped. Tables become
rows with their header; a caption paragraph right above a table ("表1 …", "Table 2 …", or the Caption style)
becomes the table's caption. Pages are numbered by paragraph (rag/blocks.py).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

from rag.blocks import Block, Heading, Paragraph, TableBlock, block_pages, looks_like_caption
from rag.errors import LoadError
from rag.records import Page

_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)
_TITLE_STYLES = {"title", "标题"}
_CAPTION_STYLES = {"caption", "题注"}
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def docx_pages(data: bytes, source: str) -> Iterator[Page]:
    """The pages (paragraphs) of a Word file's bytes."""
    document = _open(data, source)
    pages = list(block_pages(source, _blocks(document)))
    if not pages:
        raise LoadError(source, "the Word document has no text", "check the file; text in images needs OCR first")
    yield from pages


def _open(data: bytes, source: str) -> Any:
    try:
        import docx

        return docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many types on a damaged package (zip, XML, missing parts)
        raise LoadError(
            source,
            f"not a readable Word document ({type(exc).__name__}: {exc})",
            "open it in Word and save it again as .docx (a .doc file must be saved as .docx)",
        ) from exc


def _blocks(document: Any) -> Iterator[Block]:
    from docx.table import Table
    from docx.text.paragraph import Paragraph as DocxParagraph

    pending: DocxParagraph | None = None  # a caption waiting to see whether a table follows
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            caption = pending.text.strip() if pending is not None else None
            pending = None
            yield TableBlock(rows=_rows(item), caption=caption)
            continue
        if pending is not None:
            yield Paragraph(pending.text)
            pending = None
        if not isinstance(item, DocxParagraph):
            continue
        style = _style_name(item)
        if style.startswith("toc"):  # Word's generated contents list: the headings again, with page numbers
            continue
        text = item.text
        if not text.strip():
            continue
        level = _heading_level(item, style)
        if level is not None:
            yield Heading(level, text)
        elif style in _CAPTION_STYLES or looks_like_caption(text.strip()):
            pending = item
        else:
            yield Paragraph(text)
    if pending is not None:
        yield Paragraph(pending.text)


def _style_name(paragraph: Any) -> str:
    try:
        return str(paragraph.style.name or "").strip().lower()
    except (AttributeError, KeyError, ValueError):  # a style id the styles part does not define
        return ""


def _heading_level(paragraph: Any, style: str) -> int | None:
    """1–6 for a heading (Title is 1, Heading N is N), None for body text. A paragraph or its style may set an
    outline level directly (w:outlineLvl, 0-based; 9 means body text)."""
    if style in _TITLE_STYLES:
        return 1
    if match := _HEADING_STYLE.match(style):
        return max(1, min(int(match.group(1)), 6))
    for element in (paragraph._p, getattr(paragraph.style, "element", None)):
        level = element.find(f"{_W}pPr/{_W}outlineLvl") if element is not None else None
        if level is not None:
            value = level.get(f"{_W}val", "9")
            if value.isdigit() and int(value) < 9:
                return min(int(value) + 1, 6)
    return None


def _rows(table: Any) -> tuple[tuple[str, ...], ...]:
    rows = []
    for row in table.rows:
        # a cell merged across columns comes back once per column it spans: the rows' writer joins repeats
        rows.append(tuple(" ".join(cell.text.split()) for cell in row.cells))
    return tuple(rows)
