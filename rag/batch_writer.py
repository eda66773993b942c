"""Embedding and storing chunks in batches that span files, on worker threads.

A batch is embedded on one thread and stored on another, in the order the batches were made: while one batch
is stored, or its last sub-batches finish on some of the embedder's models, the next batch's sub-batches
already keep the other models busy (an embedder pool never waits at a batch boundary).

One file's trouble stays that file's: an exception from reading or splitting it surfaces as FileFailed
for that file alone, and a store call that fails for a reason other than the model or the store being
down is retried file by file, so that only the chunks of the file that broke it are reported lost.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from rag.errors import LoadError, RagError, brief
from rag.records import Chunk
from rag.storage import ensure_room

if TYPE_CHECKING:
    import numpy as np

    from rag.index import Index
    from rag.store import ChromaStore

logger = logging.getLogger(__name__)

# Chroma's upsert costs about 0.1 s of CPU per call whatever its size (1,000 chunks: 13 ms a chunk in calls
# of 16, 2.6 ms in calls of 128), and it holds the GIL: chunks are stored in batches of this many, across
# file boundaries, and embedded in sub-batches of `embed_batch_size`.
STORE_BATCH = 128

# on_progress(source being embedded, chunks stored so far, chunks found so far)
ChunkProgress = Callable[[str, int, int], None]


class FileFailed(Exception):
    """Reading or splitting one file failed; `error` says why for the report."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class BatchWriter:
    """Embeds and stores chunks on worker threads, at most `depth` batches ahead of the caller: up to `depth`
    batches are embedded at once, and one thread stores them, one at a time and in order.

    Batches span files, so that neither the embedder waits for the next file to be read nor Chroma is
    called once per small file. `when_stored` callbacks run on the caller's thread, in order, once every
    chunk added before them is stored (or has failed: see `failed_ids`).
    """

    def __init__(
        self,
        store: ChromaStore,
        index: Index,
        embed_batch_size: int,
        store_batch: int = STORE_BATCH,
        depth: int = 2,
        on_progress: ChunkProgress | None = None,
    ) -> None:
        self._store = store
        self._root = index.layout.root
        self._embedder = index.embedder
        self._heading_context = index.settings.heading_context
        self._embed_batch_size = embed_batch_size
        self._store_batch = max(store_batch, embed_batch_size)
        self._depth = depth
        self._on_progress = on_progress
        self._embedding = ThreadPoolExecutor(max_workers=max(1, depth), thread_name_prefix="rag-embed")
        self._storing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-store")  # one: in order
        self._buffer: list[Chunk] = []
        self._submitted = 0  # batches handed to the worker
        self._stored = 0  # batches the worker finished, collected in order
        self._in_flight: deque[tuple[Future[tuple[int, dict[str, str]]], list[Chunk]]] = deque()
        self._callbacks: deque[tuple[int, Callable[[], None]]] = deque()
        self._found = 0  # chunks submitted, duplicates within a batch counted once
        self._done = 0  # chunks of the batches collected
        self.embedded = 0
        self.failed_ids: dict[str, str] = {}  # chunk id -> why storing it failed

    def add_file(self, source: str, chunks: Iterable[Chunk]) -> list[str]:
        """Queue a file's chunks; returns their ids. Any exception from reading or splitting the file is
        raised as FileFailed (a LoadError's message as it is), and the file's chunks still in the buffer are
        dropped (any already submitted are strays, removed at the end of the run)."""
        ids: list[str] = []
        file_start = len(self._buffer)
        iterator = iter(chunks)
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                break
            except LoadError as exc:
                del self._buffer[file_start:]
                raise FileFailed(str(exc)) from exc
            except Exception as exc:  # an unexpected failure in one file never loses the others
                del self._buffer[file_start:]
                logger.debug("reading %s failed", source, exc_info=True)
                raise FileFailed(
                    f"{source}: could not be read ({brief(exc)}): check or re-export the file; run with --debug "
                    "and report it if the file looks sound"
                ) from exc
            self._buffer.append(chunk)
            ids.append(chunk.id)
            if len(self._buffer) >= self._store_batch or self._first_batch_ready():
                self._submit()  # errors of the model or the store are the run's, not this file's
                file_start = 0
        if not ids:
            raise FileFailed(
                str(LoadError(source, "no text found", "check that the file has text (a scanned PDF needs OCR first)"))
            )
        return ids

    def _first_batch_ready(self) -> bool:
        """The first batch goes as soon as it can keep two models busy, not when it is full: until then the
        embedder has nothing to do. Later batches wait to be full, as Chroma's upsert costs per call."""
        return self._submitted == 0 and len(self._buffer) >= 2 * self._embed_batch_size

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
        self._storing.shutdown(wait=True, cancel_futures=True)
        self._embedding.shutdown(wait=True, cancel_futures=True)

    def _submit(self) -> None:
        # The same content under two names gives the same chunk ids; one upsert call must not repeat an id.
        ensure_room(self._root)  # before writing, not in the middle of a write to a full disk
        batch = list({chunk.id: chunk for chunk in self._buffer}.values())
        self._buffer = []
        self._found += len(batch)
        while len(self._in_flight) >= self._depth:
            self._collect_one()
        vectors = self._embedding.submit(self._embed, batch)
        self._in_flight.append((self._storing.submit(self._write, batch, vectors), batch))
        self._submitted += 1
        self._report()

    def _collect_one(self) -> None:
        future, batch = self._in_flight.popleft()
        self._collected(future.result(), batch)
        self._run_callbacks()

    def _run_callbacks(self) -> None:
        while self._in_flight and self._in_flight[0][0].done():
            future, batch = self._in_flight.popleft()
            self._collected(future.result(), batch)
        while self._callbacks and self._callbacks[0][0] <= self._stored:
            self._callbacks.popleft()[1]()

    def _collected(self, result: tuple[int, dict[str, str]], batch: list[Chunk]) -> None:
        embedded, failed = result
        self.embedded += embedded
        self.failed_ids.update(failed)
        self._stored += 1
        self._done += len(batch)
        self._report()

    def _report(self) -> None:
        if self._on_progress is None:
            return
        # the file whose chunks are being embedded, else the one whose chunks wait for the next batch
        if self._in_flight:
            embedding = self._in_flight[0][1][-1].source
        else:
            embedding = self._buffer[-1].source if self._buffer else ""
        self._on_progress(embedding, self._done, self._found + len(self._buffer))

    def _embed(self, batch: list[Chunk]) -> tuple[np.ndarray, int]:
        texts = [chunk.retrieval_text(self._heading_context) for chunk in batch]
        return self._embedder.embed_passages(texts, self._embed_batch_size)

    def _write(self, batch: list[Chunk], embedding: Future[tuple[np.ndarray, int]]) -> tuple[int, dict[str, str]]:
        try:
            vectors, embedded = embedding.result()
            self._store.upsert(batch, vectors)
            return embedded, {}
        except RagError:  # the model or the store is down: the run stops and says so
            raise
        except Exception:  # something in one file's chunks (its metadata, its text): find which, store the rest
            logger.debug("storing a batch failed; storing it file by file", exc_info=True)
        by_source: dict[str, list[Chunk]] = {}
        for chunk in batch:
            by_source.setdefault(chunk.source, []).append(chunk)
        embedded, failed = 0, {}
        for source, chunks in by_source.items():
            try:
                vectors, count = self._embed(chunks)
                self._store.upsert(chunks, vectors)
                embedded += count
            except RagError:
                raise
            except Exception as exc:
                logger.debug("storing %s failed", source, exc_info=True)
                failed.update({chunk.id: brief(exc) for chunk in chunks})
        return embedded, failed
