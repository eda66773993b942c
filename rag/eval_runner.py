"""`rag eval retrieval`: run dense, lexical and hybrid retrieval over an evaluation set and score them.

Corpus vectors go through the embedding cache, so a second run of the same set embeds nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.evaluation import (
    DocumentDataset,
    PassageDataset,
    RunMetrics,
    load_dataset,
    page_metrics,
    passage_metrics,
    percentile,
    summarise,
)
from rag.records import Chunk, Hit, RetrievalMode
from rag.retrieval import reciprocal_rank_fusion

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.embeddings import Embedder
    from rag.lexical import LexicalIndex
    from rag.store import ChromaStore

MODES: tuple[RetrievalMode, ...] = ("dense", "lexical", "hybrid")


@dataclass
class EvalReport:
    dataset: str
    runs: dict[str, list[RunMetrics]]  # variant ("all", "restricted", "unrestricted") -> one run per mode


class _Retriever:
    """Dense, lexical and fused search over one evaluation index, timed per query."""

    def __init__(self, store: ChromaStore, lexical: LexicalIndex, embedder: Embedder, settings: Settings) -> None:
        self.store = store
        self.lexical = lexical
        self.embedder = embedder
        self.settings = settings
        self._chunks: dict[str, Chunk] = {}
        self._query_vectors: dict[str, np.ndarray] = {}
        self.query_embed_seconds = 0.0

    def embed_questions(self, questions: Sequence[str]) -> None:
        """Embed every question once, in batches, through the cache: the latencies measured afterwards are
        retrieval alone, and a re-run embeds nothing."""
        from rag.embed_cache import EmbeddingCache, embed_with_cache
        from rag.ingest import CACHE_NAME

        unique = sorted(set(questions) - set(self._query_vectors))
        started = time.perf_counter()
        with EmbeddingCache(Path(self.settings.index_dir) / CACHE_NAME) as cache:
            for start in range(0, len(unique), 64):
                batch = unique[start : start + 64]
                vectors, _ = embed_with_cache(
                    cache, f"{self.settings.embedder}:query", batch, self.embedder.embed_queries
                )
                self._query_vectors.update(zip(batch, vectors, strict=True))
        self.query_embed_seconds += time.perf_counter() - started

    def _chunk(self, chunk_id: str) -> Chunk | None:
        if chunk_id not in self._chunks:
            for chunk in self.store.get_chunks([chunk_id]):
                self._chunks[chunk.id] = chunk
        return self._chunks.get(chunk_id)

    def search(self, question: str, mode: RetrievalMode, k: int, source: str | None) -> list[Hit]:
        depth = max(k, self.settings.candidate_depth) if mode == "hybrid" else k
        dense: list[Hit] = []
        if mode != "lexical":
            vector = self._query_vectors.get(question)
            if vector is None:
                vector = self.embedder.embed_queries([question])[0]
            dense = self.store.query(vector, depth, source=source)
            if mode == "dense":
                return dense
        lexical = []
        for rank, (chunk_id, score) in enumerate(self.lexical.search(question, depth, source=source), start=1):
            chunk = self._chunk(chunk_id)
            if chunk is not None:
                lexical.append(Hit(chunk=chunk, score=score, lexical_rank=rank, lexical_score=score))
        if mode == "lexical":
            return lexical[:k]
        return reciprocal_rank_fusion(
            dense, lexical, k, self.settings.rrf_k, self.settings.rrf_dense_weight, self.settings.rrf_lexical_weight
        )


def run_retrieval_eval(
    folder: Path,
    settings: Settings,
    modes: Sequence[RetrievalMode] = MODES,
    ks: Sequence[int] = (1, 5, 10),
    limit: int | None = None,
    work_dir: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> EvalReport:
    dataset = load_dataset(folder, limit=limit)
    work_dir = work_dir or Path(settings.index_dir).parent / ".rag-eval"
    eval_settings = settings.model_copy(update={"index_dir": work_dir / f"{dataset.name}-{_slug(settings.embedder)}"})
    if isinstance(dataset, PassageDataset):
        retriever, embed_seconds = _passage_index(dataset, eval_settings, log)
        retriever.embed_questions([query.question for query in dataset.queries])
        runs = [_score_passages(dataset, retriever, mode, ks, embed_seconds) for mode in modes]
        return EvalReport(dataset=dataset.name, runs={"all": runs})
    retriever, embed_seconds = _document_index(dataset, eval_settings, log)
    retriever.embed_questions([query.question for query in dataset.queries])
    restricted = [_score_pages(dataset, retriever, mode, ks, embed_seconds, restrict=True) for mode in modes]
    unrestricted = [_score_pages(dataset, retriever, mode, ks, embed_seconds, restrict=False) for mode in modes]
    return EvalReport(dataset=dataset.name, runs={"restricted": restricted, "unrestricted": unrestricted})


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)


def _passage_index(dataset: PassageDataset, settings: Settings, log: Callable[[str], None]) -> tuple[_Retriever, float]:
    from rag.embed_cache import EmbeddingCache, embed_with_cache
    from rag.embeddings import make_embedder
    from rag.ingest import CACHE_NAME
    from rag.lexical import LexicalIndex
    from rag.store import ChromaStore, build_fingerprint

    index_dir = Path(settings.index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    embedder = make_embedder(settings)
    fingerprint = build_fingerprint(settings, dim=embedder.dim)
    store = ChromaStore.open(settings, index_dir, fingerprint, create=True)
    chunks = [
        Chunk(id=p.id, source=p.source, doc_sha256=p.id, index=0, text=p.text, pages=(1,)) for p in dataset.corpus
    ]
    started = time.perf_counter()
    stored = store.all_ids()
    missing = [chunk for chunk in chunks if chunk.id not in stored]
    if missing:
        log(f"embedding {len(missing)} passages with {settings.embedder} (cached vectors are reused)")
        with EmbeddingCache(index_dir / CACHE_NAME) as cache:
            for start in range(0, len(missing), 64):
                batch = missing[start : start + 64]
                vectors, _ = embed_with_cache(
                    cache, settings.embedder, [c.text for c in batch], embedder.embed_passages
                )
                store.upsert(batch, vectors)
                log(f"  {min(start + 64, len(missing))}/{len(missing)}")
    embed_seconds = time.perf_counter() - started
    lexical = LexicalIndex.build([c.id for c in chunks], [c.text for c in chunks], [c.source for c in chunks])
    return _Retriever(store, lexical, embedder, settings), embed_seconds


def _document_index(
    dataset: DocumentDataset, settings: Settings, log: Callable[[str], None]
) -> tuple[_Retriever, float]:
    from rag.embeddings import make_embedder
    from rag.ingest import ingest_paths
    from rag.lexical import LexicalIndex
    from rag.store import ChromaStore, build_fingerprint

    embedder = make_embedder(settings)
    log(f"ingesting {len(dataset.files)} PDFs into {settings.index_dir} (unchanged files are skipped)")
    started = time.perf_counter()
    report = ingest_paths(dataset.files, settings, embedder=embedder)
    for failure in report.failed:
        log(f"failed: {failure.error}")
    embed_seconds = time.perf_counter() - started
    store = ChromaStore.open(settings, Path(settings.index_dir), build_fingerprint(settings), create=False)
    chunks = list(store.iter_chunks())
    lexical = LexicalIndex.build([c.id for c in chunks], [c.text for c in chunks], [c.source for c in chunks])
    return _Retriever(store, lexical, embedder, settings), embed_seconds


def _timed(search: Callable[[], list[Hit]]) -> tuple[list[Hit], float]:
    started = time.perf_counter()
    hits = search()
    return hits, (time.perf_counter() - started) * 1000


def _score_passages(
    dataset: PassageDataset, retriever: _Retriever, mode: RetrievalMode, ks: Sequence[int], embed_seconds: float
) -> RunMetrics:
    per_query, latencies = [], []
    for query in dataset.queries:
        hits, ms = _timed(lambda q=query: retriever.search(q.question, mode, max(ks), None))  # type: ignore[misc]
        latencies.append(ms)
        per_query.append(passage_metrics([hit.chunk.id for hit in hits], query.relevant_ids, ks))
    return _run(mode, per_query, latencies, embed_seconds)


def _score_pages(
    dataset: DocumentDataset,
    retriever: _Retriever,
    mode: RetrievalMode,
    ks: Sequence[int],
    embed_seconds: float,
    restrict: bool,
) -> RunMetrics:
    by_name = {path.name: str(path) for path in dataset.files}
    stored_source = {name: _stored_source(path) for name, path in by_name.items()}
    per_query, latencies = [], []
    for query in dataset.queries:
        source = stored_source.get(query.source or "") if restrict else None
        hits, ms = _timed(lambda q=query, s=source: retriever.search(q.question, mode, max(ks), s))  # type: ignore[misc]
        latencies.append(ms)
        pages = [{(Path(hit.chunk.source).name, page) for page in hit.chunk.pages} for hit in hits]
        per_query.append(page_metrics(pages, query.relevant_pages, ks))
    return _run(mode, per_query, latencies, embed_seconds)


def _stored_source(path: str) -> str:
    import os

    return os.path.normpath(path)


def _run(mode: str, per_query: list[dict[str, float]], latencies: list[float], embed_seconds: float) -> RunMetrics:
    return RunMetrics(
        mode=mode,
        n_queries=len(per_query),
        metrics=summarise(per_query),
        latency_ms_p50=percentile(latencies, 50) if latencies else 0.0,
        latency_ms_p95=percentile(latencies, 95) if latencies else 0.0,
        embed_seconds=embed_seconds,
    )


def as_json(report: EvalReport) -> dict[str, object]:
    def run_dict(run: RunMetrics) -> dict[str, object]:
        return {
            "n_queries": run.n_queries,
            **{name: round(value, 4) for name, value in run.metrics.items()},
            "latency_ms_p50": round(run.latency_ms_p50, 2),
            "latency_ms_p95": round(run.latency_ms_p95, 2),
            "embed_seconds": round(run.embed_seconds, 1),
        }

    if list(report.runs) == ["all"]:
        return {"dataset": report.dataset, **{run.mode: run_dict(run) for run in report.runs["all"]}}
    return {
        "dataset": report.dataset,
        **{variant: {run.mode: run_dict(run) for run in runs} for variant, runs in report.runs.items()},
    }
