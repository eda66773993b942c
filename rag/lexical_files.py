"""The files of a saved lexical index: a folder of `.npy` arrays and a `meta.json`, replaced as a whole.

`write_index_files` writes to a temporary sibling folder first, which then takes the place of the old one by
renames; a crash at any point leaves the old index or the new one, never a mix (`read_index_files` falls back
to the old one if the crash came between the two renames). `read_index_files` checks everything it reads
and answers None for anything it cannot trust: the caller rebuilds the index from the chunks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["ARRAYS", "SavedIndex", "read_index_files", "write_index_files"]

FORMAT_VERSION = 1
ARRAYS = ("indptr", "doc", "tf", "doc_len", "source_code")
"""The arrays of an index, one `<name>.npy` file each (see `LexicalIndex` for what they hold)."""


@dataclass(frozen=True)
class SavedIndex:
    """What `read_index_files` found, checked for consistency: `arrays` by the names in `ARRAYS`."""

    ids: list[str]
    source_names: list[str]
    vocab: list[str]
    arrays: dict[str, npt.NDArray[Any]]
    k1: float
    b: float


def write_index_files(
    directory: Path,
    arrays: dict[str, npt.NDArray[Any]],
    *,
    tokenizer: str,
    k1: float,
    b: float,
    ids: list[str],
    source_names: list[str],
    vocab: list[str],
) -> None:
    """Write an index to `directory`, replacing what is there, atomically (the module says how).
    `tokenizer` is the fingerprint of the tokenizer that built it."""
    import numpy as np

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        for name, array in arrays.items():
            with open(tmp / f"{name}.npy", "wb") as f:
                np.save(f, array, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        meta = {
            "format": FORMAT_VERSION,
            "tokenizer": tokenizer,
            "params": {"k1": k1, "b": b},
            "shapes": {name: len(array) for name, array in arrays.items()},
            "ids": ids,
            "source_names": source_names,
            "vocab": vocab,
        }
        # meta.json is written last: a directory without it is never a valid index
        with open(tmp / "meta.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        old = _previous(directory)
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        _fsync_directory(directory.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_index_files(directory: Path, tokenizer: str) -> SavedIndex | None:
    """The index saved in `directory`, or None when it is missing, unreadable, corrupt, or was built by
    another tokenizer than the one whose fingerprint is `tokenizer`."""
    import numpy as np

    directory = Path(directory)
    if not (directory / "meta.json").exists() and (_previous(directory) / "meta.json").exists():
        directory = _previous(directory)  # a save crashed between its two renames
    try:
        with open(directory / "meta.json", encoding="utf-8") as f:
            meta = json.load(f)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION or meta.get("tokenizer") != tokenizer:
            return None
        k1, b = float(meta["params"]["k1"]), float(meta["params"]["b"])
        if not (k1 >= 0 and 0 <= b <= 1):
            return None
        arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False) for name in ARRAYS}
        ids, names, vocab = meta["ids"], meta["source_names"], meta["vocab"]
        indptr, doc, tf = arrays["indptr"], arrays["doc"], arrays["tf"]
        doc_len, code = arrays["doc_len"], arrays["source_code"]
        if not (
            all(arrays[name].ndim == 1 and len(arrays[name]) == meta["shapes"][name] for name in ARRAYS)
            and indptr.dtype == np.int64
            and doc.dtype == doc_len.dtype == code.dtype == np.int32
            and tf.dtype == np.uint16
            and len(ids) == len(doc_len) == len(code)
            and len(indptr) == len(vocab) + 1
            and indptr[0] == 0
            and indptr[-1] == len(doc)
            and bool(np.all(np.diff(indptr) >= 0))
            and (len(doc) == 0 or (doc.min() >= 0 and doc.max() < len(ids)))
            and (len(code) == 0 or (code.min() >= 0 and code.max() < len(names)))
            and all(isinstance(x, str) for x in (*ids, *names, *vocab))
        ):
            return None
        return SavedIndex(ids, names, vocab, arrays, k1, b)
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError):
        return None


def _previous(directory: Path) -> Path:
    """Where `write_index_files` keeps the old index during the swap."""
    return directory.with_name(f".{directory.name}.previous")


def _fsync_directory(directory: Path) -> None:
    """Make the renames in `directory` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
