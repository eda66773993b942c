"""The benchmarks are scripts, not tests: this only checks that their quick runs execute and print tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_query_quick_prints_latencies() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_query.py"), "--quick"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("dense", "lexical", "hybrid", "cold start"):
        assert row in result.stdout


@pytest.mark.slow
def test_bench_ingest_quick_runs_both_systems() -> None:
    if not (REPO.parent / "shared" / "eval" / "policies_zh").exists():
        pytest.skip("../shared/eval is absent")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_ingest.py"), "--quick", "--embedder", "fake"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("rag ingest", "LangChain pipeline", "embedder floor", "unchanged re-ingest", "one file edited"):
        assert row in result.stdout
