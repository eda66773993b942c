"""The extractive answerer picks the answering sentence(s) of one clause: never a heading, front matter or an FAQ's
question, a table row whole, and for a numeric question the sentence with a number of the kind asked for."""

from __future__ import annotations

import re

import pytest
from conftest import DATA

from rag.config import Settings
from rag.extractive import extractive_answer, wanted_units
from rag.index import Index
from rag.ingest import ingest_paths
from rag.lexical import LexicalIndex
from rag.numbers import find_numbers, numbers_match, unsupported_numbers
from rag.qa import answer_question
from rag.records import ChunkKind, Passage
from rag.verify import verify_answer


def passage(
    n: int,
    text: str,
    kind: ChunkKind = "clause",
    clause: str | None = None,
    heading_path: tuple[str, ...] = (),
    clause_spans: tuple[tuple[int, str], ...] = (),
) -> Passage:
    return Passage(
        n=n,
        source="policy.md",
        page=1,
        text=text,
        score=1.0 / n,
        chunk_id=f"c{n}",
        clause=clause,
        heading_path=heading_path,
        clause_spans=clause_spans,
        kind=kind,
    )


def sentences(answer: str) -> list[tuple[str, int]]:
    """(sentence, n) of each line of an extractive answer."""
    found = []
    for line in answer.splitlines():
        match = re.fullmatch(r"(.*) \[(\d+)\]", line)
        assert match, line
        found.append((match[1], int(match[2])))
    return found


def test_the_body_sentence_answers_not_the_heading() -> None:
    text = "2.1 犹豫期\n犹豫期为十五日，自投保人签收本合同之日起计算。"
    answer = extractive_answer("犹豫期有多长？", [passage(1, text, clause="2.1 犹豫期")])
    assert answer == "犹豫期为十五日，自投保人签收本合同之日起计算。 [1]"


def test_an_english_heading_is_never_the_answer() -> None:
    text = (
        "2. Free Look Period\n"
        "You may return the policy within 15 days of receiving it and get the premium back. "
        "A refund is paid to the account the premium came from."
    )
    answer = extractive_answer("How long is the free look period?", [passage(1, text, clause="2. Free Look Period")])
    assert sentences(answer)[0][0].startswith("You may return the policy within 15 days")
    assert "Free Look Period" not in answer


def test_a_title_line_and_a_heading_prefix_are_skipped() -> None:
    text = (
        "HARBOUR MUTUAL GLOBAL HEALTH POLICY\nSection 7. Grace Period\nGrace Period\n"
        "A grace period of 30 days is allowed."
    )
    path = ("Harbour", "Section 7. Grace Period")
    answer = extractive_answer("grace period", [passage(1, text, heading_path=path)])
    assert answer == "A grace period of 30 days is allowed. [1]"


NUMBERS = "本产品的等待期为90日，自合同生效之日起计算。等待期结束前，被保险人须年满18周岁。"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("等待期多少天", "本产品的等待期为90日，自合同生效之日起计算。"),
        ("等待期要满多大年纪", "等待期结束前，被保险人须年满18周岁。"),
    ],
)
def test_a_numeric_question_gets_the_number_of_its_unit(question: str, expected: str) -> None:
    best = extractive_answer(question, [passage(1, NUMBERS)], max_sentences=1)
    assert best == f"{expected} [1]"
    assert expected in extractive_answer(question, [passage(1, NUMBERS)])


@pytest.mark.parametrize(
    ("question", "expected"),
    [("等待期多少天", "投保后等待期为90日，等待期内出险不赔。"), ("多大年纪可以投保", "投保年龄为18周岁至60周岁。")],
)
def test_an_age_question_gets_the_age(question: str, expected: str) -> None:
    text = "投保后等待期为90日，等待期内出险不赔。投保年龄为18周岁至60周岁。"
    assert extractive_answer(question, [passage(1, text)], max_sentences=1) == f"{expected} [1]"


