"""A durable, bounded cache of embedding vectors, keyed by (embedder id, sha256 of the exact text).

Embedding is the slow stage, so ingest asks this cache first and embeds only what it misses.

Storage is one SQLite file (stdlib `sqlite3`) in WAL mode with a busy timeout, so several processes can read
and write it at once: writers wait for each other instead of failing. Vectors are little-endian float32
blobs; each row stores its dimension, and each embedder id has one current dimension: a row whose blob or
dimension does not fit is a miss, never a silently mixed vector. The number of rows is bounded: after each
`put_many` the least recently used rows beyond `max_entries` are evicted (a logical clock orders uses; a
trigger-maintained row count keeps the check O(1)).

The cache is best effort. A corrupt or foreign file is renamed aside (`<name>.corrupt-<timestamp>`) with a
warning and a fresh cache is started; a write that still finds the file locked after the busy timeout is
skipped with a warning. Ingest never fails because of the cache.

One `EmbeddingCache` may be shared between threads (one connection, guarded by a lock); for parallel
throughput give each thread or process its own instance on the same path.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

from rag.embed_cache_file import (
    is_contention,
    is_corruption,
    move_aside,
    open_cache_file,
    open_database,
    write_transaction,
)
from rag.errors import ModelError

__all__ = ["EmbeddingCache", "embed_with_cache", "text_key"]

logger = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]
_T = TypeVar("_T")

_IN_BATCH = 500  # keys per `IN (...)` query, well under SQLite's bound-parameter limit
_BLOB_DTYPE = np.dtype("<f4")

_UPSERT = (
    "INSERT INTO vectors (embedder, key, dim, vec, last_used) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (embedder, key) DO UPDATE SET "
    "dim = excluded.dim, vec = excluded.vec, last_used = excluded.last_used"
)


def text_key(text: str) -> str:
    """The sha256 hex digest of `text` in UTF-8 (lone surrogates pass through rather than raise)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _digest(text: str) -> bytes:
    # Stored form of `text_key`: the 32 raw bytes, half the size of the hex string.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _tick(conn: sqlite3.Connection) -> int:
    """Advance and return the shared logical clock that orders uses for LRU eviction."""
    row = conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'clock' RETURNING value").fetchone()
    return int(row[0])


def _decode(blob: object, row_dim: int, expected_dim: int) -> Vector | None:
    """The stored vector, or None if the row does not hold a sound vector of `expected_dim` floats."""
    if not isinstance(blob, bytes) or row_dim != expected_dim or len(blob) != row_dim * _BLOB_DTYPE.itemsize:
        return None
    # astype copies: the array is writable and in native byte order
    vector = np.frombuffer(blob, dtype=_BLOB_DTYPE).astype(np.float32)
    if not np.isfinite(vector).all():  # put_many never stores these, so the bytes were damaged
        return None
    return vector


