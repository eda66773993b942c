"""`rag eval answers`: the metric arithmetic on hand-built answers, clause matching, the set's errors, the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.answer_eval import (
    AnswerQuestion,
    answer_report_json,
    clause_matches,
    format_answer_table,
    format_failures,
    load_answer_set,
    run_answer_eval,
)
from rag.cli import app
from rag.errors import DatasetError, RagError
from rag.records import Answer, AnswerMode, Citation, Passage

# ------------------------------------------------------------------------------------ hand-built answers


def _passage(n: int, source: str, page: int, clause: str | None = None, sources: tuple[str, ...] = ()) -> Passage:
    return Passage(n=n, source=source, page=page, text="…", score=1.0, chunk_id=f"c{n}", clause=clause, sources=sources)


def _cite(p: Passage) -> Citation:
    return Citation(n=p.n, source=p.source, page=p.page, clause=p.clause, chunk_id=p.chunk_id, sources=p.sources)


def _answer(text: str, mode: AnswerMode, passages: list[Passage], cited: list[Passage]) -> Answer:
    return Answer(question="", answer=text, mode=mode, passages=passages, citations=[_cite(p) for p in cited])


def _q(qid: str, lang: str, answerable: bool, **gold: object) -> AnswerQuestion:
    pages = tuple(gold.pop("pages", ()))  # type: ignore[call-overload]
    facts = tuple(gold.pop("facts", ()))  # type: ignore[call-overload]
    return AnswerQuestion(id=qid, lang=lang, question=qid, answerable=answerable, pages=pages, facts=facts, **gold)  # type: ignore[arg-type]


A3 = _passage(1, "a.pdf", 3, "2.4 责任免除")
A7 = _passage(1, "/data/docs/a.pdf", 7, "第10条 保险期间")
OTHER = _passage(1, "other.pdf", 1, "9. Other")
P6 = [_passage(n, "policy.pdf", 1) for n in range(1, 6)] + [_passage(6, "policy.pdf", 3, "2.4 Free look")]
P6_CITED = _passage(1, "policy.pdf", 1, "2.41 Other cover")
DUPLICATE = _passage(1, "orig.pdf", 1, "3. FREE LOOK PERIOD", sources=("orig.pdf", "copy.pdf"))
P9 = _passage(1, "policy.pdf", 9)

# Eight questions, each checking a rule; the figures below follow from the comments by hand.
CASES: list[tuple[AnswerQuestion, Answer]] = [
    # zh-1: all right. Facts found with whitespace and the [1] marker ignored.
    (
        _q("zh-1", "zh", True, file="a.pdf", pages=[3], clause="2.4", facts=["十五日", "全部保险费"]),
        _answer("犹豫期为十五 日[1]，退还全部保险费。", "extractive", [A3], [A3]),
    ),
    # zh-2: refused although answerable; the gold page is 3rd (b.pdf page 5 is the wrong file): miss @1, hit @5.
    (
        _q("zh-2", "zh", True, file="a.pdf", pages=[5], clause="第十条", facts=["30日"]),
        _answer(
            "没有找到。", "refused", [_passage(1, "b.pdf", 5), _passage(2, "a.pdf", 4), _passage(3, "a.pdf", 5)], []
        ),
    ),
    # zh-3: right: the source's folder is ignored, 第10条 names 第十条, the full-width fact "３０日" is "30日".
    (
        _q("zh-3", "zh", True, file="a.pdf", pages=[7], clause="第十条", facts=["３０日"]),
        _answer("保险期间为30 日 [1]。", "llm", [A7], [A7]),
    ),
    # zh-4: unanswerable, answered: not refused.
    (_q("zh-4", "zh", False), _answer("大概是这样。[1]", "extractive", [OTHER], [OTHER])),
    # en-1: the gold page is 6th (miss @1 and @5); "2.41" is not clause 2.4; "15 Days" matches "15 days".
    (
        _q("en-1", "en", True, file="policy.pdf", pages=[2, 3], clause="2.4", facts=["15 days", "full premium"]),
        _answer("You may cancel within 15 Days [1].", "extractive", P6, [P6_CITED]),
    ),
    # en-2: a duplicate file: copy.pdf is among the passage's sources; the heading matches in capitals; no facts.
    (
        _q("en-2", "en", True, file="copy.pdf", pages=[1], clause="Free Look Period"),
        _answer("Yes [1].", "llm", [DUPLICATE], [DUPLICATE]),
    ),
    # en-3: no gold clause (not scored); "sixty days" is not the fact "60 days".
    (
        _q("en-3", "en", True, file="policy.pdf", pages=[9], facts=["60 days"]),
        _answer("A grace period of sixty days [1].", "llm", [P9], [P9]),
    ),
    # en-4: unanswerable, refused: right.
    (_q("en-4", "en", False), _answer("Not found.", "refused", [OTHER], [])),
]
# Seconds per question (zh-1…zh-4, en-1…en-4): medians zh (1 + 2) / 2 = 1.5, en (0.75 + 4) / 2 = 2.375,
# all (1 + 2) / 2 = 1.5.
SECONDS = [0.5, 3.0, 1.0, 2.0, 4.0, 0.25, 0.75, 8.0]


def _clock() -> Iterator[float]:
    now = 0.0
    for seconds in SECONDS:
        yield now
        now += seconds
        yield now
        now += 100.0  # time between questions does not count


def _report():  # type: ignore[no-untyped-def]
    answers = {question.question: answer for question, answer in CASES}
    clock = _clock()
    return run_answer_eval([q for q, _ in CASES], answers.__getitem__, clock=lambda: next(clock))


def test_figures_of_a_hand_built_run() -> None:
    summary = {name: answer_report_json(_report())["summary"][name] for name in ("zh", "en", "all")}

    def figures(s: dict) -> tuple:  # type: ignore[type-arg]
        names = ("answerable_refused", "unanswerable_refused", "page_hit_1", "page_hit_5", "clause_correct", "fact_hit")
        return (s["questions"], *((s[n]["hits"], s[n]["total"]) for n in names), s["median_seconds"])

    # zh: refused zh-2 of 3 answerable; zh-4 not refused; @1 zh-1, zh-3; @5 all three; clauses zh-1, zh-3
    # (zh-2 refused: not scored); facts zh-1, zh-3 (zh-2 refused holds none).
    assert figures(summary["zh"]) == (4, (1, 3), (0, 1), (2, 3), (3, 3), (2, 2), (2, 3), 1.5)
    # en: none refused of 3; en-4 refused; @1 and @5 en-2, en-3; clauses en-2 of en-1, en-2; facts en-2 only.
    assert figures(summary["en"]) == (4, (0, 3), (1, 1), (2, 3), (2, 3), (1, 2), (1, 3), 2.375)
    assert figures(summary["all"]) == (8, (1, 6), (1, 2), (4, 6), (5, 6), (3, 4), (3, 6), 1.5)
    assert summary["all"]["page_hit_5"]["rate"] == pytest.approx(5 / 6)


def test_the_table_shows_percentages_with_their_counts() -> None:
    assert format_answer_table(_report(), title="answer quality: hand-built") == "\n".join(
        [
            "answer quality: hand-built",
            "                                    zh            en          all",
            "------------------------  ------------  ------------  -----------",
            "questions                            4             4            8",
            "answerable refused         33.3% (1/3)    0.0% (0/3)  16.7% (1/6)",
            "unanswerable refused        0.0% (0/1)  100.0% (1/1)  50.0% (1/2)",
            "page hit@1                 66.7% (2/3)   66.7% (2/3)  66.7% (4/6)",
            "page hit@5                100.0% (3/3)   66.7% (2/3)  83.3% (5/6)",
            "clause-correct citations  100.0% (2/2)   50.0% (1/2)  75.0% (3/4)",
            "facts in answer            66.7% (2/3)   33.3% (1/3)  50.0% (3/6)",
            "median s/question                1.500         2.375        1.500",
        ]
    )


def test_failures_name_each_failed_check() -> None:
    report = _report()
    failures = {r.question.id: r.failures for r in report.results}
    assert failures == {
        "zh-1": (),
        "zh-2": ("refused wrongly", "page miss @1", "facts missing: '30日'"),
        "zh-3": (),
        "zh-4": ("not refused",),
        "en-1": (
            "page miss @1",
            "page miss @5",
            "wrong clause (wanted '2.4'; cited policy.pdf: 2.41 Other cover)",
            "facts missing: 'full premium'",
        ),
        "en-2": (),
        "en-3": ("facts missing: '60 days'",),
        "en-4": (),
    }
    text = format_failures(report)
    assert "zh-1" not in text and "en-2" not in text
    assert "en-1 (en, extractive) en-1\n  page miss @1; page miss @5; wrong clause" in text
    assert "  answer: You may cancel within 15 Days [1]." in text


def test_the_answer_is_cut_at_120_characters() -> None:
    question = _q("long", "en", True, file="policy.pdf", pages=[9])
    result = run_answer_eval([question], lambda _: _answer("word " * 100, "llm", [P9], [P9])).results[0]
    assert len(result.answer_head) == 120


# -------------------------------------------------------------------------------------------- clause matching


@pytest.mark.parametrize(
    ("label", "gold"),
    [
        ("2.4 责任免除", "2.4"),
        ("2.4责任免除", "2.4"),  # the loader joins a number to CJK
        ("2.4.1 酒驾", "2.4"),  # a sub-clause of 2.4
        ("２．４　责任免除", "2.4"),  # full-width digits, point and space
        ("Section 2.4 Exclusions", "2.4"),
        ("2.4 责任免除", "2.4 责任免除"),  # a number before a heading: the number decides
        ("3. Free Look Period", "3"),
        ("3. Free Look Period", "3."),
        ("第十条 保险期间", "第十条"),
        ("第十条 保险期间", "第10条"),  # Chinese numerals by value
        ("第10条", "第十条"),
        ("第 十 条", "第十条"),
        ("第一百零二条", "第102条"),
        ("第十条之一", "第十条"),
        ("第10条 保险期间", "10"),
        ("Excl18 Alcohol and drugs", "Excl18"),
        ("EXCL18", "excl18"),
        ("Section 3 Definitions", "Section 3"),
        ("3. Free Look Period", "free look period"),  # a heading: case and spacing ignored
        ("3. Free  Look\tPeriod", "Free Look Period"),
        ("2.4 责任免除", "责任免除"),
    ],
)
def test_clause_matches(label: str, gold: str) -> None:
    assert clause_matches(label, gold)


@pytest.mark.parametrize(
    ("label", "gold"),
    [
        ("2.41 其他", "2.4"),  # another clause, not a sub-clause
        ("12.4 其他", "2.4"),
        ("1.2.4 其他", "2.4"),
        ("2.4 责任免除", "2.4.1"),  # the clause does not name its sub-clause
        ("2 总则", "2.4"),
        ("13. Renewal", "3"),
        ("3 Free Look", "30"),
        ("第一百条", "第十条"),
        ("第十章 附则", "第十条"),  # another unit
        ("第十一条", "第十条"),
        ("Excl180 Other", "Excl18"),
        ("Excl1 Other", "Excl18"),
        ("Section 31 Other", "Section 3"),
        ("3. Free Look Period", "Grace Period"),
        (None, "2.4"),
        ("", "2.4"),
        ("2.4 责任免除", ""),
    ],
)
def test_clause_does_not_match(label: str | None, gold: str) -> None:
    assert not clause_matches(label, gold)


# ------------------------------------------------------------------------------------------------- the set


def _line(**fields: object) -> str:
    row = {"id": "q1", "lang": "zh", "question": "犹豫期多久？", "answerable": True, "file": "docs/a.pdf"}
    row |= {"pages": [1], "clause": "2.1", "facts": ["十五日"]} | fields
    return json.dumps(row, ensure_ascii=False)


def test_load_answer_set(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    unanswerable = '{"id": "q2", "lang": "en", "question": "Weather?", "answerable": false}'
    path.write_text(f"{_line()}\n\n{unanswerable}\n", encoding="utf-8")
    first, second = load_answer_set(path)
    assert first == AnswerQuestion("q1", "zh", "犹豫期多久？", True, "a.pdf", (1,), "2.1", ("十五日",))
    assert second == AnswerQuestion("q2", "en", "Weather?", False)
    assert load_answer_set(path, limit=1) == [first]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", r"line 3: not valid JSON .*write one object per line"),
        ("[1, 2]", r"line 3: expected a JSON object"),
        (_line(id="q2", lang="fr"), r"line 3: 'lang' must be one of zh, en \(expected \{id, lang"),
        (_line(id="q2", pages=[0]), r"line 3: 'pages' must be a list of page numbers from 1"),
        (_line(id="q2", pages=[]), r"line 3: an answerable question needs its 'file' and 'pages'"),
        (_line(id="q2", answerable="yes", facts="十五日"), r"line 3: 'answerable' must be true or false; 'facts'"),
        (_line(), r"line 3: id 'q1' is used twice"),
    ],
)
def test_a_malformed_line_names_the_file_the_line_and_the_fix(tmp_path: Path, bad: str, message: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(f"{_line()}\n\n{bad}\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as caught:
        load_answer_set(path)
    assert str(caught.value).startswith(f"{path}, line 3: ")
    assert isinstance(caught.value, RagError) and caught.value.exit_code == 2


def test_an_empty_or_missing_set_is_a_dataset_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="holds no questions"):
        load_answer_set(tmp_path / "empty.jsonl")
    with pytest.raises(DatasetError, match="cannot read"):
        load_answer_set(tmp_path / "missing.jsonl")


# ----------------------------------------------------------------------------------------------- the CLI

POLICY = """# 示例保险条款

