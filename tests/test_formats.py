"""Word, HTML, spreadsheets and scanned PDFs: each is read with its structure kept (headings in the heading
path, tables as rows with their header, FAQ pairs), cited by paragraph, row or OCR'd page, and a bad file of
each kind is a clear per-file error while the batch goes on."""

from __future__ import annotations

import csv
import socket
import sys
from pathlib import Path

import pytest
from conftest import shared_eval
from openai_stub import OpenAIStub

from rag.chunking import split_pages
from rag.config import Settings
from rag.errors import LoadError
from rag.ingest import ingest_paths, is_supported
from rag.loaders import SourceFile, load_pages
from rag.records import Chunk, Page, location
from rag.store import _chunk_from, _chunk_metadata

PREMIUM_HEADER = ("贷款金额", "保险金额", "年保费")
PREMIUM_ROWS = [("10万元以下", "等于贷款金额", "100元"), ("10万至50万元", "等于贷款金额", "300元")]


def _chunks(path: Path, ocr: object = None) -> list[Chunk]:
    pages = load_pages(SourceFile(path, str(path)), ocr=ocr)  # type: ignore[arg-type]
    return list(split_pages(pages, "sha", chunk_size=300, chunk_overlap=40))


def _lines(chunk: Chunk) -> list[str]:
    return [line for line in chunk.text.split("\n") if line]


def _containing(chunks: list[Chunk], phrase: str) -> Chunk:
    found = [chunk for chunk in chunks if phrase in chunk.text]
    assert found, f"no chunk holds {phrase!r}: {[c.text for c in chunks]}"
    return found[0]


# --- Word -------------------------------------------------------------------------------------------------


def _write_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_paragraph("借款人意外伤害保险条款", style="Title")  # paragraph 1
    document.add_paragraph("第一章 总则", style="Heading 1")  # 2
    document.add_paragraph("第一条 保险合同构成")  # 3: a numbered heading in body style
    document.add_paragraph("本保险合同由保险条款、投保单、保险单以及批单组成。")  # 4
    document.add_paragraph("保险责任", style="Heading 2")  # 5
    document.add_paragraph("本合同的等待期为30天，自合同生效之日起计算。")  # 6
    document.add_paragraph("目录 …… 1", style="TOC Heading")  # Word's contents list: skipped, not numbered
    document.add_paragraph("表1 保险金额表", style="Caption")  # the table's caption, not a paragraph
    table = document.add_table(rows=1 + len(PREMIUM_ROWS), cols=3)
    for column, name in enumerate(PREMIUM_HEADER):
        table.cell(0, column).text = name
    for row, values in enumerate(PREMIUM_ROWS, start=1):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    # the table's rows are paragraphs 7 and 8
    document.add_paragraph("Exclusions", style="Heading 2")  # 9
    document.add_paragraph("We do not pay for injuries caused on purpose by the insured.")  # 10
    document.save(str(path))
    return path


def test_word_headings_feed_the_outline_and_citations_name_the_paragraph(tmp_path: Path) -> None:
    chunks = _chunks(_write_docx(tmp_path / "条款.docx"))
    clause = _containing(chunks, "本保险合同由保险条款")
    assert clause.heading_path[0] == "借款人意外伤害保险条款"  # the Title style names the document
    assert "第一章 总则" in clause.heading_path
    # numbered body text is a heading: the sentence under it is cited by it
    assert clause.clause_at(clause.text.index("本保险合同由")) == "第一条 保险合同构成"
    waiting = _containing(chunks, "等待期为30天")
    assert waiting.heading_path[-1] == "保险责任" and waiting.clause == "保险责任"
    assert 6 in waiting.pages or waiting.pages[0] == 5  # the heading (5) opens the chunk of paragraph 6
    assert not any("目录" in chunk.text for chunk in chunks)
    exclusion = _containing(chunks, "on purpose")
    assert exclusion.clause == "Exclusions"
    assert exclusion.pages == (9, 10)  # the heading and its paragraph
    assert location(exclusion.source, exclusion.page, exclusion.heading_path, pages=exclusion.pages) == (
        "paragraphs 9–10"
    )


