"""Ruled tables on PDF pages → rows that each carry their header, and the page text outside the tables.

pdfplumber's table finder does the geometry (edges → intersections → cells); this module decides which
drawn lines are table rules, turns the cells into a clean grid (spanned cells carried across and down,
spacer columns and lone currency symbols folded away), finds the header rows and the caption, and lets the
loader read the page text without the tables' regions so that no row is indexed twice. The rules are
found in `rag.table_rules`, the grid is made in `rag.table_grid`; this module reads the pages and renders
the rows.

Only tables drawn with lines or cell backgrounds are found: whitespace-aligned text is left as text.
Coordinates are PDF points from the page's top-left corner (pdfplumber's convention): (x0, top, x1, bottom).
Nothing here raises on a bad page: a page that cannot be read has no tables.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.table_grid import Grid, cluster, distinct
from rag.table_rules import rule_edges, table_edges

_MAX_CONTINUED_PAGES = 30  # how far back a table continued over pages is followed to its header
_FINDER_SETTINGS = {"vertical_strategy": "explicit", "horizontal_strategy": "explicit", "intersection_tolerance": 3}


@dataclass(frozen=True)
class Table:
    page: int  # 1-based
    caption: str | None
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    bbox: tuple[float, float, float, float]  # x0, top, x1, bottom in points from the page's top-left


def find_tables(path: Path | bytes, page_numbers: Iterable[int] | None = None) -> list[Table]:
    """The ruled tables on the given pages (1-based; all pages when None), in page and reading order.

    A table at the top of a page with no header of its own (a table continued from the previous page)
    takes the header, caption and the values of spanned left-hand cells from the last table of the
    previous page when the columns agree.
    """
    try:
        import pdfplumber
        import pypdfium2 as pdfium
    except ImportError:  # pragma: no cover - both are runtime dependencies
        return []
    try:
        plumber = pdfplumber.open(io.BytesIO(path) if isinstance(path, bytes) else str(path))
        document = pdfium.PdfDocument(path if isinstance(path, bytes) else str(path))
    except Exception:
        return []
    try:
        count = len(plumber.pages)
        wanted = sorted({n for n in (range(1, count + 1) if page_numbers is None else page_numbers) if 1 <= n <= count})
        cache: dict[int, list[Grid]] = {}

        def grids(number: int, depth: int = 0) -> list[Grid]:
            if number not in cache:
                page_grids = _page_grids(plumber, document, number)
                if page_grids and not page_grids[0].header and number > 1 and depth < _MAX_CONTINUED_PAGES:
                    previous = grids(number - 1, depth + 1)
                    if previous and previous[-1].header:
                        page_grids[0].continue_from(previous[-1])
                cache[number] = page_grids
            return cache[number]

        out: list[Table] = []
        for number in wanted:
            out.extend(_table(g) for g in grids(number) if g.rows)
            for old in [n for n in cache if n < number]:  # pages are visited in order
                del cache[old]
        return out
    except Exception:
        return []
    finally:
        plumber.close()
        document.close()


def row_text(table: Table, row: tuple[str, ...]) -> str:
    """One row as "header: value; header: value", empty cells skipped.

    A value spanning several columns (a merged cell) is written once, under the headers it spans.
    Without a header the values are joined with "; ".
    """
    parts: list[str] = []
    i = 0
    while i < len(row):
        value = row[i].strip()
        j = i + 1
        while j < len(row) and row[j].strip() == value and value:
            j += 1
        if value and i == 0 and j == len(row) and len(row) > 1:
            parts.append(value)  # one value across the whole row: a section title
        elif value:
            heads = distinct(table.header[k] for k in range(i, j) if k < len(table.header))
            head = " / ".join(heads) if len(heads) <= 3 else f"{heads[0]} … {heads[-1]}"
            parts.append(f"{head}: {value}" if head and head != value else value)
        i = j
    return "; ".join(parts)


def text_outside(path: Path | bytes, page_number: int, tables: Sequence[Table]) -> str:
    """The page's text as the loader reads it (pypdfium2, get_text_bounded) with the tables' regions left out.

    The page is read in horizontal bands: full width above, between and below the tables, and the strips
    left and right of each table beside it. Returns "" if the page cannot be read.
    """
    import pypdfium2 as pdfium

    boxes = sorted((t.bbox for t in tables if t.page == page_number), key=lambda b: b[1])
    try:
        document = pdfium.PdfDocument(path if isinstance(path, bytes) else str(path))
    except Exception:
        return ""
    try:
        page = document[page_number - 1]
        textpage = page.get_textpage()
        try:
            left, bottom, right, top = page.get_mediabox()

            def read(x0: float, y_top: float, x1: float, y_bottom: float) -> str:
                if x1 - x0 < 1 or y_bottom - y_top < 1:
                    return ""
                text: str = textpage.get_text_bounded(left + x0, top - y_bottom, left + x1, top - y_top)
                return text.replace("\x02", "-").strip()

            width, height = right - left, top - bottom
            pieces: list[str] = []
            cursor = 0.0
            for x0, t0, x1, b0 in boxes:
                t0, b0 = t0 - 1, b0 + 1
                if t0 > cursor:
                    pieces.append(read(0, cursor, width, t0))
                band_top = max(cursor, t0)
                pieces.append(read(0, band_top, x0 - 1, b0))
                pieces.append(read(x1 + 1, band_top, width, b0))
                cursor = max(cursor, b0)
            pieces.append(read(0, cursor, width, height))
            return "\n".join(p for p in pieces if p)
        finally:
            textpage.close()
            page.close()
    except Exception:
        return ""
    finally:
        document.close()


# --- one page -------------------------------------------------------------------------------------------


def _page_grids(plumber: Any, document: Any, number: int) -> list[Grid]:
    try:
        if not _may_hold_table(document, number):
            return []
        page = plumber.pages[number - 1]
        if page.rotation % 360:
            return []
        return _find_grids(page, number)
    except Exception:
        return []


def _may_hold_table(document: Any, number: int) -> bool:
    """Whether the lines PDFium sees on the page could make a table of two rows and two columns.

    The same geometry as `_find_grids` (pdfplumber's cells from explicit edges) on every straight shape
    PDFium draws, rule or box edge, whatever its colour: a superset of the edges `_find_grids` is given, so a
    page this rejects has no table there either, and pdfminer's parse of it (most of the table finder's
    cost) is skipped. scripts/bench_tables.py --check-prefilter compares the tables found with and without it."""
    from pdfplumber.table import TableFinder

    page = document[number - 1]
    try:
        edges = rule_edges(_drawn_shapes(page), every_box=True)
    finally:
        page.close()
    vertical = [e for e in edges if e["orientation"] == "v"]
    horizontal = [e for e in edges if e["orientation"] == "h"]
    if len(vertical) < 3 or len(horizontal) < 3:  # two columns need three vertical edges, two rows three
        return False
    settings = {**_FINDER_SETTINGS, "explicit_vertical_lines": vertical, "explicit_horizontal_lines": horizontal}
    for found in TableFinder(None, settings).tables:  # type: ignore[arg-type]  # explicit edges: no page read
        cells = found.cells
        columns = cluster([c[0] for c in cells] + [c[2] for c in cells])
        rows = cluster([c[1] for c in cells] + [c[3] for c in cells])
        if len(columns) >= 3 and len(rows) >= 3:
            return True
    return False


def _drawn_shapes(page: Any) -> list[dict[str, Any]]:
    """Each straight subpath of the page's paths as a pdfplumber-style shape: a "line" (two points) or a
    "rect" (its bounding box), in points from the top. Subpaths with curves are left out, as pdfplumber
    leaves them out of its rects and lines."""
    import ctypes

    import pypdfium2.raw as raw

    height = page.get_height()
    x, y = ctypes.c_float(), ctypes.c_float()
    shapes: list[dict[str, Any]] = []

    def close(points: list[tuple[float, float]], curved: bool) -> None:
        if len(points) < 2 or curved:
            return
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        kind = "line" if len(points) == 2 else "rect"
        shapes.append({"object_type": kind, "x0": min(xs), "x1": max(xs), "top": height - max(ys),
                       "bottom": height - min(ys)})  # fmt: skip

    for obj in page.get_objects(filter=[raw.FPDF_PAGEOBJ_PATH], max_depth=2):
        a, b, c, d, e, f = obj.get_matrix().get()
        points: list[tuple[float, float]] = []
        curved = False
        for i in range(raw.FPDFPath_CountSegments(obj.raw)):
            segment = raw.FPDFPath_GetPathSegment(obj.raw, i)
            raw.FPDFPathSegment_GetPoint(segment, ctypes.byref(x), ctypes.byref(y))
            kind = raw.FPDFPathSegment_GetType(segment)
            if kind == raw.FPDF_SEGMENT_MOVETO:
                close(points, curved)
                points, curved = [], False
            curved = curved or kind == raw.FPDF_SEGMENT_BEZIERTO
            points.append((a * x.value + c * y.value + e, b * x.value + d * y.value + f))
        close(points, curved)
    return shapes


def _find_grids(page: Any, number: int) -> list[Grid]:
    page = _dedupe_chars(page)
    edges = table_edges(page)
    if not edges:
        return []
    settings = {
        **_FINDER_SETTINGS,
        "explicit_vertical_lines": [e for e in edges if e["orientation"] == "v"],
        "explicit_horizontal_lines": [e for e in edges if e["orientation"] == "h"],
    }
    grids = []
    for found in page.find_tables(settings):
        grid = Grid.build(page, number, found)
        if grid is not None:
            grids.append(grid)
    return grids


def _dedupe_chars(page: Any) -> Any:
    """Drop glyphs drawn twice at one place (fake bold); pdfplumber's dedupe_chars does more and costs more."""
    seen: set[tuple[str, int, int]] = set()

    def first(obj: dict[str, Any]) -> bool:
        if obj.get("object_type") != "char":
            return True
        key = (obj["text"], round(obj["x0"]), round(obj["top"]))
        if key in seen:
            return False
        seen.add(key)
        return True

    return page.filter(first)


def _table(grid: Grid) -> Table:
    rows = tuple(tuple(r) for r in grid.rows if any(r))
    return Table(grid.number, grid.caption, grid.header, rows, grid.bbox)
