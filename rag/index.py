"""The owner of an index folder: its layout, how it was built, and every part stored in it.

An index is a folder. `Index`, opened from `Settings`, owns what is in it: the file names (`IndexLayout`),
the manifest, the Chroma store (a local folder, or a Chroma server), the lexical index, the embedding cache
with the embedder behind it (one cache key), the writer lock and `status()`. The pipelines (ingest, search,
evaluation) take an `Index`; the faces (CLI, HTTP) open one and never reach past it into a stage.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import IndexMismatchError, IndexMissingError
from rag.manifest import FileEntry, Manifest

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.embed_cache import EmbeddingCache
    from rag.embeddings import Embedder
    from rag.records import Chunk
    from rag.retrieval import Searcher
    from rag.store import ChromaStore

logger = logging.getLogger(__name__)

# The version of the loaders and the chunker. Bump it whenever a change gives other chunks for the same
# file: an index built before then asks for a re-ingest instead of mixing old chunks with new ones.
# 4: chunks carry their document's edition (product, edition, effective dates: rag/editions.py).
CHUNKER_VERSION = 4


@dataclass(frozen=True)
class IndexLayout:
    """Every file name in an index folder, in one place."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def chroma(self) -> Path:
        return self.root / "chroma"

    @property
    def chroma_set_aside(self) -> Path:
        """Where Chroma's files are moved when they are rebuilt."""
        return self.root / "chroma.old"

    @property
    def rebuild_sources(self) -> Path:
        """The sources to ingest again until a rebuild has finished."""
        return self.root / ".rebuild-sources.json"

    @property
    def in_progress(self) -> Path:
        """Present while a writing run is under way; left behind by a crash, it makes the next run check."""
        return self.root / ".ingest-incomplete"

    @property
    def lexical(self) -> Path:
        return self.root / "lexical"

    @property
    def embed_cache(self) -> Path:
        return self.root / "embed_cache.sqlite"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def page_images(self) -> Path:
        """PDF pages rendered to PNG for the chat page, one per document hash and page (rag/sources.py)."""
        return self.root / "page_images"


def build_fingerprint(settings: Settings, dim: int | None = None) -> dict[str, Any]:
    """How an index is built. Two indexes with different fingerprints cannot be mixed."""
    fingerprint: dict[str, Any] = {
        "embedder": settings.embedder,
        **settings.chunking_fingerprint(),
        "chunker_version": CHUNKER_VERSION,
    }
    if dim is not None:
        fingerprint["dim"] = dim
    return fingerprint


def check_fingerprint(stored: dict[str, Any], wanted: dict[str, Any], index_dir: Path) -> None:
    """Raise IndexMismatchError naming each difference. An index from before the chunker was versioned has
    no `chunker_version`: it counts as version 0."""
    differences = [
        f"{key}: index has {stored.get(key, 0 if key == 'chunker_version' else None)!r}, settings ask for {value!r}"
        for key, value in wanted.items()
        if (key in stored or key == "chunker_version")
        and stored.get(key, 0 if key == "chunker_version" else None) != value
    ]
    if stored and differences:
        raise IndexMismatchError(
            f"the index at {index_dir} was built with other settings or an older version of rag "
            f"({'; '.join(differences)}). Rebuild it: delete {index_dir} (or pass --index NEWDIR) and run "
            "`rag ingest` again, or use the original settings"
        )


def products_of(files: dict[str, FileEntry]) -> dict[str, list[dict[str, Any]]]:
    """Each product's editions, as the manifest records them: {product: [{edition, effective_from, effective_to,
    sources}]}, oldest first; documents with an edition but no product name are under "(no product name)"."""
    grouped: dict[str, dict[tuple[str, str, str], list[str]]] = {}
    for source, entry in sorted(files.items()):
        if not entry.edition:
            continue
        fields = entry.edition
        key = (fields.get("effective_from", ""), fields.get("edition", ""), fields.get("effective_to", ""))
        grouped.setdefault(fields.get("product") or "(no product name)", {}).setdefault(key, []).append(source)
    return {
        product: [
            {"edition": e or None, "effective_from": f or None, "effective_to": t or None, "sources": sources}
            for (f, e, t), sources in sorted(editions.items())
        ]
        for product, editions in sorted(grouped.items())
    }