@pytest.mark.parametrize(
    ("question", "units"),
    [
        ("等待期多少天", {"day"}),
        ("多大年纪可以投保", {"age", "year"}),
        ("犹豫期有多长？", {"day", "week", "month", "year", "hour"}),
        ("重疾住院最多能报多少？", {"money", "percent"}),
        ("What percentage is refunded?", {"percent"}),
        ("how many months is the waiting period", {"month"}),
        ("我是开出租车的，算几类职业？", set()),
        ("犹豫期内退保会有损失吗？", None),
    ],
)
def test_the_units_a_question_asks_for(question: str, units: set[str] | None) -> None:
    assert wanted_units(question) == (None if units is None else frozenset(units))


def test_an_faq_passage_gives_its_answer_not_its_question() -> None:
    text = "问：犹豫期内退保有损失吗？\n答：犹豫期内退保只扣除不超过10元的工本费，其余保险费全额退还。"
    faq = passage(1, text, kind="faq")
    answer = extractive_answer("犹豫期退保有损失吗", [faq])
    assert answer == "犹豫期内退保只扣除不超过10元的工本费，其余保险费全额退还。 [1]"


def test_a_markdown_faq_question_is_context_not_answer() -> None:
    text = "## Can I cancel the policy after buying it?\n\nYes. Within the 15-day free look period you can return it."
    faq = passage(1, text)
    answer = extractive_answer("can I cancel?", [faq])
    assert answer == "Within the 15-day free look period you can return it. [1]"


def test_a_table_row_answers_whole() -> None:
    rows = "职业：出租车司机；代码：6240103；类别：4\n职业：刑警；代码：3020302；类别：5"
    answer = extractive_answer("刑警属于第几类职业？", [passage(1, rows, kind="table")])
    assert answer == "职业：刑警；代码：3020302；类别：5 [1]"


def test_front_matter_is_never_quoted_even_first() -> None:
    front = passage(1, "阅读指引\n犹豫期：您在签收合同后有一段犹豫期，详见第二条犹豫期。", kind="front")
    body = passage(2, "第二条 犹豫期\n自投保人签收本合同之日起，有十五日的犹豫期。", clause="第二条 犹豫期")
    answer = extractive_answer("犹豫期有多长？", [front, body])
    assert sentences(answer) == [("自投保人签收本合同之日起，有十五日的犹豫期。", 2)]
    assert extractive_answer("犹豫期有多长？", [front]) == ""


def test_the_answer_stays_in_one_clause_in_document_order() -> None:
    text = (
        "第二条 犹豫期\n自投保人签收本合同之日起，有十五日的犹豫期。犹豫期内解除合同的，扣除不超过10元的工本费。\n"
        "第三条 等待期\n自本合同生效之日起30日为等待期，犹豫期不计入等待期。"
    )
    spans = ((0, "第二条 犹豫期"), (text.index("第三条"), "第三条 等待期"))
    shown = passage(1, text, clause="第二条 犹豫期", clause_spans=spans)
    answer = extractive_answer("犹豫期内退保扣多少工本费", [shown])
    lines = sentences(answer)
    assert lines[-1][0] == "犹豫期内解除合同的，扣除不超过10元的工本费。"
    assert all("等待期" not in sentence for sentence, _ in lines)
    assert [text.index(s) for s, _ in lines] == sorted(text.index(s) for s, _ in lines)


def test_a_list_item_comes_with_its_lead_in() -> None:
    text = (
        "第五条 责任免除\n因下列情形之一导致被保险人发生医疗费用的，本公司不承担给付保险金的责任：\n"
        "1. 被保险人故意自伤；\n2. 被保险人酒后驾驶机动车；\n3. 战争、军事冲突、暴乱或武装叛乱。"
    )
    answer = extractive_answer("酒后驾驶出事赔不赔", [passage(1, text, clause="第五条 责任免除")])
    assert [s for s, _ in sentences(answer)][:2] == [
        "因下列情形之一导致被保险人发生医疗费用的，本公司不承担给付保险金的责任：",
        "2. 被保险人酒后驾驶机动车；",
    ]


