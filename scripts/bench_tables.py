"""Benchmark table finders on ruled tables from the evaluation PDFs, to choose one for rag/tables.py.

Pages: the occupation-class table (中华联合人寿职业类别分类表.pdf p1-2: a Chinese grid with vertically merged
cells, shaded rows and a table continued over the page break), the Bajaj policy's domestic table of benefits
(p13: two-level header, cells spanning columns) and cancellation refund tables (p30), and the income
statement and balance sheet of two 10-Ks (PepsiCo p62/p66, Amcor p50/p52: EDGAR tables drawn as tiled
cell backgrounds, "$" in a cell of its own, years printed above the table).

Candidates:

* ``pdfplumber``: pdfplumber's table finder with its defaults (lines strategy; every rect edge counts);
* ``pdfplumber-text``: the same with the text strategy (columns from word alignment, no rules needed);
* ``camelot-lattice``: camelot-py's lattice flavour (OpenCV on the rendered page); only if ``camelot`` is
  importable: it is not installed in the project's env (OpenCV, pandas), run this script with a venv that has it;
* ``rag.tables``: ours: pdfplumber's cell geometry fed with the rules we pick (dark rules only when the page
  has them, shading ignored; open tables closed), then a grid clean-up (spanned cells carried, spacer and
  "$" columns folded, header rows found).

For each page it prints: tables found, rows, expected cells found (a short hand-written list per page; a
cell is right when some extracted cell equals it after whitespace is normalised, multi-line cells joined
the same way for everyone, and a leading "$" dropped), and seconds per page (median of --repeats runs,
open + find + extract; the PDF is opened per page so every candidate pays the same).

Run::

    PYTHONPATH=. .venv/bin/python scripts/bench_tables.py [--repeats 3] [--eval-dir ../shared/eval]

With ``--check-prefilter [FOLDER ...]`` (default: every evaluation folder with PDFs) it checks instead that the
page pre-check (``rag.tables._may_hold_table``: PDFium's drawn shapes through the same cell geometry) loses no
table: every PDF's tables are found once with it and once with every page parsed by pdfminer, and compared
whole; it prints the pages each way parsed, the tables, the differences and the CPU seconds.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import table

from rag.table_grid import join_lines
from rag.tables import find_tables

OCC = "policies_zh/中华联合人寿职业类别分类表.pdf"
BAJAJ = "policies_en/BAJHLIP23020V012223_BajajAllianz_GlobalHealthCare_PolicyWordings.pdf"
PEPSI = "financebench_dev/pdfs/PEPSICO_2022_10K.pdf"
AMCOR = "financebench_dev/pdfs/AMCOR_2023_10K.pdf"

# (file, 1-based page, label, cells that must come out whole)
PAGES: list[tuple[str, int, str, list[str]]] = [
    (
        OCC,
        1,
        "occupation p1",
        ["职业代码", "党政机关负责人", "1010100", "党政机关、企业、事业单位负责人", "水资源勘测工程技术人员", "1.25"],
    ),
    (
        OCC,
        2,
        "occupation p2",
        [
            "2021808",
            "海洋工程勘察设计工程技术人员（进行海洋、海底勘察人员）",
            "海洋资源开发利用和保护工程技术人员（海洋矿产、油气资源开发利用）",
            "治河及泥沙治理工程技术人员",
            "拒保",
            "一般学生",
        ],
    ),
    (
        BAJAJ,
        13,
        "Bajaj benefits p13",
        [
            "IMPERIAL PLAN",
            "INR 3,750,000",
            "Hospital accommodation (Room rent and ICU)",
            "Up to Sum Insured",
            "180 days",
            "INR 50,000",
        ],
    ),
    (
        BAJAJ,
        30,
        "Bajaj refund p30",
        [
            "Premium Refund",
            "Exceeding 15 days but less than or equal to 3 months",
            "65.00%",
            "45.00%",
            "% of Half Yearly Premium",
            "No Refund",
        ],
    ),
    (PEPSI, 62, "PepsiCo income p62", ["Net Revenue", "86,392", "Cost of sales", "40,576", "34,459", "1,387"]),
    (
        PEPSI,
        66,
        "PepsiCo balance p66",
        ["Cash and cash equivalents", "4,954", "10,163", "Total Liabilities and Equity", "92,187", "92,377"],
    ),
    (AMCOR, 50, "Amcor income p50", ["Net sales", "14,694", "(11,969)", "2,725", "0.705", "Gross profit"]),
    (
        AMCOR,
        52,
        "Amcor balance p52",
        ["Cash and cash equivalents", "689", "1,875", "Inventories, net", "17,003", "17,426"],
    ),
]

Extracted = list[list[list[str]]]  # tables → rows → cells


def norm(cell: str | None) -> str:
    if not cell:
        return ""
    text = join_lines(str(cell).splitlines())
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"^\$\s*", "", text)


def run_pdfplumber(path: Path, page: int, settings: dict[str, object] | None = None) -> Extracted:
    import pdfplumber

    with pdfplumber.open(str(path)) as pdf:
        found = pdf.pages[page - 1].find_tables(settings or {})
        return [[[norm(c) for c in row] for row in t.extract()] for t in found]


def run_pdfplumber_text(path: Path, page: int) -> Extracted:
    return run_pdfplumber(path, page, {"vertical_strategy": "text", "horizontal_strategy": "text"})


def run_camelot(path: Path, page: int) -> Extracted:
    import camelot

    found = camelot.read_pdf(str(path), pages=str(page), flavor="lattice")
    return [[[norm(c) for c in row] for row in t.df.values.tolist()] for t in found]


def run_ours(path: Path, page: int) -> Extracted:
    out = []
    for t in find_tables(path, [page]):
        rows = [list(t.header)] if t.header else []
        out.append([[norm(c) for c in row] for row in rows + [list(r) for r in t.rows]])
    return out


def candidates() -> dict[str, Callable[[Path, int], Extracted]]:
    found: dict[str, Callable[[Path, int], Extracted]] = {
        "pdfplumber": run_pdfplumber,
        "pdfplumber-text": run_pdfplumber_text,
    }
    try:
        import camelot  # noqa: F401

        found["camelot-lattice"] = run_camelot
    except ImportError:
        print("camelot: not importable here (not a project dependency); its rows are left out", file=sys.stderr)
    found["rag.tables"] = run_ours
    return found


def check_prefilter(folders: list[Path]) -> int:
    """Tables found with the page pre-check against every page parsed; returns 1 when any table differs."""
    from unittest import mock

    import rag.tables

    pre_check = rag.tables._may_hold_table
    rows: list[list[object]] = []
    differ = 0
    for pdf in sorted(p for folder in folders for p in folder.rglob("*.pdf")):
        parsed = {"with": 0, "without": 0}

        def counted(document: object, number: int, key: str, parsed: dict[str, int] = parsed) -> bool:
            keep = key == "without" or pre_check(document, number)
            parsed[key] += keep
            return keep

        cpu = {}
        found = {}
        for key in ("with", "without"):
            started = time.process_time()
            with mock.patch.object(rag.tables, "_may_hold_table", lambda d, n, key=key: counted(d, n, key)):
                found[key] = find_tables(pdf)
            cpu[key] = time.process_time() - started
        lost = [t for t in found["without"] if t not in found["with"]]
        extra = [t for t in found["with"] if t not in found["without"]]
        differ += bool(lost or extra)
        rows.append([pdf.name[:48], parsed["without"], parsed["with"], len(found["without"]), len(lost) + len(extra),
                     cpu["without"], cpu["with"]])  # fmt: skip
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    total = [sum(r[i] for r in rows) for i in range(1, 7)]  # type: ignore[misc]
    rows.append(["total", *total])
    table(
        ["PDF", "pages parsed: all", "with pre-check", "tables", "tables differing", "CPU s: all", "with pre-check"],
        rows,
        "The page pre-check: tables found with it against every page parsed by pdfminer",
        fmt=lambda v: f"{v:.1f}" if isinstance(v, float) else str(v),
    )
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "eval")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check-prefilter", nargs="*", type=Path, metavar="FOLDER",
                        help="compare the tables found with and without the page pre-check")  # fmt: skip
    args = parser.parse_args()
    if not args.eval_dir.is_dir():
        print(f"no evaluation folder at {args.eval_dir}: nothing to measure")
        return 0
    logging.disable(logging.WARNING)
    if args.check_prefilter is not None:
        return check_prefilter(args.check_prefilter or [args.eval_dir])
    rows: list[list[object]] = []
    totals: dict[str, list[float]] = {}
    for name, run in candidates().items():
        for file, page, label, expected in PAGES:
            path = args.eval_dir / file
            times = []
            result: Extracted = []
            error = ""
            for _ in range(args.repeats):
                start = time.perf_counter()
                try:
                    result = run(path, page)
                except Exception as exc:  # a candidate failing on a page is a result, not a crash
                    error = type(exc).__name__
                times.append(time.perf_counter() - start)
            cells = {c for t in result for row in t for c in row if c}
            right = sum(norm(e) in cells for e in expected)
            seconds = statistics.median(times)
            totals.setdefault(name, [0, 0, 0.0, 0])  # type: ignore[list-item]
            totals[name][0] += right
            totals[name][1] += len(expected)
            totals[name][2] += seconds
            totals[name][3] += 1
            rows.append(
                [name, label, len(result), sum(len(t) for t in result), f"{right}/{len(expected)}", seconds, error]
            )
    table(
        ["candidate", "page", "tables", "rows", "cells right", "s/page", "error"],
        rows,
        "Tables found, rows, expected cells found, seconds per page (median)",
        fmt=lambda v: f"{v:.3f}" if isinstance(v, float) else str(v),
    )
    summary = [[n, f"{int(t[0])}/{int(t[1])}", t[2] / t[3]] for n, t in totals.items()]
    table(
        ["candidate", "cells right", "mean s/page"],
        summary,
        "Totals",
        fmt=lambda v: f"{v:.3f}" if isinstance(v, float) else str(v),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
