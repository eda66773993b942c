"""The SQLite file behind the embedding cache (`rag.embed_cache`): its schema, opening it in WAL mode with a
busy timeout, telling corruption from contention, write transactions, and moving a corrupt file aside.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "BUSY_TIMEOUT_S",
    "SCHEMA_VERSION",
    "is_contention",
    "is_corruption",
    "move_aside",
    "open_cache_file",
    "open_database",
    "write_transaction",
]

logger = logging.getLogger("rag.embed_cache")  # its warnings are the cache's

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
_PAGE_SIZE = 8192  # a 384-dim row (~1.6 kB) packs 5 to a page; 4 kB pages waste about a fifth

# Primary result codes (the low byte of an extended code).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 5, 6, 11, 13, 26

_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT INTO meta (name, value) VALUES ('clock', 0), ('count', 0)",
    "CREATE TABLE embedders (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, dim INTEGER NOT NULL)",
    """CREATE TABLE vectors (
        id INTEGER PRIMARY KEY,
        embedder INTEGER NOT NULL,
        key BLOB NOT NULL,
        dim INTEGER NOT NULL,
        vec BLOB NOT NULL,
        last_used INTEGER NOT NULL,
        UNIQUE (embedder, key)
    )""",
    "CREATE INDEX vectors_last_used ON vectors (last_used)",
    """CREATE TRIGGER vectors_count_insert AFTER INSERT ON vectors
       BEGIN UPDATE meta SET value = value + 1 WHERE name = 'count'; END""",
    """CREATE TRIGGER vectors_count_delete AFTER DELETE ON vectors
       BEGIN UPDATE meta SET value = value - 1 WHERE name = 'count'; END""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_corruption(exc: sqlite3.Error) -> bool:
    """The file is damaged or not a database: start a fresh one."""
    code = _primary_code(exc)
    if code is not None:
        return code in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    message = str(exc).lower()
    return "malformed" in message or "not a database" in message


def is_contention(exc: sqlite3.Error) -> bool:
    """Locked past the busy timeout, or the disk is full: skip the cache write, keep ingesting."""
    code = _primary_code(exc)
    if code is not None:
        return code in (_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL)
    return "locked" in str(exc).lower()


class _UnusableFile(Exception):
    """The file is a SQLite database, but not one this version of the cache can use."""


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    # IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so a transaction never has to
    # upgrade a read lock, which in WAL mode fails at once with SQLITE_BUSY instead of waiting.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                logger.debug("rollback failed", exc_info=True)
        raise
    conn.execute("COMMIT")


def open_cache_file(path: Path) -> sqlite3.Connection:
    """A connection to the cache file at `path`, created with its schema if new; a corrupt or foreign file
    is moved aside (`move_aside`) and a fresh one started. Raises `sqlite3.Error` for anything else (locked
    past the busy timeout, permissions): the file may be fine, so it is left be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return open_database(path)
    except (sqlite3.DatabaseError, _UnusableFile) as exc:
        if isinstance(exc, sqlite3.DatabaseError) and not is_corruption(exc):
            raise  # locked past the timeout, permissions, ...: the file may be fine, so leave it be
        move_aside(path, exc)
        return open_database(path)


def open_database(path: Path) -> sqlite3.Connection:
    """A connection to the cache file at `path` in WAL mode, the schema created if the file is new."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        # page_size and auto_vacuum only take effect on a new, empty file; elsewhere they are harmless.
        conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL").fetchone()
        # With WAL, NORMAL means a power cut may lose the last commits but cannot corrupt the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        with write_transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise _UnusableFile("a SQLite database, but not an embedding cache")
                for statement in _SCHEMA:
                    conn.execute(statement)
            elif version != SCHEMA_VERSION:
                raise _UnusableFile(f"schema version {version}, this version reads {SCHEMA_VERSION}")
        return conn
    except BaseException:
        conn.close()
        raise


def move_aside(path: Path, reason: BaseException) -> Path:
    """Rename the unreadable cache file at `path` (and its WAL files) to `<name>.corrupt-<timestamp>`."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    path.replace(target)
    # The write-ahead log belongs to the bad file: replayed into a fresh one it would damage it.
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.replace(target.with_name(target.name + suffix))
    logger.warning(
        "embedding cache %s is unreadable (%s): moved it to %s and started an empty cache; "
        "vectors will be recomputed as needed",
        path,
        reason,
        target.name,
    )
    return target
