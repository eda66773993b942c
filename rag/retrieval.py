"""Retrieval: dense (Chroma), lexical (BM25) or both fused by reciprocal-rank fusion."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import ConfigError, IndexMissingError
from rag.lexical_sync import LexicalMirror
from rag.records import Hit, RetrievalMode
from rag.store import (
    DIRTY_NAME,
    ChromaStore,
    Manifest,
    build_fingerprint,
    check_fingerprint,
    check_loadable_in_child,
)

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.embeddings import Embedder


def reciprocal_rank_fusion(
    dense: Sequence[Hit],
    lexical: Sequence[Hit],
    k: int,
    rrf_k: int = 60,
    dense_weight: float = 1.0,
    lexical_weight: float = 1.0,
) -> list[Hit]:
    """Fuse two ranked lists: score = sum over lists of weight / (rrf_k + rank). Each hit keeps both ranks."""
    merged: dict[str, Hit] = {}
    scores: dict[str, float] = {}
    for hit in dense:
        merged[hit.chunk.id] = hit
        scores[hit.chunk.id] = scores.get(hit.chunk.id, 0.0) + dense_weight / (rrf_k + (hit.dense_rank or 0))
    for hit in lexical:
        known = merged.get(hit.chunk.id)
        merged[hit.chunk.id] = (
            replace(known, lexical_rank=hit.lexical_rank, lexical_score=hit.lexical_score) if known else hit
        )
        scores[hit.chunk.id] = scores.get(hit.chunk.id, 0.0) + lexical_weight / (rrf_k + (hit.lexical_rank or 0))
    ranked = sorted(merged, key=lambda chunk_id: (-scores[chunk_id], chunk_id))
    return [replace(merged[chunk_id], score=scores[chunk_id]) for chunk_id in ranked[:k]]


class Searcher:
    """An open index and its embedder, created once and reused for every question."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.index_dir = Path(settings.index_dir)
        manifest = Manifest.load(self.index_dir)
        if settings.chroma_url:
            # A shared Chroma server: the collection (its metadata holds the fingerprint) is the truth; this
            # process may never have ingested anything itself, so its local manifest is optional.
            self.store = ChromaStore.open(settings, self.index_dir, build_fingerprint(settings), create=False)
            if self.store.count() == 0:
                raise IndexMissingError(f"the collection on {settings.chroma_url} is empty: run `rag ingest` first")
            manifest = manifest or Manifest(fingerprint=build_fingerprint(settings))
        elif manifest is None or not manifest.files:
            raise IndexMissingError(f"the index at {self.index_dir} is empty: run `rag ingest PATH...` first")
        check_fingerprint(manifest.fingerprint, build_fingerprint(settings), self.index_dir)
        self.manifest = manifest
        self.fingerprint = manifest.fingerprint
        if not settings.chroma_url:
            if (self.index_dir / DIRTY_NAME).exists():  # an ingest is under way, or was killed
                check_loadable_in_child(self.index_dir)
            self.store = ChromaStore.open(settings, self.index_dir, build_fingerprint(settings), create=False)
        saved = None if settings.chroma_url else self.index_dir / "lexical"  # persisted by ingest (local only)
        self.lexical = LexicalMirror(self.store, settings.lexical_refresh_seconds, saved)
        self._embedder = embedder
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Catch up with writes to the collection now (after an ingest), instead of at the next periodic check."""
        self.lexical.get(force=True)

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from rag.embeddings import make_embedder

                self._embedder = make_embedder(self.settings)
            return self._embedder

    def search(self, question: str, k: int, mode: RetrievalMode = "dense", source: str | None = None) -> list[Hit]:
        from rag.embeddings import embed_query

        if mode not in ("dense", "lexical", "hybrid"):
            raise ConfigError(f"unknown retrieval mode {mode!r}: use dense, lexical or hybrid")
        depth = max(k, self.settings.candidate_depth) if mode == "hybrid" else k
        dense: list[Hit] = []
        if mode != "lexical":
            dense = self.store.query(embed_query(self.embedder, question), depth, source=source)
            if mode == "dense":
                return dense
        ranked = self.lexical.get().search(question, depth, source=source)
        chunks = {chunk.id: chunk for chunk in self.store.get_chunks([chunk_id for chunk_id, _ in ranked])}
        lexical = [
            Hit(chunk=chunks[chunk_id], score=score, lexical_rank=rank, lexical_score=score)
            for rank, (chunk_id, score) in enumerate(ranked, start=1)
            if chunk_id in chunks
        ]
        if mode == "lexical":
            return lexical[:k]
        return reciprocal_rank_fusion(
            dense, lexical, k, self.settings.rrf_k, self.settings.rrf_dense_weight, self.settings.rrf_lexical_weight
        )
