"""Plain-text tables for the benchmark scripts: numbers right-aligned, text left, CJK two columns wide."""

from __future__ import annotations

import statistics
import unicodedata
from collections.abc import Callable, Sequence


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "", *, fmt: Callable[[object], str]
) -> None:
    """Print an aligned table; `fmt` turns each cell into text (each script rounds its numbers its own way)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(width(h), *(width(r[i]) for r in cells)) if cells else width(h) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], int | float) or r[i] in ("", "-") for r in rows) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        out = []
        for c, w, n in zip(row, widths, numeric, strict=True):
            pad = " " * (w - width(c))
            out.append(pad + c if n else c + pad)
        return "  ".join(out).rstrip()

    if title:
        print(f"\n{title}")
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print(line(r))


def width(s: str) -> int:
    """Display width: CJK (wide/full-width) characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")
