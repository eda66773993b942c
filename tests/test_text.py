"""The text toolkit: CJK ranges, Chinese numerals, sentence splitting, heading and clause patterns."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import rag.text
from rag.text import (
    CJK_CHARS,
    CLAUSE_REFERENCE,
    CLAUSE_START,
    HEADING_LINE,
    INLINE_HEADING,
    LIST_OR_HEADING_START,
    MARKDOWN_HEADING,
    chinese_to_int,
    has_cjk,
    is_cjk,
    sentence_ends,
    sentence_spans,
    split_sentences,
)

# --- the module stands alone -------------------------------------------------------------------------


def test_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(rag.text.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "re", "dataclasses"}  # the standard library only


# --- CJK -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ch", ["保", "〇", "\u3400", "\u4dbf", "\u9fff", "\uf900", "\ufaff"])
def test_cjk_characters(ch: str) -> None:
    assert is_cjk(ch)
    assert re.fullmatch(f"[{CJK_CHARS}]", ch)


@pytest.mark.parametrize("ch", ["a", "1", "。", "，", "１", " ", "\u3000", "ア", "한", ""])
def test_not_cjk(ch: str) -> None:
    assert not is_cjk(ch)


def test_has_cjk() -> None:
    assert has_cjk("What is 犹豫期?")
    assert has_cjk("二〇二三")
    assert not has_cjk("What is the cooling-off period?")
    assert not has_cjk("。，！？")
    assert not has_cjk("")


# --- Chinese numerals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numeral", "value"),
    [
        ("〇", 0), ("零", 0), ("五", 5), ("十", 10), ("十五", 15), ("二十", 20), ("二十一", 21), ("一百", 100),
        ("一百零五", 105), ("一百一十", 110), ("两百", 200), ("三千五百", 3500), ("三千五", 3500),
        ("一千零五", 1005), ("两万", 20000), ("一万零一十", 10010), ("十万", 100000),
        ("三千五百万", 35000000), ("一亿", 10**8), ("二〇二三", 2023),
    ],
)  # fmt: skip
def test_chinese_to_int(numeral: str, value: int) -> None:
    assert chinese_to_int(numeral) == value


@pytest.mark.parametrize("numeral", ["", "万", "亿", "百千", "十十", "三四十", "万万", "五天", "abc"])
def test_chinese_to_int_rejects(numeral: str) -> None:
    assert chinese_to_int(numeral) is None


# --- sentences -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("等待期为90天。免赔额为1000元！是否续保？", ["等待期为90天。", "免赔额为1000元！", "是否续保？"]),
        ("情形复杂的；应在三十日内核定。", ["情形复杂的；", "应在三十日内核定。"]),
        ("第一行\n第二行", ["第一行", "第二行"]),
        ("费率为3.5%。次年上调。", ["费率为3.5%。", "次年上调。"]),
        ("费率为３．５％。次年上调。", ["费率为３．５％。", "次年上调。"]),
        ("The rate is 3.5%. It rises.", ["The rate is 3.5%.", "It rises."]),
        ("Costs, e.g. dental, are excluded. Others not.", ["Costs, e.g. dental, are excluded.", "Others not."]),
        ("See No. 5 of the schedule. Then stop.", ["See No. 5 of the schedule.", "Then stop."]),
        ("Version v1.2 applies. Done!", ["Version v1.2 applies.", "Done!"]),
        ("Really? Yes!", ["Really?", "Yes!"]),
        ("It lasts 90 days [1]. Then it ends [2].", ["It lasts 90 days [1].", "Then it ends [2]."]),
        ("保险人应在十五日内核定。[1] 等待期为90天。", ["保险人应在十五日内核定。[1]", "等待期为90天。"]),
        ("他说“不赔。”然后走了。", ["他说“不赔。”", "然后走了。"]),
        ("条款写明“应当赔付。不得拖延”，然后结束。", ["条款写明“应当赔付。不得拖延”，然后结束。"]),
        ("Wait... what?", ["Wait...", "what?"]),
        ("其他综合收益 1．不能重分类进损益。2．将重分类。", ["其他综合收益 1．不能重分类进损益。", "2．将重分类。"]),
        ("Run ./setup.sh first. Then stop.", ["Run ./setup.sh first.", "Then stop."]),
        ("Pulinat Bldg., Kochi. Open daily.", ["Pulinat Bldg., Kochi.", "Open daily."]),
        ("(see clause 3.) Then stop.", ["(see clause 3.)", "Then stop."]),
        ("", []),
        ("  \n\n", []),
    ],
)  # fmt: skip
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected
    assert [text[start:end] for start, end in sentence_spans(text)] == expected


def test_spans_are_offsets_into_the_text() -> None:
    text = "  第十条 保险期间\n本合同的保险期间为一年。 续保另议。"
    assert sentence_spans(text) == [(2, 10), (11, 23), (24, 29)]


def test_sentence_ends_skip_line_breaks_and_unfinished_text() -> None:
    text = "第十条 保险期间\n本合同的保险期间为一年。续保另议"
    assert sentence_ends(text) == [text.index("。") + 1]
    assert sentence_ends("It is 3.5 per cent, e.g. here. Then 2.") == [30, 38]
    assert sentence_ends("no end at all") == []


# --- headings and clauses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line", ["2.4 责任免除", "第十条 保险期间", "## 犹豫期", "第3章 总则", "Section 4 Claims", "1 总则"]
)
def test_heading_lines(line: str) -> None:
    assert HEADING_LINE.match(line)


@pytest.mark.parametrize("line", ["本合同的保险期间为一年。", "2.4 责任免除，详见下文", "We pay 3.5% a year."])
def test_not_heading_lines(line: str) -> None:
    assert not HEADING_LINE.match(line)


def test_markdown_heading_title() -> None:
    m = MARKDOWN_HEADING.match("## 犹豫期 ")
    assert m is not None and m.group(1) == "犹豫期"
    assert MARKDOWN_HEADING.match("第十条 保险期间") is None


@pytest.mark.parametrize("line", ["2.4 责任免除", "第十条 保险期间", "## 犹豫期", "Article 3 Scope"])
def test_clause_start(line: str) -> None:
    assert re.match(CLAUSE_START, line)
    assert LIST_OR_HEADING_START.match(line) or line.startswith("Article")


def test_clause_start_not_in_prose() -> None:
    assert not re.match(CLAUSE_START, "本合同的保险期间为一年。")
    assert not LIST_OR_HEADING_START.match("本合同的保险期间为一年。")


def test_list_items_start_a_line() -> None:
    for line in ["- 身故保险金", "（一）身故", "(1) death", "一、总则", "3、退保"]:
        assert LIST_OR_HEADING_START.match(line), line


def test_inline_heading() -> None:
    assert INLINE_HEADING.sub(r"\1\n", "1.3 投保年龄 年龄为18至60周岁") == "1.3 投保年龄\n年龄为18至60周岁"
    assert INLINE_HEADING.sub(r"\1\n", "第十条 保险期间 本合同为一年") == "第十条 保险期间\n本合同为一年"
    assert INLINE_HEADING.match("本合同为一年 续保另议") is None


def test_clause_reference() -> None:
    assert CLAUSE_REFERENCE.findall("依照第二十一条及第 3.2 款，见第十章") == [
        ("二十一", "条"),
        ("3.2", "款"),
        ("十", "章"),
    ]