## 2.1 犹豫期

投保人收到保险合同后十五日内为犹豫期。犹豫期内投保人可以书面申请解除合同，本公司退还全部保险费。

## 2.4 责任免除

被保险人酒后驾驶机动车导致身故的，本公司不承担给付保险金的责任。

## 3. Free Look Period

You may cancel this policy within 15 days after you receive it. We will refund the full premium.

## 4. Grace Period

A grace period of 60 days is allowed for the payment of each renewal premium.
"""

QUESTIONS = [
    {"id": "zh-1", "lang": "zh", "question": "犹豫期多长？", "answerable": True, "clause": "2.1", "facts": ["十五日"]},
    {"id": "zh-2", "lang": "zh", "question": "酒后驾驶出事身故赔吗？", "answerable": True, "clause": "2.4"},
    {"id": "zh-3", "lang": "zh", "question": "明天上海下雨吗？", "answerable": False},
    {"id": "en-1", "lang": "en", "question": "How many days is the free look period?", "answerable": True},
    {"id": "en-2", "lang": "en", "question": "What grace period applies to a renewal premium?", "answerable": True},
    {"id": "en-3", "lang": "en", "question": "Who won the football world cup?", "answerable": False},
]


def test_eval_answers_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.md").write_text(POLICY, encoding="utf-8")
    gold = {"file": "policy.md", "pages": [1]}
    lines = [json.dumps(q | gold if q["answerable"] else q, ensure_ascii=False) for q in QUESTIONS]
    (tmp_path / "set.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # Small chunks, so that each Chinese clause is a chunk of its own, under its own heading.
    env = {"RAG_EMBEDDER": "fake", "RAG_CHUNK_SIZE": "60", "RAG_CHUNK_OVERLAP": "0"}
    common = ["eval", "answers", "set.jsonl", "--index", "index"]
    runner = CliRunner()

    result = runner.invoke(app, [*common, "--docs", "policy.md", "--mode", "lexical"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "answer quality: set.jsonl"
    assert lines[3].split() == ["questions", "3", "3", "6"]
    table = {line[:24].strip(): line[24:].split("  ") for line in lines[4:10]}
    table = {name: [cell.strip() for cell in cells if cell.strip()] for name, cells in table.items()}
    # No word of the off-topic questions is in the corpus: BM25 finds nothing, and with no passage the answer
    # is a refusal. Every answerable question finds something, and the corpus is one page of one file.
    assert table["unanswerable refused"] == ["100.0% (1/1)", "100.0% (1/1)", "100.0% (2/2)"]
    assert table["answerable refused"] == ["0.0% (0/2)", "0.0% (0/2)", "0.0% (0/4)"]
    assert table["page hit@1"] == ["100.0% (2/2)", "100.0% (2/2)", "100.0% (4/4)"]
    # Each Chinese clause is its own chunk, so its extractive answer cites its own heading and copies its fact.
    assert table["clause-correct citations"][0] == "100.0% (2/2)"
    assert table["facts in answer"][0] == "100.0% (2/2)"
    assert "failures:" in result.stdout
    assert "ingested: added 1" in result.stderr

    # Dense retrieval with the fake embedder: the refusal gate is off (threshold 0), every question gets
    # passages, so no question is refused. The index is reused: policy.md is not ingested again.
    result = runner.invoke(app, [*common, "--mode", "dense", "--json", "--limit", "4"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [q["id"] for q in report["questions"]] == ["zh-1", "zh-2", "zh-3", "en-1"]
    assert report["summary"]["all"]["questions"] == 4
    assert report["summary"]["all"]["unanswerable_refused"] == {"hits": 0, "total": 1, "rate": 0.0}
    assert report["questions"][2]["failures"] == ["not refused"]

    result = runner.invoke(app, [*common, "--mode", "lexical", "--no-failures"], env=env)
    assert result.exit_code == 0 and "failures" not in result.stdout


def test_eval_answers_errors_are_one_line_with_an_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "set.jsonl").write_text('{"id": "q"}\n', encoding="utf-8")
    env = {"RAG_EMBEDDER": "fake"}
    result = CliRunner().invoke(app, ["eval", "answers", "set.jsonl", "--index", "index"], env=env)
    assert result.exit_code == 2
    assert "set.jsonl, line 1: 'lang' must be one of zh, en" in result.stderr
    result = CliRunner().invoke(app, ["eval", "answers", "none.jsonl", "--index", "index"], env=env)
    assert result.exit_code == 2 and "cannot read the answer set" in result.stderr
    (tmp_path / "set.jsonl").write_text('{"id": "q", "lang": "en", "question": "?", "answerable": false}\n')
    result = CliRunner().invoke(app, ["eval", "answers", "set.jsonl", "--mode", "fuzzy"], env=env)
    assert result.exit_code == 2 and "unknown retrieval mode 'fuzzy'" in result.stderr
    result = CliRunner().invoke(app, ["eval", "answers", "set.jsonl", "--index", "index"], env=env)
    assert result.exit_code == 3 and "run `rag ingest" in result.stderr  # IndexMissingError
