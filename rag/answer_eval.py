"""Answer quality: every question of a set goes through the whole ask path and is scored on what the user sees.

A set is JSONL, one question a line: {id, lang, question, answerable, file, pages, clause, facts}. `file` is
the gold document's file name, `pages` its 1-based pages, `clause` a clause number ("2.4", "第十条", "Excl18")
or a heading, `facts` strings the answer must contain. Scores (per language and overall): wrong and right
refusals, page hit@1/@5 over the passages, citations naming the gold clause, facts found, median seconds.
"""

from __future__ import annotations

import json
import re
import statistics
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rag.errors import ConfigError, DatasetError
from rag.numbers import CITATION_MARKER, find_numbers

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.records import Answer, Citation, Passage, RetrievalMode
    from rag.retrieval import Searcher

T = TypeVar("T")

LANGUAGES = ("zh", "en")
HEAD_CHARS = 120  # characters of each answer shown with its failures


@dataclass(frozen=True)
class AnswerQuestion:
    id: str
    lang: str  # "zh" or "en"
    question: str
    answerable: bool
    file: str | None = None  # file name (no folder) of the gold document
    pages: tuple[int, ...] = ()  # 1-based
    clause: str | None = None
    facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ratio:
    hits: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.hits / self.total if self.total else None


@dataclass(frozen=True)
class QuestionResult:
    question: AnswerQuestion
    mode: str
    seconds: float
    answer_head: str
    cited_clauses: tuple[str, ...]
    page_hit_1: bool | None  # None: not scored (unanswerable)
    page_hit_5: bool | None
    clause_ok: bool | None  # None: not scored (unanswerable, refused, or no gold clause)
    missing_facts: tuple[str, ...]
    failures: tuple[str, ...]


@dataclass(frozen=True)
class AnswerSummary:
    questions: int
    answerable_refused: Ratio  # of answerable questions: lower is better
    unanswerable_refused: Ratio  # of unanswerable questions: higher is better
    page_hit_1: Ratio
    page_hit_5: Ratio
    clause_correct: Ratio  # of answerable questions answered, with a gold clause
    fact_hit: Ratio  # of answerable questions; a refusal holds no fact
    median_seconds: float | None


@dataclass(frozen=True)
class AnswerReport:
    results: tuple[QuestionResult, ...]
    summary: dict[str, AnswerSummary]  # "zh", "en", "all"


# ------------------------------------------------------------------------------------------------ the set


