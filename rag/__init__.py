"""rag: grounded, cited answers from your own documents.

Nothing heavy is imported here: the pipeline's libraries load inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.errors import (
    ConfigError,
    IndexLockedError,
    IndexMismatchError,
    IndexMissingError,
    LoadError,
    ModelError,
    RagError,
)
from rag.records import Answer, Chunk, Citation, Document, FileFailure, Hit, IngestReport, Page, Passage

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "ConfigError",
    "Document",
    "FileFailure",
    "Hit",
    "IndexLockedError",
    "IndexMismatchError",
    "IndexMissingError",
    "IngestReport",
    "LoadError",
    "ModelError",
    "Page",
    "Passage",
    "RagError",
    "Settings",
    "ask",
    "ingest",
]


def ingest(paths: Iterable[str | Path], settings: Settings | None = None, **options: Any) -> IngestReport:
    """Load, split, embed and store the files under `paths`; unchanged files are skipped."""
    from rag.ingest import ingest_paths

    return ingest_paths(paths, settings or Settings(), **options)


def ask(question: str, settings: Settings | None = None, **options: Any) -> Answer:
    """Retrieve passages for `question` and answer from them, with citations."""
    from rag.qa import answer_question

    return answer_question(question, settings or Settings(), **options)
