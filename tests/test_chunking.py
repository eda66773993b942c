from __future__ import annotations

from rag.chunking import chunk_id, split_pages
from rag.records import Page
from rag.tokens import count_tokens

CLAUSES = "\n".join(
    f"第{n}条 条款{n}\n" + "被保险人在保险期间内因意外伤害身故的，本公司按基本保险金额给付身故保险金。" * 6
    for n in ("一", "二", "三", "四")
)


def test_chunks_respect_the_token_limit_and_end_at_sentence_or_clause_boundaries() -> None:
    chunks = list(split_pages([Page("c.md", 1, CLAUSES)], "d" * 64, chunk_size=120, chunk_overlap=0))
    assert len(chunks) > 4
    for chunk in chunks:
        assert count_tokens(chunk.text) <= 120
        assert chunk.text.endswith(("。", "金")) or chunk.text.startswith("第")


def test_each_chunk_carries_the_clause_it_sits_under() -> None:
    chunks = list(split_pages([Page("c.md", 1, CLAUSES)], "d" * 64, chunk_size=120, chunk_overlap=0))
    labels = [chunk.clause for chunk in chunks]
    assert labels[0] == "第一条 条款一"
    assert labels[-1] == "第四条 条款四"
    for chunk in chunks:
        if chunk.text.startswith("第"):
            assert chunk.clause is not None and chunk.text.startswith(chunk.clause)


def test_markdown_heading_and_numbered_clause_labels() -> None:
    text = "# 安心保条款\n## 第二条 犹豫期\n犹豫期为十五日。\n\n2.3 保险责任\n我们承担以下保险责任。"
    chunks = list(split_pages([Page("a.md", 1, text)], "e" * 64, chunk_size=12, chunk_overlap=0))
    assert {chunk.clause for chunk in chunks} >= {"第二条 犹豫期", "2.3 保险责任"}


def test_english_sentences_are_not_cut_in_the_middle() -> None:
    sentences = [f"Sentence number {n} explains one rule of the policy in plain words." for n in range(40)]
    chunks = list(split_pages([Page("e.txt", 1, " ".join(sentences))], "f" * 64, chunk_size=60, chunk_overlap=0))
    for chunk in chunks:
        assert chunk.text.endswith(".")
        assert count_tokens(chunk.text) <= 60


def test_chunks_spanning_a_page_break_list_both_pages() -> None:
    pages = [Page("p.pdf", 1, "第一页的内容。" * 10), Page("p.pdf", 2, "第二页的内容。" * 10)]
    chunks = list(split_pages(pages, "a" * 64, chunk_size=1000, chunk_overlap=0))
    assert len(chunks) == 1 and chunks[0].pages == (1, 2)
    small = list(split_pages(pages, "a" * 64, chunk_size=30, chunk_overlap=0))
    assert small[0].pages == (1,) and small[-1].pages == (2,)


def test_ids_derive_from_document_content_and_position() -> None:
    first = list(split_pages([Page("x.md", 1, CLAUSES)], "1" * 64, 120, 20))
    again = list(split_pages([Page("renamed.md", 1, CLAUSES)], "1" * 64, 120, 20))
    other = list(split_pages([Page("x.md", 1, CLAUSES)], "2" * 64, 120, 20))
    assert [c.id for c in first] == [c.id for c in again]
    assert not {c.id for c in first} & {c.id for c in other}
    assert first[3].id == chunk_id("1" * 64, 3)
    assert len({c.id for c in first}) == len(first)
