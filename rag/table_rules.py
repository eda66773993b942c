"""Which lines drawn on a PDF page are table rules: the edges pdfplumber's table finder is given.

Coordinates are PDF points from the page's top-left corner (pdfplumber's convention).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIN_RULE", "rule_edges", "table_edges"]

MIN_RULE = 2.0
"""A rect thinner than this (points) is a rule, not a box."""


def table_edges(page: Any) -> list[dict[str, Any]]:
    """The lines that make up tables on a pdfplumber page.

    When the page has dark vertical rules (a grid drawn with lines), only dark rules count: shaded cells
    drawn as filled boxes, often in several pieces, would otherwise split cells. Otherwise (tables drawn as
    tiled cell backgrounds, as in EDGAR filings) every box edge counts, as in pdfplumber's default.
    A set of vertical rules left open at the top or bottom (a table cut by a page break) is closed.
    """
    return rule_edges(list(page.rects) + list(page.lines))


def rule_edges(shapes: list[dict[str, Any]], every_box: bool = False) -> list[dict[str, Any]]:
    """`table_edges` of drawn shapes given as pdfplumber's rect and line dicts (x0, x1, top, bottom,
    object_type, and the colours when known). `every_box` keeps box edges beside dark rules: a superset of
    the edges, for a cheap first look at whether a page may hold a table at all."""
    rules: list[dict[str, Any]] = []
    boxes: list[dict[str, Any]] = []
    for obj in shapes:
        x0, x1, top, bottom = obj["x0"], obj["x1"], obj["top"], obj["bottom"]
        w, h = x1 - x0, bottom - top
        if max(w, h) < MIN_RULE:
            continue  # a dot joining two pieces of a rule: it has no direction
        if obj["object_type"] == "line" or min(w, h) < MIN_RULE:
            if not _dark(obj):
                if obj["object_type"] == "rect":
                    boxes.extend(_box_edges(obj))
                continue
            if w >= h:
                y = (top + bottom) / 2
                rules.append(_edge("h", x0, x1, y, y))
            else:
                x = (x0 + x1) / 2
                rules.append(_edge("v", x, x, top, bottom))
        else:
            boxes.extend(_box_edges(obj))
    vertical_rules = [e for e in rules if e["orientation"] == "v" and e["bottom"] - e["top"] > 8]
    edges = rules if len(vertical_rules) >= 2 and not every_box else rules + boxes
    return edges + _closing_edges(edges)


def _dark(obj: dict[str, Any]) -> bool:
    color = obj.get("stroking_color") if obj.get("stroke") and not obj.get("fill") else obj.get("non_stroking_color")
    if color is None:
        return True
    values = color if isinstance(color, list | tuple) else (color,)
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return True
    if len(numbers) == 1:
        return numbers[0] < 0.6
    if len(numbers) == 3:
        return sum(numbers) / 3 < 0.6
    if len(numbers) == 4:  # CMYK
        return numbers[3] > 0.4 or sum(numbers[:3]) / 3 > 0.6
    return True


def _box_edges(obj: dict[str, Any]) -> list[dict[str, Any]]:
    x0, x1, top, bottom = obj["x0"], obj["x1"], obj["top"], obj["bottom"]
    return [
        _edge("h", x0, x1, top, top),
        _edge("h", x0, x1, bottom, bottom),
        _edge("v", x0, x0, top, bottom),
        _edge("v", x1, x1, top, bottom),
    ]


def _edge(orientation: str, x0: float, x1: float, top: float, bottom: float) -> dict[str, Any]:
    return {
        "object_type": "rule_edge",
        "orientation": orientation,
        "x0": x0,
        "x1": x1,
        "top": top,
        "bottom": bottom,
        "doctop": top,
        "width": x1 - x0,
        "height": bottom - top,
    }


def _closing_edges(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Horizontal edges across the tops and bottoms of vertical rules that no horizontal edge closes."""
    verticals = [e for e in _join_verticals(edges) if e["bottom"] - e["top"] > 8]
    horizontals = [e for e in edges if e["orientation"] == "h"]
    out = []
    for key in ("top", "bottom"):
        groups: dict[int, list[dict[str, Any]]] = {}
        for e in verticals:
            groups.setdefault(round(e[key] / 3), []).append(e)
        for group in groups.values():
            if len(group) < 2:
                continue
            y = sum(e[key] for e in group) / len(group)
            x0, x1 = min(e["x0"] for e in group), max(e["x1"] for e in group)
            closed = any(abs(h["top"] - y) <= 3 and h["x0"] <= x0 + 3 and h["x1"] >= x1 - 3 for h in horizontals)
            if not closed:
                out.append(_edge("h", x0, x1, y, y))
    return out


def _join_verticals(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Vertical rules drawn in pieces (one per row) joined into whole rules."""
    by_x: dict[int, list[dict[str, Any]]] = {}
    for e in edges:
        if e["orientation"] == "v":
            by_x.setdefault(round(e["x0"]), []).append(e)
    out = []
    for pieces in by_x.values():
        pieces.sort(key=lambda e: e["top"])
        current = dict(pieces[0])
        for e in pieces[1:]:
            if e["top"] - current["bottom"] <= 3:
                current["bottom"] = max(current["bottom"], e["bottom"])
            else:
                out.append(current)
                current = dict(e)
        out.append(current)
    return out
