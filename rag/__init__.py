"""rag: grounded, cited answers from your own documents.

Nothing heavy is imported here: the pipeline's libraries load inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.conversation import Conversation, Turn
from rag.errors import (
    ConfigError,
    DatasetError,
    IndexDamagedError,
    IndexLockedError,
    IndexMismatchError,
    IndexMissingError,
    LoadError,
    ModelError,
    RagError,
    StoreUnreachableError,
)
from rag.records import (
    Answer,
    Chunk,
    Citation,
    Document,
    Edition,
    FileFailure,
    Hit,
    IngestReport,
    Message,
    Page,
    Passage,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "ConfigError",
    "Conversation",
    "DatasetError",
    "Document",
    "Edition",
    "FileFailure",
    "Hit",
    "IndexDamagedError",
    "IndexLockedError",
    "IndexMismatchError",
    "IndexMissingError",
    "IngestReport",
    "LoadError",
    "Message",
    "ModelError",
    "Page",
    "Passage",
    "RagError",
    "Settings",
    "StoreUnreachableError",
    "Turn",
    "__version__",
    "ask",
    "ingest",
]


# The submodule rag.ingest is loaded before the function of the same name is defined: Python binds a
# submodule to its package's attribute when it is first loaded, which, loaded later, would replace
# `rag.ingest` the function with the module. It imports no model or store library (about 60 ms).
import rag.ingest as _ingest_module  # noqa: F401


def ingest(paths: Iterable[str | Path], settings: Settings | None = None, **options: Any) -> IngestReport:
    """Load, split, embed and store the files under `paths`; unchanged files are skipped."""
    from rag.index import Index
    from rag.ingest import ingest_paths

    embedder = options.pop("embedder", None)
    with Index(settings or Settings(), embedder) as index:
        return ingest_paths(paths, index, **options)


def ask(question: str, settings: Settings | None = None, **options: Any) -> Answer:
    """Retrieve passages for `question` and answer from them, with citations. `history=[...]` (Messages or
    {"role", "content"} dicts, oldest first) reads a follow-up with the turns before it; the answer's
    `condensed_question` is the standalone question that was searched for. `as_of` (a date, default today)
    and `product` choose the editions searched (README, "Editions")."""
    from rag.qa import answer_question

    return answer_question(question, settings or Settings(), **options)
