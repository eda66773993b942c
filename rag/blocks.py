"""Documents made of blocks (Word, HTML): headings, paragraphs and tables, in reading order → pages.

Word and HTML have no stable pages, so every block is a page of its own, numbered by paragraph: a heading or a
paragraph counts one, and so does each row of a table. Citations show that number ("paragraph 12").

Headings become Markdown heading lines ("## 第三条 保险责任"), so that the outline machinery (rag/outline.py)
sees them as it sees a Markdown file's; a numbered heading in body text ("第一条 …", "1.2 …") is recognised
by its number, as in a PDF. Table rows become pages of kind "table", each row with its header
("列: 值; 列: 值", as rag/tables.py writes a PDF's), under the table's caption.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from rag.records import Page
from rag.tables import Table, row_text

DEFAULT_CAPTION = "表格 / Table"
_NUMERIC = re.compile(r"^[\s¥$€£%+\-.,()（）/:：\d]*\d[\s¥$€£%+\-.,()（）/:：\d]*(元|万元|天|日|年|岁|周岁|%)?$")
_YEAR = re.compile(r"^(?:19|20)\d{2}\s*年?(?:度)?$")
_CAPTION = re.compile(r"^\s*(表|Table|TABLE|附表)\s*[\d一二三四五六七八九十]+")


@dataclass(frozen=True)
class Heading:
    level: int  # 1 (a document title or h1) to 6
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class TableBlock:
    rows: tuple[tuple[str, ...], ...]
    caption: str | None = None
    header_rows: int | None = None  # how many rows are the header (HTML's <th> says); None: decide from the cells


Block = Heading | Paragraph | TableBlock


def is_numeric(value: str) -> bool:
    """A cell that holds a number, an amount, a date or a percentage rather than a name."""
    return bool(_NUMERIC.match(value.strip()))


def looks_like_header(row: Sequence[str], width: int) -> bool:
    """Column names: text cells (no numbers or amounts; a year may name a column), none repeated, naming at
    least half of the `width` columns that hold data."""
    names = [cell.strip() for cell in row if cell.strip()]
    if not names or len(names) * 2 < width:
        return False
    amounts = [name for name in names if is_numeric(name) and not _YEAR.match(name)]  # a year can name a column
    return not amounts and len(set(names)) == len(names)


def looks_like_caption(text: str) -> bool:
    """A table's caption written as a paragraph above it: "表1 保险金额", "Table 2: Premiums"."""
    return len(text) <= 80 and bool(_CAPTION.match(text))


def block_pages(source: str, blocks: Iterable[Block]) -> Iterator[Page]:
    """The pages of a block document, numbered by paragraph (see the module's doc)."""
    from rag.loaders import clean_text

    number = 0
    tables = 0
    for block in blocks:
        if isinstance(block, Heading):
            title = " ".join(block.text.split())
            if title:
                number += 1
                yield Page(source=source, page=number, text=f"{'#' * max(1, min(block.level, 6))} {title}")
        elif isinstance(block, Paragraph):
            text = clean_text(block.text)
            if text:
                number += 1
                yield Page(source=source, page=number, text=text)
        else:
            tables += 1
            for page in _table_pages(source, block, number, tables):
                number = page.page
                yield page


def _table_pages(source: str, table: TableBlock, number: int, ordinal: int) -> Iterator[Page]:
    rows = [tuple(" ".join(cell.split()) for cell in row) for row in table.rows]
    rows = [row for row in rows if any(row)]
    width = max((len(row) for row in rows), default=0)
    rows = [row + ("",) * (width - len(row)) for row in rows]
    caption = table.caption
    if len(rows) > 1 and width > 1 and caption is None and sum(1 for cell in rows[0] if cell) == 1:
        caption = next(cell for cell in rows[0] if cell)  # a title row spanning the table
        rows = rows[1:]
    if width <= 1:  # a one-column table is a box around paragraphs (layout), not a table of values
        for row in rows:
            if text := " ".join(cell for cell in row if cell):
                number += 1
                yield Page(source=source, page=number, text=text)
        return
    header_rows = table.header_rows
    if header_rows is None:
        header_rows = 1 if len(rows) > 1 and looks_like_header(rows[0], width) else 0
    header = _merge_header(rows[:header_rows], width)
    grid = Table(page=0, caption=caption, header=header, rows=tuple(rows[header_rows:]), bbox=(0, 0, 0, 0))
    section = caption or f"{DEFAULT_CAPTION} {ordinal}"
    for i, row in enumerate(grid.rows):
        number += 1
        line = row_text(grid, row)
        text = f"{caption}\n{line}" if i == 0 and caption else line
        yield Page(source=source, page=number, text=text, kind="table", section=section)


def _merge_header(rows: Sequence[tuple[str, ...]], width: int) -> tuple[str, ...]:
    """Several header rows as one: each column's names from top to bottom, repeats dropped ("保障 / 身故")."""
    header = []
    for column in range(width):
        names: list[str] = []
        for row in rows:
            if row[column] and row[column] not in names:
                names.append(row[column])
        header.append(" / ".join(names))
    return tuple(header)
