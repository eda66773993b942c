"""The number normaliser: one value however it is written, and nothing read as a number that is not one."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.numbers import NumberMention, find_numbers, numbers_match, unsupported_numbers

CN_DIGITS = "零一二三四五六七八九"


def to_chinese(n: int, liang: bool = False) -> str:
    """n < 10^8 as a Chinese numeral in the standard written form: 10 is 十, 105 一百零五, 10010 一万零一十."""
    assert 0 <= n < 10**8
    if n == 0:
        return "零"

    def below_10000(x: int) -> str:
        out, pending_zero = "", False
        for unit_value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
            digit = x // unit_value % 10
            if digit == 0:
                pending_zero = pending_zero or bool(out)
                continue
            if pending_zero:
                out, pending_zero = out + "零", False
            word = "两" if liang and digit == 2 and unit in ("千", "百") else CN_DIGITS[digit]
            out += word + unit
        return out

    high, low = divmod(n, 10000)
    if high == 0:
        text = below_10000(low)
    else:
        text = below_10000(high) + "万"
        if low:
            text += ("零" if low < 1000 else "") + below_10000(low)
    return text[1:] if text.startswith("一十") else text


def to_fullwidth(text: str) -> str:
    return text.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789.,%"})


def values(text: str) -> list[tuple[Decimal, bool]]:
    return [(m.value, m.is_percent) for m in find_numbers(text)]


def only(text: str) -> NumberMention:
    found = find_numbers(text)
    assert len(found) == 1, found
    return found[0]


# The test-side renderer itself, against forms written by hand.
@pytest.mark.parametrize(
    ("n", "written"),
    [(0, "零"), (10, "十"), (15, "十五"), (21, "二十一"), (105, "一百零五"), (110, "一百一十"), (1005, "一千零五"),
     (3500, "三千五百"), (10010, "一万零一十"), (100000, "十万"), (20000000, "二千万")],
)  # fmt: skip
def test_the_test_renderer_writes_standard_forms(n: int, written: str) -> None:
    assert to_chinese(n) == written


# --- properties ---------------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**15))
def test_plain_integers_read_back(n: int) -> None:
    m = only(str(n))
    assert (m.value, m.is_percent, m.text) == (n, False, str(n))


@given(st.integers(min_value=0, max_value=10**15))
def test_thousands_separators(n: int) -> None:
    text = f"保险金额为{n:,}元。"
    m = only(text)
    assert m.value == n
    assert text[m.start : m.end] == m.text == f"{n:,}元"


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_decimals_read_back(d: Decimal) -> None:
    assert only(f"金额 {d} 元").value == d


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["%", "％", " percent", " per cent"]))
def test_percent_signs(n: int, sign: str) -> None:
    m = only(f"赔付比例为{n}{sign}")
    assert (m.value, m.is_percent) == (n, True)


@given(st.integers(min_value=0, max_value=10**8 - 1))
def test_baifenzhi_is_a_percent(n: int) -> None:
    assert values(f"赔付比例为百分之{to_chinese(n)}。") == [(n, True)]


@given(st.integers(min_value=0, max_value=10**8 - 1), st.booleans())
def test_chinese_numerals_read_back(n: int, liang: bool) -> None:
    text = f"保险金额为{to_chinese(n, liang)}元，"
    m = only(text)
    assert m.value == n
    assert text[m.start : m.end] == m.text


@given(st.integers(min_value=1, max_value=999))
def test_clause_numbers_in_both_scripts_match(n: int) -> None:
    assert numbers_match(only(f"第{n}条"), only(f"第{to_chinese(n)}条"))


@given(st.text(alphabet="0123456789.,% 元万天第条", max_size=30))
def test_fullwidth_reads_as_halfwidth(text: str) -> None:
    wide = to_fullwidth(text)
    assert values(wide) == values(text)
    for m in find_numbers(wide):
        assert wide[m.start : m.end] == m.text


@given(st.decimals(min_value=0, max_value=10**4, places=1, allow_nan=False, allow_infinity=False))
def test_arabic_with_chinese_multiplier(d: Decimal) -> None:
    assert values(f"{d}万元") == [(d * 10**4, False)]
    assert values(f"{d}亿") == [(d * 10**8, False)]


@given(st.integers(min_value=0, max_value=10**8 - 1), st.integers(min_value=0, max_value=10**8 - 1))
def test_unsupported_means_absent_from_the_source(a: int, b: int) -> None:
    found = unsupported_numbers(f"保额为{a}元", [f"保险金额：{to_chinese(b)}元"])
    assert [m.value for m in found] == ([] if a == b else [a])


# --- examples -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,000", [(1000, False)]),
        ("1000.00元", [(1000, False)]),
        ("10万", [(100000, False)]),
        ("1.5亿", [(150000000, False)]),
        ("3千", [(3000, False)]),
        ("2万元", [(20000, False)]),
        ("1.5万", [(15000, False)]),
        ("20%", [(20, True)]),
        ("20％", [(20, True)]),
        ("百分之二十", [(20, True)]),
        ("百分之5.5", [(Decimal("5.5"), True)]),
        ("千分之五", [(Decimal("0.5"), True)]),
        ("二成", [(20, True)]),
        ("八成的客户", [(80, True)]),
        ("十五日", [(15, False)]),
        ("15天", [(15, False)]),
        ("60周岁", [(60, False)]),
        ("2023年", [(2023, False)]),
        ("二〇二三年", [(2023, False)]),
        ("１５天", [(15, False)]),
        ("一百零五", [(105, False)]),
        ("三千五百", [(3500, False)]),
        ("三千五", [(3500, False)]),
        ("一万五", [(15000, False)]),
        ("两万", [(20000, False)]),
        ("一亿二千万", [(120000000, False)]),
        ("零元", [(0, False)]),
        ("一点五倍", [(Decimal("1.5"), False)]),
        ("三天", [(3, False)]),
        ("一年", [(1, False)]),
        ("第三条", [(3, False)]),
        ("第一条", [(1, False)]),
        ("统一三年", [(3, False)]),  # the run 一三 is not a number; its tail 三 is
        ("保额十万一旦出险", [(100000, False)]),  # 万一 here is "in case"
        ("千万元", [(10000000, False)]),
        ("fifteen days", [(15, False)]),
        ("twenty-one percent", [(21, True)]),
        ("one hundred and five days", [(105, False)]),
        ("1.5 million", [(1500000, False)]),
        ("one year", [(1, False)]),
        ("rate 3.5 per year", [(Decimal("3.5"), False)]),
    ],
)
def test_written_forms(text: str, expected: list[tuple[Decimal | int, bool]]) -> None:
    assert values(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "见[1]和【2】，以及[1, 2]、[1-3]、【１，２】和［３］",  # citation markers
        "1. 首先\n2、其次\n(3) 再者\n一、保险责任\n（二）责任免除",  # list ordinals at line start
        "包括：1、住院；2、门诊",  # ordinals after a colon
        "详见3.2.1节",  # section numbers
        "一般情况下，双方统一意见；万一发生事故，千万不要慌张。",  # words that hold 一, 万, 千
        "第三方责任和第一受益人",  # 第三方 is "third party", not the number 3
        "一个人、一种病、一项责任、一次性给付",  # 一 as the article "a"
        "三成年人，一成不变",  # 成 that is not "tenths"
        "一一对应",  # digits side by side that are not a year  # 成 that is not "tenths"
        "one of the insured, no one else",  # "one" as a pronoun
        "e.g. the insurer",
    ],
)
def test_not_numbers(text: str) -> None:
    assert find_numbers(text) == []


def test_mentions_point_into_the_original_text() -> None:
    text = "等待期为１８０天，保额1.5万元，赔付百分之八十。"
    assert [(m.text, text[m.start : m.end]) for m in find_numbers(text)] == [
        ("１８０", "１８０"),
        ("1.5万元", "1.5万元"),
        ("百分之八十", "百分之八十"),
    ]


def test_a_list_ordinal_is_skipped_but_the_numbers_after_it_are_not() -> None:
    assert values("1. 等待期为90天\n2. 保额1.5万元") == [(90, False), (15000, False)]


def test_a_number_at_line_start_that_is_not_an_ordinal_counts() -> None:
    assert values("1.5万元起保\n15天内") == [(15000, False), (15, False)]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("15天", "十五日", True),
        ("第3条", "第三条", True),
        ("1.5万", "15,000", True),
        ("一万五千元", "１５０００", True),
        ("20%", "百分之二十", True),
        ("20%", "二成", True),
        ("20%", "20天", False),
        ("15天", "16天", False),
        ("0.2", "20%", False),
    ],
)
def test_numbers_match(a: str, b: str, same: bool) -> None:
    assert numbers_match(only(a), only(b)) is same
    assert numbers_match(only(b), only(a)) is same


def test_unsupported_numbers_in_chinese() -> None:
    sources = ["保险人应在收到索赔申请后十五日内作出核定。", "免赔额为1,000元，赔付比例为百分之八十。"]
    answer = "保险人应在15天内核定，免赔额3,000元，赔付比例80%。"
    assert [m.text for m in unsupported_numbers(answer, sources)] == ["3,000元"]


def test_unsupported_numbers_in_english() -> None:
    sources = ["The waiting period is ninety days.", "The deductible is USD 1,000 per year."]
    answer = "After a 90-day waiting period, the deductible is 1,000 dollars, or 2,500 for families."
    assert [m.text for m in unsupported_numbers(answer, sources)] == ["2,500"]


def test_no_sources_means_every_number_is_unsupported() -> None:
    assert [m.text for m in unsupported_numbers("等待期90天，保额10万", [])] == ["90", "10万"]


@given(
    st.text(
        alphabet=st.sampled_from(
            list("0123456789１２.,，%％ 元万亿千百十零〇一二两三四五六七八九点成第条年天[]【】\n:：、abc one-twenty")
        )
    )
)
def test_any_text_gives_ordered_mentions_that_point_into_it(text: str) -> None:
    found = find_numbers(text)
    for m in found:
        assert text[m.start : m.end] == m.text
    assert all(a.end <= b.start for a, b in pairwise(found))
