"""The extractive answer: with no chat model configured, the sources' own sentences that answer the question.

Candidates are the passages' sentences without their headings and titles. Front matter (cover, reading guide,
table of contents) gives none; an FAQ passage gives the lines of its answer, not its question; a table passage
gives whole rows, never split at "；". Each candidate is scored by sentence-level BM25 over the lexical index's
own tokens (`rag.lexical.tokenize`), with the idf of the index when the caller has it, else of the candidates
themselves; a share of the score of the heading or FAQ question it sits under is added, so that "2.1 The
Policyholder may review this Policy within 15 days" answers a question about the free look period. The sum is
weighted by the passage's rank, and raised when the question asks for a number of a kind (days, months, an age,
money, a percentage) that the sentence holds.

The answer is the best sentence, joined by its neighbours of the same clause when they score nearly as well or
when it is only a lead-in ("…如下："), in document order, each with its [n]. Nothing is paraphrased, so no
figure can appear that the sources do not contain.

Dense similarity is not used: the offline embedder costs tens of milliseconds per sentence, seconds per
question, while the passages' dense rank already carries what it knows.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rag.lexical import tokenize
from rag.numbers import Unit, find_numbers
from rag.records import PATH_SEPARATOR, Passage
from rag.text import CITATION_MARKER, CJK_CHARS, HEADING_LINE, INLINE_HEADING, has_cjk, sentence_spans

__all__ = ["extractive_answer", "wanted_units"]

# Tuned on the customer-worded answer sets (scripts/eval_answers.py); see extractive_answer.
_K1, _B = 1.2, 0.5  # BM25 at sentence level: sentences vary less in length than chunks
_CONTEXT_WEIGHT = 1.5  # share of the heading's (or FAQ question's) score each sentence under it gets
_RANK_DECAY = 0.15  # a sentence of the n-th passage (from 0) weighs 1 / (1 + decay * n)
_TOP_BONUS = 0.25  # and one of the best passage 1 + bonus more
_PRIOR = 0.15  # added to every sentence's score (the best one's is 1) before the rank weighs it
_NUMBER_BONUS = 0.6  # a sentence holding a number of the kind the question asks for
_NO_NUMBER = 0.7  # a numeric question: a sentence with no number at all is worth this share
_OTHER_NUMBER = 0.5  # a numeric question: a sentence whose numbers are all of another kind
_NEIGHBOUR = 0.6  # a neighbour joins the best sentence when it scores this share of it
_SHORT_CJK, _SHORT_WORDS = 12, 6  # a best sentence this short takes the sentence after it
_MIN_CJK, _MIN_WORDS = 6, 3  # shorter than both, a fragment answers nothing

_WORD = re.compile(r"[A-Za-z0-9]+")
_CJK = re.compile(f"[{CJK_CHARS}]")
_SENTENCE_PUNCT = re.compile(r"[。！？；：，、,;:!?]|\.(?:\s|$)")
# A line that asks the question of an FAQ entry, and the mark of the line that answers it.
_QUESTION_LINE = re.compile(r"^\s*(?:#{1,6}\s+.*[？?]\s*$|(?:问|Q|Question)\s*\d*\s*[：:.．])", re.IGNORECASE)
_QUESTION_MARK = re.compile(r"^\s*(?:#{1,6}\s+|(?:问|Q|Question)\s*\d*\s*[：:.．]\s*)", re.IGNORECASE)
_LEADER = re.compile(r"(?:\.\s?|…|·|_){5,}")  # the dots that lead a table of contents entry to its page
# A list item: "1. …", "（2）…", "a. …", "一、…".
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.、．)）]|[（(]\d+[)）]|[a-z][.)]\s|[（(]?[一二三四五六七八九十]+[、)）])")
_ORDINAL = re.compile(r"(?:\d+|[A-Za-z]|[ivx]+)[.．]")
_ANSWER_MARK = re.compile(r"^\s*(?:答|A|Answer)\s*[：:.．]\s*", re.IGNORECASE)


_LIST_LIMIT = 6  # sentences at most when the best one introduces a list: the lead-in and its items


@dataclass(frozen=True)
class _Candidate:
    rank: int  # the passage's position among those given, 0 for the best
    n: int  # the passage's number, cited as [n]
    order: int  # position among the passage's candidates
    text: str
    group: tuple[str | None, int]  # the clause it belongs to: neighbours must share it
    context: str  # the heading (or FAQ question) it sits under
    item: bool  # the start of a list item ("2. 被保险人酒后驾驶…")


def extractive_answer(
    question: str,
    passages: Sequence[Passage],
    max_sentences: int = 3,
    *,
    idf: Callable[[str], float] | None = None,
    expand: Callable[[str], list[str]] | None = None,
) -> str:
    """The sentence(s) of the passages that best answer `question`, verbatim, each followed by its [n].

    `idf(term)` weighs a token (as `rag.lexical.tokenize` gives it) by its rarity in the whole index; without
    it the candidates' own document frequencies are used. `expand(question)` gives more terms (the documents'
    words for the customer's) to add to the question's tokens. An empty string when no passage holds a
    sentence that could answer (front matter only, or nothing at all).
    """
    candidates = [c for rank, passage in enumerate(passages) for c in _candidates(passage, rank)]
    if not candidates:
        return ""
    terms = set(tokenize(question))
    for extra in expand(question) if expand else []:
        terms.update(tokenize(extra))
    scores = _scores(question, terms, candidates, idf)
    best = max(range(len(candidates)), key=lambda i: (scores[i], -candidates[i].rank, -candidates[i].order))
    chosen = _with_neighbours(best, candidates, scores, max_sentences)
    return "\n".join(f"{candidates[i].text} [{candidates[i].n}]" for i in chosen)


# ------------------------------------------------------------------------------------------- candidates


def _candidates(passage: Passage, rank: int) -> list[_Candidate]:
    """The sentences (table rows, FAQ answer lines) of a passage that may answer a question."""
    if passage.kind == "front":
        return []
    labels = _labels(passage)
    context = passage.clause or (passage.heading_path[-1] if passage.heading_path else "")
    heading_count = 0
    found: list[_Candidate] = []
    lines = list(_lines(passage.text))
    if passage.kind == "faq" and lines:
        context = _QUESTION_MARK.sub("", passage.text[slice(*lines[0])]).strip()
        lines = lines[1:]
    for start, end in lines:
        line = passage.text[start:end]
        if _QUESTION_LINE.match(line) or _is_heading(line, labels):
            context, heading_count = _QUESTION_MARK.sub("", line).strip(), heading_count + 1
            continue
        start += _lead(line)
        inline = INLINE_HEADING.match(passage.text[start:end])
        if inline:
            context, heading_count, start = inline[1], heading_count + 1, start + inline.end()
        # a list item's clause is "2.4责任免除 › 2": it belongs with the clause it is an item of
        clause = passage.clause_at(start)
        group = (clause.split(PATH_SEPARATOR)[0] if clause else None, heading_count)
        item = _LIST_ITEM.match(passage.text[start:end]) is not None
        for k, text in enumerate(_units(passage, start, end)):
            found.append(_Candidate(rank, passage.n, len(found), text, group, context, item and k == 0))
    return found


def _units(passage: Passage, start: int, end: int) -> Iterator[str]:
    """The answering units of one line: the whole line for a table row, else its sentences with content."""
    line = passage.text[start:end]
    if passage.kind == "table":
        yield line
        return
    carried: int | None = None  # a list ordinal that the splitter cut off ("2." of "2. 被保险人…")
    for s, e in sentence_spans(line):
        if _ORDINAL.fullmatch(line[s:e]):
            carried = s if carried is None else carried
            continue
        sentence = line[s if carried is None else carried : e]
        carried = None
        if _has_content(sentence) and not HEADING_LINE.match(sentence):
            yield sentence


def _lines(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each non-blank line of `text`, without the whitespace around it."""
    offset = 0
    for raw in text.split("\n"):
        stripped = raw.strip()
        if stripped:
            left = offset + len(raw) - len(raw.lstrip())
            yield left, left + len(stripped)
        offset += len(raw) + 1


