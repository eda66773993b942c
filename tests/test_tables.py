"""rag.tables: ruled tables → rows with their header; the page text outside the tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pdfgen import assemble_pdf

from rag.table_grid import join_lines
from rag.tables import Table, find_tables, row_text, text_outside

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
OCCUPATION = EVAL / "policies_zh" / "中华联合人寿职业类别分类表.pdf"


def _drawing_pdf(path: Path, pages: list[list[str]]) -> Path:
    """One page per list of content-stream operators (drawing and text, Helvetica as /F1)."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages))).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, ops in enumerate(pages):
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    path.write_bytes(assemble_pdf(objects))
    return path


def _table_pdf(path: Path) -> Path:
    """One page: a title, a 3-column ruled table (header + 3 rows, one cell spanning two columns), and a
    paragraph below. Raw PDF operators, Helvetica: no generator library needed."""
    x = [60, 200, 330, 460]
    y = [700, 680, 660, 640, 620]  # row borders, top to bottom (PDF y grows upwards)
    header = ["Plan", "Deductible", "Refund"]
    rows = [["Silver", "USD 500", "65.00%"], ["Gold", "USD 1,000", "45.00%"], ["Platinum", "Up to Sum Insured", None]]
    ops = ["0 0 0 RG 0.5 w"]
    for yy in y:
        ops.append(f"{x[0]} {yy} m {x[-1]} {yy} l S")
    for i, xx in enumerate(x):
        if i == 2:  # the last row's middle rule is missing: "Up to Sum Insured" spans two columns
            ops.append(f"{xx} {y[0]} m {xx} {y[3]} l S")
        else:
            ops.append(f"{xx} {y[0]} m {xx} {y[-1]} l S")
    text = ["BT /F1 12 Tf 60 730 Td (Table 1 Cancellation refunds) Tj ET"]
    for r, cells in enumerate([header, *rows]):
        for c, cell in enumerate(cells):
            if cell:
                text.append(f"BT /F1 10 Tf {x[c] + 4} {y[r] - 14} Td ({cell}) Tj ET")
    text.append("BT /F1 10 Tf 60 580 Td (Refunds are paid within 15 days of the notice.) Tj ET")
    return _drawing_pdf(path, [ops + text])


def test_rows_come_out_with_the_header_repeated(tmp_path: Path) -> None:
    pdf = _table_pdf(tmp_path / "t.pdf")
    tables = find_tables(pdf)
    assert len(tables) == 1
    table = tables[0]
    assert table.page == 1
    assert table.caption == "Table 1 Cancellation refunds"
    assert table.header == ("Plan", "Deductible", "Refund")
    assert table.rows[0] == ("Silver", "USD 500", "65.00%")
    assert [row_text(table, r) for r in table.rows] == [
        "Plan: Silver; Deductible: USD 500; Refund: 65.00%",
        "Plan: Gold; Deductible: USD 1,000; Refund: 45.00%",
        "Plan: Platinum; Deductible / Refund: Up to Sum Insured",
    ]


def test_text_outside_leaves_the_table_out(tmp_path: Path) -> None:
    pdf = _table_pdf(tmp_path / "t.pdf")
    outside = text_outside(pdf, 1, find_tables(pdf))
    assert "Refunds are paid within 15 days" in outside
    assert "Table 1 Cancellation refunds" in outside
    assert "65.00%" not in outside and "Silver" not in outside
    assert "65.00%" in text_outside(pdf, 1, [])


def test_page_without_rules_and_bad_input_give_no_tables(tmp_path: Path) -> None:
    from tests.pdfgen import write_pdf

    plain = write_pdf(tmp_path / "plain.pdf", [["Silver USD 500 65.00%", "Gold USD 1,000 45.00%"], []])
    assert find_tables(plain) == []
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ngarbage")
    assert find_tables(broken) == []
    assert find_tables(tmp_path / "missing.pdf") == []
    assert find_tables(plain, [0, 7]) == []  # pages out of range are ignored
    assert text_outside(broken, 1, []) == ""


def test_row_text_skips_empty_cells_and_joins_lines_by_script() -> None:
    table = Table(page=1, caption=None, header=("职业代码", "职业名称", "类别"), rows=(), bbox=(0, 0, 1, 1))
    assert row_text(table, ("2021808", "海洋工程", "")) == "职业代码: 2021808; 职业名称: 海洋工程"
    assert join_lines(["海洋工程勘察设计工程技术人员（进行海", "洋、海底勘察人员）"]).endswith(
        "进行海洋、海底勘察人员）"
    )
    assert join_lines(["Hospital accommodation", "(Room rent and ICU)"]) == "Hospital accommodation (Room rent and ICU)"
    assert join_lines(["treat-", "ment"]) == "treatment"
    headless = Table(page=1, caption=None, header=(), rows=(), bbox=(0, 0, 1, 1))
    assert row_text(headless, ("Net sales", "$14,694")) == "Net sales; $14,694"


