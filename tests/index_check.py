"""Consistency checks of an index on disk, and the crash test's corpus, for the crash and concurrency tests.

Run as a script (`python tests/index_check.py INDEX DOCS`) it re-runs the ingest, checks the index and asks
one question, each in a fresh process, as a user's next command would; it prints one JSON line.
`python tests/index_check.py write-corpus DOCS ROUND SEED` writes one round of the corpus
(scripts/stress_crash.py uses both).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.config import Settings


def write_corpus(docs: Path, round_number: int, rng: random.Random) -> None:
    """24 files; each round rewrites a few (updates delete old chunks), adds one and removes one, so that
    kills land in adds, updates and deletes alike."""
    docs.mkdir(exist_ok=True)
    names = [f"policy_{i:02d}.txt" for i in range(24)]
    for i, name in enumerate(names):
        path = docs / name
        if path.exists() and rng.random() > 0.25:
            continue
        clauses = [
            f"Clause {i}.{j} (round {round_number}). The grace period of plan {i} is {30 + j} days; "
            f"the premium of option {j} is {100 * (i + 1) + j} yuan per year, payable monthly or yearly."
            for j in range(120)
        ]
        path.write_text("\n\n".join(clauses) + "\n", encoding="utf-8")


def check_index(index_dir: Path, docs: Path, settings: Settings | None = None) -> dict[str, Any]:
    """Raise AssertionError on any inconsistency; return a few figures."""
    from rag.config import Settings
    from rag.index import Index, IndexLayout

    if settings is None:
        settings = Settings(index_dir=index_dir, embedder="fake", _env_file=None)  # type: ignore[call-arg]
    manifest = Index(settings).manifest()
    assert manifest is not None, "no manifest"
    on_disk = {str(path) for path in docs.rglob("*.txt")}
    assert set(manifest.files) == on_disk, f"manifest files differ: {set(manifest.files) ^ on_disk}"
    by_doc: dict[str, list[str]] = {}
    for source, entry in manifest.files.items():
        digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
        assert entry.sha256 == digest, f"{source}: manifest has an old hash"
        assert len(entry.chunk_ids) == len(set(entry.chunk_ids)), f"{source}: duplicate chunk ids"
        by_doc.setdefault(entry.sha256, entry.chunk_ids)
    all_ids = [chunk_id for ids in by_doc.values() for chunk_id in ids]
    assert len(all_ids) == len(set(all_ids)), "a chunk id belongs to two documents"
    store = Index(settings).open_store(create=False)
    chunks = list(store.iter_chunks())
    stored = [chunk.id for chunk in chunks]
    assert len(stored) == len(set(stored)), "duplicate ids in Chroma"
    assert set(stored) == set(all_ids), (
        f"Chroma and manifest disagree: {len(set(stored) - set(all_ids))} strays, "
        f"{len(set(all_ids) - set(stored))} missing"
    )
    for chunk in chunks:
        assert chunk.id in by_doc.get(chunk.doc_sha256, []), f"chunk {chunk.id} filed under the wrong document"
    lexical_ids = _lexical_ids(index_dir)
    if lexical_ids is not None:
        assert len(lexical_ids) == len(set(lexical_ids)), "duplicate ids in the lexical index"
        assert set(lexical_ids) == set(all_ids), "lexical index and manifest disagree"
    layout = IndexLayout(index_dir)
    assert not layout.in_progress.exists(), "a completed run left its in-progress marker"
    assert not layout.rebuild_sources.exists(), "a completed run left its list of files to rebuild"
    return {"files": len(manifest.files), "chunks": len(all_ids), "lexical": lexical_ids is not None}


def _lexical_ids(index_dir: Path) -> list[str] | None:
    try:
        from rag.lexical import LexicalIndex
    except ImportError:
        return None
    from rag.index import IndexLayout

    directory = IndexLayout(index_dir).lexical
    if not directory.exists():
        return None
    index = LexicalIndex.load(directory)
    assert index is not None, f"{directory} is unreadable"
    return list(index.ids)


def main() -> None:
    if sys.argv[1] == "write-corpus":
        write_corpus(Path(sys.argv[2]), int(sys.argv[3]), random.Random(sys.argv[4]))
        return
    from rag.config import Settings
    from rag.index import Index
    from rag.ingest import ingest_paths
    from rag.qa import answer_question

    index_dir, docs = Path(sys.argv[1]), Path(sys.argv[2])
    # RAG_* variables (RAG_CHUNK_SIZE in scripts/stress_crash.py) still apply.
    settings = Settings(index_dir=index_dir, embedder="fake", _env_file=None)  # type: ignore[call-arg]
    report = ingest_paths([docs], Index(settings))
    assert not report.failed, report.failed
    figures = check_index(index_dir, docs, settings)
    answer = answer_question("What is the grace period?", settings)
    assert answer.passages, "ask found nothing"
    print(
        json.dumps(
            {
                **figures,
                "mode": answer.mode,
                "added": report.added,
                "updated": report.updated,
                "rebuilt": report.rebuilt,
                "embedded": report.embedded,
            }
        )
    )


if __name__ == "__main__":
    main()
