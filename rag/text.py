"""The text toolkit: one definition each of the CJK ranges, Chinese numerals, sentence ends and heading patterns.

Ground level: the standard library only, never another rag module, so every stage can import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CITATION_MARKER",
    "CJK_CHARS",
    "CJK_PUNCT",
    "CLAUSE_REFERENCE",
    "CLAUSE_START",
    "CN_NUMERAL_CHARS",
    "HEADING_LINE",
    "INLINE_HEADING",
    "LIST_OR_HEADING_START",
    "MARKDOWN_HEADING",
    "QUOTE",
    "chinese_to_int",
    "halfwidth",
    "has_cjk",
    "is_cjk",
    "sentence_ends",
    "sentence_spans",
    "split_sentences",
    "terminal_safe",
]

# --- CJK ------------------------------------------------------------------------------------------------

# The body of a character class (use as f"[{CJK_CHARS}]"): 〇, CJK Extension A, the unified ideographs and
# the compatibility ideographs that PDF text is full of.
CJK_CHARS = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Chinese punctuation, also a character-class body.
CJK_PUNCT = "，。；：！？、（）《》“”‘’「」『』【】…—"

_CJK_CHAR = re.compile(f"[{CJK_CHARS}]")


def is_cjk(ch: str) -> bool:
    """Whether the character `ch` is a CJK ideograph (or 〇)."""
    return len(ch) == 1 and _CJK_CHAR.match(ch) is not None


def has_cjk(text: str) -> bool:
    """Whether `text` holds at least one CJK ideograph (or 〇)."""
    return _CJK_CHAR.search(text) is not None


_HALFWIDTH = str.maketrans(
    {chr(0xFF10 + i): str(i) for i in range(10)} | {"．": ".", "，": ",", "％": "%", "［": "[", "］": "]"}
)


def halfwidth(text: str) -> str:
    """Full-width digits and the punctuation around numbers as ASCII. The length never changes, so offsets
    found in the result hold in `text` too."""
    return text.translate(_HALFWIDTH)


# A citation marker: [1], [1, 2], [1-3], 【1，2】 (in halfwidth() text).
CITATION_MARKER = re.compile(r"[\[【][ \t]*\d+(?:[ \t]*(?:[,、;；]|[-–—~至])[ \t]*\d+)*[ \t]*[\]】]")

# --- Chinese numerals -----------------------------------------------------------------------------------

# The characters of a Chinese numeral below ten thousand, as a character-class body.
CN_NUMERAL_CHARS = "零〇一二两三四五六七八九十百千"
_CN_DIGITS = dict(zip("零〇一二两三四五六七八九", (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True))
_CN_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_BIG_UNITS = {"万": 10**4, "亿": 10**8}


def chinese_to_int(s: str) -> int | None:
    """The value of a Chinese integer numeral, or None when `s` is not one.

    "十五" is 15, "二十一" 21, "一百零五" 105, "三千五" 3500 (short for 三千五百), "两万" 20000, "三千五百万"
    35000000; a run of digits alone is read digit by digit ("二〇二三" is 2023, "〇" is 0).
    """
    if not s:
        return None
    if all(ch in _CN_DIGITS for ch in s):
        return int("".join(str(_CN_DIGITS[ch]) for ch in s))
    total = wan = section = 0  # the 亿s so far, the 万s so far, the part below 10000
    digit: int | None = None
    zero = False  # a 零 since the last unit: 一千零五 is 1005, while 三千五 is short for 3500
    last_small = 10**4  # 千, 百, 十 must come in falling order within a section
    last_unit = 1
    for ch in s:
        if ch in "零〇":
            if digit is not None:
                return None
            zero = True
        elif ch in _CN_DIGITS:
            if digit is not None:
                return None
            digit = _CN_DIGITS[ch]
        elif ch in _CN_SMALL_UNITS:
            unit = _CN_SMALL_UNITS[ch]
            if unit >= last_small:
                return None
            section += (1 if digit is None else digit) * unit
            digit, zero, last_small, last_unit = None, False, unit, unit
        elif ch in _CN_BIG_UNITS:
            unit = _CN_BIG_UNITS[ch]
            group = section + (digit or 0)
            if unit == 10**4:
                if wan or not group:
                    return None  # 万 with nothing to multiply, or two 万s in one 亿
                wan = group * unit
            else:
                if not (total or wan or group):
                    return None
                total, wan = (total + wan + group) * unit, 0
            section, digit, zero, last_small, last_unit = 0, None, False, 10**4, unit
        else:
            return None
    if digit is not None:
        section += digit * last_unit // 10 if not zero and last_unit >= 100 else digit
    return total + wan + section


# --- sentences ------------------------------------------------------------------------------------------

# Where a sentence may end. A "." (or "．") ends one only before a space, a line end, a closing quote or bracket
# or a citation marker: 3.5, v1.2, ./src, "Bldg., " and the list labels in "合计 1．不能重分类…" stay whole.
_BOUNDARY = re.compile(r"[。！？；!?]+|\.+(?=[\s”’\"」』)）\[【]|$)|\n")
# What still belongs to a sentence after its final punctuation: closing quotes and citation markers.
_TAIL = re.compile(rf"(?:[”’\"」』)）]|[ \t]*(?:{CITATION_MARKER.pattern}))*")
# A quotation; the one group that matched holds the quoted text.
QUOTE = re.compile(r"“([^“”\n]+)”|\"([^\"\n]+)\"|「([^「」\n]+)」|『([^『』\n]+)』")
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "no", "nos", "vs", "art", "arts", "sec", "para", "cf", "fig", "approx", "inc",
    "ltd", "co", "st", "p", "pp",
})  # fmt: skip
_WORD_BEFORE = re.compile(r"[A-Za-z.]+\Z")


def _boundaries(text: str) -> list[tuple[int, bool]]:
    """Where each sentence of `text` ends (after its closing quotes and citation markers), and whether it
    ends with punctuation (True) or at a line break (False)."""
    norm = halfwidth(text)
    quotes = [m.span() for m in QUOTE.finditer(norm)]
    ends: list[tuple[int, bool]] = []
    for b in _BOUNDARY.finditer(norm):
        if ends and b.start() < ends[-1][0]:
            continue  # inside the tail taken by the sentence before
        if any(qs < b.start() and b.end() < qe - 1 for qs, qe in quotes):
            continue  # a sentence inside a quote stays in the sentence that quotes it, unless it ends both
        if b[0].startswith(".") and _is_abbreviation(norm, b.start()):
            continue
        tail = _TAIL.match(norm, b.end())
        ends.append((tail.end() if tail else b.end(), b[0] != "\n"))
    return ends


def _is_abbreviation(norm: str, dot: int) -> bool:
    word = _WORD_BEFORE.search(norm, max(0, dot - 12), dot)
    return word is not None and ("." in word[0] or word[0].lower() in _ABBREVIATIONS)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, without the whitespace around it.

    A sentence ends at 。！？； or . ! ? (a "." only before a space, a closing quote or bracket, a citation
    marker or the end, and not after an abbreviation: "3.5", "e.g.", "No. 5" stay whole), or at a line
    break. It keeps the closing quotes and citation markers that follow its final punctuation
    ("…十五日。[1]"); a sentence quoted inside another stays in it.
    """
    ends = [end for end, _ in _boundaries(text)]
    spans = []
    for start, end in zip([0, *ends], [*ends, len(text)], strict=True):
        piece = text[start:end]
        if piece.strip():
            spans.append((start + len(piece) - len(piece.lstrip()), end - len(piece) + len(piece.rstrip())))
    return spans


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` (see `sentence_spans`), stripped, each keeping the citation markers and
    closing quotes that follow its final punctuation ("…十五日。[1]", "… days [1].")."""
    return [text[start:end] for start, end in sentence_spans(text)]


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence that ends with punctuation (and its closing quotes): the places a
    passage may be cut. A line break alone is not one."""
    return [end for end, punctuated in _boundaries(text) if punctuated]


# --- headings and clauses -------------------------------------------------------------------------------

# A line that is a heading: markdown, a numbered clause ("2.4 责任免除", "第十条 保险期间"), or an English
# Section/Article/Clause/Part heading.
HEADING_LINE = re.compile(
    r"^(?:#{1,6}\s+\S.*"
    r"|(?:\d+(?:\.\d+)*\.?|第[一二三四五六七八九十百零〇\d]+[条章节])\s*[^\s。；;，,]{1,24}"
    r"|(?:Section|Article|Clause|Part|SECTION|ARTICLE|CLAUSE|PART)\s+[\dIVX]+(?:\.\d+)*\.?(?:\s+[^.;:!?]{1,60})?)$"
)
# A markdown heading; group 1 is its title.
MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+(.*\S)\s*$")
# A line that starts a list item or a heading, so it never continues the line before.
LIST_OR_HEADING_START = re.compile(
    r"^(#{1,6}\s|[-*•·]\s|\d+(\.\d+)*[.、\s]|[（(]?[一二三四五六七八九十]+[)）、.]|第[一二三四五六七八九十百零〇\d]+[条章节款]|[（(]\d+[)）])"
)
# A numbered clause heading followed on the same line by its body ("1.3 投保年龄 年龄为18至60周岁"); group 1
# is the heading.
INLINE_HEADING = re.compile(
    rf"^\s*((?:\d+(?:\.\d+)+|第[一二三四五六七八九十百零〇\d]+条)\s*[{CJK_CHARS}（）()、]{{1,16}})[ \t\u3000]+(?=\S)"
)
# Where a new clause or heading starts (a regex body, for a lookahead after a line break).
CLAUSE_START = r"(?:#{1,6}\s|第[一二三四五六七八九十百零〇\d]+[条章节]|\d+(?:\.\d+)+|(?:Section|Article|Clause)\s+\d)"
# A reference to a clause in running text: 第十条, 第 3.2 款; group 1 is the number, group 2 the unit.
CLAUSE_REFERENCE = re.compile(rf"第\s*([0-9]+(?:\.[0-9]+)*|[{CN_NUMERAL_CHARS}]+)\s*([条款章节项部分])")


# --- the outline: what kind of heading a line is ------------------------------------------------------------

# Levels, outermost first. Only their order matters: a heading closes every open heading of its level or deeper.
LEVEL_PART = 0  # SECTION C), PART II, 第一章, 一、, an ALL-CAPS line, a Markdown "#"
LEVEL_CHAPTER = 1  # "1. 您与我们订立的合同", "Section 2. Free Look Period", 第一节, "##"
LEVEL_CLAUSE = 2  # "2.4 责任免除", 第十条, "8) Cosmetic Surgery (Code- Excl08)", "###"
LEVEL_SUBCLAUSE = 3  # "2.4.1", （一）, "3) ...", a FAQ question, a Title Case line
LEVEL_ITEM = 4  # a numbered paragraph or list item without a title: "1.被保险人故意自伤……；", "3.3 Maternity ..."


@dataclass(frozen=True)
class HeadingMatch:
    """A line that opens a part of the document's outline.

    `label` is what a citation shows ("2.4责任免除", "Excl18 Maternity", "3"); `title_end` is where the heading
    ends in the line (the rest is body: "2. Any one Illness:- Any one Illness means …"); `question` marks a FAQ
    question; `titled` is False for a numbered paragraph or list item, whose label is its number only."""

    level: int
    label: str
    number: str | None
    title_end: int
    titled: bool = True
    question: bool = False


_SENTENCE_PUNCT = re.compile(r"[。；;，,！!？?]")
_CN_NUM = "一二三四五六七八九十百零〇"
_MD = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
_CHINESE_NUMBERED = re.compile(rf"^(第[{_CN_NUM}\d]+([章节条款]))\s*(.*)$")
_CN_ORDINAL = re.compile(rf"^([{_CN_NUM}]+)、\s*(.*)$")
_CN_PAREN_ORDINAL = re.compile(rf"^[（(]([{_CN_NUM}]+|\d{{1,2}})[)）]\s*(.*)$")
_DOTTED_NUMBER = re.compile(r"^(\d{1,3}(?:\.\d{1,3})+)\.?(?!\d)\s*(.*)$")
_REFERENCE_LIST = re.compile(r"^[、，,和及与或至~-]")  # "6.1、7.1和7.2中…": clause numbers cited in a sentence
_SINGLE_NUMBER = re.compile(r"^(\d{1,3})[.．、](?!\d)\s*(.*)$")
_PAREN_NUMBER = re.compile(r"^(\d{1,3})\)\s*(.*)$")
_EXCLUSION_CODE = re.compile(r"\(\s*Code\s*[-–:]?\s*(Excl\s*\d+)\s*\)", re.IGNORECASE)
_PART = re.compile(
    r"^(SECTION|Section|PART|Part|CHAPTER|Chapter|ARTICLE|Article|Clause|CLAUSE)\s+([A-Z]|[IVX]+|\d+)\b[).:]?\s*(.*)$"
)
_FAQ_PREFIX = re.compile(r"^(?:问|Q|Question)\s*[:：]\s*(.+)$")
_DEFINITION_DASH = re.compile(r"\s*(?::-|：)\s*")
_ALL_CAPS = re.compile(r"[A-Z][A-Z0-9 ,&/'’()\-–:]{3,}")
_SMALL_WORDS = frozenset(
    ["a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "under", "with", "vs"]
)
_CAPS_WORD = re.compile(r"[A-Z0-9'’&/()\-–]+")


def _short_title(title: str) -> bool:
    """A heading's title: short, and not a sentence (no sentence punctuation inside or at the end; in English
    no full stop at the end and at most a dozen words)."""
    title = title.strip()
    if not title or _SENTENCE_PUNCT.search(title.rstrip("？?")):
        return False
    if has_cjk(title):
        return len(title) <= 30
    return len(title) <= 90 and not title.endswith(".") and len(title.split()) <= 12


def _title_case(line: str) -> bool:
    words = line.split()
    if not 1 <= len(words) <= 8 or not words[0][:1].isupper() or line[-1:] in ".,;:":
        return False
    return all(w[:1].isupper() or w[:1].isdigit() or w.lower() in _SMALL_WORDS or w in "&-–" for w in words)


def classify_heading(line: str) -> HeadingMatch | None:
    """What opens a part of the outline at the start of `line`, or None for body text."""
    line = line.strip()
    if not line:
        return None
    if match := _MD.match(line):
        title = match.group(2).strip()
        level = min(len(match.group(1)) - 1, LEVEL_SUBCLAUSE)
        question = title.endswith(("？", "?"))
        inner = classify_heading(title)
        number = inner.number if inner is not None else None
        return HeadingMatch(LEVEL_SUBCLAUSE if question else level, title, number, len(line), question=question)
    if match := _FAQ_PREFIX.match(line):
        return HeadingMatch(LEVEL_SUBCLAUSE, match.group(1).strip(), None, len(line), question=True)
    if match := _CHINESE_NUMBERED.match(line):
        unit = match.group(2)
        level = {"章": LEVEL_PART, "节": LEVEL_CHAPTER}.get(unit, LEVEL_CLAUSE)
        title = match.group(3)
        if _short_title(title) or not title:
            return HeadingMatch(level, f"{match.group(1)} {title}".strip(), match.group(1), len(line))
        return HeadingMatch(level, match.group(1), match.group(1), len(match.group(1)), titled=False)
    if match := _PART.match(line):
        rest = match.group(3)
        head = f"{match.group(1)} {match.group(2)}"
        title, end = _leading_title(rest)
        label = f"{head} {title}".strip()
        return HeadingMatch(LEVEL_PART, label, match.group(2), len(line) - len(rest) + end)
    if (match := _DOTTED_NUMBER.match(line)) and not _REFERENCE_LIST.match(match.group(2)):
        return _numbered(line, match, LEVEL_CLAUSE + match.group(1).count(".") - 1)
    if match := _PAREN_NUMBER.match(line):
        code = _EXCLUSION_CODE.search(line)
        title = line[match.start(2) : code.start()].strip(" :") if code else ""
        if code and _short_title(title) and not any(q in title for q in '“”"'):
            label = f"{code.group(1).replace(' ', '')} {title}".strip()
            return HeadingMatch(LEVEL_CLAUSE, label, match.group(1), code.end())
        return _numbered(line, match, LEVEL_SUBCLAUSE)
    if match := _SINGLE_NUMBER.match(line):
        return _numbered(line, match, LEVEL_CHAPTER)
    if match := _CN_ORDINAL.match(line):
        if _short_title(match.group(2)):
            return HeadingMatch(LEVEL_PART, line, match.group(1), len(line))
        return None
    if match := _CN_PAREN_ORDINAL.match(line):
        if _short_title(match.group(2)):
            return HeadingMatch(LEVEL_SUBCLAUSE, line, match.group(1), len(line))
        return HeadingMatch(LEVEL_ITEM, f"({match.group(1)})", match.group(1), 0, titled=False)
    if len(line) <= 90 and _ALL_CAPS.fullmatch(line) and sum(c.isalpha() for c in line) >= 4:
        return HeadingMatch(LEVEL_PART, line.rstrip(":"), None, len(line))
    if _title_case(line) and len(line) >= 4:
        return HeadingMatch(LEVEL_SUBCLAUSE, line, None, len(line))
    return None


def _leading_title(rest: str) -> tuple[str, int]:
    """The heading part of a line's rest: up to ":-" or "：", a run of capitals, or the whole of a short rest."""
    if (match := _DEFINITION_DASH.search(rest)) and _short_title(rest[: match.start()]):
        return rest[: match.start()].strip(), match.end()
    caps_end = _caps_run_end(rest)
    if caps_end and caps_end < len(rest) and sum(c.isalpha() for c in rest[:caps_end]) >= 4:
        return rest[:caps_end].strip(), caps_end
    if _short_title(rest):
        return rest.strip(), len(rest)
    return "", 0


def _caps_run_end(text: str) -> int:
    """Where the leading run of ALL-CAPS words of `text` ends ("BENEFITS COVERED UNDER THE POLICY Type of…")."""
    end = 0
    for word in re.finditer(r"\S+", text):
        if not _CAPS_WORD.fullmatch(word.group()) or not any(c.isalpha() for c in word.group()):
            if not any(c.isalpha() for c in word.group()) and _CAPS_WORD.fullmatch(word.group()):
                continue  # a dash or a number inside the run
            break
        end = word.end()
    return end


def _numbered(line: str, match: re.Match[str], level: int) -> HeadingMatch:
    """A numbered line: a heading when a short title follows the number (up to ":-" or "：" in a definition
    list), otherwise a numbered paragraph or list item labelled by its number."""
    number, rest = match.group(1), match.group(2)
    title, end = _leading_title(rest)
    if title:
        label = (line[: match.start(2)] + title).strip()
        return HeadingMatch(level, label, number, match.start(2) + end)
    return HeadingMatch(max(level, LEVEL_ITEM), number, number, 0, titled=False)


# --- terminal output -------------------------------------------------------------------------------------

# C0 and C1 controls (escape sequences, newlines that would forge report lines), bidirectional overrides, and
# the lone surrogates that an undecodable file name becomes
_UNSAFE_FOR_TERMINAL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def terminal_safe(text: str) -> str:
    """`text` with every character that could drive a terminal or forge a line written as a visible escape
    (`\\n`, `\\x1b`, `\\u202e`); a lone surrogate (an undecodable byte of a file name) as that byte, `\\xe9`."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape of one undecodable byte
            return f"\\x{code - 0xDC00:02x}"
        return match.group().encode("unicode_escape").decode("ascii") if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE_FOR_TERMINAL.sub(escape, text)
