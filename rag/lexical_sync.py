"""A BM25 index kept in step with a Chroma collection that other processes may write to.

Several `rag serve` replicas can share one Chroma server; each keeps its own in-memory `LexicalIndex`,
built from the collection's documents on first use. Every write to the collection sets a new
`rag_version` in the collection's metadata (`ChromaStore.version`, one small request); at most every
`interval` seconds a reader compares that token with the one its index was built at, and on a change
catches up incrementally: chunk ids derive from content, so an id never changes its text and the
difference between the collection's ids and the index's ids is the whole change.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.lexical import LexicalIndex
    from rag.store import ChromaStore

__all__ = ["LexicalMirror", "catch_up"]


class LexicalMirror:
    """The lexical index of a (possibly shared) collection, refreshed when the collection changes."""

    def __init__(
        self, store: ChromaStore, interval: float = 2.0, saved: Path | None = None, heading_context: bool = True
    ) -> None:
        """`saved`: a folder where ingest persisted a LexicalIndex; a head start that is then caught up.
        `heading_context`: index each chunk with its heading path in front, as ingest does."""
        self._store = store
        self._heading_context = heading_context
        self._saved = saved
        self._interval = interval
        self._index: LexicalIndex | None = None
        self._version: str | None = None
        self._checked = 0.0
        self._lock = threading.Lock()  # one refresh at a time; readers keep using the previous index meanwhile
        self.rebuilds = 0  # how often the index changed (for tests and status)

    @property
    def version(self) -> str | None:
        return self._version

    def get(self, force: bool = False) -> LexicalIndex:
        """The current index; checks the collection for changes when `interval` has passed (or `force`)."""
        index = self._index
        due = force or index is None or time.monotonic() - self._checked >= self._interval
        if not due and index is not None:
            return index
        with self._lock:
            if self._index is not None and not force and time.monotonic() - self._checked < self._interval:
                return self._index
            self._refresh()
            assert self._index is not None
            return self._index

    def _refresh(self) -> None:
        from rag.lexical import LexicalIndex

        version = self._store.version()
        self._checked = time.monotonic()
        if self._index is not None and version == self._version:
            return
        current = self._index
        if current is None and self._saved is not None:
            current = LexicalIndex.load(self._saved)
        if current is None:
            current = LexicalIndex.build([], [], [])
        current, _ = catch_up(current, self._store, self._store.all_ids(), self._heading_context)
        self._index = current
        self._version = version
        self.rebuilds += 1


def catch_up(
    index: LexicalIndex, store: ChromaStore, wanted: set[str], heading_context: bool = True
) -> tuple[LexicalIndex, bool]:
    """`index` holding exactly the chunk ids `wanted`, the new ones' text read from the store; and whether it
    changed. Ids derive from content, so an id never changes its text and the id difference is the whole change.
    """
    have = set(index.ids)
    gone = have - wanted
    new_ids = sorted(wanted - have)
    if gone:
        index = index.remove(gone)
    if new_ids:
        # One upsert: each one re-merges the whole index, so several would cost more than they save.
        # Only what is indexed is kept, batch by batch: the chunks themselves (text and metadata) would double the
        # memory of a large catch-up (a 50 MB file) for nothing.
        ids: list[str] = []
        texts: list[str] = []
        sources: list[str] = []
        for start in range(0, len(new_ids), 1000):
            for chunk in store.get_chunks(new_ids[start : start + 1000]):
                ids.append(chunk.id)
                texts.append(chunk.retrieval_text(heading_context))
                sources.append(chunk.source)
        index = index.upsert(ids, texts, sources)
    return index, bool(gone or new_ids)
