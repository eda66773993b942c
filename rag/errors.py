"""Domain errors. Each message says what is wrong, where, and what to do about it."""

from __future__ import annotations


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


class IndexLockedError(RagError):
    """Another process is writing to the index."""

    exit_code = 4


class ModelError(RagError):
    """The chat or embedding model could not give an answer."""

    exit_code = 5


class DatasetError(RagError, ValueError):
    """An evaluation set that is not in a recognised format, or whose files are malformed."""

    exit_code = 2
