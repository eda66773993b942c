"""Domain errors. Each message says what is wrong, where, and what to do about it."""

from __future__ import annotations

import json
import re


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


class ModelError(RagError):
    """The chat or embedding model could not give an answer."""

    exit_code = 5


MASK = "sk-***"


def mask_secret(text: str, secret: str | None) -> str:
    """`text` with every form of `secret` in it replaced by a mask: as it is, in upper or lower case, and
    JSON-escaped (a server that echoes the key in a JSON error body may write `sk\\u002d...`). Used on every
    message that a model call (chat or embeddings) can raise, and on --debug tracebacks."""
    if not secret or len(secret) < 8:
        return text
    forms = {secret, secret.upper(), secret.lower(), json.dumps(secret)[1:-1]}
    forms.add("".join(f"\\u{ord(ch):04x}" if not ch.isalnum() else ch for ch in secret))
    for form in sorted(forms, key=len, reverse=True):
        text = re.sub(re.escape(form), MASK, text, flags=re.IGNORECASE)
    return text


def brief(exc: BaseException) -> str:
    """An unexpected exception as a short clause of a message: its type, and its text cut to one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