def test_word_tables_become_rows_with_their_header_under_their_caption(tmp_path: Path) -> None:
    chunks = _chunks(_write_docx(tmp_path / "条款.docx"))
    tables = [chunk for chunk in chunks if chunk.kind == "table"]
    assert len(tables) == 1
    rows = _lines(tables[0])
    assert rows[0] == "表1 保险金额表"  # the caption paragraph went with the table
    for values in PREMIUM_ROWS:
        expected = "; ".join(f"{name}: {value}" for name, value in zip(PREMIUM_HEADER, values, strict=True))
        assert expected in rows
    assert tables[0].heading_path[-1] == "表1 保险金额表" and "保险责任" in tables[0].heading_path
    assert tables[0].pages == (7, 8)
    assert not any("表1 保险金额表" in chunk.text for chunk in chunks if chunk.kind != "table")


# --- HTML -------------------------------------------------------------------------------------------------

HTML = """<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>帮助中心 - 某保险</title>
<link rel="canonical" href="http://insurer.invalid/help/faq.html"><link rel="stylesheet" href="http://insurer.invalid/a.css">
<script src="http://insurer.invalid/tracker.js"></script><script>var trackingId = "UA-1234";</script>
<style>.nav { color: red }</style></head>
<body>
<div id="cookie-banner">本网站使用Cookie以改善您的体验。<button>接受</button></div>
<nav><ul><li><a href="/">首页</a></li><li><a href="/products">产品中心</a></li>
<li><a href="/contact">联系我们</a></li></ul></nav>
<header><div class="logo">某某保险股份有限公司</div><form><input name="q" placeholder="搜索"></form></header>
<main><article>
<h1>借款人意外伤害保险常见问题</h1>
<p>本页解答关于借款人意外伤害保险的常见问题，具体内容以保险合同条款为准，如有疑问请咨询客服。</p>
<h2>一、投保</h2>
<h3>1.1 投保年龄</h3>
<p>凡年满18周岁至65周岁、身体健康的借款人均可作为被保险人，投保时需要提供有效身份证件。</p>
<h3>1.2 等待期</h3>
<p>本合同的等待期为30天，自合同生效之日起计算。等待期内发生的疾病不承担保险责任，意外伤害不受等待期限制。</p>
<img src="http://insurer.invalid/chart.png" alt="chart">
<h2>二、保险金额</h2>
<table><caption>保险金额表</caption>
<thead><tr><th>贷款金额</th><th>保险金额</th><th>年保费</th></tr></thead>
<tbody><tr><td>10万元以下</td><td>等于贷款金额</td><td>100元</td></tr>
<tr><td>10万至50万元</td><td>等于贷款金额</td><td>300元</td></tr></tbody></table>
<p>保险金额不得超过贷款本金余额，贷款提前结清的，保险合同可以申请解除并退还未满期保费。</p>
</article></main>
<aside><h3>相关阅读</h3><ul><li><a href="/claims">如何申请理赔</a></li>
<li><a href="/renew">续保须知</a></li></ul></aside>
<footer><p>版权所有 © 2024 某某保险 沪ICP备12345678号</p><a href="/privacy">隐私政策</a></footer>
<script>document.write("<p>injected by script</p>");</script>
</body></html>
"""


def test_html_keeps_the_article_drops_the_boilerplate_and_fetches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "faq.html"
    page.write_text(HTML, encoding="utf-8")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the HTML loader tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    chunks = _chunks(page)
    everything = "\n".join(chunk.text for chunk in chunks)
    boilerplate = ("首页", "产品中心", "版权所有", "隐私政策", "Cookie", "UA-1234", "injected by script", "相关阅读")
    assert [phrase for phrase in boilerplate if phrase in everything] == []
    waiting = _containing(chunks, "等待期为30天")
    assert waiting.heading_path[:2] == ("借款人意外伤害保险常见问题", "一、投保")
    assert waiting.clause_at(waiting.text.index("本合同的等待期")) == "1.2 等待期"
    assert location(waiting.source, waiting.page, pages=waiting.pages) == (
        f"paragraphs {waiting.pages[0]}–{waiting.pages[-1]}"
    )
    assert location("faq.html", 7, pages=(7,)) == "paragraph 7"
    table = next(chunk for chunk in chunks if chunk.kind == "table")
    assert "贷款金额: 10万至50万元; 保险金额: 等于贷款金额; 年保费: 300元" in table.text.split("\n")
    assert table.heading_path[-2:] == ("二、保险金额", "保险金额表")
    assert "二、保险金额" in _containing(chunks, "保险金额不得超过").heading_path
    assert all(chunk.text.strip() != "## 二、保险金额" for chunk in chunks)  # no chunk of a heading alone


