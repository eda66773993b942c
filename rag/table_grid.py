"""The cells pdfplumber found in a ruled table → a clean grid of logical columns: spanned cells carried
across and down, spacer columns and lone currency symbols folded away, the header rows and the caption found,
a table continued from the previous page joined to its header.

Coordinates are PDF points from the page's top-left corner (pdfplumber's convention): (x0, top, x1, bottom).
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

__all__ = ["Grid", "cluster", "distinct", "join_lines"]

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
_CJK_END = re.compile(f"[{_CJK}]$")
_CJK_START = re.compile(f"^[{_CJK}]")
_CURRENCY = {"$", "€", "£", "¥", "￥", "₹", "US$", "HK$", "RMB", "INR", "USD"}
# A data cell: a number, amount, percentage, code or a dash standing for zero.
_NUMERIC = re.compile(r"^[\s$€£¥￥₹(（-]*[\d.,]+\s*[%％)）]*$|^[—–-]$")
_SENTENCE_END = re.compile(r"[。；;，,、]$")


class Grid:
    """A table as a grid of logical columns; each slot holds the id of the cell covering it (or -1)."""

    def __init__(self, page: Any, number: int, bbox: tuple[float, float, float, float]) -> None:
        self.page = page
        self.number = number
        self.bbox = bbox
        self.texts: list[str] = []
        self.slots: list[list[int]] = []
        self.cols: list[tuple[float, float]] = []  # the x extent of each column
        self.header: tuple[str, ...] = ()
        self.rows: list[list[str]] = []
        self.caption: str | None = None

    @classmethod
    def build(cls, page: Any, number: int, found: Any) -> Grid | None:
        """The grid of a table pdfplumber `found` on `page` (page `number`), or None when it is not a table."""
        grid = cls(page, number, tuple(float(v) for v in found.bbox))  # type: ignore[arg-type]
        if not grid._fill(found):
            return None
        grid._fold_currency()
        grid._merge_columns()
        grid._merge_rows()
        if len(grid.slots) < 2 or len(grid.slots[0]) < 2:
            return None  # one row or one column: a box around text, not a table
        grid._split_header()
        grid.caption = _caption(page, grid.bbox)
        return grid

    def _fill(self, found: Any) -> bool:
        cells: list[tuple[float, float, float, float]] = list(found.cells)
        if not cells:
            return False
        xs = cluster([c[0] for c in cells] + [c[2] for c in cells])
        ys = cluster([c[1] for c in cells] + [c[3] for c in cells])
        if len(xs) < 2 or len(ys) < 2:
            return False
        self.slots = [[-1] * (len(xs) - 1) for _ in range(len(ys) - 1)]
        self.cols = list(itertools.pairwise(xs))
        for cell_id, (x0, top, x1, bottom) in enumerate(cells):
            c0, c1 = _index(xs, x0), _index(xs, x1)
            r0, r1 = _index(ys, top), _index(ys, bottom)
            for r in range(r0, max(r1, r0 + 1)):
                for c in range(c0, max(c1, c0 + 1)):
                    self.slots[r][c] = cell_id
        self.texts = _cell_texts(self.page, len(cells), xs, ys, self.slots)
        return any(self.texts)

    def _fold_currency(self) -> None:
        """A cell holding only "$" belongs to the amount in the next cell to its right."""
        for row in self.slots:
            for c, cell_id in enumerate(row):
                if cell_id < 0 or self.texts[cell_id] not in _CURRENCY:
                    continue
                for nxt in row[c + 1 :]:
                    if nxt != cell_id and nxt >= 0 and self.texts[nxt]:
                        self.texts[nxt] = f"{self.texts[cell_id]}{self.texts[nxt]}".replace("$(", "($")
                        self.texts[cell_id] = ""
                        break

    def _merge_columns(self) -> None:
        """Drop empty columns, then join neighbouring columns that never hold two different non-empty cells
        in one row (spacer columns, columns split by a shaded box or a currency sign)."""
        self._drop_empty()
        c = 0
        while self.slots and c < len(self.slots[0]) - 1:
            if all(self._compatible(row[c], row[c + 1]) for row in self.slots):
                for row in self.slots:
                    keep = row[c] if row[c] >= 0 and self.texts[row[c]] else row[c + 1]
                    row[c : c + 2] = [keep]
                self.cols[c : c + 2] = [(self.cols[c][0], self.cols[c + 1][1])]
            else:
                c += 1
        self._drop_empty()

    def _drop_empty(self) -> None:
        self.slots = [row for row in self.slots if any(i >= 0 and self.texts[i] for i in row)]
        if self.slots:
            used = [any(row[c] >= 0 and self.texts[row[c]] for row in self.slots) for c in range(len(self.slots[0]))]
            self.slots = [[i for i, u in zip(row, used, strict=True) if u] for row in self.slots]
            self.cols = [col for col, u in zip(self.cols, used, strict=True) if u]

    def _merge_rows(self) -> None:
        """Join neighbouring rows that never hold two different non-empty cells in one column (a row cut in
        two by a shaded box)."""
        r = 0
        while r < len(self.slots) - 1:
            upper, lower = self.slots[r], self.slots[r + 1]
            if all(self._compatible(a, b) for a, b in zip(upper, lower, strict=True)):
                self.slots[r] = [a if a >= 0 and self.texts[a] else b for a, b in zip(upper, lower, strict=True)]
                del self.slots[r + 1]
            else:
                r += 1

    def _compatible(self, a: int, b: int) -> bool:
        return a == b or a < 0 or b < 0 or not self.texts[a] or not self.texts[b]

    def _values(self, row: list[int]) -> list[str]:
        return [self.texts[i] if i >= 0 else "" for i in row]

    def _split_header(self) -> None:
        """Header rows: the first row unless it looks like data, and the rows below it that a header cell
        spans down into, or that split a header cell spanning several columns (a two-level header)."""
        values = [self._values(row) for row in self.slots]
        first = values[0]
        filled = [v for v in first if v]
        if (
            not filled
            or sum(bool(_NUMERIC.match(v)) for v in filled) > len(filled) / 3
            or (len(first) > 2 and not any(first[1:]))  # a section title such as "ASSETS", not a header
        ):
            self.rows = values
            self.header = self._header_above()
            return
        depth = 1
        while depth < min(3, len(self.slots) - 1):
            above, below = self.slots[depth - 1], self.slots[depth]
            spans_down = any(a == b and a >= 0 and self.texts[a] for a, b in zip(above, below, strict=True))
            splits = any(
                above[c] == above[c + 1] and above[c] >= 0 and below[c] != below[c + 1] for c in range(len(above) - 1)
            )
            if not (spans_down or splits):
                break
            depth += 1
        header = []
        for c in range(len(self.slots[0])):
            header.append(" ".join(distinct(values[r][c] for r in range(depth))))
        self.header = tuple(header)
        self.rows = values[depth:]

    def _header_above(self) -> tuple[str, ...]:
        """Column heads printed above a table drawn without its header (financial statements: the years
        over the amounts): the words within a few lines above, under each column but the first."""
        x0, top, x1, _ = self.bbox
        if top < 5 or len(self.cols) < 2:
            return ()
        region = self.page.crop((x0, max(0.0, top - 36), x1, top), strict=False)
        words = region.extract_words()
        value_cols = self.cols[1:]

        def in_values(w: dict[str, Any]) -> bool:
            return any(c0 - 2 <= w["x0"] and w["x1"] <= c1 + 2 for c0, c1 in value_cols)

        lines: dict[int, list[dict[str, Any]]] = {}
        for w in words:
            lines.setdefault(round(w["top"] / 3), []).append(w)
        kept: list[dict[str, Any]] = []
        # the nearest line, and the lines above it while they sit over the amounts only
        for n, key in enumerate(sorted(lines, reverse=True)):
            if n and not all(in_values(w) for w in lines[key]):
                break
            kept.extend(w for w in lines[key] if in_values(w))
        heads = []
        for c0, c1 in self.cols:
            inside = [w for w in kept if c0 <= (w["x0"] + w["x1"]) / 2 <= c1]
            inside.sort(key=lambda w: (round(w["top"]), w["x0"]))
            heads.append(" ".join(w["text"] for w in inside))
        if sum(bool(h) for h in heads[1:]) < max(1, (len(heads) - 1) / 2):
            return ()
        heads[0] = ""
        return tuple(heads)

    def continue_from(self, previous: Grid) -> None:
        """Take the header of the previous page's table if every column here lies under one of its columns;
        a column of the previous table that is blank here but inside this table's frame (a cell spanning
        down across the page break) keeps the previous table's last value."""
        mapping: list[int] = []
        for x0, x1 in self.cols:
            centre = (x0 + x1) / 2
            hits = [p for p, (p0, p1) in enumerate(previous.cols) if p0 - 2 <= centre <= p1 + 2]
            if len(hits) != 1 or hits[0] in mapping:
                return
            mapping.append(hits[0])
        last = previous.rows[-1] if previous.rows else [""] * len(previous.cols)
        rows = []
        for r, values in enumerate(self.rows):
            row = []
            for p, (p0, p1) in enumerate(previous.cols):
                if p in mapping:
                    c = mapping.index(p)
                    top_cell = self.slots[0][c]
                    spans_from_top = top_cell >= 0 and not self.texts[top_cell] and self.slots[r][c] == top_cell
                    row.append(last[p] if spans_from_top else values[c])
                elif self.bbox[0] - 2 <= p0 and p1 <= self.bbox[2] + 2:
                    row.append(last[p])
                else:
                    row.append("")
            rows.append(row)
        self.rows = rows
        self.cols = list(previous.cols)
        self.header = previous.header
        self.caption = previous.caption


