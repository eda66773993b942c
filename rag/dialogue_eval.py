"""Answer quality in conversations: dialogues of 2–4 turns scored turn by turn, like single questions.

A dialogue set is JSONL, one dialogue a line: {id, set, lang, turns: [turn, ...]}, each turn the fields of a
single question (`rag.answer_eval`: question, answerable, file, pages, clause, facts) plus, on a follow-up,
`condensed`: the standalone question a model should make of it (a stub model replays it, so that the
figures measure retrieval from a good condensation apart from any model's skill). `set` names the documents
the dialogue is about (the answer sets' names: data, policies_zh, ...).

Each turn is asked with the dialogue's real history (the earlier questions and the answers rag gave), and
scored as a single question is. The report compares the first turns (standalone questions) with the
follow-ups, and with the follow-ups asked without their history (what rag did before conversations).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answer_eval import (
    LANGUAGES,
    AnswerSummary,
    QuestionResult,
    Ratio,
    ingested_searcher,
    parse_question,
    read_jsonl,
    score_answer,
    summarise,
)
from rag.errors import DatasetError
from rag.records import Message

if TYPE_CHECKING:
    from rag.answer_eval import AnswerQuestion
    from rag.config import Settings
    from rag.records import Answer, RetrievalMode

GROUPS = ("first turns", "follow-ups", "follow-ups, no history")


@dataclass(frozen=True)
class DialogueTurn:
    question: AnswerQuestion
    condensed: str | None = None  # the standalone form of a follow-up, as a model should write it


@dataclass(frozen=True)
class Dialogue:
    id: str
    set: str
    lang: str
    turns: tuple[DialogueTurn, ...]


@dataclass(frozen=True)
class TurnResult:
    dialogue: str
    position: int  # 1 for the first turn
    condensed: str  # what rag retrieved with
    result: QuestionResult


@dataclass(frozen=True)
class DialogueReport:
    turns: tuple[TurnResult, ...]
    baseline: tuple[TurnResult, ...]  # follow-ups asked alone (empty when not run)

    def group(self, name: str) -> list[QuestionResult]:
        if name == GROUPS[0]:
            return [t.result for t in self.turns if t.position == 1]
        if name == GROUPS[1]:
            return [t.result for t in self.turns if t.position > 1]
        return [t.result for t in self.baseline]

    def summary(self, name: str, lang: str = "all") -> AnswerSummary:
        rows = self.group(name)
        return summarise(rows if lang == "all" else [r for r in rows if r.question.lang == lang])


def is_dialogue_set(path: Path) -> bool:
    """Does the JSONL file hold dialogues (a `turns` list on its first line) rather than single questions?"""
    try:
        with open(path, encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        return isinstance(json.loads(first), dict) and "turns" in json.loads(first)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False


def load_dialogues(path: Path, sets: Sequence[str] | None = None) -> list[Dialogue]:
    """The dialogues of a JSONL set (only those about `sets` when given); a bad line is a DatasetError naming it."""
    dialogues = [dialogue for _, dialogue in read_jsonl(path, "dialogue", _parse_dialogue)]
    dialogues = [dialogue for dialogue in dialogues if sets is None or dialogue.set in sets]
    if not dialogues:
        raise DatasetError(f"{path} holds no dialogues{' about ' + ', '.join(sets) if sets else ''}")
    return dialogues


def _parse_dialogue(row: Any) -> Dialogue:
    if not isinstance(row, dict) or not isinstance(row.get("turns"), list) or not 1 <= len(row["turns"]) <= 8:
        raise ValueError("expected {id, set, lang, turns: [1 to 8 questions]}")
    if row.get("lang") not in LANGUAGES or not isinstance(row.get("id"), str) or not isinstance(row.get("set"), str):
        raise ValueError(f"'id' and 'set' must be strings, 'lang' one of {', '.join(LANGUAGES)}")
    turns = []
    for position, turn in enumerate(row["turns"], start=1):
        if not isinstance(turn, dict):
            raise ValueError(f"turn {position} must be an object")
        question = parse_question({"id": f"{row['id']}-{position}", "lang": row["lang"], **turn})
        condensed = turn.get("condensed")
        if position > 1 and not (isinstance(condensed, str) and condensed.strip()):
            raise ValueError(f"turn {position} is a follow-up: give it its standalone form in 'condensed'")
        turns.append(DialogueTurn(question, condensed.strip() if isinstance(condensed, str) else None))
    return Dialogue(row["id"], row["set"], row["lang"], tuple(turns))


Ask = Callable[[str, list[Message]], "Answer"]


def run_dialogue_eval(
    dialogues: Sequence[Dialogue],
    ask: Ask,
    *,
    before_turn: Callable[[DialogueTurn], None] = lambda turn: None,
    baseline: bool = True,
) -> DialogueReport:
    """Ask each dialogue's turns in order with the history so far; `before_turn` runs before each question
    (the stub model is told the condensation to replay). With `baseline`, each follow-up is asked again alone."""
    import time

    turns: list[TurnResult] = []
    alone: list[TurnResult] = []
    for dialogue in dialogues:
        history: list[Message] = []
        for position, turn in enumerate(dialogue.turns, start=1):
            before_turn(turn)
            started = time.perf_counter()
            answer = ask(turn.question.question, list(history))
            result = score_answer(turn.question, answer, time.perf_counter() - started)
            turns.append(TurnResult(dialogue.id, position, answer.condensed_question or answer.question, result))
            history += [Message("user", turn.question.question), Message("assistant", answer.answer)]
            if baseline and position > 1:
                started = time.perf_counter()
                single = ask(turn.question.question, [])
                alone.append(
                    TurnResult(dialogue.id, position, single.question, score_answer(turn.question, single, 0.0))
                )
    return DialogueReport(tuple(turns), tuple(alone))


def _cell(ratio: Ratio) -> str:
    return "-" if ratio.rate is None else f"{100 * ratio.rate:.1f}% ({ratio.hits}/{ratio.total})"


def format_dialogue_table(report: DialogueReport, title: str = "dialogues") -> str:
    """One row per group and language: questions, refusals, page hit@1/@5, clause, facts."""
    header = ["turns", "lang", "questions", "answerable refused", "unanswerable refused", "page hit@1",
              "page hit@5", "clause-correct", "facts"]  # fmt: skip
    rows = []
    for group in GROUPS:
        if not report.group(group):
            continue
        for lang in (*LANGUAGES, "all"):
            s = report.summary(group, lang)
            if not s.questions:
                continue
            figures = (s.answerable_refused, s.unanswerable_refused, s.page_hit_1, s.page_hit_5, s.clause_correct,
                       s.fact_hit)  # fmt: skip
            rows.append([group, lang, str(s.questions), *(_cell(f) for f in figures)])
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([title, line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def format_dialogue_failures(report: DialogueReport) -> str:
    """Each failed turn, with the question rag retrieved with."""
    blocks = [
        f"{t.result.question.id} ({t.result.question.lang}, {t.result.mode}) {t.result.question.question}\n"
        f"  retrieved with: {t.condensed}\n  {'; '.join(t.result.failures)}"
        for t in report.turns
        if t.result.failures
    ]
    return "failures:\n" + "\n".join(blocks) if blocks else "failures: none"


def dialogue_report_json(report: DialogueReport) -> dict[str, Any]:
    from dataclasses import asdict

    summary = {
        group: {lang: asdict(report.summary(group, lang)) for lang in (*LANGUAGES, "all")}
        for group in GROUPS
        if report.group(group)
    }
    turns = [
        {"id": t.result.question.id, "position": t.position, "question": t.result.question.question,
         "condensed": t.condensed, "mode": t.result.mode, "failures": list(t.result.failures)}
        for t in report.turns
    ]  # fmt: skip
    return {"summary": summary, "turns": turns}


def evaluate_dialogues(
    set_path: Path,
    settings: Settings,
    docs: Sequence[Path] = (),
    mode: RetrievalMode | None = None,
    sets: Sequence[str] | None = None,
    *,
    before_turn: Callable[[DialogueTurn], None] = lambda turn: None,
    baseline: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> DialogueReport:
    """Load the dialogues (about `sets`, or all), ingest `docs`, then ask every turn through `ask`'s path."""
    from rag.qa import answer_question

    dialogues = load_dialogues(set_path, sets)
    searcher = ingested_searcher(settings, docs, log)

    def ask(question: str, history: list[Message]) -> Answer:
        return answer_question(question, settings, history=history, searcher=searcher, mode=mode)

    return run_dialogue_eval(dialogues, ask, before_turn=before_turn, baseline=baseline)
