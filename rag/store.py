"""The index on disk: the Chroma collection and the manifest that says what is in it and how it was built.

Chroma's nested result lists end here; the rest of the code sees Chunks and Hits. Chroma never embeds
anything itself: every write and query passes vectors, so its default (downloading) embedding function
never runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from rag.errors import ConfigError, IndexDamagedError, IndexMismatchError, IndexMissingError
from rag.records import Chunk, Hit

if TYPE_CHECKING:
    from rag.config import Settings

COLLECTION = "rag_chunks"
VERSION_KEY = "rag_version"  # collection metadata: changed by every write (see ChromaStore.version)
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
CHROMA_DIR = "chroma"
# Present while a writing run is under way; left behind by a crash, it makes the next run check and clean up.
DIRTY_NAME = ".ingest-incomplete"


def build_fingerprint(settings: Settings, dim: int | None = None) -> dict[str, Any]:
    """How an index is built. Two indexes with different fingerprints cannot be mixed."""
    fingerprint: dict[str, Any] = {"embedder": settings.embedder, **settings.chunking_fingerprint()}
    if dim is not None:
        fingerprint["dim"] = dim
    return fingerprint


def check_fingerprint(stored: dict[str, Any], wanted: dict[str, Any], index_dir: Path) -> None:
    differences = [
        f"{key}: index has {stored.get(key)!r}, settings ask for {value!r}"
        for key, value in wanted.items()
        if key in stored and stored.get(key) != value
    ]
    if differences:
        raise IndexMismatchError(
            f"the index at {index_dir} was built with other settings ({'; '.join(differences)}). "
            f"Use the original settings, or rebuild: delete {index_dir} (or pass --index NEWDIR) and run "
            "`rag ingest` again"
        )


@dataclass
class FileEntry:
    sha256: str
    size: int
    mtime_ns: int
    chunk_ids: list[str]


@dataclass
class Manifest:
    """Which file holds which content, and which chunk ids that content became.

    Written atomically after the store has the chunks, so it never names a chunk the store lacks.
    """

    fingerprint: dict[str, Any] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, index_dir: Path) -> Manifest | None:
        path = index_dir / MANIFEST_NAME
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise IndexMismatchError(
                f"{path} is unreadable ({exc}); delete {index_dir} and run `rag ingest` again"
            ) from exc
        files = {source: FileEntry(**entry) for source, entry in raw.get("files", {}).items()}
        return cls(fingerprint=raw.get("fingerprint", {}), files=files)

    def save(self, index_dir: Path) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": MANIFEST_VERSION,
            "fingerprint": self.fingerprint,
            "files": {source: vars(entry) for source, entry in sorted(self.files.items())},
        }
        atomic_write_text(index_dir / MANIFEST_NAME, json.dumps(payload, ensure_ascii=False, indent=1))

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


class ChromaStore:
    """The dense side of the index: one Chroma collection with cosine distance."""

    def __init__(self, collection: Any, client: Any = None) -> None:
        self._collection = collection
        self._client = client

    @classmethod
    def open(cls, settings: Settings, index_dir: Path, fingerprint: dict[str, Any], create: bool) -> ChromaStore:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        if settings.chroma_url:
            client = _http_client(settings)
            where = f"Chroma server {settings.chroma_url}"
        else:
            chroma_dir = index_dir / CHROMA_DIR
            if not create and not chroma_dir.exists():
                raise IndexMissingError(f"no index at {index_dir}: run `rag ingest PATH...` first")
            client = chromadb.PersistentClient(
                path=str(chroma_dir), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
            )
            where = str(index_dir)
        if create:
            collection = client.get_or_create_collection(
                COLLECTION,
                metadata=_metadata_of(fingerprint),
                configuration={"hnsw": {"space": "cosine"}},
                embedding_function=None,
            )
        else:
            try:
                collection = client.get_collection(COLLECTION, embedding_function=None)
            except Exception as exc:  # chromadb raises NotFoundError or ValueError by version
                if settings.chroma_url and not _is_not_found(exc):
                    raise IndexMissingError(f"cannot reach the {where}: {type(exc).__name__}: {exc}") from exc
                raise IndexMissingError(f"no index at {where}: run `rag ingest PATH...` first") from exc
        stored = {key: value for key, value in (collection.metadata or {}).items() if not key.startswith("hnsw")}
        check_fingerprint(stored, fingerprint, index_dir)
        if not settings.chroma_url:
            _check_readable(collection, index_dir)
        return cls(collection, client)

    def version(self) -> str:
        """A token that changes whenever any process writes to the collection: the `rag_version` that every
        write sets in the collection's metadata, plus the count (which also catches writers that don't set it).
        One small request to a Chroma server; used by every process that serves from a shared collection to
        notice other processes' ingests."""
        if self._client is None:
            return f"?:{self.count()}"
        fresh = self._client.get_collection(self._collection.name, embedding_function=None)
        return f"{(fresh.metadata or {}).get(VERSION_KEY, '')}:{int(fresh.count())}"

    def _mark_changed(self) -> None:
        metadata = {
            key: value for key, value in (self._collection.metadata or {}).items() if not key.startswith("hnsw")
        }
        metadata[VERSION_KEY] = f"{time.time_ns()}-{uuid.uuid4().hex[:12]}"
        self._collection.modify(metadata=metadata)

    def count(self) -> int:
        return int(self._collection.count())

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if not chunks:
            return
        self._collection.upsert(
            ids=[chunk.id for chunk in chunks],
            embeddings=np.asarray(vectors, dtype=np.float32),
            documents=[chunk.text for chunk in chunks],
            metadatas=[_chunk_metadata(chunk) for chunk in chunks],
        )
        self._mark_changed()

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for start in range(0, len(ids), 5000):
            self._collection.delete(ids=ids[start : start + 5000])
        if ids:
            self._mark_changed()

    def all_ids(self) -> set[str]:
        result = self._collection.get(include=[])
        return set(result["ids"])

    def get_chunks(self, ids: Sequence[str]) -> list[Chunk]:
        if not ids:
            return []
        result = self._collection.get(ids=list(ids), include=["documents", "metadatas"])
        by_id = {
            chunk_id: _chunk_from(chunk_id, document, metadata)
            for chunk_id, document, metadata in zip(
                result["ids"], result["documents"] or [], result["metadatas"] or [], strict=True
            )
        }
        return [by_id[chunk_id] for chunk_id in ids if chunk_id in by_id]

    def iter_chunks(self, batch: int = 2000) -> Iterable[Chunk]:
        offset = 0
        while True:
            result = self._collection.get(include=["documents", "metadatas"], limit=batch, offset=offset)
            ids = result["ids"]
            if not ids:
                return
            for chunk_id, document, metadata in zip(
                ids, result["documents"] or [], result["metadatas"] or [], strict=True
            ):
                yield _chunk_from(chunk_id, document, metadata)
            offset += len(ids)

    def query(self, vector: np.ndarray, k: int, source: str | None = None) -> list[Hit]:
        total = self.count()
        if total == 0:
            return []
        result = self._collection.query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=min(k, total),
            where={"source": source} if source else None,
            include=["documents", "metadatas", "distances"],
        )
        hits = []
        ids = result["ids"][0]
        documents = (result["documents"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0]
        distances = (result["distances"] or [[]])[0]
        for rank, (chunk_id, document, metadata, distance) in enumerate(
            zip(ids, documents, metadatas, distances, strict=True), start=1
        ):
            similarity = 1.0 - float(distance)
            hits.append(
                Hit(
                    chunk=_chunk_from(chunk_id, document, metadata),
                    score=similarity,
                    dense_rank=rank,
                    dense_score=similarity,
                )
            )
        return hits


def _http_client(settings: Settings) -> Any:
    """A client of the Chroma server at RAG_CHROMA_URL; the token goes in a header and is never logged."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    url = urlsplit(settings.chroma_url or "")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"RAG_CHROMA_URL must look like http://host:port, not {settings.chroma_url!r}")
    headers: dict[str, str] = {}
    if settings.chroma_token is not None:
        token = settings.chroma_token.get_secret_value()
        header = settings.chroma_token_header
        headers[header] = f"Bearer {token}" if header.lower() == "authorization" else token
    try:
        return chromadb.HttpClient(
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            headers=headers,
            settings=ChromaSettings(anonymized_telemetry=False),
            tenant=settings.chroma_tenant,
            database=settings.chroma_database,
        )
    except Exception as exc:  # connection refused, unknown tenant/database, auth: one actionable message
        raise IndexMissingError(
            f"cannot use the Chroma server {settings.chroma_url} (tenant {settings.chroma_tenant!r}, database "
            f"{settings.chroma_database!r}): {type(exc).__name__}: {exc}"
        ) from exc


# Chroma 1.5 saves its HNSW files in place (every thousand or so writes), so a process killed during a save
# leaves files that Chroma cannot load. Either every later call fails with an InternalError ("Failed to apply
# logs to the hnsw segment writer", "Error loading hnsw index"), or, for some torn files, the native loader
# crashes the process (SIGSEGV). The first call on the collection shows it; the crash can only be seen from
# another process.
_DAMAGED_EXIT = 10


def _damaged(index_dir: Path, problem: str) -> IndexDamagedError:
    return IndexDamagedError(
        f"the vector index in {index_dir / CHROMA_DIR} cannot be read ({problem}); a run killed while Chroma was "
        "saving it leaves it so: run `rag ingest` on your documents again, it rebuilds the index from the files "
        "it lists"
    )


def _check_readable(collection: Any, index_dir: Path) -> None:
    from chromadb.errors import InternalError

    try:
        collection.count()  # cheap: the first call replays Chroma's pending log anyway
    except InternalError as exc:
        release_local_clients()  # let go of the files, so that ingest can move the folder aside
        raise _damaged(index_dir, f"Chroma: {exc}") from exc


def release_local_clients() -> None:
    """Close every embedded Chroma client of this process. Chroma shares one client per path, so without this
    a client opened after the folder was moved would still use the old, moved files."""
    if "chromadb" in sys.modules:
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()


def check_loadable_in_child(index_dir: Path) -> None:
    """Raise IndexDamagedError if a child process cannot load the local collection, crash included.

    For use after a killed run only (its in-progress marker is left behind): it costs a Chroma start-up,
    about 2 s. Any other failure in the child is left to the open in this process to report as it is."""
    chroma_dir = index_dir / CHROMA_DIR
    if not chroma_dir.exists():
        return
    code = "import sys; from rag.store import probe_main; sys.exit(probe_main(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", code, str(chroma_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"},
        timeout=900,
    )
    if result.returncode < 0:
        raise _damaged(index_dir, f"Chroma crashed loading it: {signal.Signals(-result.returncode).name}")
    if result.returncode == _DAMAGED_EXIT:
        raise _damaged(index_dir, f"Chroma: {result.stdout.strip()}")


PROBE_SAMPLES = 16


def probe_main(chroma_dir: str) -> int:
    """The child of `check_loadable_in_child`: 0 if the collection loads (or there is none yet) and stored
    vectors spread over it each find themselves; otherwise the problem on stdout and _DAMAGED_EXIT (or the
    crash itself). One vector was not enough: a truncated vector file passed it and failed later queries."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from chromadb.errors import ChromaError

    client = chromadb.PersistentClient(path=chroma_dir, settings=ChromaSettings(anonymized_telemetry=False))
    try:
        collection = client.get_collection(COLLECTION, embedding_function=None)
    except Exception:  # no collection yet: nothing to damage (chromadb's exception type varies by version)
        return 0
    try:
        count = collection.count()
        ids: list[str] = []
        vectors: list[Any] = []
        for offset in range(0, count, max(1, count // PROBE_SAMPLES)):
            sample = collection.get(limit=1, offset=offset, include=["embeddings"])
            ids.extend(sample["ids"])
            vectors.extend(sample["embeddings"] if sample["embeddings"] is not None else [])
        if not ids:
            return 0
        found = collection.query(query_embeddings=vectors, n_results=1, include=["distances"])
    except ChromaError as exc:
        print(exc)
        return _DAMAGED_EXIT
    # Torn vector files can also load without an error and hold zeros or garbage.
    distances = found["distances"] or [[0.0]] * len(ids)
    for chunk_id, nearest, distance in zip(ids, found["ids"], distances, strict=True):
        if nearest[0] != chunk_id and distance[0] > 1e-4:
            print(f"the stored vector of {chunk_id} is not its own nearest neighbour (found {nearest[0]})")
            return _DAMAGED_EXIT
    return 0


def _is_not_found(exc: Exception) -> bool:
    return type(exc).__name__ in ("NotFoundError", "ValueError") or "does not exist" in str(exc)


def _metadata_of(fingerprint: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fingerprint.items() if isinstance(value, str | int | float | bool)}


def _chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "source": chunk.source,
        "doc_sha256": chunk.doc_sha256,
        "index": chunk.index,
        "pages": ",".join(str(page) for page in chunk.pages),
        "page": chunk.page,
    }
    if chunk.clause:
        metadata["clause"] = chunk.clause
    return metadata


def _chunk_from(chunk_id: str, document: str | None, metadata: Any) -> Chunk:
    metadata = dict(metadata or {})
    pages = tuple(int(page) for page in str(metadata.get("pages", "1")).split(",") if page)
    return Chunk(
        id=chunk_id,
        source=str(metadata.get("source", "")),
        doc_sha256=str(metadata.get("doc_sha256", "")),
        index=int(metadata.get("index", 0)),
        text=document or "",
        pages=pages or (1,),
        clause=metadata.get("clause"),
    )