def test_htm_is_read_like_html(tmp_path: Path) -> None:
    page = tmp_path / "faq.htm"
    page.write_text(HTML, encoding="utf-8")
    assert is_supported("faq.htm") and is_supported("FAQ.HTML")
    assert _containing(_chunks(page), "意外伤害不受等待期限制")


# --- spreadsheets -----------------------------------------------------------------------------------------


def _write_xlsx(path: Path) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    faq = workbook.active
    faq.title = "常见问题"
    faq.append(["问题", "答案", "分类"])  # row 1
    faq.append(["等待期是多久？", "本合同的等待期为30天。", "投保"])  # row 2
    faq.append([None, None, None])  # row 3: empty, skipped
    faq.append(["犹豫期有多长？", "犹豫期为15天，期间退保无损失。", "退保"])  # row 4
    english = workbook.create_sheet("FAQ")
    english.append(["QUESTION", "answer"])
    english.append(["Is dental treatment covered?", "Only after an accident, up to USD 500."])
    rates = workbook.create_sheet("费率表")
    rates.append(["2024年费率（单位：元）"])  # a title row above the header
    rates.append(["年龄", "保费", "保险期间"])  # row 2
    rates.append(["18-30", 100, "1年"])  # row 3
    rates.append(["31-45", 150.0, "1年"])  # row 4
    workbook.save(str(path))
    return path


def test_question_answer_sheets_become_one_faq_pair_per_row_cited_by_sheet_and_row(tmp_path: Path) -> None:
    chunks = _chunks(_write_xlsx(tmp_path / "客服知识库.xlsx"))
    faqs = [chunk for chunk in chunks if chunk.kind == "faq"]
    assert [chunk.clause for chunk in faqs] == ["等待期是多久？", "犹豫期有多长？", "Is dental treatment covered?"]
    first = faqs[0]
    assert first.text == "问：等待期是多久？\n答：本合同的等待期为30天。\n分类: 投保"
    assert first.heading_path == ("客服知识库", "常见问题", "等待期是多久？")
    assert location(first.source, first.page, first.heading_path) == "sheet 常见问题, row 2"
    assert location(faqs[1].source, faqs[1].page, faqs[1].heading_path) == "sheet 常见问题, row 4"
    assert faqs[2].text == "Q: Is dental treatment covered?\nA: Only after an accident, up to USD 500."
    assert location(faqs[2].source, faqs[2].page, faqs[2].heading_path) == "sheet FAQ, row 2"


def test_other_sheets_become_rows_with_their_header(tmp_path: Path) -> None:
    chunks = _chunks(_write_xlsx(tmp_path / "客服知识库.xlsx"))
    rates = [chunk for chunk in chunks if chunk.kind == "table"]
    assert len(rates) == 1
    assert _lines(rates[0]) == [
        "2024年费率（单位：元）",
        "年龄: 18-30; 保费: 100; 保险期间: 1年",
        "年龄: 31-45; 保费: 150; 保险期间: 1年",
    ]
    assert rates[0].heading_path == ("客服知识库", "费率表") and rates[0].pages == (3, 4)
    assert location(rates[0].source, rates[0].page, rates[0].heading_path) == "sheet 费率表, row 3"
    assert location(rates[0].source, rates[0].page, rates[0].heading_path, pages=rates[0].pages) == (
        "sheet 费率表, rows 3–4"
    )


