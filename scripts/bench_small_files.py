"""`rag ingest` of many small files with the fake embedder: the per-file overhead, and whether it grows.

    python scripts/bench_small_files.py                  # 1,000, 5,000 and 10,000 files of about 60 bytes
    python scripts/bench_small_files.py --sizes 500 2000 # other corpus sizes

Each size ingests into a fresh index in a fresh temporary folder (the deterministic fake embedder: no model
cost, so what is left is discovery, hashing, reading, splitting, Chroma, the manifest and the lexical index).
A linear pipeline keeps the milliseconds per file flat as the corpus grows; a manifest rewritten after every
file made them grow with the number of files already stored (issue #14: 5,000 files did not finish in 400 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import harness


def make_corpus(folder: Path, count: int) -> None:
    """`count` text files of about 60 bytes, a hundred to a folder, each with its own content."""
    for n in range(count):
        sub = folder / f"d{n // 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"note_{n:05d}.txt").write_text(f"Note {n:05d}: the waiting period is {n % 90 + 1} days.\n")


def run(count: int) -> dict[str, float]:
    from rag.config import Settings
    from rag.index import Index
    from rag.ingest import ingest_paths

    with tempfile.TemporaryDirectory(prefix="rag-bench-small-") as tmp:
        docs, index_dir = Path(tmp) / "docs", Path(tmp) / "index"
        make_corpus(docs, count)
        settings = Settings(index_dir=index_dir, embedder="fake", _env_file=None)  # type: ignore[call-arg]
        with harness.timer() as timing:
            report = ingest_paths([docs], Index(settings))
        if report.added != count or report.failed:
            sys.exit(f"{count} files: added {report.added}, failed {len(report.failed)}: the run is not comparable")
    return {"files": count, "seconds": timing.wall, "cpu": timing.cpu, "ms_per_file": 1000 * timing.wall / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    args = parser.parse_args()
    harness.header("bench_small_files: rag ingest of ~60-byte files, fake embedder")
    rows = []
    for count in args.sizes:
        result = run(count)
        print(f"{count} files: {result['seconds']:.1f} s", file=sys.stderr)
        rows.append(result)
    first = rows[0]["ms_per_file"]
    harness.table(
        ["files", "wall s", "cpu s", "ms/file", f"ms/file vs {rows[0]['files']:.0f}"],
        [[int(r["files"]), r["seconds"], r["cpu"], r["ms_per_file"], f"{r['ms_per_file'] / first:.2f}x"] for r in rows],
        title="first ingest into an empty index (linear: ms/file stays flat)",
    )


if __name__ == "__main__":
    main()
