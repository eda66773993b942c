"""Retrieval quality of dense, lexical and hybrid search on the evaluation sets in ../shared/eval.

    python scripts/eval_retrieval.py                      # InsQABench and FinanceBench dev, all modes
    python scripts/eval_retrieval.py --limit 30           # a quick slice
    python scripts/eval_retrieval.py --sets insqabench

The same as `rag eval retrieval DATASET` for each set; corpus vectors are cached, so re-runs embed nothing.
Skips cleanly when ../shared/eval is absent.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
SETS = {"insqabench": "insqabench", "financebench": "financebench_dev"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--k", default="1,5,10")
    parser.add_argument("--eval-dir", type=Path, default=EVAL)
    args = parser.parse_args()
    if not args.eval_dir.exists():
        print(f"skipped: {args.eval_dir} is absent")
        return 0
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    from rag.cli import app

    print(f"{datetime.date.today()} · {platform.platform()} · {os.cpu_count()} cores · {platform.python_version()}")
    for name in args.sets:
        argv = ["eval", "retrieval", str(args.eval_dir / SETS[name]), "--k", args.k]
        if args.limit:
            argv += ["--limit", str(args.limit)]
        try:
            app(argv, standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                return int(exc.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
