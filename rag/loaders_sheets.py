"""Spreadsheets (.xlsx through openpyxl, .csv through the csv module) → pages, one per row.

A sheet whose header names a question column and an answer column (问题/答案, 问/答, Q/A, Question/Answer, in
any case) is a FAQ: each row becomes one question with its answer (a page of kind "faq", the question on its
first line), and the other columns follow the answer as "列: 值". Any other sheet becomes rows of kind
"table", each with its header ("列: 值; 列: 值"). A page's number is the row's number in the sheet (as the
spreadsheet shows it), and its section is the sheet's name: citations read "sheet 常见问题, row 5".

The header is the first non-empty row (after a one-cell title row above it, if any). A sheet whose first row
holds data (numbers, amounts, repeated values) has no header: its rows could not say what their values are,
so the file is refused with the fix.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
from collections.abc import Iterable, Iterator
from pathlib import PurePath
from typing import Any

from rag.blocks import looks_like_header
from rag.errors import LoadError
from rag.records import Page
from rag.tables import Table, row_text
from rag.text import has_cjk

_QUESTION_NAMES = {"问题", "问", "提问", "question", "questions", "q"}
_ANSWER_NAMES = {"答案", "答", "回答", "解答", "答复", "answer", "answers", "a"}
_NAME_NOISE = re.compile(r"[\s:：.。()（）]+")
_SNIFF_BYTES = 1 << 16
_FAQ_LABEL = re.compile(r"^\s*(?:问|答|Q|A|Question|Answer)\s*[:：]\s*", re.IGNORECASE)

Row = tuple[int, tuple[str, ...]]  # (row number in the sheet, 1-based; its cells as text)


def xlsx_pages(data: bytes, source: str) -> Iterator[Page]:
    """One page per row of every sheet of a workbook's bytes."""
    try:
        import openpyxl

        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types on a damaged package (zip, XML, missing parts)
        raise LoadError(
            source,
            f"not a readable Excel workbook ({type(exc).__name__}: {exc})",
            "open it in Excel and save it again as .xlsx (a .xls file must be saved as .xlsx)",
        ) from exc
    try:
        any_rows = False
        for sheet in workbook.worksheets:
            rows = _numbered(tuple(_cell_text(v) for v in values) for values in sheet.iter_rows(values_only=True))
            for page in sheet_pages(source, sheet.title, rows):
                any_rows = True
                yield page
    except LoadError:
        raise
    except Exception as exc:  # a damaged sheet part surfaces while its rows are read
        raise LoadError(source, f"a sheet could not be read ({type(exc).__name__}: {exc})", "repair the file") from exc
    finally:
        workbook.close()
    if not any_rows:
        raise LoadError(source, "the workbook has no rows of data", "check the file, or remove it")


def csv_pages(data: bytes, source: str) -> Iterator[Page]:
    """One page per row of a CSV file's bytes (UTF-8 with or without BOM, UTF-16, GB18030)."""
    from rag.text_files import text_encoding

    head = data[:_SNIFF_BYTES]
    if not head.strip():
        raise LoadError(source, "the file is empty", "remove it or add rows")
    encoding = text_encoding(source, head)
    try:
        with io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline="") as handle:
            sample = handle.read(_SNIFF_BYTES)
            handle.seek(0)
            try:
                dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
            except csv.Error:
                dialect = csv.excel
            rows = _numbered(tuple(cell.strip() for cell in row) for row in csv.reader(handle, dialect))
            pages = sheet_pages(source, None, rows)
            any_rows = False
            for page in pages:
                any_rows = True
                yield page
    except UnicodeDecodeError as exc:
        raise LoadError(source, f"not valid {encoding} text (byte {exc.start})", "re-save the file as UTF-8") from exc
    except csv.Error as exc:
        raise LoadError(source, f"not readable CSV ({exc})", "re-save it as CSV (comma separated)") from exc
    if not any_rows:
        raise LoadError(source, "the file has no rows of data", "check the file, or remove it")


def _numbered(rows: Iterable[tuple[str, ...]]) -> Iterator[Row]:
    """Non-empty rows with their number in the sheet, trailing empty cells cut."""
    for number, cells in enumerate(rows, start=1):
        width = len(cells)
        while width and not cells[width - 1]:
            width -= 1
        if width:
            yield number, cells[:width]


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())


def _column_name(name: str) -> str:
    return _NAME_NOISE.sub("", name).lower()


def sheet_pages(source: str, name: str | None, rows: Iterable[Row]) -> Iterator[Page]:
    """The pages of one sheet (`name`; None for a CSV file): FAQ pairs or rows with their header."""
    rows = iter(rows)
    first, second = next(rows, None), next(rows, None)
    if first is None or second is None:  # an empty sheet, or one row with nothing under it: nothing to answer
        return
    title = None
    if sum(1 for cell in first[1] if cell) == 1 and len(second[1]) > 1:  # a title row above the header
        title = next(cell for cell in first[1] if cell)
        first, second = second, next(rows, None)
        if second is None:
            return
    header = first[1]
    width = max(len(header), len(second[1]))
    if not looks_like_header(header, width):
        where = f"sheet {name!r}" if name else "the file"
        preview = " | ".join(cell for cell in header[:4] if cell)[:60]
        raise LoadError(
            source,
            f"{where} has no header row: its first row ({preview}) holds data, so its columns have no names",
            "put the column names in the first row (问题/答案 or Question/Answer for a FAQ sheet)",
        )
    data = itertools.chain([second], rows)
    names = [_column_name(cell) for cell in header]
    question = next((i for i, n in enumerate(names) if n in _QUESTION_NAMES), None)
    answer = next((i for i, n in enumerate(names) if n in _ANSWER_NAMES), None)
    if question is not None and answer is not None:
        yield from _faq_pages(source, name, header, question, answer, data)
        return
    grid = Table(page=0, caption=title, header=header, rows=(), bbox=(0, 0, 0, 0))
    section = name or title or PurePath(source).name
    for i, (number, cells) in enumerate(data):
        line = row_text(grid, cells + ("",) * (len(header) - len(cells)))
        if line:
            text = f"{title}\n{line}" if i == 0 and title else line
            yield Page(source=source, page=number, text=text, kind="table", section=section)


def _faq_pages(
    source: str, name: str | None, header: tuple[str, ...], question: int, answer: int, rows: Iterable[Row]
) -> Iterator[Page]:
    """One page per row with both a question and an answer: "问：…" (or "Q: …") on its first line, the answer
    after it, then the row's other columns."""
    for number, cells in rows:
        asked = _FAQ_LABEL.sub("", _cell(cells, question))
        said = _FAQ_LABEL.sub("", _cell(cells, answer))
        if not asked or not said:
            continue
        lines = [f"问：{asked}" if has_cjk(asked) else f"Q: {asked}", f"答：{said}" if has_cjk(said) else f"A: {said}"]
        lines += [
            f"{header[i]}: {value}"
            for i, value in enumerate(cells)
            if value and i not in (question, answer) and i < len(header) and header[i]
        ]
        yield Page(source=source, page=number, text="\n".join(lines), kind="faq", section=name)


def _cell(cells: tuple[str, ...], column: int) -> str:
    return cells[column].strip() if column < len(cells) else ""