def _cell_texts(page: Any, count: int, xs: list[float], ys: list[float], slots: list[list[int]]) -> list[str]:
    """The text of each cell: the characters whose centre is inside it."""
    buckets: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    x0, x1, top, bottom = xs[0], xs[-1], ys[0], ys[-1]
    for ch in page.chars:
        if ch["text"].isspace() and ch["text"] != " ":
            continue
        cx, cy = (ch["x0"] + ch["x1"]) / 2, (ch["top"] + ch["bottom"]) / 2
        if not (x0 <= cx <= x1 and top <= cy <= bottom):
            continue
        r = min(max(bisect.bisect_right(ys, cy) - 1, 0), len(slots) - 1)
        c = min(max(bisect.bisect_right(xs, cx) - 1, 0), len(slots[0]) - 1)
        if slots[r][c] >= 0:
            buckets[slots[r][c]].append(ch)
    return [_chars_text(b) for b in buckets]


def _chars_text(chars: list[dict[str, Any]]) -> str:
    if not chars:
        return ""
    chars = sorted(chars, key=lambda c: (c["top"], c["x0"]))
    lines: list[list[dict[str, Any]]] = []
    for ch in chars:
        if lines and abs(ch["top"] - lines[-1][0]["top"]) <= max(2.0, 0.5 * (ch["bottom"] - ch["top"])):
            lines[-1].append(ch)
        else:
            lines.append([ch])
    texts = []
    for line in lines:
        line.sort(key=lambda c: c["x0"])
        out = ""
        for prev, ch in zip([None, *line], line, strict=False):
            size = ch.get("size") or (ch["bottom"] - ch["top"]) or 10
            gap = prev is not None and ch["x0"] - prev["x1"] > 0.15 * size
            if gap and not (_CJK_END.search(out) or _CJK_START.match(ch["text"])):
                out += " "
            out += ch["text"]
        out = re.sub(r"\s+", " ", out)
        texts.append(re.sub(rf"(?<=[{_CJK}]) (?=[{_CJK}])", "", out).strip())
    return join_lines(texts)


