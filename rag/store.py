"""The Chroma adapter: one collection with cosine distance, seen by the rest of the code as Chunks and Hits.

Chroma's nested result lists end here. Chroma never embeds anything itself: every write and query passes
vectors, so its default (downloading) embedding function never runs. Where the collection lives (a local
folder or a Chroma server) and how it was built are the `Index`'s business (rag/index.py).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from rag.edition_scope import edition_from_metadata, edition_metadata
from rag.errors import ConfigError, IndexMissingError, StoreUnreachableError
from rag.health import COLLECTION, check_readable
from rag.records import Chunk, Edition, Hit

if TYPE_CHECKING:
    from rag.config import Settings

VERSION_KEY = "rag_version"  # collection metadata: changed by every write (see ChromaStore.version)
# check(stored_metadata): raises when the collection was built with other settings than wanted.
FingerprintCheck = Callable[[dict[str, Any]], None]


class ChromaStore:
    """The dense side of the index: one Chroma collection with cosine distance."""

    def __init__(self, collection: Any, client: Any = None) -> None:
        self._collection = collection
        self._client = client

    @classmethod
    def open(
        cls,
        settings: Settings,
        chroma_dir: Path,
        fingerprint: dict[str, Any],
        check: FingerprintCheck,
        create: bool,
    ) -> ChromaStore:
        """The collection on the Chroma server of `settings`, or in the local folder `chroma_dir`; `create`
        makes it (with `fingerprint` as its metadata) when it does not exist yet."""
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        if settings.chroma_url:
            client = _http_client(settings)
            where = f"Chroma server {settings.chroma_url}"
        else:
            if not create and not chroma_dir.exists():
                raise IndexMissingError(f"no index at {chroma_dir.parent}: run `rag ingest PATH...` first")
            client = chromadb.PersistentClient(
                path=str(chroma_dir), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
            )
            where = str(chroma_dir.parent)
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
                    raise _unreachable(settings, exc) from exc
                raise IndexMissingError(f"no index at {where}: run `rag ingest PATH...` first") from exc
        check({key: value for key, value in (collection.metadata or {}).items() if not key.startswith("hnsw")})
        if not settings.chroma_url:
            check_readable(collection, chroma_dir)
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

    def editions(self) -> dict[str, Edition]:
        """The edition of each stored document that has one, by source, from its first chunk."""
        result = self._collection.get(where={"index": 0}, include=["metadatas"])
        editions: dict[str, Edition] = {}
        for metadata in result["metadatas"] or []:
            edition = edition_from_metadata(metadata or {})
            if edition is not None:
                editions[str((metadata or {}).get("source", ""))] = edition
        return editions

    def query(
        self, vector: np.ndarray, k: int, source: str | None = None, where: dict[str, Any] | None = None
    ) -> list[Hit]:
        """The `k` nearest chunks; only those of `source`, or those matching `where` (which then says it all)."""
        # No count() first: it costs a scan of Chroma's SQLite table per question (it grows with the index), and
        # Chroma answers fewer than `k` results, or none from an empty collection, without an error.
        result = self._collection.query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=k,
            where=where if where is not None else ({"source": source} if source else None),
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
        raise _unreachable(settings, exc) from exc


def _unreachable(settings: Settings, exc: Exception) -> StoreUnreachableError:
    return StoreUnreachableError(
        f"cannot use the Chroma server {settings.chroma_url} (tenant {settings.chroma_tenant!r}, database "
        f"{settings.chroma_database!r}): {type(exc).__name__}: {exc}. Check that it runs and RAG_CHROMA_URL, "
        "RAG_CHROMA_TENANT, RAG_CHROMA_DATABASE and RAG_CHROMA_TOKEN"
    )


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
    if chunk.heading_path:
        metadata["heading_path"] = json.dumps(chunk.heading_path, ensure_ascii=False)
    if chunk.clause_spans:
        metadata["clause_spans"] = json.dumps(chunk.clause_spans, ensure_ascii=False)
    if chunk.kind != "clause":
        metadata["kind"] = chunk.kind
    metadata.update(edition_metadata(chunk.edition))
    if chunk.ocr:
        metadata["ocr"] = True
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
        heading_path=tuple(json.loads(metadata.get("heading_path") or "[]")),
        clause_spans=tuple(
            (int(start), str(label)) for start, label in json.loads(metadata.get("clause_spans") or "[]")
        ),
        kind=metadata.get("kind", "clause"),
        edition=edition_from_metadata(metadata),
        ocr=bool(metadata.get("ocr", False)),
    )
