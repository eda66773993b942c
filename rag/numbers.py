"""Find the numbers in a text and compare them, however Chinese and English documents write them.

Every number in an answer must also appear in a passage it cites. "1.5万", "15,000", "一万五千" and
"１５０００" are one value; "20%", "20％", "百分之二十" and "二成" are one percentage; "第3条" and "第三条"
carry the same 3. Citation markers ([1], 【2】), dotted section numbers (3.2.1) and list ordinals ("1." or
"一、" at the start of a line) are not numbers to check.

Chinese numerals are read only where they read as numbers: a run of two or more ("十五", "三千五百"), or a
single one before a unit ("三天", "两年", "第一条"); "一般", "统一", "万一" and "千万不要" are words, not
numbers. English number words ("fifteen days") are read the same way.

A number also keeps the kind of unit written with it, so that "15个月" is not taken for the "十五日" of a source:
days (日, 天, 工作日, days), weeks, months (月, 个月), years (年), ages (岁, 周岁, years of age, aged), hours,
percentages and money (元, 万元, USD, $, Rs., INR...). Two mentions match when their values are equal and their
units agree; a mention with no unit agrees with any unit, so that "等待期为90" never raises a false alarm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from rag.text import CITATION_MARKER, chinese_to_int, halfwidth

__all__ = [
    "CITATION_MARKER",
    "NumberMention",
    "Unit",
    "find_numbers",
    "halfwidth",
    "numbers_match",
    "units_agree",
    "unsupported_numbers",
]


Unit = Literal["day", "week", "month", "year", "age", "hour", "percent", "money"]


@dataclass(frozen=True)
class NumberMention:
    """One number as written in a text, and the value it stands for."""

    text: str  # as written, with its multiplier, percent sign and a trailing 元: "1.5万元", "20%"
    value: Decimal  # 20 for "20%": the percent sign is kept in is_percent, not in the value
    is_percent: bool
    start: int
    end: int
    unit: Unit | None = None  # the kind of unit written with it; "percent" whenever is_percent


_ARABIC = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?"
_CN_DIGITS = dict(zip("零〇一二两三四五六七八九", (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True))
_CHINESE = r"[零〇一二两三四五六七八九十百千万亿]+(?:点[零〇一二三四五六七八九]+)?"
_ORDINAL = r"(?:\d+|[一二三四五六七八九十]+)"

_EN_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
_EN_TEENS = "sixteen seventeen eighteen nineteen"
_EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety"
_EN_SMALL = {word: i for i, word in enumerate(f"{_EN_ONES} {_EN_TEENS}".split())} | {
    word: 10 * i for i, word in enumerate(_EN_TENS.split(), 2)
}
_EN_SCALES = {"hundred": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9}
_EN_WORD = "|".join(sorted([*_EN_SMALL, *_EN_SCALES], key=len, reverse=True))
_ENGLISH = rf"(?<![A-Za-z])(?i:{_EN_WORD})(?:(?:[ \t]+and[ \t]+|[ \t-]+)(?i:{_EN_WORD}))*(?![A-Za-z])"

_MULTIPLIERS = {
    "万亿": 10**12, "千亿": 10**11, "千万": 10**7, "百万": 10**6, "亿": 10**8, "万": 10**4,
    "千": 10**3, "百": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9,
}  # fmt: skip

_TOKEN = re.compile(
    rf"""
    (?P<skip>
        {CITATION_MARKER.pattern}
      | \d+(?:\.\d+){{2,}}                                      # section or version numbers: 3.2.1
      | ^[ \t]*(?:[-*•][ \t]*)?                                 # list ordinals at the start of a line:
        (?:[(（]{_ORDINAL}[)）] | {_ORDINAL}[.、)）](?!\d))      #   "1." "(1)" "一、" "（一）"
      | (?<=[：:；;])[ \t]*{_ORDINAL}[、)）]                      # ... or after a colon: "包括：1、…；2、…"
    )
  | (?P<per>百分之|千分之)(?P<per_num>{_ARABIC}|{_CHINESE})
  | (?P<arabic>{_ARABIC})
    (?P<mult>[ ]?(?:万亿|千亿|千万|百万|亿|万|千(?!分之)|百(?!分))
           | [ ](?i:thousand|million|billion)(?![A-Za-z]))?
    (?P<pct>[ ]?(?:%|(?i:percent|per[ ]cent)(?![A-Za-z])))?
  | (?P<chinese>{_CHINESE})
  | (?P<english>{_ENGLISH})
    """,
    re.VERBOSE | re.MULTILINE,
)

# What may follow a single Chinese numeral for it to count as a number ("三天", "两年", "五次"). A lone 一
# needs a unit of time or money: "一个", "一种", "一项" are mostly the article "a".
_UNITS_AFTER_ONE = ("日", "天", "年", "月", "周", "岁", "元", "倍", "个月", "小时")
_UNITS = (*_UNITS_AFTER_ONE, *"个次项条款章节页份人名家位种类级档期张%")
_EN_UNITS = re.compile(
    r"[ \t]+(?i:days?|weeks?|months?|years?|hours?|times|percent|per cent|dollars?|yuan)\b|%"
)
# "八成" is 80%, but "三成年人", "一成不变" and "八成立" are not percentages.
_CHENG = re.compile(r"成(?!年|人|员|为|立|本|功|交|熟|长|果|绩|品|分|都|不变)")


def find_numbers(text: str) -> list[NumberMention]:
    """Every number in `text` that a reader would check against a source, in order of appearance."""
    norm = halfwidth(text)
    found: list[NumberMention] = []
    for m in _TOKEN.finditer(norm):
        start, end, is_percent = m.start(), m.end(), False
        value: Decimal | None
        if m["skip"] is not None:
            continue
        if m["per"] is not None:
            value = _parse_arabic_or_chinese(m["per_num"])
            if value is not None and m["per"] == "千分之":
                value /= 10
            is_percent = True
        elif m["arabic"] is not None:
            value = Decimal(m["arabic"].replace(",", ""))
            if m["mult"]:
                value *= _MULTIPLIERS[m["mult"].strip().lower()]
            is_percent = m["pct"] is not None
        elif m["chinese"] is not None:
            span = _chinese_number(norm, start, end)
            if span is None:
                continue
            start, end, value = span
        else:
            value = _english_value(m["english"])
            unit = _EN_UNITS.match(norm, end)
            if value == 1 and unit is None:
                continue  # "one of", "no one": not a quantity
            if unit is not None and unit[0].strip().lower() in ("%", "percent", "per cent"):
                end, is_percent = unit.end(), True
        if value is None:
            continue
        if not is_percent and 0 < value <= 10 and not m["mult"] and _CHENG.match(norm, end):
            value, end, is_percent = value * 10, end + 1, True  # 八成 = 80%
        if not is_percent and norm.startswith("元", end):
            end += 1
        kind: Unit | None = "percent" if is_percent else _unit(norm, start, end)
        found.append(NumberMention(text[start:end], _tidy(value), is_percent, start, end, kind))
    return found


# The unit written after a number (after optional spaces or a hyphen: "15 days", "90-day"), longest first.
_UNIT_AFTER = re.compile(
    r"[ \t]*(?:"
    r"(?P<age>周岁|岁|[ -]?(?i:years?[ -]+(?:of[ \t]+age|old)))"
    r"|(?P<month>个月|月|[ -]?(?i:months?)(?![A-Za-z]))"
    r"|(?P<day>个?(?:工作|自然)?日|天|[ -]?(?i:days?)(?![A-Za-z]))"
    r"|(?P<week>个?(?:星期|礼拜)|周|[ -]?(?i:weeks?)(?![A-Za-z]))"
    r"|(?P<hour>个?小时|[ -]?(?i:hours?|hrs?)(?![A-Za-z]))"
    r"|(?P<year>年(?!级|龄|纪)|[ -]?(?i:years?|yrs?)(?![A-Za-z]))"
    r"|(?P<money>(?:美|港|日|欧)?元|块|[ -]?(?i:dollars?|yuan|rupees?|usd|inr|rmb|cny|hkd)(?![A-Za-z]))"
    r")"
)
# The unit written before a number: a currency ("USD 500", "$500", "Rs. 5,000") or an age ("aged 18").
_UNIT_BEFORE = re.compile(
    r"(?:(?P<money>[$€£¥￥]|(?<![A-Za-z])(?i:usd|us\$|inr|rs\.?|rmb|cny|hkd|eur|gbp))"
    r"|(?P<age>(?<![A-Za-z])(?i:aged?|ages?)(?:[ \t]+of)?))[ \t]*\Z"
)


def _unit(norm: str, start: int, end: int) -> Unit | None:
    """The kind of unit written with the number norm[start:end], or None."""
    if norm[start:end].endswith("元"):
        return "money"
    after = _UNIT_AFTER.match(norm, end)
    if after is not None and after.lastgroup is not None:
        return after.lastgroup  # type: ignore[return-value]
    before = _UNIT_BEFORE.search(norm, max(0, start - 12), start)
    if before is not None and before.lastgroup is not None:
        return before.lastgroup  # type: ignore[return-value]
    return None


def units_agree(a: Unit | None, b: Unit | None) -> bool:
    """Whether two units may name the same quantity: equal, or one of them unwritten. "18 years" and "18岁"
    agree too, as English writes an age in years."""
    return a is None or b is None or a == b or {a, b} == {"year", "age"}


def numbers_match(a: NumberMention, b: NumberMention) -> bool:
    """Whether two mentions stand for the same number: equal values, both percentages or neither, and units
    that agree (see `units_agree`)."""
    return _key(a) == _key(b) and units_agree(a.unit, b.unit)


def unsupported_numbers(answer: str, sources: Iterable[str]) -> list[NumberMention]:
    """The numbers in `answer` that appear in none of `sources` (with a unit that agrees), in the answer's order."""
    known: dict[tuple[Decimal, bool], list[NumberMention]] = {}
    for source in sources:
        for m in find_numbers(source):
            known.setdefault(_key(m), []).append(m)
    return [m for m in find_numbers(answer) if not any(numbers_match(m, k) for k in known.get(_key(m), ()))]