def _lead(line: str) -> int:
    """How many characters of a line to skip: an answer mark ("答：", "A:")."""
    mark = _ANSWER_MARK.match(line)
    return mark.end() if mark else 0


def _labels(passage: Passage) -> set[str]:
    """The passage's heading path and clause labels, compared without spaces."""
    labels = {*passage.heading_path, *(label for _, label in passage.clause_spans)}
    if passage.clause:
        labels.add(passage.clause)
    return {_bare(label) for label in labels if label.strip()}


def _bare(text: str) -> str:
    return "".join(CITATION_MARKER.sub("", text).lstrip("#").split()).casefold()


def _is_heading(line: str, labels: set[str]) -> bool:
    """A heading or a title line: it names a topic and answers nothing on its own."""
    stripped = line.strip()
    if stripped.startswith("#") or HEADING_LINE.match(stripped):
        return True
    bare = _bare(stripped)
    if len(bare) >= 2 and any(label.startswith(bare) for label in labels):
        return True
    return _is_title(stripped)


def _is_title(line: str) -> bool:
    """A short line with no sentence punctuation and no figures: a title ("中华借款人意外伤害保险条款",
    "2. Free Look Period", "HARBOUR MUTUAL GLOBAL HEALTH POLICY - POLICY WORDING (EXCERPT)")."""
    body = re.sub(r"^(?:\d+(?:\.\d+)*\.?|[A-Za-z]\.|[（(]?[一二三四五六七八九十]+[、.)）])\s*", "", line)
    if _SENTENCE_PUNCT.search(body) or re.search(r"\d", body):
        return False
    if has_cjk(body):
        return len(_CJK.findall(body)) <= 16
    words = _WORD.findall(body)
    if not words or len(words) > 10:
        return False
    capitalised = sum(1 for word in words if word[0].isupper() or len(word) <= 3)
    return capitalised == len(words)


