"""The manifest: which file holds which content, which chunk ids that content became, and how the index was built.

Written atomically after the store has the chunks, so it never names a chunk the store lacks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import IndexDamagedError

MANIFEST_VERSION = 1


@dataclass
class FileEntry:
    sha256: str
    size: int
    mtime_ns: int
    chunk_ids: list[str]
    edition: dict[str, str] | None = None  # product, edition, effective_from, effective_to, origin (rag/editions.py)


@dataclass
class Manifest:
    fingerprint: dict[str, Any] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Manifest | None:
        """The manifest at `path`, or None when there is none yet."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            files = {source: FileEntry(**entry) for source, entry in raw.get("files", {}).items()}
            fingerprint = raw.get("fingerprint", {})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise IndexDamagedError(
                f"{path} is unreadable ({exc}); run `rag ingest --rebuild` on your documents, or delete "
                f"{path.parent} and run `rag ingest` again"
            ) from exc
        return cls(fingerprint=fingerprint, files=files)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": MANIFEST_VERSION,
            "fingerprint": self.fingerprint,
            "files": {source: vars(entry) for source, entry in sorted(self.files.items())},
        }
        # compact: json's C encoder does not indent, and its Python one took 0.2 s a save at 10,000 files
        atomic_write_text(path, json.dumps(payload, ensure_ascii=False, separators=(",", ":")))

    def chunk_ids(self) -> set[str]:
        return {chunk_id for entry in self.files.values() for chunk_id in entry.chunk_ids}

    def sources_of(self, doc_sha256: str) -> list[str]:
        return sorted(source for source, entry in self.files.items() if entry.sha256 == doc_sha256)

    def documents(self) -> int:
        return len({entry.sha256 for entry in self.files.values()})


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