def _key(m: NumberMention) -> tuple[Decimal, bool]:
    return m.value, m.is_percent  # equal Decimals hash equal, so this set key agrees with numbers_match


def _tidy(value: Decimal) -> Decimal:
    """15000 rather than 15000.0; 1.5 rather than 1.50. The value is unchanged."""
    if value == value.to_integral_value():
        return value.to_integral_value()
    return value.normalize()


def _parse_arabic_or_chinese(s: str) -> Decimal | None:
    return Decimal(s.replace(",", "")) if s[0].isdigit() else _parse_chinese(s)


def _chinese_number(norm: str, start: int, end: int) -> tuple[int, int, Decimal] | None:
    """The number in the run of Chinese numeral characters norm[start:end], if it reads as one there.

    When the whole run does not ("统一三年" holds the run 一三), the run without its first character is tried,
    and so on: the number is the longest tail that reads as one.
    """
    if norm.startswith("万一", end - 2) and not norm.startswith(_UNITS, end):
        end -= 1  # "十万一旦…": this 万一 is "in case"
    for s in range(start, end):
        run = norm[s:end]
        value = _parse_chinese(run)
        if value is not None and _reads_as_number(norm, s, end, run):
            return s, end, value
    return None


def _reads_as_number(norm: str, start: int, end: int, run: str) -> bool:
    if "点" in run:
        return True
    if len(run) == 1:
        if run in "百千万亿":
            return False
        after_di = norm[start - 1 : start] == "第"
        units = _UNITS_AFTER_ONE if run in "一零〇" and not after_di else _UNITS
        return norm.startswith(units, end) or bool(_CHENG.match(norm, end))
    if all(ch in _CN_DIGITS for ch in run):  # read digit by digit: "二〇二三年"
        return ("〇" in run and len(run) >= 3) or (len(run) == 4 and norm.startswith("年", end))
    if run == "千万":  # the adverb "by all means", unless an amount follows: "千万元"
        return norm.startswith(_UNITS, end)
    return True


def _parse_chinese(s: str) -> Decimal | None:
    """The value of a Chinese numeral ("三千五百", "一百零五", "两万", "一点五", "二〇二三"), or None."""
    whole, _, fraction = s.partition("点")
    integer = chinese_to_int(whole)
    if integer is None or any(ch not in _CN_DIGITS for ch in fraction):
        return None
    if not fraction:
        return Decimal(integer)
    return Decimal(f"{integer}.{''.join(str(_CN_DIGITS[ch]) for ch in fraction)}")


def _english_value(words: str) -> Decimal:
    total = current = 0
    for word in re.split(r"[ \t-]+", words.lower()):
        if word in _EN_SMALL:
            current += _EN_SMALL[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in _EN_SCALES:
            total += (current or 1) * _EN_SCALES[word]
            current = 0
    return Decimal(total + current)
