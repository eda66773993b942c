"""`rag eval retrieval`: run dense, lexical and hybrid retrieval over an evaluation set and score them.

Corpus vectors go through the embedding cache, so a second run of the same set embeds nothing.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import IndexMismatchError
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

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.index import Index
    from rag.retrieval import Searcher

MODES: tuple[RetrievalMode, ...] = ("dense", "lexical", "hybrid")


@dataclass
class EvalReport:
    dataset: str
    runs: dict[str, list[RunMetrics]]  # variant ("all", "restricted", "unrestricted") -> one run per mode


def run_retrieval_eval(
    folder: Path,
    settings: Settings,
    modes: Sequence[RetrievalMode] = MODES,
    ks: Sequence[int] = (1, 5, 10),
    limit: int | None = None,
    work_dir: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> EvalReport:
    """Build (or reuse) the set's own index under `work_dir`, then search it through the same `Searcher` that
    `rag ask` uses; only the question vectors are cached, so that a re-run embeds nothing."""
    from rag.index import Index
    from rag.retrieval import Searcher

    dataset = load_dataset(folder, limit=limit)
    work_dir = work_dir or Path(settings.index_dir).parent / ".rag-eval"
    eval_settings = settings.model_copy(update={"index_dir": work_dir / f"{dataset.name}-{_slug(settings.embedder)}"})
    with Index(eval_settings) as index:
        started = time.perf_counter()
        try:
            _build(dataset, index, log)
        except IndexMismatchError as exc:  # built by another version or settings: rebuild, vectors from the cache
            log(f"{index.root} was built by other settings or another chunker version: rebuilding it ({exc})")
            _forget_all_but_the_cache(index)
            _build(dataset, index, log)
        embed_seconds = time.perf_counter() - started
        searcher = Searcher(index, cache_queries=True)
        searcher.embed_questions([query.question for query in dataset.queries])
        if isinstance(dataset, PassageDataset):
            runs = [_score_passages(dataset, searcher, mode, ks, embed_seconds) for mode in modes]
            return EvalReport(dataset=dataset.name, runs={"all": runs})
        restricted = [_score_pages(dataset, searcher, mode, ks, embed_seconds, restrict=True) for mode in modes]
        unrestricted = [_score_pages(dataset, searcher, mode, ks, embed_seconds, restrict=False) for mode in modes]
    return EvalReport(dataset=dataset.name, runs={"restricted": restricted, "unrestricted": unrestricted})


def _build(dataset: PassageDataset | DocumentDataset, index: Index, log: Callable[[str], None]) -> None:
    if isinstance(dataset, PassageDataset):
        store_passages(dataset, index, log)
    else:
        _ingest_documents(dataset, index, log)


def _forget_all_but_the_cache(index: Index) -> None:
    """An evaluation index is derived data: drop its store, manifest and lexical index, keep the vectors."""
    from rag.health import release_local_clients

    release_local_clients()
    shutil.rmtree(index.layout.chroma, ignore_errors=True)
    shutil.rmtree(index.layout.lexical, ignore_errors=True)
    index.layout.manifest.unlink(missing_ok=True)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)


def store_passages(dataset: PassageDataset, index: Index, log: Callable[[str], None]) -> None:
    """Store the set's passages as an index of their own: one chunk per passage, one manifest entry per
    contract, and the lexical index, as ingest would leave them. Passages already stored are skipped."""
    from rag.ingest import sync_lexical
    from rag.manifest import FileEntry, Manifest

    chunks = [
        Chunk(id=p.id, source=p.source, doc_sha256=p.id, index=0, text=p.text, pages=(1,)) for p in dataset.corpus
    ]
    with index.lock():
        store = index.open_store(create=True)
        stored = store.all_ids()
        missing = [chunk for chunk in chunks if chunk.id not in stored]
        if missing:
            log(f"embedding {len(missing)} passages with {index.embedder.key} (cached vectors are reused)")
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            vectors, _ = index.embedder.embed_passages([chunk.text for chunk in batch])
            store.upsert(batch, vectors)
            log(f"  {min(start + 64, len(missing))}/{len(missing)}")
        by_source: dict[str, list[str]] = {}
        for chunk in chunks:
            by_source.setdefault(chunk.source, []).append(chunk.id)
        files = {
            source: FileEntry(sha256=source, size=0, mtime_ns=0, chunk_ids=ids) for source, ids in by_source.items()
        }
        index.save_manifest(Manifest(fingerprint=index.fingerprint(dim=index.embedder.dim), files=files))
        sync_lexical(store, {chunk.id for chunk in chunks}, index)


def _ingest_documents(dataset: DocumentDataset, index: Index, log: Callable[[str], None]) -> None:
    from rag.ingest import ingest_paths

    log(f"ingesting {len(dataset.files)} PDFs into {index.root} (unchanged files are skipped)")
    report = ingest_paths(dataset.files, index)
    for failure in report.failed:
        log(f"failed: {failure.error}")


def _timed(search: Callable[[], list[Hit]]) -> tuple[list[Hit], float]:
    started = time.perf_counter()
    hits = search()
    return hits, (time.perf_counter() - started) * 1000


def _score_passages(
    dataset: PassageDataset, searcher: Searcher, mode: RetrievalMode, ks: Sequence[int], embed_seconds: float
) -> RunMetrics:
    per_query, latencies = [], []
    for query in dataset.queries:
        hits, ms = _timed(lambda q=query: searcher.search(q.question, max(ks), mode))  # type: ignore[misc]
        latencies.append(ms)
        per_query.append(passage_metrics([hit.chunk.id for hit in hits], query.relevant_ids, ks))
    return _run(mode, per_query, latencies, embed_seconds)


def _score_pages(
    dataset: DocumentDataset,
    searcher: Searcher,
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
        hits, ms = _timed(lambda q=query, s=source: searcher.search(q.question, max(ks), mode, s))  # type: ignore[misc]
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
