"""One writer per index: an exclusive, non-blocking flock on the index's lock file (`<index>/.lock`).

The lock file holds the writer's pid, for the message only: the lock itself is the flock, which the kernel
releases when the process ends however it ends (exit, crash, SIGKILL), so a lock is never left behind by a
dead process and needs no clean-up. Readers (`rag ask`) never take it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.errors import IndexLockedError


@contextmanager
def index_lock(path: Path) -> Iterator[None]:
    """Hold the writer lock `path` for the duration of the block; fail at once if another process has it."""
    path = Path(path)
    index_dir = path.parent
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            who = f"pid {holder}" if holder else "another process"
            raise IndexLockedError(
                f"another rag ingest ({who}) is writing to {index_dir}; wait for it to finish and run again "
                f"(the lock is {path} and is released when that process ends)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def running_writer(path: Path) -> int | None:
    """The pid of the process that holds the writer lock `path` now, read without taking the lock; None when
    no live process is named there (none holds it, or the one named died, as a killed ingest does)."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace").strip()
        pid = int(text) if text else None
    except (OSError, ValueError):
        return None
    if pid is None or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by another user
        return pid
    return pid