def test_csv_faq_and_rate_tables(tmp_path: Path) -> None:
    faq = tmp_path / "faq.csv"
    with open(faq, "w", encoding="utf-8-sig", newline="") as handle:  # Excel's UTF-8 with a BOM
        writer = csv.writer(handle)
        writer.writerow(["Q", "A"])
        writer.writerow(["How long is the free-look period?", "Fifteen days from delivery of the policy."])
        writer.writerow(["Can I pay monthly?", "Yes, by direct debit."])
    chunks = _chunks(faq)
    assert [chunk.kind for chunk in chunks] == ["faq", "faq"]
    assert chunks[1].text == "Q: Can I pay monthly?\nA: Yes, by direct debit."
    assert location(chunks[1].source, chunks[1].page, chunks[1].heading_path) == "row 3"
    rates = tmp_path / "rates.csv"
    rates.write_text("plan;deductible;limit\nSilver;500;100000\nGold;0;500000\n", encoding="utf-8")
    rows = _chunks(rates)
    assert [chunk.kind for chunk in rows] == ["table"]
    assert _lines(rows[0]) == [
        "plan: Silver; deductible: 500; limit: 100000",
        "plan: Gold; deductible: 0; limit: 500000",
    ]


def test_faq_rows_that_look_like_headings_stay_one_pair_each(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text(
        "question,answer\nWhat is excluded?,Cosmetic Surgery\nIs maternity covered?,Not Covered\n", encoding="utf-8"
    )
    chunks = _chunks(path)
    assert [chunk.text.split("\n")[0] for chunk in chunks] == ["Q: What is excluded?", "Q: Is maternity covered?"]
    assert all(chunk.kind == "faq" for chunk in chunks)


# --- bad input of each new kind -------------------------------------------------------------------------


def test_bad_files_of_each_new_kind_fail_on_their_own_and_the_batch_goes_on(fake_settings: Settings) -> None:
    from rag.index import Index

    root = Path.cwd() / "docs"
    root.mkdir()
    good_docx = _write_docx(root / "good.docx")
    (root / "corrupt.docx").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)  # a zip header, then garbage
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.append(["等待期", 30, "天"])  # data in the first row: no header
    workbook.active.append(["犹豫期", 15, "天"])
    workbook.save(str(root / "noheader.xlsx"))
    (root / "script.html").write_text(
        "<html><head><script>var a = 1;</script></head><body><script>document.write('hi')</script></body></html>",
        encoding="utf-8",
    )
    (root / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    report = ingest_paths([root], Index(fake_settings))
    errors = {Path(failure.path).name: failure.error for failure in report.failed}
    assert set(errors) == {"corrupt.docx", "noheader.xlsx", "script.html", "old.doc"}
    assert "not a readable Word document" in errors["corrupt.docx"]
    assert "save it again as .docx" in errors["corrupt.docx"]
    assert "sheet 'Sheet' has no header row" in errors["noheader.xlsx"] and "column names" in errors["noheader.xlsx"]
    assert "no readable content" in errors["script.html"] and "all script" in errors["script.html"]
    assert "unsupported file type '.doc'" in errors["old.doc"] and "Word (.docx)" in errors["old.doc"]
    assert report.added == 1 and good_docx.exists() and report.chunks > 0


# --- OCR --------------------------------------------------------------------------------------------------


def _scanned_pdf(path: Path, image: object) -> Path:
    """An image-only PDF (no text layer), as a scanner writes it."""
    image.save(str(path), "PDF", resolution=200)  # type: ignore[attr-defined]
    return path


def _text_image(lines: list[str]) -> object:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (1200, 300), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 60 * i), line, fill="black")
    return image


def test_ocr_lines_are_rebuilt_in_reading_order() -> None:
    from rag.ocr import Box, lines_from_boxes

    boxes = [
        Box(400, 102, 700, 128, "followed by a second box"),
        Box(40, 100, 380, 130, "First line,"),
        Box(40, 160, 300, 188, "第二行"),
        Box(310, 161, 500, 187, "接着"),
    ]
    assert lines_from_boxes(boxes) == "First line, followed by a second box\n第二行接着"


