"""Answer quality on every customer-worded set in tests/data/answers, each over its own documents.

Each set is ingested into its own index under --work-dir (unchanged files are skipped on a re-run) and every
question goes through `rag ask`'s path (extractive unless a chat model is configured). Prints the table of
each set, then one table over all sets, per language.

    python scripts/eval_answers.py [--sets data policies_zh ...] [--work-dir DIR] [--failures] [--json]

With --dialogues, the multi-turn set tests/data/answers/dialogues.jsonl is scored turn by turn instead, each
dialogue over the index of its set: first turns (standalone) beside follow-ups (condensed with their history)
and the follow-ups asked alone. Offline the follow-ups are condensed by the rules; with --stub-condense the
chat model is the test stub (tests/openai_stub.py), replaying each follow-up's `condensed` form, so the figures
show retrieval from a model's condensation without a model.

    python scripts/eval_answers.py --dialogues [--stub-condense] [--sets ...] [--work-dir DIR] [--failures]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag.answer_eval import (
    AnswerReport,
    answer_report_json,
    evaluate_answers,
    format_answer_table,
    format_failures,
    report_of,
)
from rag.config import Settings

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
FINANCEBENCH = EVAL / "financebench_dev" / "pdfs"
SETS: dict[str, list[Path]] = {
    "data": [ROOT / "data"],
    "policies_zh": [EVAL / "policies_zh"],
    "policies_en": [EVAL / "policies_en"],
    "financebench": [FINANCEBENCH / "ULTABEAUTY_2023Q4_EARNINGS.pdf", FINANCEBENCH / "MGMRESORTS_2022Q4_EARNINGS.pdf"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".rag-eval" / "answers")
    parser.add_argument("--mode", choices=["dense", "lexical", "hybrid"], default=None)
    parser.add_argument("--failures", action="store_true", help="list each failed question")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--dialogues", action="store_true", help="score the multi-turn set, turn by turn")
    parser.add_argument("--stub-condense", action="store_true", help="with --dialogues: a stub model condenses")
    args = parser.parse_args()
    if args.dialogues:
        run_dialogues(args)
        return

    base = Settings()
    reports: dict[str, AnswerReport] = {}
    for name in args.sets:
        docs = SETS[name]
        if not all(path.exists() for path in docs):
            print(f"skipping {name}: {', '.join(str(p) for p in docs if not p.exists())} not found", file=sys.stderr)
            continue
        settings = base.model_copy(update={"index_dir": args.work_dir / name})
        reports[name] = evaluate_answers(
            ROOT / "tests" / "data" / "answers" / f"{name}.jsonl",
            settings,
            docs,
            args.mode,
            log=lambda message: print(message, file=sys.stderr),
        )
    results = tuple(result for report in reports.values() for result in report.results)
    combined = report_of(results)
    if args.json:
        out = {name: answer_report_json(report) for name, report in reports.items()}
        print(json.dumps({**out, "all": answer_report_json(combined)}, ensure_ascii=False, indent=1))
        return
    for name, report in reports.items():
        print(format_answer_table(report, title=f"{name}.jsonl"))
        if args.failures:
            print(format_failures(report))
        print()
    print(format_answer_table(combined, title=f"all sets ({', '.join(reports)})"))


def run_dialogues(args: argparse.Namespace) -> None:
    from contextlib import ExitStack

    from rag.dialogue_eval import (
        DialogueReport,
        dialogue_report_json,
        evaluate_dialogues,
        format_dialogue_failures,
        format_dialogue_table,
    )

    base = Settings()
    reports: dict[str, DialogueReport] = {}
    with ExitStack() as stack:
        before_turn = None
        if args.stub_condense:
            base, before_turn = stack.enter_context(_stub_condenser(base))
        for name in args.sets:
            docs = SETS[name]
            if not all(path.exists() for path in docs):
                print(
                    f"skipping {name}: {', '.join(str(p) for p in docs if not p.exists())} not found", file=sys.stderr
                )
                continue
            settings = base.model_copy(update={"index_dir": args.work_dir / name})
            reports[name] = evaluate_dialogues(
                ROOT / "tests" / "data" / "answers" / "dialogues.jsonl",
                settings,
                docs,
                args.mode,
                sets=[name],
                before_turn=before_turn or (lambda turn: None),
                log=lambda message: print(message, file=sys.stderr),
            )
    combined = DialogueReport(
        tuple(t for r in reports.values() for t in r.turns), tuple(t for r in reports.values() for t in r.baseline)
    )
    how = "stub model replaying the gold condensation" if args.stub_condense else "offline rules"
    if args.json:
        out = {name: dialogue_report_json(r) for name, r in reports.items()} | {"all": dialogue_report_json(combined)}
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return
    for name, report in reports.items():
        print(format_dialogue_table(report, title=f"dialogues.jsonl, {name} ({how})"))
        if args.failures:
            print(format_dialogue_failures(report))
        print()
    print(format_dialogue_table(combined, title=f"dialogues.jsonl, all sets ({how})"))


@contextmanager
def _stub_condenser(base: Settings) -> Iterator[tuple[Settings, Any]]:
    """The stub as chat model: a condense request gets the current turn's `condensed`, an answer request a
    sentence citing [1] (the answer's text is not what this run measures: retrieval is)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from openai_stub import OpenAIStub

    from rag.condense import CONDENSE_PROMPT

    current: dict[str, str | None] = {"condensed": None}

    def reply(body: dict[str, Any]) -> str:
        if body["messages"][0]["content"] == CONDENSE_PROMPT:
            return current["condensed"] or "?"
        return "See the first source [1]."

    def before_turn(turn: Any) -> None:
        current["condensed"] = turn.condensed

    with OpenAIStub(reply) as stub:
        yield base.model_copy(update={"base_url": stub.base_url, "max_retries": 0}), before_turn


if __name__ == "__main__":
    main()