def read_jsonl(path: Path, what: str, parse: Callable[[Any], T]) -> Iterator[tuple[int, T]]:
    """Each non-empty line of a JSONL set parsed by `parse`, with its line number; an unreadable file or a bad
    line is a DatasetError naming the file and the line (`what`: "question", "dialogue")."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read the {what} set {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, parse(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}, line {number}: not valid JSON ({exc}): write one object per line") from None
        except ValueError as exc:
            raise DatasetError(f"{path}, line {number}: {exc}") from None


def load_answer_set(path: Path, limit: int | None = None) -> list[AnswerQuestion]:
    """The questions of a JSONL set (the first `limit` of them); a malformed line is a DatasetError naming it."""
    questions: list[AnswerQuestion] = []
    seen: set[str] = set()
    for number, question in read_jsonl(path, "answer", _parse_question):
        if question.id in seen:
            raise DatasetError(f"{path}, line {number}: id {question.id!r} is used twice: give each question its own")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise DatasetError(f"{path} holds no questions: write one JSON object per line")
    return questions if limit is None else questions[:limit]


_FIELDS = "{id, lang, question, answerable, file, pages, clause, facts}"
_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("id", lambda v: isinstance(v, str) and bool(v.strip()), "'id' must be a non-empty string"),
    ("lang", lambda v: v in LANGUAGES, f"'lang' must be one of {', '.join(LANGUAGES)}"),
    ("question", lambda v: isinstance(v, str) and bool(v.strip()), "'question' must be a non-empty string"),
    ("answerable", lambda v: isinstance(v, bool), "'answerable' must be true or false"),
    ("file", lambda v: v is None or isinstance(v, str), "'file' must be a file name or null"),
    (
        "pages",
        lambda v: v is None or (isinstance(v, list) and all(type(p) is int and p >= 1 for p in v)),
        "'pages' must be a list of page numbers from 1",
    ),
    ("clause", lambda v: v is None or isinstance(v, str), "'clause' must be a string or null"),
    (
        "facts",
        lambda v: v is None or (isinstance(v, list) and all(isinstance(f, str) for f in v)),
        "'facts' must be a list of strings",
    ),
)


def _parse_question(row: Any) -> AnswerQuestion:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object {_FIELDS}, got {type(row).__name__}")
    problems = [message for key, valid, message in _RULES if not valid(row.get(key))]
    if row.get("answerable") is True and not (row.get("file") and row.get("pages")):
        problems.append("an answerable question needs its 'file' and 'pages'")
    if problems:
        raise ValueError(f"{'; '.join(problems)} (expected {_FIELDS})")
    return AnswerQuestion(
        id=row["id"],
        lang=row["lang"],
        question=row["question"].strip(),
        answerable=row["answerable"],
        file=_basename(row["file"]) if row.get("file") else None,
        pages=tuple(row.get("pages") or ()),
        clause=(row.get("clause") or "").strip() or None,
        facts=tuple(row.get("facts") or ()),
    )


parse_question = _parse_question  # one question of a set, or one turn of a dialogue (rag.dialogue_eval)


# ----------------------------------------------------------------------------------------------- matching

_ARTICLE_UNITS = "条章节款项"
_CN_ARTICLE = re.compile(rf"第\s*([零〇一二两三四五六七八九十百千]+)\s*([{_ARTICLE_UNITS}])")
_GOLD_ARTICLE = re.compile(rf"第(\d+)[{_ARTICLE_UNITS}]")
# A clause number, maybe after a word ("2.4", "3.", "excl18", "section 5.1"), then a heading or nothing.
_GOLD_NUMBER = re.compile(r"((?:[a-z][a-z-]*\s?)?\d+(?:\.\d+)*)\.?(?=\s|$)")


def _normalise(text: str) -> str:
    """NFKC (full-width to ASCII), one space for any whitespace, lower case, 第十条 written 第10条."""
    text = " ".join(unicodedata.normalize("NFKC", text).split()).casefold()
    return _CN_ARTICLE.sub(lambda m: f"第{_cn_value(m.group(1))}{m.group(2)}", text)


def _cn_value(numeral: str) -> str:
    found = find_numbers(f"第{numeral}条")  # rag.numbers reads a lone 十 as a number only before a unit
    return str(int(found[0].value)) if len(found) == 1 and found[0].text == numeral else numeral


def clause_matches(label: str | None, gold: str) -> bool:
    """Does a citation's clause label name the gold clause?

    - 第X条/章/节/款/项: the same unit and value (第十条 == 第10条; not 第一百条, not 第十章).
    - a clause number, alone or before a heading ("2.4", "2.4 责任免除", "Excl18", "Section 3"): the label holds
      it with no letter, digit or "." before it and no digit after: "2.4.1" (a sub-clause) matches 2.4;
      "2.41", "12.4", "1.2.4" and "Excl180" do not.
    - anything else is a heading: the label contains it, case and whitespace ignored.
    """
    if not label:
        return False
    label_n, gold_n = _normalise(label), _normalise(gold)
    if not gold_n:
        return False
    article = _GOLD_ARTICLE.match(gold_n.replace(" ", ""))
    if article:
        return article.group(0) in label_n.replace(" ", "")
    number = _GOLD_NUMBER.match(gold_n)
    if number:
        return re.search(rf"(?<![a-z0-9.]){re.escape(number.group(1))}(?!\d)", label_n) is not None
    return gold_n.replace(" ", "") in label_n.replace(" ", "")


def _basename(source: str) -> str:
    return Path(source.replace("\\", "/")).name


def _from_file(record: Passage | Citation, file: str | None) -> bool:
    return file is None or any(_basename(s) == file for s in (record.source, *record.sources))


def page_hit(passages: Sequence[Passage], question: AnswerQuestion, k: int) -> bool:
    """Is a passage among the first k from the gold file, on a gold page? (All its pages, where it has them.)"""
    for passage in passages[:k]:
        pages = getattr(passage, "pages", None) or (passage.page,)
        if _from_file(passage, question.file) and not set(question.pages).isdisjoint(pages):
            return True
    return False


def _squash(text: str) -> str:
    """NFKC, citation markers and all whitespace removed, lower case (so Latin words in a Chinese answer too)."""
    text = CITATION_MARKER.sub("", unicodedata.normalize("NFKC", text))
    return "".join(text.split()).casefold()


def missing_facts(answer_text: str, facts: Sequence[str]) -> tuple[str, ...]:
    held = _squash(answer_text)
    return tuple(fact for fact in facts if _squash(fact) not in held)


# ---------------------------------------------------------------------------------------------- scoring


def run_answer_eval(
    questions: Sequence[AnswerQuestion],
    ask: Callable[[str], Answer],
    clock: Callable[[], float] = time.perf_counter,
) -> AnswerReport:
    """Ask every question (timed by `clock`) and score the answers; `ask` is the real ask path or a stand-in."""
    results = []
    for question in questions:
        started = clock()
        answer = ask(question.question)
        results.append(score_answer(question, answer, clock() - started))
    return report_of(results)


def report_of(results: Sequence[QuestionResult]) -> AnswerReport:
    """The summary per language and overall of scored questions (of one set, or of several together)."""
    summary = {lang: summarise([r for r in results if r.question.lang == lang]) for lang in LANGUAGES}
    summary["all"] = summarise(results)
    return AnswerReport(results=tuple(results), summary=summary)


def score_answer(question: AnswerQuestion, answer: Answer, seconds: float) -> QuestionResult:
    refused = answer.mode == "refused"
    labels = tuple(f"{_basename(c.source)}: {c.clause or '(no clause)'}" for c in answer.citations)
    hit_1 = hit_5 = clause_ok = None
    missing: tuple[str, ...] = ()
    failures: list[str] = []
    if not question.answerable:
        if not refused:
            failures.append("not refused")
    else:
        hit_1, hit_5 = page_hit(answer.passages, question, 1), page_hit(answer.passages, question, 5)
        if question.clause and not refused:
            clause_ok = any(
                clause_matches(c.clause, question.clause) for c in answer.citations if _from_file(c, question.file)
            )
        missing = question.facts if refused else missing_facts(answer.answer, question.facts)
        failures += ["refused wrongly"] if refused else []
        failures += [] if hit_1 else ["page miss @1"]
        failures += [] if hit_5 else ["page miss @5"]
        if clause_ok is False:
            failures.append(f"wrong clause (wanted {question.clause!r}; cited {'; '.join(labels) or 'nothing'})")
        if missing:
            failures.append(f"facts missing: {', '.join(repr(f) for f in missing)}")
    return QuestionResult(
        question=question,
        mode=answer.mode,
        seconds=seconds,
        answer_head=" ".join(answer.answer.split())[:HEAD_CHARS],
        cited_clauses=labels,
        page_hit_1=hit_1,
        page_hit_5=hit_5,
        clause_ok=clause_ok,
        missing_facts=missing,
        failures=tuple(failures),
    )


def summarise(results: Sequence[QuestionResult]) -> AnswerSummary:
    answerable = [r for r in results if r.question.answerable]
    unanswerable = [r for r in results if not r.question.answerable]
    clause_scored = [r for r in answerable if r.clause_ok is not None]

    def ratio(rows: Sequence[QuestionResult], test: Callable[[QuestionResult], bool]) -> Ratio:
        return Ratio(sum(1 for r in rows if test(r)), len(rows))

    return AnswerSummary(
        questions=len(results),
        answerable_refused=ratio(answerable, lambda r: r.mode == "refused"),
        unanswerable_refused=ratio(unanswerable, lambda r: r.mode == "refused"),
        page_hit_1=ratio(answerable, lambda r: bool(r.page_hit_1)),
        page_hit_5=ratio(answerable, lambda r: bool(r.page_hit_5)),
        clause_correct=ratio(clause_scored, lambda r: bool(r.clause_ok)),
        fact_hit=ratio(answerable, lambda r: r.mode != "refused" and not r.missing_facts),
        median_seconds=statistics.median(r.seconds for r in results) if results else None,
    )


# --------------------------------------------------------------------------------------------- rendering

_ROWS = (
    ("answerable refused", "answerable_refused"),
    ("unanswerable refused", "unanswerable_refused"),
    ("page hit@1", "page_hit_1"),
    ("page hit@5", "page_hit_5"),
    ("clause-correct citations", "clause_correct"),
    ("facts in answer", "fact_hit"),
)


def _cell(ratio: Ratio) -> str:
    return "-" if ratio.rate is None else f"{100 * ratio.rate:.1f}% ({ratio.hits}/{ratio.total})"


def format_answer_table(report: AnswerReport, title: str = "answer quality") -> str:
    """One row per figure, one column per language and overall; shares as % (count/denominator)."""
    columns = [*LANGUAGES, "all"]
    summaries = [report.summary[c] for c in columns]
    rows = [["questions", *(str(s.questions) for s in summaries)]]
    rows += [[name, *(_cell(getattr(s, attr)) for s in summaries)] for name, attr in _ROWS]
    rows.append(
        ["median s/question", *("-" if s.median_seconds is None else f"{s.median_seconds:.3f}" for s in summaries)]
    )
    header = ["", *columns]
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            [cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([title, line(header), rule, *(line(row) for row in rows)])


def format_failures(report: AnswerReport) -> str:
    """Each question with a failed check: its id, language, question, the checks, the answer's beginning."""
    blocks = [
        f"{r.question.id} ({r.question.lang}, {r.mode}) {r.question.question}\n"
        f"  {'; '.join(r.failures)}\n  answer: {r.answer_head}"
        for r in report.results
        if r.failures
    ]
    return "failures:\n" + "\n".join(blocks) if blocks else "failures: none"


