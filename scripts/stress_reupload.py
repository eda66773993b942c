"""Re-ingest one file over and over, alternating two versions, while questions are asked; count the answers whose
passages come from both versions at once.

    python scripts/stress_reupload.py --seconds 60

One process, as `rag serve` runs it: a writer thread re-ingests the file (version A, then B, then A...) through
`rag.ingest.ingest_paths`, and a reader thread asks through one shared Searcher, as the server's /v1/ask does.
`--no-filter` turns off the ask-time filter on the manifest's chunk ids (Searcher.current_chunk_ids) to
measure what it prevents. Prints one table row per run.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from rag.config import Settings
from rag.index import Index
from rag.ingest import ingest_paths
from rag.qa import answer_question

CLAUSES = 40


def version(tag: str) -> str:
    return "\n\n".join(
        f"Clause {n}. The grace period for premium {n} is sixty days in edition {tag * 3}." for n in range(CLAUSES)
    )


def run(seconds: float, use_filter: bool) -> tuple[int, int, int]:
    """(answers, answers mixing both versions, re-ingests done)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        docs = root / "docs"
        docs.mkdir()
        policy = docs / "policy.txt"
        policy.write_text(version("A"))
        settings = Settings(  # type: ignore[call-arg]
            index_dir=root / "index", embedder="fake", refusal_min_score=0.0, lexical_refresh_seconds=0.0,
            _env_file=None,
        )
        ingest_paths([docs], Index(settings))
        searcher = Index(settings).searcher()
        if not use_filter:
            searcher.current_chunk_ids = lambda: None  # type: ignore[method-assign]
        stop = time.monotonic() + seconds
        writes = 0

        def writer() -> None:
            nonlocal writes
            index = Index(settings)
            while time.monotonic() < stop:
                policy.write_text(version("B" if writes % 2 == 0 else "A"))
                ingest_paths([docs], index)
                writes += 1

        thread = threading.Thread(target=writer)
        thread.start()
        answers = mixed = 0
        while time.monotonic() < stop:
            answer = answer_question("What is the grace period for the premium?", settings, searcher=searcher, top_k=8)
            editions = {("AAA" in p.text, "BBB" in p.text) for p in answer.passages}
            answers += 1
            mixed += (True, False) in editions and (False, True) in editions
        thread.join()
        return answers, mixed, writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-filter", action="store_true", help="also run without the ask-time manifest filter")
    args = parser.parse_args()
    print("| ask-time filter | answers | mixing both versions | share | re-ingests |")
    print("| --- | --- | --- | --- | --- |")
    for use_filter in ([False, True] if args.no_filter else [True]):
        answers, mixed, writes = run(args.seconds, use_filter)
        share = 100.0 * mixed / answers if answers else 0.0
        print(f"| {'on' if use_filter else 'off'} | {answers} | {mixed} | {share:.1f}% | {writes} |", flush=True)


if __name__ == "__main__":
    main()
