"""The multi-turn evaluation set and its turn-by-turn scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DATA, REPO, SHARED_EVAL

from rag.answer_eval import LANGUAGES
from rag.dialogue_eval import (
    format_dialogue_table,
    is_dialogue_set,
    load_dialogues,
    run_dialogue_eval,
)
from rag.errors import DatasetError
from rag.records import Answer, Message, Passage

SET = REPO / "tests" / "data" / "answers" / "dialogues.jsonl"
DOCS = {
    "data": DATA,
    "policies_zh": SHARED_EVAL / "policies_zh",
    "policies_en": SHARED_EVAL / "policies_en",
    "financebench": SHARED_EVAL / "financebench_dev" / "pdfs",
}
FINANCEBENCH_FILES = ("ULTABEAUTY_2023Q4_EARNINGS.pdf", "MGMRESORTS_2022Q4_EARNINGS.pdf")


def test_the_set_has_forty_dialogues_of_two_to_four_turns_in_both_languages() -> None:
    dialogues = load_dialogues(SET)
    assert len(dialogues) >= 40 and is_dialogue_set(SET)
    assert all(2 <= len(d.turns) <= 4 for d in dialogues)
    assert {d.lang for d in dialogues} == set(LANGUAGES) and {d.set for d in dialogues} == set(DOCS)
    follow_ups = [t for d in dialogues for t in d.turns[1:]]
    assert all(t.condensed and t.condensed != t.question.question for t in follow_ups if t.question.answerable) or all(
        t.condensed for t in follow_ups
    )
    assert len({t.question.id for d in dialogues for t in d.turns}) == sum(len(d.turns) for d in dialogues)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_fact_is_on_a_listed_page_of_its_file(name: str) -> None:
    """Each gold was read from the documents: its facts stand, whitespace aside, on one of its pages."""
    from rag.loaders import discover, load_pages

    if not DOCS[name].exists():
        pytest.skip(f"{DOCS[name]} is absent: evaluation material lives beside the checkout in ../shared/eval")
    paths = [DOCS[name] / file for file in FINANCEBENCH_FILES] if name == "financebench" else [DOCS[name]]
    files, _ = discover(paths)
    pages: dict[tuple[str, int], str] = {}
    for file in files:
        for page in load_pages(file):  # a page may come as text and as table rows: both count
            key = (Path(file.path).name, page.page)
            pages[key] = pages.get(key, "") + "".join(page.text.split())
    turns = [t.question for d in load_dialogues(SET, [name]) for t in d.turns if t.question.answerable]
    assert turns
    for question in turns:
        assert all((question.file, page) in pages for page in question.pages), question
        for fact in question.facts:
            squashed = "".join(fact.split())
            assert any(squashed in pages[(question.file, page)] for page in question.pages), (question.id, fact)


def _answer(question: str, source: str, text: str, condensed: str | None = None) -> Answer:
    passage = Passage(n=1, source=source, page=1, text=text, score=1.0, chunk_id="c1")
    return Answer(question=question, answer=text, mode="extractive", passages=[passage], condensed_question=condensed)


def test_turns_are_asked_with_the_answers_given_before_and_scored_one_by_one(tmp_path: Path) -> None:
    rows = [
        {"id": "d1", "set": "data", "lang": "zh", "turns": [
            {"question": "犹豫期多长？", "answerable": True, "file": "a.md", "pages": [1], "facts": ["十五日"]},
            {"question": "那等待期呢？", "answerable": True, "file": "a.md", "pages": [1], "facts": ["30日"],
             "condensed": "等待期多长？"},
        ]},
    ]  # fmt: skip
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    seen: list[tuple[str, list[Message]]] = []
    told: list[str | None] = []

    def ask(question: str, history: list[Message]) -> Answer:
        seen.append((question, history))
        if question == "犹豫期多长？":
            return _answer(question, "a.md", "十五日。")
        if history:  # the follow-up read with its history finds the waiting period
            return _answer(question, "a.md", "30日。", "等待期多长？")
        return _answer(question, "b.md", "不知道。")

    report = run_dialogue_eval(load_dialogues(path), ask, before_turn=lambda turn: told.append(turn.condensed))
    assert told == [None, "等待期多长？"]
    assert seen[1] == ("那等待期呢？", [Message("user", "犹豫期多长？"), Message("assistant", "十五日。")])
    assert seen[2] == ("那等待期呢？", [])  # the baseline: the same follow-up alone
    assert report.summary("follow-ups").page_hit_5.rate == 1.0 and report.summary("follow-ups").fact_hit.rate == 1.0
    assert report.summary("follow-ups, no history").page_hit_5.rate == 0.0
    assert report.turns[1].condensed == "等待期多长？"
    table = format_dialogue_table(report)
    assert "first turns" in table and "100.0% (1/1)" in table and "0.0% (0/1)" in table


def test_a_follow_up_without_its_standalone_form_is_refused(tmp_path: Path) -> None:
    row = {"id": "d1", "set": "data", "lang": "en", "turns": [
        {"question": "q1", "answerable": False}, {"question": "q2", "answerable": False}]}  # fmt: skip
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(row), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 1: turn 2 is a follow-up.*condensed"):
        load_dialogues(path)


def test_rag_eval_answers_scores_a_dialogue_set_turn_by_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from rag.cli import app

    monkeypatch.chdir(tmp_path)
    rows = [line for line in SET.read_text(encoding="utf-8").splitlines() if '"set": "data"' in line][:3]
    subset = tmp_path / "dialogues.jsonl"
    subset.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["eval", "answers", str(subset), "--docs", str(DATA), "--index", str(tmp_path / "i"), "--json"],
        env={"RAG_EMBEDDER": "fake"},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    turns = report["turns"]
    assert [t["position"] for t in turns][:3] == [1, 2, 3] and len(turns) == sum(
        len(json.loads(row)["turns"]) for row in rows
    )
    assert turns[1]["question"] == "那等待期呢？" and turns[1]["condensed"] == "等待期有多长？"
    assert set(report["summary"]) == {"first turns", "follow-ups", "follow-ups, no history"}
