"""Retrieval: dense (Chroma), lexical (BM25) or both fused by reciprocal-rank fusion."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rag.edition_scope import EditionCatalog, EditionScope, scope_for
from rag.editions import today
from rag.errors import ConfigError
from rag.lexical_sync import LexicalMirror
from rag.manifest import Manifest
from rag.records import Hit, RetrievalMode
from rag.text import has_cjk

if TYPE_CHECKING:
    from rag.index import Index


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


def fuse_ranked_lists(lists: Sequence[Sequence[Hit]], k: int, rrf_k: int = 60) -> list[Hit]:
    """Fuse any number of ranked lists (one per query): score = sum over lists of 1 / (rrf_k + position), the
    position 1-based in each list. A hit keeps the fields it has in the first list that holds it."""
    merged: dict[str, Hit] = {}
    scores: dict[str, float] = {}
    for ranked in lists:
        for position, hit in enumerate(ranked, start=1):
            merged.setdefault(hit.chunk.id, hit)
            scores[hit.chunk.id] = scores.get(hit.chunk.id, 0.0) + 1.0 / (rrf_k + position)
    order = sorted(merged, key=lambda chunk_id: (-scores[chunk_id], chunk_id))
    return [replace(merged[chunk_id], score=scores[chunk_id]) for chunk_id in order[:k]]


class Searcher:
    """An open index, created once and reused for every question: the one search path of `ask`, the server and
    the evaluation."""

    def __init__(self, index: Index, cache_queries: bool = False) -> None:
        """`cache_queries`: keep query vectors in the index's embedding cache (for evaluations, which ask the
        same questions again); live questions are embedded each time."""
        self.index = index
        self.settings = index.settings
        self._manifest, self.store = index.open_for_search()
        self._manifest_stamp = _stamp(index.layout.manifest)
        self._current_ids: frozenset[str] | None = None
        self.fingerprint = self._manifest.fingerprint
        self.lexical = LexicalMirror(
            self.store, self.settings.lexical_refresh_seconds, index.saved_lexical(), self.settings.heading_context
        )
        self._cache_queries = cache_queries
        self._editions = EditionCatalog()

    def edition_scope(self, as_of: str | None = None, product: str | None = None) -> EditionScope | None:
        """The documents in force on `as_of` (ISO date; today when None), of `product` when given; None when
        nothing is set aside (no document states an edition and no product is asked for)."""
        self.lexical.get()  # checks the collection's version (at most every RAG_LEXICAL_REFRESH_SECONDS)
        catalog = self._editions.get(self.store, self.lexical.version)
        if not catalog and product is None:
            return None
        scope = scope_for(catalog, as_of or today(), product)
        if scope.only is not None and not scope.only:
            known = sorted({edition.product for edition in catalog.values() if edition.product})
            raise ConfigError(
                f"no indexed document is of product {product!r}; the products are: {', '.join(known) or 'none'} "
                "(`rag status` lists them; a sidecar <file>.meta.json can name a document's product)"
            )
        return scope

    @property
    def manifest(self) -> Manifest:
        """The manifest as it is now on disk: re-read when an ingest (this process's or another's) replaced it."""
        stamp = _stamp(self.index.layout.manifest)
        if stamp != self._manifest_stamp and not self.settings.chroma_url:
            fresh = Manifest.load(self.index.layout.manifest)
            if fresh is not None:
                self._manifest, self._manifest_stamp, self._current_ids = fresh, stamp, None
        return self._manifest

    def current_chunk_ids(self) -> frozenset[str] | None:
        """The chunk ids of each file's current version, or None when there is no local manifest to go by (a
        shared Chroma server: each replica's own manifest is not the truth).

        While a file is re-ingested the store holds both versions for a while: the new chunks are stored, then
        the manifest is replaced, then the old chunks are deleted. Keeping only the manifest's ids makes every
        answer see one version of each file, the old one before the manifest is replaced, the new one after."""
        manifest = self.manifest
        if self.settings.chroma_url or not manifest.files:
            return None
        if self._current_ids is None:
            self._current_ids = frozenset(manifest.chunk_ids())
        return self._current_ids

    def refresh(self) -> None:
        """Catch up with writes to the collection now (after an ingest), instead of at the next periodic check."""
        self.lexical.get(force=True)

    def embed_questions(self, questions: Sequence[str]) -> None:
        """Embed many questions at once into the cache, so that later searches for them only look vectors up."""
        if self._cache_queries:
            unique = sorted({self._dense_query(question) for question in questions})
            for start in range(0, len(unique), 64):
                self.index.embedder.embed_queries(unique[start : start + 64], cached=True)

    def _dense_query(self, question: str) -> str:
        """The text embedded for `question`: itself, followed by the documents' words for its customer words
        when RAG_DENSE_SYNONYMS is on."""
        if not self.settings.dense_synonyms:
            return question
        from rag.synonyms import expand_query

        extra = expand_query(question)
        return f"{question} {' '.join(extra)}" if extra else question

    def search(
        self,
        question: str,
        k: int,
        mode: RetrievalMode = "dense",
        source: str | None = None,
        scope: EditionScope | None = None,
    ) -> list[Hit]:
        """The `k` best chunks for `question`, within the edition `scope` when given (both lists are filtered
        before they are cut to depth, so `k` is filled from the documents in scope). Front matter (a contents
        page, a reading guide) ranks below clause text unless the question asks for the contents: it points to
        the answer without holding it."""
        if mode not in ("dense", "lexical", "hybrid"):
            raise ConfigError(f"unknown retrieval mode {mode!r}: use dense, lexical or hybrid")
        wanted = k + FRONT_MATTER_SPARE
        depth = max(wanted, self.settings.candidate_depth) if mode == "hybrid" else wanted
        current = self.current_chunk_ids()  # one snapshot for both lists

        def is_current(hit: Hit) -> bool:
            return current is None or hit.chunk.id in current

        dense: list[Hit] = []
        if mode != "lexical":
            vector = self.index.embedder.embed_queries([self._dense_query(question)], cached=self._cache_queries)[0]
            where = scope.chroma_where(source) if scope is not None else None
            dense = [hit for hit in self.store.query(vector, depth, source=source, where=where) if is_current(hit)]
        if mode == "dense":
            return _front_matter_last(dense, question)[:k]
        allows = scope.allows if scope is not None else None
        ranked = self.lexical.get().search(question, depth, source=source, allows=allows)
        chunks = {chunk.id: chunk for chunk in self.store.get_chunks([chunk_id for chunk_id, _ in ranked])}
        lexical = [
            Hit(chunk=chunks[chunk_id], score=score, lexical_rank=rank, lexical_score=score)
            for rank, (chunk_id, score) in enumerate(ranked, start=1)
            if chunk_id in chunks and (current is None or chunk_id in current)
        ]
        if mode == "lexical":
            return _front_matter_last(lexical, question)[:k]
        dense_weight = self.settings.rrf_dense_weight_zh if has_cjk(question) else self.settings.rrf_dense_weight
        fused = reciprocal_rank_fusion(
            dense, lexical, wanted, self.settings.rrf_k, dense_weight, self.settings.rrf_lexical_weight
        )
        return _front_matter_last(fused, question)[:k]


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the manifest is replaced (atomically, so its inode changes too)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


# Extra candidates fetched so that front matter moved down still leaves `k` hits of clause text.
FRONT_MATTER_SPARE = 5
_ASKS_FOR_CONTENTS = re.compile(r"目录|阅读指引|contents|table of contents|index", re.IGNORECASE)


def _front_matter_last(hits: list[Hit], question: str) -> list[Hit]:
    if _ASKS_FOR_CONTENTS.search(question):
        return hits
    return [h for h in hits if h.chunk.kind != "front"] + [h for h in hits if h.chunk.kind == "front"]