def test_occupation_class_table() -> None:
    if not OCCUPATION.exists():
        pytest.skip(f"evaluation PDFs not found at {EVAL}")
    tables = find_tables(OCCUPATION, [2])
    assert len(tables) == 1
    table = tables[0]
    # page 2 continues page 1's table: the header and the spanned 第一大类 cell come from page 1
    assert table.header == ("职业代码", "第一大类", "职业代码", "第三/四大类", "职业类别", "医疗险")
    row = next(r for r in table.rows if r[2] == "2021808")
    assert row[3] == "海洋工程勘察设计工程技术人员（进行海洋、海底勘察人员）"
    assert row[4:] == ("6", "拒保")
    assert row[0] == "2000000"
    text = row_text(table, row)
    assert "职业代码: 2021808; 第三/四大类: 海洋工程勘察设计工程技术人员（进行海洋、海底勘察人员）" in text
    assert text.endswith("职业类别: 6; 医疗险: 拒保")
    outside = text_outside(OCCUPATION, 2, tables)
    assert "2021808" not in outside


def _cell_labels(x: list[int], y: list[int]) -> list[str]:
    cells = [(r, c) for r in range(len(y) - 1) for c in range(len(x) - 1)]
    return [f"BT /F1 10 Tf {x[c] + 4} {y[r] - 14} Td (r{r}c{c}) Tj ET" for r, c in cells]


def test_the_page_pre_check_passes_every_drawing_of_a_table_and_skips_pages_without_one(tmp_path: Path) -> None:
    """The pre-check (PDFium's shapes through the table finder's geometry) must let through every page the
    full parse finds a table on, however the table is drawn, and stop pages whose lines make no 2 x 2 grid."""
    import pypdfium2 as pdfium

    from rag.tables import _may_hold_table

    x, y = [60, 200, 330], [700, 680, 660]
    labels = _cell_labels(x, y)
    lines = [f"{xx} {y[0]} m {xx} {y[-1]} l S" for xx in x] + [f"{x[0]} {yy} m {x[-1]} {yy} l S" for yy in y]
    subpaths = [f"{xx} {y[0]} m {xx} {y[-1]} l" for xx in x] + [f"{x[0]} {yy} m {x[-1]} {yy} l" for yy in y]
    one_path = [" ".join(subpaths) + " S"]  # the whole grid as the subpaths of one path
    cells = [(r, c) for r in range(2) for c in range(2)]
    tiles = ["0.9 g"] + [f"{x[c]} {y[r + 1]} {x[c + 1] - x[c] - 1} {y[r] - y[r + 1] - 1} re f" for r, c in cells]
    moved = ["q 1 0 0 1 0 -300 cm", *lines, *labels, "Q"]  # drawn through a transformation matrix
    boxed_note = [
        f"{x[0]} 600 {x[-1] - x[0]} 120 re S",  # a box around a note
        "60 760 m 550 760 l S",  # a header rule
        "300 400 m 350 450 400 450 450 400 c 400 350 350 350 300 400 c f",  # a curved logo
        "BT /F1 10 Tf 64 700 Td (A note in a box) Tj ET",
    ]
    one_row = [f"{xx} {y[0]} m {xx} {y[1]} l S" for xx in x] + [f"{x[0]} {yy} m {x[-1]} {yy} l S" for yy in y[:2]]
    pages = [[*lines, *labels], [*one_path, *labels], [*tiles, *labels], moved, boxed_note, one_row + labels[:2]]
    pdf = _drawing_pdf(tmp_path / "drawings.pdf", pages)

    document = pdfium.PdfDocument(str(pdf))
    try:
        passed = [_may_hold_table(document, n) for n in range(1, len(pages) + 1)]
    finally:
        document.close()
    assert passed == [True, True, True, True, False, False]
    tables = find_tables(pdf)
    assert {t.page for t in tables} == {1, 2, 3, 4}, tables  # each drawing is a real table for the full parse too
    assert [t.rows for t in tables if t.page == 4] == [t.rows for t in tables if t.page == 1]


def test_the_page_pre_check_loses_no_table_of_the_real_policies() -> None:
    """On real pages, with and without the pre-check: the same tables (scripts/bench_tables.py
    --check-prefilter runs this over every evaluation PDF)."""
    from unittest import mock

    import rag.tables

    bajaj = EVAL / "policies_en" / "BAJHLIP23020V012223_BajajAllianz_GlobalHealthCare_PolicyWordings.pdf"
    clauses = EVAL / "policies_zh" / "中华借款人意外伤害保险条款.pdf"
    if not bajaj.exists() or not clauses.exists():
        pytest.skip(f"evaluation PDFs not found at {EVAL}")
    found = {}
    for pdf, pages in ((bajaj, range(10, 22)), (clauses, range(1, 10))):
        found[pdf] = find_tables(pdf, pages)
        with mock.patch.object(rag.tables, "_may_hold_table", lambda document, number: True):
            every_page = find_tables(pdf, pages)
        assert found[pdf] == every_page
    assert {t.page for t in found[bajaj]} == {13, 19, 20, 21}
    assert found[clauses] == []  # its pages have boxes but no table