class EmbeddingCache:
    """Embedding vectors by (embedder id, exact text), in one SQLite file, bounded by `max_entries` (LRU)."""

    def __init__(self, path: Path, max_entries: int = 500_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self.path = Path(path)
        self.max_entries = max_entries
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = open_cache_file(self.path)

    # -- opening and recovery --------------------------------------------------------------------------

    def _reset_after_corruption(self, exc: sqlite3.Error) -> sqlite3.Connection:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                logger.debug("closing the corrupt cache failed", exc_info=True)
            self._conn = None
        if self.path.exists():
            move_aside(self.path, exc)
        self._conn = open_database(self.path)
        return self._conn

    def _run(self, what: str, op: Callable[[sqlite3.Connection], _T], fallback: _T) -> _T:
        """Run `op` under the lock; on corruption start a fresh file, on lock contention skip it."""
        with self._lock:
            if self._conn is None:
                raise ValueError(f"embedding cache {self.path} is closed")
            try:
                return op(self._conn)
            except sqlite3.DatabaseError as exc:
                if is_corruption(exc):
                    return op(self._reset_after_corruption(exc))  # once more, on a fresh file
                if is_contention(exc):
                    logger.warning("embedding cache %s: %s skipped: %s", self.path, what, exc)
                    return fallback
                raise

    # -- the cache -----------------------------------------------------------------------------------

    def get_many(self, embedder_id: str, texts: Sequence[str], *, dim: int | None = None) -> list[Vector | None]:
        """The cached vector of each text (aligned with `texts`), None for a miss; hits count as a use.

        A row is a miss when its dimension is not the embedder's current one (or `dim`, if given), or when
        its bytes do not decode to that many finite float32 values.
        """
        keys = [_digest(text) for text in texts]
        misses: list[Vector | None] = [None] * len(keys)
        if not keys:
            return misses

        def op(conn: sqlite3.Connection) -> list[Vector | None]:
            row = conn.execute("SELECT id, dim FROM embedders WHERE name = ?", (embedder_id,)).fetchone()
            if row is None or (dim is not None and row[1] != dim):
                return misses
            embedder, expected_dim = int(row[0]), int(row[1])
            unique = list(dict.fromkeys(keys))
            found: dict[bytes, tuple[int, Vector]] = {}
            for start in range(0, len(unique), _IN_BATCH):
                batch = unique[start : start + _IN_BATCH]
                query = (
                    "SELECT id, key, dim, vec FROM vectors "
                    f"WHERE embedder = ? AND key IN ({', '.join('?' * len(batch))})"
                )
                for row_id, key, row_dim, blob in conn.execute(query, (embedder, *batch)):
                    vector = _decode(blob, row_dim, expected_dim)
                    if vector is not None:
                        found[bytes(key)] = (int(row_id), vector)
            if found:
                self._touch(conn, [row_id for row_id, _ in found.values()])
            result: list[Vector | None] = []
            given: set[bytes] = set()
            for key in keys:
                hit = found.get(key)
                if hit is None:
                    result.append(None)
                else:  # a text asked for twice gets two arrays, so changing one leaves the other alone
                    result.append(hit[1].copy() if key in given else hit[1])
                    given.add(key)
            return result

        return self._run("lookup", op, misses)

    def _touch(self, conn: sqlite3.Connection, row_ids: list[int]) -> None:
        try:
            with write_transaction(conn):
                tick = _tick(conn)
                conn.executemany("UPDATE vectors SET last_used = ? WHERE id = ?", [(tick, i) for i in row_ids])
        except sqlite3.OperationalError as exc:
            if not is_contention(exc):
                raise
            logger.debug("embedding cache %s: use times not refreshed: %s", self.path, exc)

    def put_many(
        self,
        embedder_id: str,
        texts: Sequence[str],
        vectors: npt.NDArray[np.floating] | Sequence[Sequence[float]],
    ) -> None:
        """Store one vector per text in one transaction, then evict the least recently used beyond the bound.

        Vectors are stored as float32. A vector with a NaN or an infinity is not stored. A dimension other
        than the one cached for `embedder_id` means the embedder changed: its old vectors are dropped.
        """
        array = np.asarray(vectors, dtype=np.float32)
        if len(texts) == 0 and array.size == 0:
            return
        if array.ndim != 2 or array.shape[0] != len(texts) or array.shape[1] == 0:
            raise ValueError(f"expected {len(texts)} vectors, one per text, not an array of {array.shape}")
        finite = np.asarray(np.isfinite(array).all(axis=1), dtype=np.bool_)
        if not finite.all():
            logger.warning(
                "embedding cache: not storing %d vector(s) from %s with NaN or infinite values",
                int((~finite).sum()),
                embedder_id,
            )
        stored = array.astype(_BLOB_DTYPE, copy=False)
        new_dim = int(array.shape[1])
        payload = [(_digest(text), stored[i].tobytes()) for i, text in enumerate(texts) if finite[i]]
        if not payload:
            return

        def op(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                embedder = self._embedder_for_write(conn, embedder_id, new_dim)
                tick = _tick(conn)
                conn.executemany(_UPSERT, ((embedder, key, new_dim, blob, tick) for key, blob in payload))
                self._evict(conn)

        self._run("store", op, None)

    def _embedder_for_write(self, conn: sqlite3.Connection, name: str, dim: int) -> int:
        row = conn.execute("SELECT id, dim FROM embedders WHERE name = ?", (name,)).fetchone()
        if row is None:
            inserted = conn.execute(
                "INSERT INTO embedders (name, dim) VALUES (?, ?) RETURNING id", (name, dim)
            ).fetchone()
            return int(inserted[0])
        embedder, old_dim = int(row[0]), int(row[1])
        if old_dim != dim:
            dropped = conn.execute("DELETE FROM vectors WHERE embedder = ?", (embedder,)).rowcount
            conn.execute("UPDATE embedders SET dim = ? WHERE id = ?", (dim, embedder))
            logger.warning(
                "embedding cache: %s now gives %d-dimensional vectors, the cache held %d-dimensional ones; "
                "dropped its %d cached vectors",
                name,
                dim,
                old_dim,
                dropped,
            )
        return embedder

    def _evict(self, conn: sqlite3.Connection) -> None:
        count = conn.execute("SELECT value FROM meta WHERE name = 'count'").fetchone()[0]
        excess = int(count) - self.max_entries
        if excess > 0:
            conn.execute(
                "DELETE FROM vectors WHERE id IN (SELECT id FROM vectors ORDER BY last_used, id LIMIT ?)",
                (excess,),
            )
            logger.debug("embedding cache %s: evicted %d least recently used vectors", self.path, excess)

    def __len__(self) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT value FROM meta WHERE name = 'count'").fetchone()[0])

        return self._run("count", op, 0)

    def clear(self, embedder_id: str | None = None) -> int:
        """Remove the vectors of `embedder_id`, or all of them; return how many rows were removed."""

        def op(conn: sqlite3.Connection) -> int:
            with write_transaction(conn):
                if embedder_id is None:
                    removed = conn.execute("DELETE FROM vectors").rowcount
                    conn.execute("DELETE FROM embedders")
                else:
                    row = conn.execute("SELECT id FROM embedders WHERE name = ?", (embedder_id,)).fetchone()
                    if row is None:
                        return 0
                    removed = conn.execute("DELETE FROM vectors WHERE embedder = ?", (row[0],)).rowcount
                    conn.execute("DELETE FROM embedders WHERE id = ?", (row[0],))
            # Give the freed pages back to the file system (best effort: other readers may hold the log).
            # executescript steps the pragma to the end; execute would free a single page.
            conn.executescript("PRAGMA incremental_vacuum")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return int(removed)

        return self._run("clear", op, 0)

    def stats(self) -> dict[str, object]:
        """entries, max_entries, per_embedder (rows by embedder id), dims (by id), file_bytes, path."""

        def op(conn: sqlite3.Connection) -> dict[str, object]:
            rows = conn.execute(
                "SELECT e.name, e.dim, count(v.id) FROM embedders e "
                "LEFT JOIN vectors v ON v.embedder = e.id GROUP BY e.id ORDER BY e.name"
            ).fetchall()
            entries = int(conn.execute("SELECT value FROM meta WHERE name = 'count'").fetchone()[0])
            return {
                "path": str(self.path),
                "entries": entries,
                "max_entries": self.max_entries,
                "per_embedder": {str(name): int(n) for name, _, n in rows},
                "dims": {str(name): int(d) for name, d, _ in rows},
                "file_bytes": self._file_bytes(),
            }

        empty: dict[str, object] = {
            "path": str(self.path),
            "entries": 0,
            "max_entries": self.max_entries,
            "per_embedder": {},
            "dims": {},
            "file_bytes": 0,
        }
        return self._run("stats", op, empty)

    def _file_bytes(self) -> int:
        total = 0
        for name in (self.path.name, self.path.name + "-wal"):
            with suppress(FileNotFoundError):
                total += self.path.with_name(name).stat().st_size
        return total

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r}, max_entries={self.max_entries})"


