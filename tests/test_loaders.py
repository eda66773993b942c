from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import shared_eval
from pdfgen import write_pdf

from rag.errors import LoadError
from rag.loaders import SourceFile, clean_pdf_pages, clean_text, discover, load_pages


def _load(path: Path, backend: str = "pypdf") -> list[str]:
    return [page.text for page in load_pages(SourceFile(path, str(path)), backend)]


def test_spaces_between_cjk_characters_are_removed_but_not_between_english_words() -> None:
    assert clean_text("阅 读 指 引 and plain words") == "阅读指引 and plain words"
    assert clean_text("年龄为 18 至 60 周岁") == "年龄为18至60周岁"


def test_hard_line_breaks_inside_sentences_are_joined() -> None:
    text = (
        "本合同自我们同意承保、收取首期保险费并签发保险单后开始生效，本合同的\n成立日在保险单上载明。\n"
        "The insured may cancel\nthe policy within 15 days."
    )
    assert clean_text(text) == (
        "本合同自我们同意承保、收取首期保险费并签发保险单后开始生效，本合同的成立日在保险单上载明。\n"
        "The insured may cancel the policy within 15 days."
    )


def test_a_clause_heading_is_split_from_the_body_on_its_line() -> None:
    assert clean_text("1.3 投保年龄 年龄为 18 至 60 周岁。").split("\n") == ["1.3投保年龄", "年龄为18至60周岁。"]


def test_running_headers_footers_and_page_numbers_are_dropped() -> None:
    raw = [f"ACME Life Policy 2024\nClause {n} text of page {n}.\n- {n} -" for n in range(1, 6)]
    pages = list(clean_pdf_pages("x.pdf", raw))
    assert [page.page for page in pages] == [1, 2, 3, 4, 5]
    assert all("ACME Life Policy" not in page.text and "- " not in page.text for page in pages)
    assert pages[2].text == "Clause 3 text of page 3."


@pytest.mark.parametrize("backend", ["pypdf", "pypdfium2"])
def test_pdf_pages_keep_one_based_numbers_and_drop_repeated_headers(tmp_path: Path, backend: str) -> None:
    pages = [
        ["ACME Insurance Policy Wording", f"Section {n}. Part {n}", f"Body of part {n}.", f"Page {n}"]
        for n in (1, 2, 3)
    ]
    pdf = write_pdf(tmp_path / "policy.pdf", pages)
    loaded = list(load_pages(SourceFile(pdf, "policy.pdf"), backend))
    assert [page.page for page in loaded] == [1, 2, 3]
    assert loaded[1].text == "Section 2. Part 2\nBody of part 2."


@pytest.mark.parametrize("backend", ["pypdf", "pypdfium2"])
def test_a_pdf_without_text_layer_says_scanned(tmp_path: Path, backend: str) -> None:
    pdf = write_pdf(tmp_path / "scan.pdf", [[], []])
    with pytest.raises(LoadError, match="no text layer: scanned\\? OCR it first"):
        _load(pdf, backend)


def test_gb18030_text_falls_back_from_utf8(tmp_path: Path) -> None:
    path = tmp_path / "条款.txt"
    path.write_bytes("第一条 犹豫期为十五日。".encode("gb18030"))
    assert _load(path) == ["第一条犹豫期为十五日。"]


def test_binary_file_named_txt_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "blob.txt"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(LoadError, match="binary data"):
        _load(path)


def test_discover_walks_recursively_skips_hidden_and_reports_unsupported(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.md").write_text("# 标题\n内容", encoding="utf-8")
    (tmp_path / "top.txt").write_text("text", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("secret", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("x", encoding="utf-8")
    (tmp_path / "sheet.xls").write_bytes(b"\xd0\xcf")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "loop")
    files, problems = discover([tmp_path])
    assert sorted(Path(f.source).name for f in files) == ["deep.md", "top.txt"]
    assert len(problems) == 1 and "sheet.xls" in str(problems[0]) and "unsupported" in str(problems[0])


def test_real_chinese_policy_keeps_pages_and_loses_page_ids() -> None:
    folder = shared_eval("policies_zh")
    pdf = folder / "中华借款人意外伤害保险条款.pdf"
    pages = list(load_pages(SourceFile(pdf, str(pdf))))
    assert len(pages) == 9
    text = "\n".join(page.text for page in pages)
    assert "1-16" not in text  # the running page id on every page
    assert "年龄为18至60周岁" in pages[2].text
