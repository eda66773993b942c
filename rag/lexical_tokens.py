"""BM25 tokens for the lexical index: Chinese words and bigrams (rjieba) and English words.

`tokenize` serves documents and queries alike. A Chinese run is segmented by rjieba (with the curated
insurance/finance terms of `rag/resources/insurance_dict.txt` added, so 犹豫期 or 现金价值 stay whole),
function and question words are dropped, and the character bigrams of each stretch between them are added
as tokens of their own (`·保险`): that gives search-mode granularity and makes a question meet a clause
even where the two are segmented differently. English is lowercased and split into letter/digit words
minus a short stopword list. Numbers are tokens ("3.2", "10,000" -> "10000"), Chinese numerals also give
their value (三十日 -> "30"), and clause numbers a canonical token (第十条 and 第10条 -> "第10条").
Traditional Chinese is folded to Simplified first (`rag.synonyms.to_simplified`), so 保單的猶豫期 meets 保单的犹豫期.
Each of these choices was measured on InsQABench (the README's "Retrieval quality" has the figures).

rjieba is imported only when the first text is tokenized: importing this module is instant.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import itertools
import json
import operator
import re
import threading
import unicodedata
from importlib import resources
from typing import Any

from rag.synonyms import to_simplified
from rag.text import CJK_CHARS, CLAUSE_REFERENCE, CN_NUMERAL_CHARS, chinese_to_int

__all__ = ["BIGRAM_MARK", "DEFAULT_TOKENIZER", "Tokenizer", "tokenize"]

BIGRAM_MARK = "\u00b7"  # "·" starts every bigram token, so a bigram never equals a segmented word
_TOKENIZER_VERSION = 3  # bump whenever tokenization changes: saved indexes then no longer load

_CN_ONES = "零〇一二两三四五六七八九"
# rjieba's own guess (add_word with no frequency) is too low to beat a split such as 犹豫|期内
_USER_WORD_FREQ = 2000
_TOKEN_RE = re.compile(rf"([{CJK_CHARS}]+)|([a-z0-9]+(?:\.[0-9]+)*)")
# characters whose NFKC form matters here: full-width letters, digits, "." and "%", circled numbers, Kangxi
# radicals and compatibility ideographs (PDF text is full of those), the ideographic space
_COMPAT_RE = re.compile(
    "[\uff05\uff0e\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\u2460-\u24ff\u2e80-\u2fdf\uf900-\ufaff\u3000]+"
)
_THOUSANDS_RE = re.compile(r"(\d),(?=\d{3}(?!\d))")
_NUMERAL_RE = re.compile(f"[{CN_NUMERAL_CHARS}]+")
_UNITS = frozenset("日天年月周岁个元次倍%")

# Function words and question words. They carry no topic, and a question is full of them.
_ZH_STOPWORDS = frozenset(
    """
    的 地 得 了 着 过 吗 呢 吧 啊 呀 嘛 么 哦 之 其 该 此 这 那 这个 那个 这些 那些 这样 那样 这种 那种
    是 为 在 和 与 及 以及 或 或者 并 并且 而 且 也 都 就 还 又 再 才 把 将 被 对 于 以 从 向 由 给 让
    等 等等 之后 之前 时 时候 中 内 上 下 里 个 种 些 每
    我 我们 你 你们 您 他 她 它 他们 她们 它们 自己
    什么 怎么 怎样 怎么样 如何 哪 哪些 哪个 哪里 哪种 为什么 为何 多少 几 是否 是不是 有没有 能否 可否
    会 能 能够 可以 可 要 需要 应 应该 应当 有 没有 无 不 没 请问 请 如果 若 假如 则 那么
    """.split()  # noqa: SIM905
)
_SPACE = frozenset(" ")
_ZH_BREAKS = _ZH_STOPWORDS | _SPACE
_ZH_BARS = dict.fromkeys(_ZH_BREAKS, "|")
_SPACE_BARS = dict.fromkeys(_SPACE, "|")
_EN_STOPWORDS = frozenset(
    """
    a an the and or but if then else of to in on at by for with from into onto as is are was were be been
    being am do does did doing have has had having it its this that these those there here what which
    who whom whose when where why how can could would should will shall may might must i me my we us our
    you your he him his she her they them their s t not no nor so than too very any all each both such
    """.split()  # noqa: SIM905
)


def _normalize(text: str) -> str:
    text = _COMPAT_RE.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text).lower()
    return _THOUSANDS_RE.sub(r"\1", text) if "," in text else text


def _read_user_dict() -> list[tuple[str, int | None]]:
    text = resources.files("rag").joinpath("resources/insurance_dict.txt").read_text(encoding="utf-8")
    terms: list[tuple[str, int | None]] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            freq = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
            terms.append((fields[0], freq))
    return terms


class Tokenizer:
    """Turns text into BM25 tokens. The module's `tokenize` is the default instance; the options exist
    so that the alternatives can be measured (the README records the figures).

    search_mode: add the dictionary words inside longer words (犹豫期 -> 犹豫, 犹豫期), as jieba's
        cut_for_search does; user_dict: add rag/resources/insurance_dict.txt; hmm: let the segmenter
        join unknown words; stopwords: drop function and question words; bigrams: add the character
        bigrams of each stretch of Chinese between stopwords; numerals: add the value of Chinese
        numerals (三十日 -> 30) so that they meet arabic ones; simplified: fold Traditional Chinese to
        Simplified first.
    """

    def __init__(
        self,
        *,
        search_mode: bool = False,
        user_dict: bool = True,
        hmm: bool = True,
        stopwords: bool = True,
        bigrams: bool = True,
        numerals: bool = True,
        simplified: bool = True,
    ) -> None:
        self.search_mode = search_mode
        self.user_dict = user_dict
        self.hmm = hmm
        self.stopwords = stopwords
        self.bigrams = bigrams
        self.numerals = numerals
        self.simplified = simplified
        self._jieba: Any = None
        self._lock = threading.Lock()

    @functools.cached_property
    def fingerprint(self) -> str:
        """Changes whenever the tokens may change: options, dictionary, this code's version, rjieba's and
        OpenCC's."""
        options = [
            self.search_mode, self.user_dict, self.hmm, self.stopwords, self.bigrams, self.numerals, self.simplified,
        ]  # fmt: skip
        versions = []
        for package in ("rjieba", "opencc"):
            try:
                versions.append(importlib.metadata.version(package))
            except importlib.metadata.PackageNotFoundError:
                versions.append("unknown")
        state = [_TOKENIZER_VERSION, *versions, options, _read_user_dict() if self.user_dict else []]
        return hashlib.sha256(json.dumps(state, ensure_ascii=False).encode()).hexdigest()[:16]

    def _segmenter(self) -> Any:
        if self._jieba is None:
            with self._lock:
                if self._jieba is None:
                    import rjieba

                    jieba = rjieba.Jieba()
                    if self.user_dict:
                        for term, freq in _read_user_dict():
                            jieba.add_word(term, freq or _USER_WORD_FREQ, None)
                    self._jieba = jieba
        return self._jieba

    def __call__(self, text: str, *, bigrams: bool | None = None) -> list[str]:
        """The tokens of `text`; `bigrams` overrides the option of that name for this call."""
        jieba = self._segmenter()
        breaks = _ZH_BREAKS if self.stopwords else _SPACE
        bars = _ZH_BARS if self.stopwords else _SPACE_BARS  # break -> "|"
        stop_en = _EN_STOPWORDS if self.stopwords else frozenset()
        text = _normalize(to_simplified(text) if self.simplified else text)
        tokens: list[str] = []
        runs: list[str] = []
        for run, word in _TOKEN_RE.findall(text):
            if run:
                runs.append(run)
            elif word not in stop_en:
                tokens.append(word)
        if runs:
            # one segmenter call per text: the space between runs is a boundary it never crosses
            words = jieba.cut(" ".join(runs), self.hmm)
            tokens += itertools.filterfalse(breaks.__contains__, words)
            if self.search_mode:
                has_word = jieba.has_word
                tokens += [
                    sub
                    for w in words
                    if len(w) > 2
                    for n in (2, 3)
                    for i in range(len(w) - n + 1)
                    if (sub := w[i : i + n]) != w and has_word(sub)
                ]
            if self.bigrams if bigrams is None else bigrams:
                # the bigrams of each stretch between stopwords and run ends
                for stretch in "".join(map(bars.get, words, words)).split("|"):
                    tokens += map(operator.add, map(BIGRAM_MARK.__add__, stretch), stretch[1:])
        if self.numerals:
            for match in _NUMERAL_RE.finditer(text):
                numeral = match.group()
                end = match.end()
                if (
                    "十" in numeral
                    or (numeral[0] in _CN_ONES and ("百" in numeral or "千" in numeral))
                    or text[end : end + 1] in _UNITS
                    or text[end : end + 2] == "小时"
                ):
                    value = chinese_to_int(numeral)
                    if value is not None:
                        tokens.append(str(value))
        for number, unit in CLAUSE_REFERENCE.findall(text):
            if not number[0].isdigit():
                value = chinese_to_int(number)
                number = str(value) if value is not None else number
            tokens.append(f"第{number}{unit}")
        return tokens


DEFAULT_TOKENIZER = Tokenizer()
"""The tokenizer of `tokenize`, and of every `LexicalIndex` not given another: a saved index loads only if
it was built by this one (its `fingerprint`)."""


def tokenize(text: str) -> list[str]:
    """BM25 tokens of `text` (a document or a query)."""
    return DEFAULT_TOKENIZER(text)