class CachedEmbedder:
    """The index's embedder behind the embedding cache, under one cache key: the configured embedder's name
    (`RAG_EMBEDDER`), known without loading the model. Passages are cached under the key, queries under
    `<key>:query` (e5 embeds them with another prefix). The model loads on first use: a run whose texts
    are all cached never loads it."""

    def __init__(self, settings: Settings, model: Embedder | None, cache_path: Path) -> None:
        self.key = settings.embedder
        self._settings = settings
        self._model = model
        self._cache_path = cache_path
        self._cache: EmbeddingCache | None = None
        self._cache_opened = False
        self._lock = threading.Lock()

    def model(self) -> Embedder:
        with self._lock:
            if self._model is None:
                from rag.embeddings import make_embedder

                self._model = make_embedder(self._settings)
            return self._model

    @property
    def dim(self) -> int:
        return self.model().dim

    def cache(self) -> EmbeddingCache | None:
        """The embedding cache, opened once; None when disabled or unusable (a warning says why)."""
        with self._lock:
            if not self._cache_opened:
                self._cache_opened = True
                self._cache = self._open_cache()
            return self._cache

    def _open_cache(self) -> EmbeddingCache | None:
        if self._settings.embed_cache_max_entries == 0:
            return None
        from rag.embed_cache import EmbeddingCache

        try:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            return EmbeddingCache(self._cache_path, max_entries=self._settings.embed_cache_max_entries)
        except (OSError, sqlite3.Error) as exc:
            logger.warning("embedding cache at %s unusable (%s); continuing without it", self._cache_path, exc)
            return None

    def embed_passages(self, texts: Sequence[str], batch_size: int | None = None) -> tuple[np.ndarray, int]:
        """Vectors for `texts` and how many were embedded (the rest came from the cache); the model gets at
        most `batch_size` texts per call."""
        from rag.embed_cache import embed_with_cache

        def embed(missing: list[str]) -> np.ndarray:
            model = self.model()
            if getattr(model, "workers", 1) > 1:  # a pool (rag/embeddings.py) batches and spreads them itself
                return model.embed_passages(missing)
            size = batch_size or len(missing)
            parts = [model.embed_passages(missing[i : i + size]) for i in range(0, len(missing), size)]
            return np.concatenate(parts) if len(parts) > 1 else parts[0]

        return embed_with_cache(self.cache(), self.key, texts, embed)

    def embed_queries(self, texts: Sequence[str], cached: bool = False) -> np.ndarray:
        """Query vectors; through the cache only when `cached` (an evaluation asks the same questions again;
        a live question is rarely repeated and should not write to the cache)."""
        if not cached:
            return self.model().embed_queries(list(texts))
        from rag.embed_cache import embed_with_cache

        vectors, _ = embed_with_cache(self.cache(), f"{self.key}:query", texts, self.model().embed_queries)
        return vectors

    def close(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.close()
            self._cache, self._cache_opened = None, False


class Index:
    """One index folder (and, with RAG_CHROMA_URL, its collection on a Chroma server)."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.layout = IndexLayout(Path(settings.index_dir))
        self.embedder = CachedEmbedder(settings, embedder, self.layout.embed_cache)
        self._searcher: Searcher | None = None
        self._searcher_lock = threading.Lock()

    def searcher(self) -> Searcher:
        """The index's Searcher, opened on first use and then shared (by the server's threads too). An empty
        index raises IndexMissingError, and the next call tries again."""
        searcher = self._searcher
        if searcher is not None:
            return searcher
        with self._searcher_lock:
            if self._searcher is None:
                from rag.retrieval import Searcher

                self._searcher = Searcher(self)
            return self._searcher

    def chunk(self, chunk_id: str) -> Chunk | None:
        """One stored chunk by its id (for the passage viewer), or None when the index holds no such chunk."""
        found = self.searcher().store.get_chunks([chunk_id])
        return found[0] if found else None

    def loaded_searcher(self) -> Searcher | None:
        """The Searcher if one is open, without opening one."""
        return self._searcher

    def after_ingest(self, rebuilt: bool) -> None:
        """Make the next search see what an ingest wrote: after a rebuild, open the new Chroma files (the old
        client went with the damaged ones); otherwise catch the lexical index up now."""
        with self._searcher_lock:
            if rebuilt:
                self._searcher = None
            elif self._searcher is not None:
                self._searcher.refresh()

    @property
    def root(self) -> Path:
        return self.layout.root

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.embedder.close()

    # ----- how it was built -----

    def fingerprint(self, dim: int | None = None) -> dict[str, Any]:
        return build_fingerprint(self.settings, dim)

    def check_fingerprint(self, stored: dict[str, Any]) -> None:
        check_fingerprint(stored, self.fingerprint(), self.root)

    # ----- the parts -----

    def manifest(self) -> Manifest | None:
        return Manifest.load(self.layout.manifest)

    def save_manifest(self, manifest: Manifest) -> None:
        manifest.save(self.layout.manifest)

    def open_store(self, create: bool) -> ChromaStore:
        """The Chroma collection, its fingerprint checked (and, locally, its files readable)."""
        from rag.storage import is_writable, readable_copy
        from rag.store import ChromaStore

        chroma = self.layout.chroma
        if not create and not self.settings.chroma_url and chroma.is_dir() and not is_writable(chroma):
            # Chroma opens its SQLite file for writing even to read: a read-only index is read from a copy.
            chroma = readable_copy(chroma)
        return ChromaStore.open(self.settings, chroma, self.fingerprint(), self.check_fingerprint, create)

    def open_for_search(self) -> tuple[Manifest, ChromaStore]:
        """The manifest and the store of an index that has something in it, or IndexMissingError."""
        self.require_folder()
        manifest = self.manifest()
        if self.settings.chroma_url:
            # A shared Chroma server: the collection (its metadata holds the fingerprint) is the truth; this
            # process may never have ingested anything itself, so its local manifest is optional.
            store = self.open_store(create=False)
            if store.count() == 0:
                raise IndexMissingError(
                    f"the collection on {self.settings.chroma_url} is empty: run `rag ingest` first"
                )
            return manifest or Manifest(fingerprint=self.fingerprint()), store
        if manifest is None or not manifest.files:
            raise IndexMissingError(f"the index at {self.root} is empty: run `rag ingest PATH...` first")
        self.check_fingerprint(manifest.fingerprint)
        if self.layout.in_progress.exists():  # an ingest is under way, or was killed
            from rag.lock import running_writer

            # Only after a killed run: while a writer is at work its saves would look like damage to the check
            if running_writer(self.layout.lock) is None:
                from rag.health import check_loadable_in_child

                check_loadable_in_child(self.layout.chroma)
        return manifest, self.open_store(create=False)

    def require_folder(self) -> None:
        """IndexMissingError when the index folder does not exist (a mistyped --index is not an empty index)."""
        if not self.settings.chroma_url and not self.root.is_dir():
            raise IndexMissingError(
                f"the index folder {self.root} does not exist: check --index or RAG_INDEX_DIR, "
                f"or run `rag ingest PATH... --index {self.root}` to create it"
            )

    def saved_lexical(self) -> Path | None:
        """Where ingest persists the lexical index; None for a Chroma server (each reader builds its own)."""
        return None if self.settings.chroma_url else self.layout.lexical

    def lock(self) -> AbstractContextManager[None]:
        """The writer lock (rag/lock.py): a second writer fails at once with IndexLockedError."""
        from rag.lock import index_lock

        return index_lock(self.layout.lock)

    def open_cache(self) -> EmbeddingCache | None:
        """The embedding cache file for the `rag cache` commands; None when there is none yet."""
        from rag.embed_cache import EmbeddingCache

        return EmbeddingCache(self.layout.embed_cache) if self.layout.embed_cache.exists() else None

    def status(self) -> dict[str, Any]:
        """What the index holds and how it was built."""
        manifest = self.manifest()
        status: dict[str, Any] = {
            "index": str(self.root),
            "store": self.settings.chroma_url or "embedded",
            "documents": manifest.documents() if manifest else 0,
            "files": len(manifest.files) if manifest else 0,
            "chunks": len(manifest.chunk_ids()) if manifest else 0,
            "embedder": (manifest.fingerprint.get("embedder") if manifest else None) or self.settings.embedder,
            "settings": manifest.fingerprint if manifest else {},
            "answer_mode": "llm" if self.settings.llm_configured() else "extractive",
            "loaded": self._searcher is not None,  # a long-lived process (the server) has it open
            "products": products_of(manifest.files) if manifest else {},
        }
        if self._searcher is not None:
            status["collection_chunks"] = self._searcher.store.count()
            status["lexical_version"] = self._searcher.lexical.version
        return status
