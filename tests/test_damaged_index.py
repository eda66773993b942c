"""Chroma's HNSW files left unreadable by a killed run: `rag ask` says how to fix it, `rag ingest` rebuilds.

Chroma 1.5 saves its HNSW index in place, every thousand or so writes; a SIGKILL during that save leaves
files it cannot load (CI's crash test hit it once). Torn files show in several ways: an InternalError on
every call, a crash of the native loader, errors for some vectors only, or wrong neighbours. These tests
damage the files each way, then check that `ask` names the fix and that the rebuild loses nothing.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from index_check import check_index

from rag.config import Settings
from rag.errors import IndexDamagedError
from rag.index import Index, IndexLayout
from rag.ingest import ingest_paths, set_aside_store
from rag.manifest import Manifest
from rag.qa import answer_question
from rag.retrieval import Searcher

FILES = 12
CLAUSES = 200  # with 64-token chunks: about 1,200 chunks, so that Chroma has saved its HNSW files


def _write_docs(folder: Path, prefix: str, count: int = FILES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        clauses = [
            f"Clause {i}.{j}. The grace period of plan {prefix}{i} is {30 + j} days; the premium of option {j} "
            f"is {100 * (i + 1) + j} yuan per year."
            for j in range(CLAUSES)
        ]
        (folder / f"{prefix}_{i:02d}.txt").write_text("\n\n".join(clauses) + "\n", encoding="utf-8")
    return folder


def _small_chunks(settings: Settings, **more: object) -> Settings:
    return settings.model_copy(update={"chunk_size": 64, "chunk_overlap": 0, **more})


def _hnsw_folder(index_dir: Path) -> Path:
    # This process's Chroma keeps the index in memory; let go of it so the next open reads the files.
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    folders = [path for path in (index_dir / "chroma").iterdir() if path.is_dir()]
    assert len(folders) == 1 and (folders[0] / "header.bin").exists(), "Chroma did not save its HNSW files"
    return folders[0]


def _garble_header(folder: Path) -> None:  # Chroma raises: "Error loading hnsw index"
    (folder / "header.bin").write_bytes(b"\x07" * 100)


def _overstate_elements(folder: Path) -> None:  # Chroma's loader crashes the process (SIGSEGV)
    header = bytearray((folder / "header.bin").read_bytes())
    header[20:28] = struct.pack("<Q", 50_000)  # hnswlib's header: version, offset, capacity, element count
    (folder / "header.bin").write_bytes(bytes(header))


def _truncate_vectors(folder: Path) -> None:  # loads; "Error getting embedding" for the vectors cut off
    data = folder / "data_level0.bin"
    with open(data, "r+b") as handle:
        handle.truncate(data.stat().st_size // 2)


def _zero_norms(folder: Path) -> None:  # loads without an error; a stored vector no longer finds itself
    with open(folder / "length.bin", "r+b") as handle:
        handle.truncate(0)


def _kill_aftermath(index_dir: Path, damage: Callable[[Path], None]) -> None:
    """What a run killed while Chroma saved its files leaves behind: damaged files and the in-progress marker."""
    damage(_hnsw_folder(index_dir))
    IndexLayout(index_dir).in_progress.touch()


@pytest.mark.slow
@pytest.mark.parametrize("damage", [_garble_header, _overstate_elements, _truncate_vectors, _zero_norms])
def test_ask_names_the_fix_and_ingest_rebuilds_from_the_cache(
    tmp_path: Path, fake_settings: Settings, damage: Callable[[Path], None]
) -> None:
    settings = _small_chunks(fake_settings)
    index_dir = Path(settings.index_dir)
    docs = _write_docs(tmp_path / "docs", "policy")
    first = ingest_paths([docs], Index(settings))
    assert first.chunks > 1000
    _kill_aftermath(index_dir, damage)

    # In a child process, as `rag ask` would be: one of these damages crashes the process that loads it.
    with pytest.raises(IndexDamagedError, match=r"cannot be read .*run `rag ingest` on your documents again"):
        Searcher(Index(settings))

    report = ingest_paths([docs], Index(settings))
    assert report.rebuilt
    assert (report.added, report.updated, report.unchanged, report.failed) == (FILES, 0, 0, [])
    assert report.chunks == first.chunks
    assert report.embedded == 0, "every vector should have come from the embedding cache"
    check_index(index_dir, docs, settings)
    assert IndexLayout(index_dir).chroma_set_aside.is_dir() and not IndexLayout(index_dir).rebuild_sources.exists()
    answer = answer_question("What is the grace period of plan policy3?", settings)
    assert answer.passages and "policy" in answer.passages[0].source

    again = ingest_paths([docs], Index(settings))
    assert (again.rebuilt, again.unchanged, again.added) == (False, FILES, 0)


@pytest.mark.slow
def test_without_the_cache_the_rebuild_embeds_again(tmp_path: Path, fake_settings: Settings) -> None:
    settings = _small_chunks(fake_settings, embed_cache_max_entries=0)
    docs = _write_docs(tmp_path / "docs", "policy")
    first = ingest_paths([docs], Index(settings))
    _kill_aftermath(Path(settings.index_dir), _garble_header)

    report = ingest_paths([docs], Index(settings))
    assert report.rebuilt and report.failed == []
    assert report.embedded == report.chunks == first.chunks
    check_index(Path(settings.index_dir), docs, settings)


@pytest.mark.slow
def test_files_ingested_from_other_paths_come_back_and_gone_ones_are_named(
    tmp_path: Path, fake_settings: Settings
) -> None:
    settings = _small_chunks(fake_settings)
    index_dir = Path(settings.index_dir)
    policies = _write_docs(tmp_path / "policies", "policy")
    faqs = _write_docs(tmp_path / "faqs", "faq", count=3)
    ingest_paths([policies], Index(settings))
    ingest_paths([faqs], Index(settings))
    gone = faqs / "faq_01.txt"
    gone.unlink()
    _kill_aftermath(index_dir, _overstate_elements)

    # Only the policies are named, as a user re-running yesterday's command would.
    report = ingest_paths([policies], Index(settings))
    assert report.rebuilt
    assert report.added == FILES + 2
    [failure] = report.failed
    assert failure.path == str(gone)
    assert "not there any more" in failure.error and IndexLayout(index_dir).chroma_set_aside.name in failure.error
    manifest = Manifest.load(IndexLayout(index_dir).manifest)
    assert manifest is not None
    assert set(manifest.files) == {str(path) for path in [*policies.glob("*.txt"), *faqs.glob("*.txt")]}
    check_index(index_dir, tmp_path, settings)
    assert not IndexLayout(index_dir).rebuild_sources.exists()


@pytest.mark.slow
def test_a_rebuild_interrupted_after_the_set_aside_is_finished_by_the_next_run(
    tmp_path: Path, fake_settings: Settings
) -> None:
    settings = _small_chunks(fake_settings)
    index_dir = Path(settings.index_dir)
    policies = _write_docs(tmp_path / "policies", "policy", count=2)
    faqs = _write_docs(tmp_path / "faqs", "faq", count=2)
    ingest_paths([policies, faqs], Index(settings))
    manifest = Manifest.load(IndexLayout(index_dir).manifest)
    assert manifest is not None
    IndexLayout(index_dir).in_progress.touch()
    # The run that found the damage got as far as setting the files aside, then was killed.
    set_aside_store(Index(settings), manifest)
    assert json.loads(IndexLayout(index_dir).rebuild_sources.read_text(encoding="utf-8")) == sorted(manifest.files)
    assert Manifest.load(IndexLayout(index_dir).manifest) == Manifest(fingerprint=manifest.fingerprint)

    report = ingest_paths([policies], Index(settings))
    assert report.rebuilt and report.added == 4 and report.failed == []
    check_index(index_dir, tmp_path, settings)
    after = Manifest.load(IndexLayout(index_dir).manifest)
    assert after is not None and after.files == manifest.files
    assert not IndexLayout(index_dir).rebuild_sources.exists() and not IndexLayout(index_dir).in_progress.exists()


@pytest.mark.slow
def test_rag_ingest_rebuild_sets_the_files_aside_and_stores_everything_again(
    tmp_path: Path, fake_settings: Settings
) -> None:
    index_dir = Path(fake_settings.index_dir)
    docs = _write_docs(tmp_path / "docs", "policy", count=3)
    command = [sys.executable, "-m", "rag", "ingest", str(docs), "--index", str(index_dir)]
    env = {"RAG_EMBEDDER": "fake", "PATH": "/usr/bin:/bin"}
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr
    before = Manifest.load(IndexLayout(index_dir).manifest)

    rebuilt = subprocess.run([*command, "--rebuild"], capture_output=True, text=True, timeout=300, env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt the vector index (as asked)" in rebuilt.stderr and "0 chunks were embedded again" in rebuilt.stderr
    assert "added 3, updated 0, unchanged 0" in rebuilt.stdout
    assert Manifest.load(IndexLayout(index_dir).manifest) == before
    assert (IndexLayout(index_dir).chroma_set_aside / "chroma.sqlite3").exists()
    check_index(index_dir, docs)


@pytest.mark.slow
def test_with_prune_a_listed_file_that_is_gone_counts_as_removed(tmp_path: Path, fake_settings: Settings) -> None:
    index_dir = Path(fake_settings.index_dir)
    docs = _write_docs(tmp_path / "docs", "policy", count=3)
    ingest_paths([docs], Index(fake_settings))
    IndexLayout(index_dir).in_progress.touch()
    set_aside_store(Index(fake_settings), Manifest.load(IndexLayout(index_dir).manifest) or Manifest())
    (docs / "policy_02.txt").unlink()

    report = ingest_paths([docs], Index(fake_settings), prune=True)
    assert (report.rebuilt, report.added, report.removed, report.failed) == (True, 2, 1, [])
    check_index(index_dir, docs)
