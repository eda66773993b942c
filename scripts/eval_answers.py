"""Answer quality on every customer-worded set in tests/data/answers, each over its own documents.

Each set is ingested into its own index under --work-dir (unchanged files are skipped on a re-run) and every
question goes through `rag ask`'s path (extractive unless a chat model is configured). Prints the table of
each set, then one table over all sets, per language.

    python scripts/eval_answers.py [--sets data policies_zh ...] [--work-dir DIR] [--failures] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