def _has_content(sentence: str) -> bool:
    """Long enough to say something (at least a few CJK characters or words), and not a table of contents
    entry ("保险责任 ........ 3")."""
    bare = CITATION_MARKER.sub("", sentence)
    if _LEADER.search(bare):
        return False
    return len(_CJK.findall(bare)) >= _MIN_CJK or len(_WORD.findall(bare)) >= _MIN_WORDS


# ---------------------------------------------------------------------------------------------- scoring


def _scores(
    question: str, terms: set[str], candidates: list[_Candidate], idf: Callable[[str], float] | None
) -> list[float]:
    """Each candidate's score: BM25 of its sentence plus a share of its heading's, by rank and numbers."""
    tokens = [Counter(tokenize(c.text)) for c in candidates]
    contexts = {c.context: Counter(tokenize(c.context)) for c in candidates}
    weigh = idf or _local_idf(tokens)
    weights = {term: weigh(term) for term in terms}
    sentence_len = sum(sum(t.values()) for t in tokens) / len(tokens) or 1.0
    context_len = sum(sum(t.values()) for t in contexts.values()) / len(contexts) or 1.0
    heading_score = {text: _bm25(weights, counts, context_len) for text, counts in contexts.items()}
    lexical = [
        _bm25(weights, counts, sentence_len) + _CONTEXT_WEIGHT * heading_score[candidate.context]
        for candidate, counts in zip(candidates, tokens, strict=True)
    ]
    top = max(lexical) or 1.0
    wanted = wanted_units(question)
    scores = []
    for candidate, score in zip(candidates, lexical, strict=True):
        score = score / top + _PRIOR  # the prior: what retrieval knows of a passage the words cannot show
        score /= 1 + _RANK_DECAY * candidate.rank
        score *= 1 + (_TOP_BONUS if candidate.rank == 0 else 0)
        scores.append(score * _number_factor(candidate.text, wanted))
    return scores


def _bm25(weights: dict[str, float], counts: Counter[str], average_length: float) -> float:
    length = sum(counts.values())
    norm = _K1 * (1 - _B + _B * length / average_length)
    return sum(w * counts[t] * (_K1 + 1) / (counts[t] + norm) for t, w in weights.items() if counts[t])


def _local_idf(tokens: list[Counter[str]]) -> Callable[[str], float]:
    """The BM25 idf of a term over the candidates themselves, each one a document."""
    df: Counter[str] = Counter()
    for counts in tokens:
        df.update(counts.keys())
    n = len(tokens)
    return lambda term: math.log1p((n - df[term] + 0.5) / (df[term] + 0.5))


def _number_factor(text: str, wanted: frozenset[Unit] | None) -> float:
    """How a numeric question weighs a sentence: up with a number of the kind asked for, down with none."""
    if wanted is None:
        return 1.0
    mentions = find_numbers(text)
    if not mentions:
        return _NO_NUMBER
    if not wanted or any(m.unit in wanted for m in mentions):
        return 1 + _NUMBER_BONUS
    return _OTHER_NUMBER