def test_synonyms_reach_the_documents_words() -> None:
    text = "被保险人故意自伤的，本公司不承担责任。被保险人酒后驾驶机动车的，本公司不承担责任。"
    plain = extractive_answer("酒驾赔吗", [passage(1, text)])
    expanded = extractive_answer("酒驾赔吗", [passage(1, text)], expand=lambda q: ["酒后驾驶"])
    assert sentences(expanded)[0][0] == "被保险人酒后驾驶机动车的，本公司不承担责任。"
    assert plain != expanded


def test_the_index_idf_can_weigh_the_terms() -> None:
    texts = ["保险费 犹豫期", "保险费 等待期", "保险费 宽限期", "保险费 现金价值", "保险费"]
    index = LexicalIndex.build(list("abcde"), texts, ["x"] * 5)
    idf = index.idf(["犹豫期", "保险费", "从未出现"])
    assert idf["犹豫期"] > idf["保险费"] > 0
    assert idf["从未出现"] > idf["犹豫期"]
    text = "保险费按年交纳，保险费可以分期交纳。犹豫期为十五日。"
    question = "保险费和犹豫期"
    assert extractive_answer(question, [passage(1, text)], max_sentences=1).startswith("保险费按年交纳")
    weighed = extractive_answer(question, [passage(1, text)], 1, idf=lambda term: index.idf([term])[term])
    assert weighed == "犹豫期为十五日。 [1]"


def test_no_passage_no_answer() -> None:
    assert extractive_answer("犹豫期有多长？", []) == ""


# ------------------------------------------------------------------------------------- units in the check


def test_a_number_with_another_unit_is_unsupported() -> None:
    source = {1: "自投保人签收本合同之日起，有十五日的犹豫期。"}
    assert verify_answer("犹豫期为15个月。[1]", source).unsupported_numbers == ["15"]
    assert verify_answer("犹豫期为15天。[1]", source).unsupported_numbers == []
    assert verify_answer("犹豫期为15。[1]", source).unsupported_numbers == []  # no unit: no false alarm


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("15个月", "十五日", False),
        ("十五日", "15天", True),
        ("15 days", "十五日", True),
        ("24 months", "24个月", True),
        ("18周岁", "18 years of age", True),
        ("18 years", "18岁", True),
        ("3年", "3个月", False),
        ("USD 50", "50元", True),
        ("50元", "50日", False),
        ("百分之二十", "20 percent", True),
        ("15", "15个月", True),
    ],
)
def test_units_must_agree(a: str, b: str, same: bool) -> None:
    (x,), (y,) = find_numbers(a), find_numbers(b)
    assert numbers_match(x, y) is same
    assert numbers_match(y, x) is same


def test_unsupported_numbers_compare_units() -> None:
    assert [m.text for m in unsupported_numbers("等待期15个月，犹豫期15天", ["犹豫期为十五日"])] == ["15"]


# ---------------------------------------------------------------------------------------- the sample docs


@pytest.fixture
def data_index(fake_settings: Settings) -> Settings:
    report = ingest_paths([DATA], Index(fake_settings))
    assert not report.failed
    return fake_settings


def test_the_cooling_off_period_over_the_sample_docs(data_index: Settings) -> None:
    answer = answer_question("犹豫期有多长？", data_index)
    assert answer.mode == "extractive"
    assert "十五日" in answer.answer
    assert not answer.unsupported_sentences and not answer.warnings


@pytest.mark.parametrize(
    "question",
    ["犹豫期有多长？", "等待期多少天", "How long is the free look period?", "What is the grace period?"],
)
def test_sample_answers_are_sentences_of_one_passage_not_headings(data_index: Settings, question: str) -> None:
    answer = answer_question(question, data_index)
    lines = sentences(answer.answer)
    assert 1 <= len(lines) <= 3
    assert len({n for _, n in lines}) == 1
    for sentence, n in lines:
        assert sentence in answer.passages[n - 1].text
        assert not sentence.startswith("#") and len(sentence) > 12
