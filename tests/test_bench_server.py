"""A small run of scripts/bench_server.py: the same code as the full benchmark, asserting zero errors."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO


@pytest.mark.slow
def test_bench_server_small_run_has_no_errors() -> None:
    spec = importlib.util.spec_from_file_location("bench_server", REPO / "scripts" / "bench_server.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run_bench(requests=40, concurrency=4, embedder="fake")
    assert result["errors"] == 0 and result["requests"] == 40 and result["chunks"] > 0
    assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