def test_a_scanned_page_is_read_by_a_vision_model_over_http_and_marked_ocr(tmp_path: Path, stub: OpenAIStub) -> None:
    from rag.ocr import engine_for

    pdf = _scanned_pdf(tmp_path / "endorsement.pdf", _text_image(["Endorsement 3"]))
    stub.reply("```\nEndorsement 3\nThe waiting period is reduced to 15 days for accidents.\n```")
    settings = Settings(  # type: ignore[call-arg]
        ocr="vision", ocr_model="vision-test", base_url=stub.base_url, api_key="sk-test", _env_file=None
    )
    chunks = _chunks(pdf, ocr=lambda: engine_for(settings))
    assert len(chunks) == 1 and chunks[0].ocr
    assert "reduced to 15 days" in chunks[0].text and "```" not in chunks[0].text
    assert location(chunks[0].source, chunks[0].page, ocr=chunks[0].ocr) == "page 1 (OCR)"
    request = stub.chat_requests[0].json
    assert request["model"] == "vision-test"
    image_part = request["messages"][0]["content"][1]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/png;base64,")
    stored = _chunk_from(chunks[0].id, chunks[0].text, _chunk_metadata(chunks[0]))
    assert stored.ocr and not _chunk_from("x", "t", _chunk_metadata(Chunk("x", "a.pdf", "s", 0, "t", (1,)))).ocr


def test_only_the_scanned_page_of_a_mixed_pdf_is_recognised(tmp_path: Path, stub: OpenAIStub) -> None:
    import pypdfium2 as pdfium
    from pdfgen import write_pdf

    from rag.ocr import VisionOcr

    text_pdf = write_pdf(tmp_path / "text.pdf", [["Section 1. Cover", "The policy covers accidents abroad."]])
    scan_pdf = _scanned_pdf(tmp_path / "scan.pdf", _text_image(["Endorsement"]))
    mixed = pdfium.PdfDocument.new()
    for part in (text_pdf, scan_pdf):
        source = pdfium.PdfDocument(str(part))
        mixed.import_pages(source)
        source.close()
    mixed.save(str(tmp_path / "mixed.pdf"))
    mixed.close()
    stub.reply("Endorsement 2\nDental treatment is covered up to USD 500.")
    settings = Settings(ocr="vision", base_url=stub.base_url, api_key="sk-test", _env_file=None)  # type: ignore[call-arg]
    chunks = _chunks(tmp_path / "mixed.pdf", ocr=lambda: VisionOcr(settings))
    assert len(stub.chat_requests) == 1  # the page with a text layer was not sent
    cover, endorsement = _containing(chunks, "accidents abroad"), _containing(chunks, "Dental treatment")
    assert cover.pages == (1,) and not cover.ocr
    assert endorsement.pages == (2,) and endorsement.ocr


def test_a_vision_model_that_fails_fails_that_file_without_showing_the_key(tmp_path: Path, stub: OpenAIStub) -> None:
    from rag.ocr import VisionOcr

    pdf = _scanned_pdf(tmp_path / "scan.pdf", _text_image(["Scanned clause"]))
    stub.fail(404, body={"error": {"message": "model not found for key sk-secret-123456", "type": "not_found"}})
    settings = Settings(  # type: ignore[call-arg]
        ocr="vision", ocr_model="no-such-model", base_url=stub.base_url, api_key="sk-secret-123456", _env_file=None
    )
    with pytest.raises(LoadError) as failure:
        _chunks(pdf, ocr=lambda: VisionOcr(settings.model_copy(update={"max_retries": 0})))
    message = str(failure.value)
    assert "OCR of page 1 failed" in message and "'no-such-model'" in message and "RAG_OCR_MODEL" in message
    assert "sk-secret-123456" not in message


def test_without_the_ocr_extra_a_scan_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.ocr import RapidOcr

    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # as if the extra were not installed
    pdf = _scanned_pdf(tmp_path / "scan.pdf", _text_image(["Scanned clause"]))
    with pytest.raises(LoadError, match=r"pip install 'rag\[ocr\]'"):
        _chunks(pdf, ocr=RapidOcr)


