"""Domain errors. Each message says what is wrong, where, and what to do about it."""

from __future__ import annotations

import re
from collections.abc import Iterable


class RagError(Exception):
    """Base of every error a user is meant to read."""

    exit_code = 1


class ConfigError(RagError):
    """Settings that cannot work together."""

    exit_code = 2


class LoadError(RagError):
    """One file could not be read; the rest of the batch goes on."""

    def __init__(self, path: str, problem: str, fix: str) -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path}: {problem}: {fix}")


class RequestError(RagError):
    """A question or option that cannot be answered as given: an empty question, a --source naming no file."""

    exit_code = 2


class IndexMissingError(RagError):
    """Nothing has been ingested into this index yet."""

    exit_code = 3


class IndexMismatchError(RagError):
    """The index was built with other settings than the ones in force now."""

    exit_code = 2


class IndexDamagedError(RagError):
    """The local Chroma files cannot be read: a run was killed while Chroma was saving its vector index.
    `rag ingest` rebuilds it from the files the manifest lists."""

    exit_code = 6


class StoreUnreachableError(RagError):
    """The Chroma server (RAG_CHROMA_URL) cannot be reached or refuses this client."""

    exit_code = 7


class DatasetError(RagError, ValueError):
    """An evaluation set that is not in a recognised format, or whose files are malformed."""

    exit_code = 2


class IndexLockedError(RagError):
    """Another process is writing to the index."""

    exit_code = 4


class StorageError(RagError):
    """The index's disk is full, or the index is read-only where it must be written (rag/storage.py)."""

    exit_code = 8


class ModelError(RagError):
    """The chat or embedding model could not give an answer."""

    exit_code = 5


MASK = "sk-***"


def mask_secret(text: str, secret: str | Iterable[str | None] | None) -> str:
    """`text` with every form of `secret` (or of each of several secrets) replaced by a mask. The one masking
    function: every model call (chat and embeddings, at ingest and at query time), the HTTP error bodies and
    the --debug tracebacks go through it.

    A form is the secret with each character as itself in any case, or escaped the ways an error body can
    carry it: JSON (`sk\\u002d...`, also escaped twice), URL-encoded (`%2D`), `\\/` for a slash. Secrets
    shorter than 8 characters are left alone: masking them would garble ordinary words."""
    secrets = [secret] if secret is None or isinstance(secret, str) else list(secret)
    for value in secrets:
        if value and len(value) >= 8:
            text = _secret_pattern(value).sub(MASK, text)
    return text


def _secret_pattern(secret: str) -> re.Pattern[str]:
    parts = []
    for ch in secret:
        forms = [re.escape(ch), rf"\\{{1,3}}u{ord(ch):04x}", f"%{ord(ch):02x}" if ord(ch) < 0x80 else None]
        if ch == "/":
            forms.append(r"\\{1,3}/")
        parts.append("(?:" + "|".join(form for form in forms if form) + ")")
    return re.compile("".join(parts), re.IGNORECASE)


def brief(exc: BaseException) -> str:
    """An unexpected exception as a short clause of a message: its type, and its text cut to one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
