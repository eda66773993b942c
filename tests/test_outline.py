"""The document outline: headings as real documents lay them out, wrapped headings joined, front matter,
heading paths and the clause of each sentence, on real policies and on documents written here."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_eval
from pdfgen import write_pdf

from rag.chunking import split_pages
from rag.loaders import SourceFile, load_pages
from rag.outline import OutlineWalker, is_front_matter, known_titles, repair_wrapped_headings
from rag.records import PATH_SEPARATOR, Chunk
from rag.text import LEVEL_CLAUSE, LEVEL_ITEM, classify_heading


def _chunks(path: Path) -> list[Chunk]:
    pages = list(load_pages(SourceFile(path=path, source=str(path))))
    return list(split_pages(pages, "0" * 64, 300, 40))


def _labels_of(chunks: list[Chunk]) -> set[str]:
    return {c.clause for c in chunks if c.clause} | {label for c in chunks for _, label in c.clause_spans}


@pytest.mark.parametrize(
    ("line", "label", "titled"),
    [
        ("1. 您与我们订立的合同", "1. 您与我们订立的合同", True),
        ("2.4责任免除", "2.4责任免除", True),
        ("第十条 保险期间", "第十条 保险期间", True),
        ("（一）保险责任", "（一）保险责任", True),
        ("2. Free Look Period", "2. Free Look Period", True),
        ("43. Discounts", "43. Discounts", True),
        ("16. Grace Period:- Grace period means the specified period", "16. Grace Period", True),
        ("18) Maternity (Code -Excl18):", "Excl18 Maternity", True),
        (
            "SECTION C) BENEFITS COVERED UNDER THE POLICY Type of Policy: Individual",
            "SECTION C BENEFITS COVERED UNDER THE POLICY",
            True,
        ),
        ("CONSOLIDATED BALANCE SHEETS", "CONSOLIDATED BALANCE SHEETS", True),
        ("## 犹豫期内退保会有损失吗？", "犹豫期内退保会有损失吗？", True),
        ("问：犹豫期多长？", "犹豫期多长？", True),
        ("1.被保险人故意自伤、故意犯罪，但被保险人自杀时为无民事行为能力人的除外；", "1", False),
        ("3.3 Maternity benefits are available after a waiting period of 24 months.", "3.3", False),
    ],
)
def test_headings_as_documents_lay_them_out(line: str, label: str, titled: bool) -> None:
    match = classify_heading(line)
    assert match is not None and (match.label, match.titled) == (label, titled)


@pytest.mark.parametrize(
    "line",
    [
        "本合同的保险期间最长不超过1年。",
        "The company said revenue grew.",
        "6.1、7.1和7.2中灰色底纹背景字体的内容。",
        "2021808海洋工程",
    ],
)
def test_body_text_is_not_a_heading(line: str) -> None:
    assert classify_heading(line) is None


def test_a_list_under_an_exclusion_is_not_a_chapter() -> None:
    walker = OutlineWalker("policy")
    text = (
        "2) Specified disease (Code - Excl02)\n17. Surgery on ears\n18. Gall bladder\n"
        "3) 30-day waiting period (Code - Excl03)"
    )
    points = walker.walk(text)
    assert [p.level for p in points] == [LEVEL_CLAUSE, LEVEL_ITEM, LEVEL_ITEM, LEVEL_CLAUSE]
    assert points[2].label == f"Excl02 Specified disease{PATH_SEPARATOR}18. Gall bladder"


def test_a_wrapped_heading_is_joined_from_the_contents_and_definitions() -> None:
    contents = "条款目录\n1. 您与我们订立的合同\n1.2合同成立及生效\n7.1职业或工种变更"
    body = (
        "1.2合同成立及生\n效您向我们提出保险申请，我们同意承保，本合同成立。\n"
        "7.1职业或工种变\n更我们将按照职业分类表确定。"
    )
    definitions = "8.6无合法有效驾\n驶证驾驶指下列情形之一：\n3.1受益人\n被保险人有权指定受益人。"
    fixed = repair_wrapped_headings([contents, body, definitions], known_titles([contents]))
    assert fixed[1].split("\n") == [
        "1.2合同成立及生效",
        "您向我们提出保险申请，我们同意承保，本合同成立。",
        "7.1职业或工种变更",
        "我们将按照职业分类表确定。",
    ]
    assert fixed[2].split("\n")[:2] == ["8.6无合法有效驾驶证驾驶", "指下列情形之一："]
    assert fixed[2].split("\n")[2:] == ["3.1受益人", "被保险人有权指定受益人。"]  # a short heading is whole


def test_front_matter() -> None:
    assert is_front_matter("条款目录\n1. 您与我们订立的合同\n1.1合同构成")
    assert is_front_matter("您有退保的权利 ............ 5.1\n保险事故 ............ 3.2\n如实告知 ............ 6.1")
    assert not is_front_matter("1.3投保年龄\n年龄为18至60周岁，身体健康的个人，均可作为被保险人。")


def test_a_pdf_with_bookmarks_completes_its_wrapped_headings(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    plain = write_pdf(
        tmp_path / "plain.pdf",
        [["1. General", "1.1 Free Look", "Period The Policyholder may return the Policy within 15 days."]],
    )
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.add_outline_item(title="1.1 Free Look Period", page_number=0)
    marked = tmp_path / "marked.pdf"
    with open(marked, "wb") as handle:
        writer.write(handle)
    chunks = _chunks(marked)
    assert chunks[0].heading_path == ("marked", "1. General")
    assert [label for _, label in chunks[0].clause_spans] == ["1.1 Free Look Period"]
    assert "\nThe Policyholder may return" in chunks[0].text  # the heading's last word is not in the body


def test_the_chinese_clause_pdf() -> None:
    chunks = _chunks(shared_eval("policies_zh") / "中华借款人意外伤害保险条款.pdf")
    labels = _labels_of(chunks)
    wanted = [
        "1.2合同成立及生效",
        "2.4责任免除",
        "3.2保险事故通知",
        "5.1您解除合同的手续及风险",
        "7.1职业或工种变更",
        "8.10猝死",
    ]
    assert all(label in labels for label in wanted), sorted(labels)
    assert {c.kind for c in chunks if 1 in c.pages or 2 in c.pages} == {"front"}  # reading guide, contents
    assert all(c.kind == "clause" for c in chunks if min(c.pages) >= 3)
    for chunk in chunks:  # no heading's last characters glued to a body: "更我们将按照…", "效您向我们…"
        for line in chunk.text.split("\n"):
            assert not line.startswith(("效您向", "更我们将", "除权的限制前条", "驶证驾驶指")), line
    # each sentence names its own clause: the 猝死 definition is 8.10, not the 8.9 before it
    sudden = next(c for c in chunks if "潜在疾病" in c.text)
    assert sudden.clause_at(sudden.text.index("潜在疾病")) == "8.10猝死"
    drunk = next(c for c in chunks if "酒后驾驶（见8.5）" in c.text)
    assert drunk.clause_at(drunk.text.index("酒后驾驶（见8.5）")) == f"2.4责任免除{PATH_SEPARATOR}2"


def test_the_application_notice_items_are_labelled() -> None:
    chunks = _chunks(shared_eval("policies_zh") / "中华借款人意外伤害保险投保须知.pdf")
    oral = next(c for c in chunks if "口头告知无效" in c.text)
    assert oral.clause_at(oral.text.index("口头告知无效")) == "3"


def test_the_bajaj_wording() -> None:
    chunks = _chunks(
        shared_eval("policies_en") / "BAJHLIP23020V012223_BajajAllianz_GlobalHealthCare_PolicyWordings.pdf"
    )
    labels = _labels_of(chunks)
    assert {"Excl18 Maternity", "Excl01 Pre-Existing Diseases", "16. Grace Period", "43.Discounts"} <= labels, sorted(
        labels
    )
    maternity = next(c for c in chunks if "Maternity (Code" in c.text)
    assert "Excl18" in (maternity.clause_at(maternity.text.index("Maternity (Code")) or "")
    refund = [c for c in chunks if c.kind == "table" and "65.00%" in c.text]
    assert refund, "the cancellation refund table's rows"
    assert all("Premium Refund" in c.text or "%" in c.text for c in refund)
    assert not any("For more details, log on to" in c.text for c in chunks)  # the running header is gone


def test_the_occupation_table_comes_as_rows_with_their_header() -> None:
    pages = list(
        load_pages(SourceFile(path=shared_eval("policies_zh") / "中华联合人寿职业类别分类表.pdf", source="t.pdf"))
    )
    rows = [line for page in pages if page.kind == "table" for line in page.text.split("\n")]
    row = next(line for line in rows if "2021808" in line)
    assert "职业代码: 2021808" in row and "拒保" in row
    assert not any("2021808" in page.text for page in pages if page.kind != "table")


def test_a_faq_pair_is_one_chunk_labelled_by_its_question(tmp_path: Path) -> None:
    faq = tmp_path / "faq.md"
    faq.write_text(
        "# 常见问题\n\n## 犹豫期多长？\n\n犹豫期为十五日。\n\n## Can I cancel?\n\nYes, within 15 days.\n",
        encoding="utf-8",
    )
    chunks = _chunks(faq)
    pairs = [c for c in chunks if c.kind == "faq"]
    assert [(c.clause, c.heading_path) for c in pairs] == [
        ("犹豫期多长？", ("常见问题", "犹豫期多长？")),
        ("Can I cancel?", ("常见问题", "Can I cancel?")),
    ]
    assert "十五日" in pairs[0].text and "15 days" not in pairs[0].text