def test_with_ocr_off_a_scan_says_to_turn_it_on(tmp_path: Path) -> None:
    pdf = _scanned_pdf(tmp_path / "scan.pdf", _text_image(["Scanned clause"]))
    with pytest.raises(LoadError, match=r"no text layer: scanned.*RAG_OCR=rapidocr"):
        _chunks(pdf, ocr=lambda: None)


@pytest.mark.slow
def test_rapidocr_reads_a_rendered_page_of_a_real_policy(tmp_path: Path) -> None:
    pytest.importorskip("rapidocr_onnxruntime", reason="the OCR extra is not installed: pip install 'rag[ocr]'")
    import pypdfium2 as pdfium

    from rag.ocr import RENDER_DPI, RapidOcr, render_page

    policy = shared_eval("policies_zh") / "中华借款人意外伤害保险条款.pdf"
    document = pdfium.PdfDocument(str(policy))
    try:
        image = render_page(document, 2, RENDER_DPI)  # page 3: age limits and the insured amount
        textpage = document[2].get_textpage()
        reference = "".join(textpage.get_text_bounded().split())
    finally:
        document.close()
    chunks = _chunks(_scanned_pdf(tmp_path / "scan.pdf", image), ocr=RapidOcr)
    recognised = "".join("".join(chunk.text for chunk in chunks).split())
    assert chunks and all(chunk.ocr and chunk.pages == (1,) for chunk in chunks)
    assert "18" in recognised and "60" in recognised and "周岁" in recognised
    shared = sum(1 for ch in set(reference) if ch in recognised)
    assert shared >= 0.9 * len(set(reference))  # nearly every character of the text layer was recognised


def test_page_records_default_to_no_section_and_no_ocr() -> None:
    page = Page("a.pdf", 1, "text")
    assert page.section is None and not page.ocr and location("a.pdf", 3) == "page 3"
    assert location("notes.md", 1) == "page 1"


# --- through the faces ------------------------------------------------------------------------------------


def test_the_server_accepts_the_new_types_and_names_them_when_refusing(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from rag.server import create_app

    docx_file = _write_docx(tmp_path / "terms.docx")
    sheet = _write_xlsx(tmp_path / "faq.xlsx")
    settings = Settings(index_dir=tmp_path / "index", embedder="fake", _env_file=None)  # type: ignore[call-arg]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        files = [
            ("files", (path.name, path.read_bytes(), "application/octet-stream"))
            for path in (docx_file, sheet, tmp_path / "terms.docx")
        ]
        files[2] = ("files", ("old.xls", b"\xd0\xcf\x11\xe0", "application/octet-stream"))
        report = client.post("/v1/ingest", files=files).json()
    assert report["added"] == 2 and report["files"] == ["terms.docx", "faq.xlsx"]
    assert [failure["path"] for failure in report["failed"]] == ["old.xls"]
    assert "Excel (.xlsx)" in report["failed"][0]["error"]


def test_an_answer_from_a_sheet_cites_its_sheet_and_row(fake_settings: Settings) -> None:
    from rag.index import Index
    from rag.qa import answer_question

    sheet = _write_xlsx(Path.cwd() / "客服知识库.xlsx")
    with Index(fake_settings) as index:
        assert ingest_paths([sheet], index).added == 1
    answer = answer_question("犹豫期有多长？", fake_settings, mode="lexical", top_k=3)
    locations = {passage.location() for passage in answer.passages}
    assert "sheet 常见问题, row 4" in locations
    assert answer.citations and all(citation.location for citation in answer.citations)
    assert answer.citations[0].location == "sheet 常见问题, row 4"


def test_a_header_may_name_years_but_not_hold_amounts() -> None:
    from rag.blocks import looks_like_header

    assert looks_like_header(("年龄", "2023年", "2024"), 3)
    assert not looks_like_header(("等待期", "30", "天"), 3)
    assert not looks_like_header(("年龄", "年龄", "保费"), 3)
    assert not looks_like_header(("说明", "", ""), 3)
