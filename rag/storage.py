"""The index's disk: a full disk or a read-only index explained in one line, and a read-only index made
readable for `ask`.

Chroma says neither in words: on a full disk its upsert raises "Error in compaction: Failed to apply logs to
the metadata segment", and it opens its SQLite file for writing even to read, so on a read-only mount it
raises "attempt to write a readonly database". The faces (rag/cli.py, rag/server_guard.py) pass any
unexpected error through `storage_problem`, which looks at the error and at the disk itself.
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import tempfile
from pathlib import Path

from rag.errors import StorageError

__all__ = ["disk_full", "ensure_room", "is_writable", "readable_copy", "storage_problem"]

# Below this much free space, an error nothing else explains is put down to the disk being full.
NEARLY_FULL_BYTES = 64 * 1024 * 1024
# A run stops before a store batch when less than this is free: Chroma's writer can block for good, rather than
# fail, when the disk fills in the middle of a write (tests/test_storage.py hung on a 1 MB disk), and a batch of
# 128 chunks with its HNSW and SQLite pages takes a few MB.
MIN_FREE_TO_WRITE_BYTES = 16 * 1024 * 1024
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def storage_problem(exc: BaseException, root: Path) -> StorageError | None:
    """A StorageError naming the cause and the fix when `exc` comes from a full disk or a read-only index at
    `root`; None when it does not."""
    codes: set[int] = set()
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(texts) < 10:  # the error and what caused it
        if isinstance(seen, OSError) and seen.errno is not None:
            codes.add(seen.errno)
        texts.append(str(seen).lower())
        seen = seen.__cause__ or seen.__context__
    text = " ".join(texts)
    where = _existing(root)
    free = _free_bytes(where)
    if codes & _FULL or "no space left" in text or "disk is full" in text or "disk full" in text:
        return StorageError(_full_message(root, free))
    read_only = codes & _READ_ONLY or "read-only file system" in text or "readonly database" in text
    if read_only or (_from_storage(exc) and not is_writable(where)):
        return StorageError(
            f"the index {root} is read-only ({_why_read_only(where)}): `rag ingest` needs to write there; "
            "make it writable, or copy it (cp -r) to a writable folder and pass --index"
        )
    if free is not None and free < NEARLY_FULL_BYTES and _from_storage(exc):
        return StorageError(_full_message(root, free))
    return None


def disk_full(root: Path) -> StorageError | None:
    """A StorageError when the disk holding `root` is (nearly) full, for errors that do not say why."""
    free = _free_bytes(_existing(root))
    return StorageError(_full_message(root, free)) if free is not None and free < NEARLY_FULL_BYTES else None


def ensure_room(root: Path) -> None:
    """Raise a StorageError when the disk holding `root` has less than MIN_FREE_TO_WRITE_BYTES free; called
    before each store batch, so a run stops with one line instead of writing into a full disk."""
    free = _free_bytes(_existing(root))
    if free is not None and free < MIN_FREE_TO_WRITE_BYTES:
        raise StorageError(_full_message(root, free))


def _full_message(root: Path, free: int | None) -> str:
    left = f" ({_size(free)} free)" if free is not None else ""
    return (
        f"the disk holding the index {root} is full{left}: free some space, or move the index to a larger disk "
        "(--index), then run the command again; what was stored before is kept"
    )


def _from_storage(exc: BaseException) -> bool:
    """An error raised by Chroma or SQLite, or an OSError: what a full disk looks like in this program."""
    module = type(exc).__module__ or ""
    return isinstance(exc, OSError) or module.startswith(("chromadb", "sqlite3")) or "sqlite" in str(exc).lower()


def is_writable(folder: Path) -> bool:
    """Whether this process can write `folder` and every file in it (a read-only mount, or permissions)."""
    if not folder.exists():
        return True
    if _read_only_mount(folder) or not os.access(folder, os.W_OK):
        return False
    return all(os.access(path, os.W_OK) for path in folder.rglob("*"))


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _why_read_only(folder: Path) -> str:
    return "a read-only file system" if _read_only_mount(folder) else "no write permission"


def readable_copy(chroma_dir: Path) -> Path:
    """A writable copy of a read-only Chroma folder, in the temporary folder, removed when the process exits;
    a StorageError when it does not fit there."""
    size = sum(path.stat().st_size for path in chroma_dir.rglob("*") if path.is_file())
    scratch = Path(tempfile.gettempdir())
    free = _free_bytes(scratch)
    if free is not None and size + NEARLY_FULL_BYTES > free:
        raise StorageError(
            f"the index {chroma_dir.parent} is read-only, and Chroma opens its files for writing even to read; "
            f"a copy ({_size(size)}) does not fit in {scratch} ({_size(free)} free): set TMPDIR to a larger folder, "
            "or make the index writable"
        )
    folder = Path(tempfile.mkdtemp(prefix="rag-read-only-"))
    atexit.register(shutil.rmtree, folder, True)
    copy = folder / chroma_dir.name
    shutil.copytree(chroma_dir, copy)
    for path in (copy, *copy.rglob("*")):  # the copy keeps the originals' modes: make it writable
        path.chmod(path.stat().st_mode | 0o200)
    return copy


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(_existing(path)).free
    except OSError:
        return None


def _size(count: int) -> str:
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} KB"
    if count < 1024**3:
        return f"{count / 1024**2:.1f} MB"
    return f"{count / 1024**3:.1f} GB"
