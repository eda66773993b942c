"""SIGKILL `rag ingest` at random points for a while; after each kill, check that the next run recovers.

    python scripts/stress_crash.py --minutes 30

The corpus and the checks are those of tests/test_crash.py (which does 10+ kills in CI), with small chunks so
that each run writes thousands of vectors and Chroma saves its HNSW files often: a kill during such a save is
what tears them (see README "Failure behaviour"). After each round a fresh process ingests again, checks
manifest = Chroma = lexical index, and asks a question. Prints a line per rebuild and a summary table; stops
at the first failed check, keeping a copy of the index.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a program, never imported: `INDEX DOCS` ingests again, checks consistency and asks (one JSON line);
# `write-corpus DOCS ROUND SEED` writes a round of the crash test's corpus.
INDEX_CHECK = Path(__file__).resolve().parent.parent / "tests" / "index_check.py"


def write_corpus(docs: Path, round_number: int, seed: str) -> None:
    subprocess.run([sys.executable, str(INDEX_CHECK), "write-corpus", str(docs), str(round_number), seed], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--chunk-size", type=int, default=48)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rag-stress-"))
    docs, index = work / "docs", work / "index"
    env = {
        **os.environ,
        "RAG_EMBEDDER": "fake",
        "RAG_INDEX_DIR": str(index),
        "RAG_CHUNK_SIZE": str(args.chunk_size),
        "RAG_CHUNK_OVERLAP": "0",
    }
    rng = random.Random(args.seed)
    write_corpus(docs, 0, f"{args.seed}:0")
    deadline = time.monotonic() + args.minutes * 60
    rounds = kills = rebuilds = 0
    while time.monotonic() < deadline:
        rounds += 1
        write_corpus(docs, rounds, f"{args.seed}:{rounds}")
        (docs / f"policy_{rng.randrange(24):02d}.txt").unlink()
        run = subprocess.Popen(
            [sys.executable, "-m", "rag", "ingest", str(docs)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(3.0, 9.0))  # imports take about 3 s; most runs end within 10
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            kills += 1
        run.wait()
        write_corpus(docs, rounds, f"{args.seed}:{rounds}:back")  # puts the deleted file back
        check = subprocess.run(
            [sys.executable, str(INDEX_CHECK), str(index), str(docs)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if check.returncode != 0:
            kept = Path(tempfile.mkdtemp(prefix="rag-stress-failed-")) / "index"
            shutil.copytree(index, kept)
            print(f"round {rounds}: the check failed (exit {check.returncode}); index kept in {kept}")
            print(check.stderr[-3000:])
            sys.exit(1)
        outcome = json.loads(check.stdout.strip().splitlines()[-1])
        if outcome["rebuilt"]:
            rebuilds += 1
            print(f"round {rounds}: Chroma's files were torn; rebuilt ({outcome['embedded']} chunks embedded)")
    shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'minutes':>8} {'rounds':>7} {'kills':>6} {'rebuilds':>9} {'failed checks':>14}")
    print(f"{args.minutes:>8.1f} {rounds:>7} {kills:>6} {rebuilds:>9} {0:>14}")


if __name__ == "__main__":
    main()