def _embed_checked(embed: Callable[[list[str]], np.ndarray], embedder_id: str, batch: list[str]) -> Vector:
    array = np.asarray(embed(batch), dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != len(batch) or array.shape[1] == 0:
        raise ModelError(
            f"the embedder {embedder_id} returned an array of shape {array.shape} for {len(batch)} texts, "
            f"expected ({len(batch)}, dimension): check the embedding model or server"
        )
    return array


def embed_with_cache(
    cache: EmbeddingCache | None,
    embedder_id: str,
    texts: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    *,
    dim: int | None = None,
) -> tuple[Vector, int]:
    """Vectors for `texts`, shape (len(texts), dim), float32, and how many texts `embed` was given.

    Identical texts are embedded once and cached ones not at all: `embed` is called once with the unique
    misses, or not at all. `dim`, if given, is the dimension the embedder produces; cached vectors of another
    one are misses. If the embedder returns another dimension than the cached hits have (its output changed
    under the same id), the hits are stale: they are embedded again (a second call) and replaced.
    With no texts the result has shape (0, 0).
    """
    texts = list(texts)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32), 0
    unique = list(dict.fromkeys(texts))
    found: list[Vector | None] = (
        cache.get_many(embedder_id, unique, dim=dim) if cache is not None else [None] * len(unique)
    )
    missing = [i for i, vector in enumerate(found) if vector is None]
    embedded = 0
    if missing:
        fresh = _embed_checked(embed, embedder_id, [unique[i] for i in missing])
        embedded = len(missing)
        new_dim = fresh.shape[1]
        stale = [i for i, vector in enumerate(found) if vector is not None and vector.shape[0] != new_dim]
        if stale:
            logger.warning(
                "%s returned %d-dimensional vectors but %d cached ones differ: re-embedding them",
                embedder_id,
                new_dim,
                len(stale),
            )
            again = _embed_checked(embed, embedder_id, [unique[i] for i in stale])
            if again.shape[1] != new_dim:
                raise ModelError(
                    f"the embedder {embedder_id} returned vectors of {new_dim} and of {again.shape[1]} "
                    "dimensions in one run: check the embedding model or server"
                )
            missing += stale
            fresh = np.concatenate([fresh, again])
            embedded += len(stale)
        for row, i in enumerate(missing):
            found[i] = fresh[row]
        if cache is not None:
            cache.put_many(embedder_id, [unique[i] for i in missing], fresh)
    table = np.stack(cast(list[Vector], found))  # every miss was filled above
    position = {text: i for i, text in enumerate(unique)}
    return table[[position[text] for text in texts]], embedded
