"""Which files a run reads: the paths given, folders walked, and everything that cannot be read reported.

Nothing is skipped in silence: a folder that cannot be listed, a pipe, a device, a dangling link and a link
that leads out of the paths given each become a LoadError naming the path and the fix.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import LoadError

SUPPORTED_SUFFIXES = {".pdf", ".txt", ".md", ".markdown"}

# Lone surrogates: os.fsdecode's stand-ins for the bytes of a file name that are not UTF-8 (U+DC80-U+DCFF),
# or any other that cannot be written as UTF-8 (Chroma's metadata, JSON output and terminals all refuse them).
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


@dataclass(frozen=True)
class SourceFile:
    """A file found under the paths the user gave; `source` is how it is shown and stored."""

    path: Path
    source: str


def escape_undecodable(text: str) -> str:
    """`text` with each byte of a file name that is not UTF-8 written as `\\xNN` (`caf\\xe9.txt`): the form a
    source is stored and shown in. `source_path` reverses it."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _SURROGATE.sub(escape, text)


def source_path(source: str) -> Path:
    """The path on disk of a stored source: the source itself, or, when that does not exist and it holds
    escaped bytes, the name with those bytes restored."""
    path = Path(source)
    if os.path.lexists(path) or "\\x" not in source:
        return path
    return Path(_ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), source))


def discover(paths: Iterable[str | Path], follow_symlinks: bool = False) -> tuple[list[SourceFile], list[LoadError]]:
    """Walk folders recursively; skip hidden entries; report what cannot be read.

    A link found inside a folder is followed only when it leads inside one of the paths given, unless
    `follow_symlinks`; a path given by name is read wherever it leads."""
    given = [Path(raw) for raw in paths]
    roots = [os.path.realpath(root) for root in given if os.path.lexists(root)]
    found: dict[str, SourceFile] = {}
    problems: list[LoadError] = []

    def add(path: Path, explicit: bool) -> None:
        problem = _problem(path, explicit, roots, follow_symlinks)
        if problem is not None:
            problems.append(problem)
            return
        source = escape_undecodable(os.path.normpath(str(path)))
        found.setdefault(source, SourceFile(path=path, source=source))

    for root in given:
        if not os.path.lexists(root):
            problems.append(LoadError(_shown(root), "no such file or folder", "check the path"))
        elif root.is_dir():
            _walk(root, roots, follow_symlinks, add, problems)
        else:
            add(root, True)
    return sorted(found.values(), key=lambda f: f.source), problems


def _walk(
    root: Path, roots: list[str], follow_symlinks: bool, add: Callable[[Path, bool], None], problems: list[LoadError]
) -> None:
    def unlistable(exc: OSError) -> None:
        problems.append(
            LoadError(
                _shown(exc.filename or root),
                f"folder cannot be read ({exc.strerror or exc})",
                "make it readable (chmod +rx) or leave it out",
            )
        )

    seen_dirs: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unlistable):
        try:
            info = os.stat(dirpath)
        except OSError as exc:
            unlistable(exc)
            dirnames[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen_dirs:  # a symlink loop, or two links to one folder
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        kept = []
        for name in sorted(dirnames):
            folder = Path(dirpath) / name
            if name.startswith("."):
                continue
            if folder.is_symlink() and not follow_symlinks and not _inside(folder, roots):
                problems.append(_outside(folder, "folder"))
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if not name.startswith("."):
                add(Path(dirpath) / name, False)


def _problem(path: Path, explicit: bool, roots: list[str], follow_symlinks: bool) -> LoadError | None:
    """Why `path` cannot be ingested, or None. Checked without opening it: opening a pipe or a device would
    block or never end."""
    shown = _shown(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # a dangling link or a symlink loop
        return LoadError(shown, f"cannot be opened ({exc.strerror or exc})", "fix or remove the link or file")
    if stat.S_ISDIR(mode):
        return None if explicit else LoadError(shown, "is a folder", "pass the folder itself")
    if not stat.S_ISREG(mode):
        kind = "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a pipe or socket"
        return LoadError(shown, f"not a regular file ({kind})", "copy its content into a file and ingest that")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        return LoadError(
            shown, f"unsupported file type {path.suffix or '(none)'!r}", "convert it to PDF, TXT or Markdown"
        )
    if not explicit and not follow_symlinks and path.is_symlink() and not _inside(path, roots):
        return _outside(path, "file")
    return None


def _inside(path: Path, roots: list[str]) -> bool:
    target = os.path.realpath(path)
    return any(target == root or target.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _outside(path: Path, what: str) -> LoadError:
    return LoadError(
        _shown(path),
        f"a link to a {what} outside the paths given ({escape_undecodable(os.path.realpath(path))}), not followed",
        "pass --follow-symlinks (RAG_FOLLOW_SYMLINKS=true) to follow it, or ingest its target by name",
    )


def _shown(path: str | Path) -> str:
    return escape_undecodable(os.path.normpath(str(path)))