def answer_report_json(report: AnswerReport) -> dict[str, Any]:
    def summary(s: AnswerSummary) -> dict[str, Any]:
        data = asdict(s)
        for _, attr in _ROWS:
            data[attr]["rate"] = getattr(s, attr).rate
        return data

    return {
        "summary": {name: summary(s) for name, s in report.summary.items()},
        "questions": [
            {key: getattr(r.question, key) for key in ("id", "lang", "question", "answerable")}
            | {key: value for key, value in asdict(r).items() if key != "question"}
            for r in report.results
        ],
    }


# --------------------------------------------------------------------------------------- the real ask path


def evaluate_answers(
    set_path: Path,
    settings: Settings,
    docs: Sequence[Path] = (),
    mode: RetrievalMode | None = None,
    limit: int | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> AnswerReport:
    """Load the set, ingest `docs` (unchanged files are skipped), then ask each question through `ask`'s path."""
    questions = load_answer_set(set_path, limit)
    if mode is not None and mode not in ("dense", "lexical", "hybrid"):
        raise ConfigError(f"unknown retrieval mode {mode!r}: use dense, lexical or hybrid")
    return run_answer_eval(questions, _asker(settings, docs, mode, log))


def _asker(
    settings: Settings, docs: Sequence[Path], mode: RetrievalMode | None, log: Callable[[str], None]
) -> Callable[[str], Answer]:
    """Every question asked through `ask`'s path, over the index's one Searcher."""
    from rag.qa import answer_question

    searcher = ingested_searcher(settings, docs, log)
    return lambda question: answer_question(question, settings, searcher=searcher, mode=mode)


def ingested_searcher(settings: Settings, docs: Sequence[Path], log: Callable[[str], None]) -> Searcher:
    """The one place an evaluation knows the index: ingest `docs`, then the index's one Searcher."""
    from rag.index import Index
    from rag.ingest import ingest_paths

    index = Index(settings)
    if docs:
        ingested = ingest_paths(docs, index)
        for failure in ingested.failed:
            log(f"failed: {failure.error}")
        log(f"ingested: added {ingested.added}, updated {ingested.updated}, unchanged {ingested.unchanged}")
    return index.searcher()