_DURATION: frozenset[Unit] = frozenset({"day", "week", "month", "year", "hour"})
_MONEY: frozenset[Unit] = frozenset({"money", "percent"})
# What a question's wording asks for: (pattern, the units that answer it). Every match counts.
_ASKS: tuple[tuple[re.Pattern[str], frozenset[Unit]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), units)
    for pattern, units in (
        (r"(?:多少|几)(?:个)?(?:工作|自然)?[天日]|how many (?:\w+ )?days", frozenset[Unit]({"day"})),
        (r"(?:多少|几)个?(?:周|星期|礼拜)(?!岁)|how many weeks", frozenset[Unit]({"week"})),
        (r"(?:多少|几)个月|how many months", frozenset[Unit]({"month"})),
        (r"(?:多少|几)年|how many years", frozenset[Unit]({"year"})),
        (r"多大|(?:多少|几)周?岁|年龄|年纪|岁数|how old|what age|\bages?\b", frozenset[Unit]({"age", "year"})),
        (r"比例|百分之|百分比|几成|percent|proportion|share of", frozenset[Unit]({"percent"})),
        (r"多少钱|(?:多少|几)[万千百]?元|[赔报付退给]多少|保额|金额|限额|how much|\bcost|\bprice|\bfee", _MONEY),
        (r"多久|多长|期限|时效|什么时候|何时|哪天|how long|\bwhen\b|deadline|how soon|how quickly|within", _DURATION),
    )
)
_ANY_NUMBER = re.compile(r"多少|几|how many|what number|how much", re.IGNORECASE)


def wanted_units(question: str) -> frozenset[Unit] | None:
    """The kinds of number that answer `question`: None when it asks for none, empty when any number will do
    ("算几类职业？"), else the units ("等待期多少天" → days, "多大年纪可以投保" → ages)."""
    wanted: set[Unit] = set()
    for pattern, units in _ASKS:
        if pattern.search(question):
            wanted |= units
    if wanted:
        return frozenset(wanted)
    return frozenset() if _ANY_NUMBER.search(question) else None


# -------------------------------------------------------------------------------------------- selection


def _with_neighbours(best: int, candidates: list[_Candidate], scores: list[float], limit: int) -> list[int]:
    """The best candidate and the neighbours of its clause that belong with it, in document order: those that
    score nearly as well, the sentences after a lead-in (a short one, or one ending with a colon), and the
    lead-in of the list the best one is an item of."""
    top = candidates[best]
    chosen = [best]
    lead = _list_lead_in(best, candidates)
    if lead is not None and limit > 1:
        chosen.append(lead)
    low, high = min(chosen), best
    lead_in = _is_lead_in(top.text)
    if lead_in and _ends_with_colon(top.text):  # "…须提供下列证明和资料：" is answered by the list that follows
        limit = max(limit, _LIST_LIMIT)
    while len(chosen) < limit:
        options = []
        for i in (low - 1, high + 1):
            if not 0 <= i < len(candidates) or not _same_clause(candidates[i], top):
                continue
            if (i == high + 1 and lead_in) or scores[i] >= _NEIGHBOUR * scores[best]:
                options.append(i)
        if not options:
            break
        pick = max(options, key=lambda i: scores[i])
        chosen.append(pick)
        low, high = min(low, pick), max(high, pick)
    return sorted(chosen)


def _list_lead_in(item: int, candidates: list[_Candidate]) -> int | None:
    """For a list item, the sentence that opens its list ("…不承担给付保险金的责任：") in the same clause."""
    if not candidates[item].item:
        return None
    for i in range(item - 1, -1, -1):
        if not _same_clause(candidates[i], candidates[item]):
            return None
        if CITATION_MARKER.sub("", candidates[i].text).rstrip().endswith((":", "：")):
            return i
    return None


def _same_clause(a: _Candidate, b: _Candidate) -> bool:
    return a.n == b.n and a.group == b.group


def _ends_with_colon(sentence: str) -> bool:
    return CITATION_MARKER.sub("", sentence).rstrip().endswith((":", "："))


def _is_lead_in(sentence: str) -> bool:
    bare = CITATION_MARKER.sub("", sentence).strip()
    short = len(_CJK.findall(bare)) < _SHORT_CJK and len(_WORD.findall(bare)) < _SHORT_WORDS
    return short or bare.endswith((":", "："))
