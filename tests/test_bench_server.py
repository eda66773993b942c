"""A small run of scripts/bench_server.py, as a user runs it: the full benchmark's code, asserting zero errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_bench_server_small_run_has_no_errors() -> None:
    command = [sys.executable, str(REPO / "scripts" / "bench_server.py"), "--quick", "--embedder", "fake", "--json"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]  # the script exits 1 when any request failed
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["errors"] == 0 and result["requests"] == 40 and result["chunks"] > 0
    assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    # each question also streamed once: the first content arrives, and no later than the whole answer
    assert result["stream_errors"] == 0 and 0 < result["ttft_p50_ms"] <= result["stream_total_p50_ms"]
