"""The ingest pipeline: files → pages → chunks → vectors → Chroma, touching only what changed.

Write order keeps the index consistent after a crash at any point: chunks go into the store first, the
manifest (atomically replaced) follows, and only then are superseded chunks deleted. Chunks that the
manifest does not name are strays of an interrupted run and are removed on the next run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.chunking import split_pages
from rag.errors import LoadError
from rag.loaders import SourceFile, discover, file_sha256, load_pages
from rag.records import Chunk, FileFailure, IngestReport
from rag.store import ChromaStore, FileEntry, Manifest, build_fingerprint, check_fingerprint

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.embeddings import Embedder

# progress(event, source, done, total): event is "file" when a file starts, "done" at the end.
Progress = Callable[[str, str, int, int], None]


def ingest_paths(
    paths: Iterable[str | Path],
    settings: Settings,
    prune: bool = False,
    progress: Progress | None = None,
    embedder: Embedder | None = None,
) -> IngestReport:
    started = time.perf_counter()
    index_dir = Path(settings.index_dir)
    report = IngestReport()
    files, problems = discover(paths)
    report.failed.extend(FileFailure(path=p.path, error=str(p)) for p in problems)

    manifest = Manifest.load(index_dir) or Manifest()
    wanted = build_fingerprint(settings)
    check_fingerprint(manifest.fingerprint, wanted, index_dir)

    pending: list[tuple[SourceFile, str, int, int]] = []
    for file in files:
        try:
            digest = file_sha256(file.path)
            stat = file.path.stat()
        except (LoadError, OSError) as exc:
            report.failed.append(FileFailure(path=file.source, error=str(exc)))
            continue
        entry = manifest.files.get(file.source)
        if entry is not None and entry.sha256 == digest:
            report.unchanged += 1
            continue
        pending.append((file, digest, stat.st_size, stat.st_mtime_ns))

    vanished = [source for source in manifest.files if not Path(source).exists()] if prune else []
    if not pending and not vanished:
        report.chunks = len(manifest.chunk_ids())
        report.seconds = time.perf_counter() - started
        return report

    embedder_holder: list[Embedder] = [embedder] if embedder is not None else []

    def get_embedder() -> Embedder:
        if not embedder_holder:
            from rag.embeddings import make_embedder

            embedder_holder.append(make_embedder(settings))
        return embedder_holder[0]

    store = ChromaStore.open(settings, index_dir, wanted, create=True)
    for number, (file, digest, size, mtime_ns) in enumerate(pending, start=1):
        if progress:
            progress("file", file.source, number - 1, len(pending))
        previous = manifest.files.get(file.source)
        try:
            chunk_ids, embedded = _ingest_file(file, digest, settings, store, get_embedder)
        except LoadError as exc:
            report.failed.append(FileFailure(path=file.source, error=str(exc)))
            continue
        report.embedded += embedded
        if not manifest.fingerprint:
            manifest.fingerprint = build_fingerprint(settings, dim=get_embedder().dim)
        manifest.files[file.source] = FileEntry(sha256=digest, size=size, mtime_ns=mtime_ns, chunk_ids=chunk_ids)
        manifest.save(index_dir)
        if previous is None:
            report.added += 1
        else:
            report.updated += 1
    for source in vanished:
        del manifest.files[source]
        report.removed += 1
    if vanished:
        manifest.save(index_dir)
    _remove_strays(store, manifest)
    if progress:
        progress("done", "", len(pending), len(pending))
    report.chunks = len(manifest.chunk_ids())
    report.seconds = time.perf_counter() - started
    return report


def _ingest_file(
    file: SourceFile,
    digest: str,
    settings: Settings,
    store: ChromaStore,
    get_embedder: Callable[[], Embedder],
) -> tuple[list[str], int]:
    pages = load_pages(file, settings.pdf_backend)
    chunks = split_pages(pages, digest, settings.chunk_size, settings.chunk_overlap)
    ids: list[str] = []
    embedded = 0
    batch: list[Chunk] = []
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) >= settings.embed_batch_size:
            embedded += _store_batch(batch, store, get_embedder())
            ids.extend(chunk.id for chunk in batch)
            batch = []
    if batch:
        embedded += _store_batch(batch, store, get_embedder())
        ids.extend(chunk.id for chunk in batch)
    if not ids:
        raise LoadError(file.source, "no text found", "check that the file has text (a scanned PDF needs OCR first)")
    return ids, embedded


def _store_batch(batch: list[Chunk], store: ChromaStore, embedder: Embedder) -> int:
    vectors = embedder.embed_passages([chunk.text for chunk in batch])
    store.upsert(batch, np.asarray(vectors))
    return len(batch)


def _remove_strays(store: ChromaStore, manifest: Manifest) -> None:
    strays = store.all_ids() - manifest.chunk_ids()
    if strays:
        store.delete(sorted(strays))


def index_exists(index_dir: Path) -> bool:
    return (index_dir / "manifest.json").exists() and os.path.isdir(index_dir / "chroma")