def join_lines(lines: Iterable[str]) -> str:
    """Join the lines of a cell: nothing between Chinese characters, a space between words, and a word
    hyphenated at the line end made whole."""
    out = ""
    for line in (s.strip() for s in lines):
        if not line:
            continue
        if not out:
            out = line
        elif _CJK_END.search(out) or _CJK_START.match(line):
            out += line
        elif out.endswith("-") and line[:1].islower():
            out = out[:-1] + line
        else:
            out += " " + line
    return unicodedata.normalize("NFC", out)


def _caption(page: Any, bbox: tuple[float, float, float, float]) -> str | None:
    """The text line just above the table if it reads like a title: short, not the end of a sentence."""
    top = bbox[1]
    if top < 2:
        return None
    region = page.crop((0, max(0.0, top - 30), page.width, top - 1), strict=False)
    words = region.extract_words(keep_blank_chars=True, use_text_flow=False)
    if not words:
        return None
    last_top = max(w["top"] for w in words)
    line = " ".join(w["text"] for w in sorted(words, key=lambda w: w["x0"]) if abs(w["top"] - last_top) <= 2)
    line = re.sub(r"\s+", " ", line).strip()
    line = re.sub(rf"(?<=[{_CJK}]) (?=[{_CJK}])", "", line)
    if not line or len(line) > 80 or _SENTENCE_END.search(line) or not re.search(rf"[A-Za-z{_CJK}]", line):
        return None
    if re.fullmatch(r"[\d\s.,/-]+|page \d+.*|table of contents", line, re.IGNORECASE):
        return None
    return line


def cluster(values: list[float], tolerance: float = 1.5) -> list[float]:
    """The distinct positions among `values`: sorted, each within `tolerance` of the one before joined to it."""
    out: list[float] = []
    for v in sorted(values):
        if out and v - out[-1] <= tolerance:
            continue
        out.append(v)
    return out


def _index(points: list[float], value: float) -> int:
    return min(range(len(points)), key=lambda i: abs(points[i] - value))


def distinct(values: Iterable[str]) -> list[str]:
    """The non-empty values, each once, in first-seen order."""
    out: list[str] = []
    for v in values:
        if v and v not in out:
            out.append(v)
    return out
