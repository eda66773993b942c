"""HTML (.html, .htm) → blocks → pages, through trafilatura.

trafilatura finds the page's main content and drops navigation, headers, footers, sidebars, scripts and
cookie banners; its XML output keeps the structure we need: headings (h1–h6), paragraphs, lists and tables
with their header cells. Only the file's bytes are given to it (never a URL), so nothing is fetched.
Pages are numbered by paragraph (rag/blocks.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from rag.blocks import Block, Heading, Paragraph, TableBlock, block_pages
from rag.errors import LoadError
from rag.records import Page

_NO_CONTENT = (
    "no readable content: the page is all script, navigation or boilerplate",
    "save the page as the browser shows it (File › Save Page As, complete) or copy its text into a .txt file",
)


def html_pages(raw: bytes, source: str) -> Iterator[Page]:
    """The pages (paragraphs) of an HTML file's bytes; nothing it links to is fetched."""
    if not raw.strip():
        raise LoadError(source, "the file is empty", "remove it or add content")
    root = _extract(raw, source)
    pages = list(block_pages(source, _blocks(root)))
    if not pages:
        raise LoadError(source, *_NO_CONTENT)
    yield from pages


def _extract(raw: bytes, source: str) -> Any:
    import trafilatura
    from lxml import etree

    logging.getLogger("trafilatura").setLevel(logging.ERROR)  # it logs every page it finds too short
    try:
        # the bytes only, no `url`: trafilatura never fetches anything for extract()
        xml = trafilatura.extract(
            raw,
            output_format="xml",
            include_tables=True,
            include_comments=False,
            include_images=False,
            include_links=False,
            include_formatting=False,
            favor_recall=True,
            deduplicate=False,
            with_metadata=False,
        )
    except Exception as exc:  # lxml and the extractors raise many types on broken markup
        raise LoadError(source, f"not readable HTML ({type(exc).__name__}: {exc})", "save the page again") from exc
    if not xml:
        raise LoadError(source, *_NO_CONTENT)
    try:
        return etree.fromstring(xml.encode("utf-8"))
    except etree.XMLSyntaxError as exc:  # pragma: no cover - trafilatura writes well-formed XML
        raise LoadError(source, f"not readable HTML ({exc})", "save the page again") from exc


def _text(element: Any) -> str:
    return " ".join("".join(element.itertext()).split())


def _blocks(root: Any) -> Iterator[Block]:
    main = root.find("main")
    yield from _children(main if main is not None else root)


def _children(element: Any) -> Iterator[Block]:
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == "head":
            rend = str(child.get("rend", "h2"))
            level = int(rend[1]) if len(rend) == 2 and rend[0] == "h" and rend[1].isdigit() else 2
            yield Heading(level, _text(child))
        elif tag == "list":
            yield from _items(child)
        elif tag == "table":
            yield _table(child)
        elif tag in ("p", "quote", "code", "item"):
            yield Paragraph("".join(child.itertext()).strip())
        elif tag in ("div", "main", "section"):
            yield from _children(child)


def _items(element: Any) -> Iterator[Block]:
    """A list's items, one paragraph each; a list nested in an item follows the item's own text."""
    for item in element:
        if item.tag != "item":
            continue
        nested = [sub for sub in item if sub.tag == "list"]
        for sub in nested:
            item.remove(sub)
        yield Paragraph(_text(item))
        for sub in nested:
            yield from _items(sub)


def _table(element: Any) -> TableBlock:
    rows: list[tuple[str, ...]] = []
    heads: list[bool] = []
    for row in element.iter("row"):
        cells = [cell for cell in row if cell.tag == "cell"]
        rows.append(tuple(_text(cell) for cell in cells))
        heads.append(bool(cells) and all(cell.get("role") == "head" for cell in cells if _text(cell)))
    caption = None
    if rows and heads[0] and sum(1 for cell in rows[0] if cell) == 1 and len(rows) > 1:
        caption = next(cell for cell in rows[0] if cell)  # <caption> comes back as a head row of one cell
        rows, heads = rows[1:], heads[1:]
    header_rows = 0
    while header_rows < len(heads) - 1 and heads[header_rows]:
        header_rows += 1
    return TableBlock(rows=tuple(rows), caption=caption, header_rows=header_rows or None)
