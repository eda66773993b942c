"""Dates as documents write them: 2023年1月1日, 二〇二三年一月一日, 2023-01-01, 2023/1/1, 1 January 2023,
January 1st, 2023. `DATE` is a regex fragment matching any of them; `parse_date` turns one into ISO.

Ground level: the standard library only.
"""

from __future__ import annotations

import re
from datetime import date

__all__ = ["DATE", "parse_date"]

_CN_DIGITS = {
    "〇": 0,
    "零": 0,
    "○": 0,
    "Ｏ": 0,
    "一": 1,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_CN_NUM = "[〇零○一二三四五六七八九十]"
_MONTH_NAMES = "|".join(sorted(_MONTHS, key=len, reverse=True))
DATE = (
    rf"(?:\d{{4}}\s*年\s*\d{{1,2}}\s*月\s*\d{{1,2}}\s*日"
    rf"|{_CN_NUM}{{4}}\s*年\s*{_CN_NUM}{{1,3}}\s*月\s*{_CN_NUM}{{1,3}}\s*日"
    r"|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTH_NAMES})\.?,?\s+\d{{4}}"
    rf"|(?:{_MONTH_NAMES})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
)


def _cn_number(text: str) -> int:
    """一 → 1, 十二 → 12, 二十一 → 21, 二〇二三 → 2023 (digit by digit)."""
    if "十" not in text:
        return int("".join(str(_CN_DIGITS[ch]) for ch in text))
    tens, _, ones = text.partition("十")
    return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)


def parse_date(text: str) -> str | None:
    """An ISO date for any form that DATE matches (2023年1月1日, 二〇二三年一月一日, 2023-01-01, 1 January
    2023, January 1, 2023); None when it is no real date."""
    text = text.strip()
    try:
        if match := re.fullmatch(
            r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日|(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", text
        ):
            parts = [int(p) for p in match.groups() if p is not None]
            return date(parts[0], parts[1], parts[2]).isoformat()
        if match := re.fullmatch(rf"({_CN_NUM}{{4}})\s*年\s*({_CN_NUM}{{1,3}})\s*月\s*({_CN_NUM}{{1,3}})\s*日", text):
            return date(*(_cn_number(part) for part in match.groups())).isoformat()
        words = re.findall(r"[A-Za-z]+|\d+", text.lower())
        month = next((_MONTHS[w] for w in words if w in _MONTHS), None)
        numbers = [int(w) for w in words if w.isdigit()]
        if month is not None and len(numbers) == 2:
            day, year = (numbers[0], numbers[1]) if numbers[1] > 31 else (numbers[1], numbers[0])
            return date(year, month, day).isoformat()
    except (ValueError, KeyError):
        return None
    return None
