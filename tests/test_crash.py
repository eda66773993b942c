"""SIGKILL `rag ingest` at random points, run it again, and check the index is whole every time."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from index_check import write_corpus

HERE = Path(__file__).resolve().parent
KILLS = 10  # runs that must really be killed mid-way
MAX_ROUNDS = 14


def _env(index: Path) -> dict[str, str]:
    return {**os.environ, "RAG_EMBEDDER": "fake", "RAG_INDEX_DIR": str(index), "PYTHONUNBUFFERED": "1"}


def _ingest_command(docs: Path) -> list[str]:
    return [sys.executable, "-m", "rag", "ingest", str(docs), "--json"]


@pytest.mark.slow
def test_sigkill_at_random_points_never_leaves_an_inconsistent_index(tmp_path: Path) -> None:
    rng = random.Random(20240606)
    docs = tmp_path / "docs"
    index = tmp_path / "index"
    write_corpus(docs, 0, rng)

    # How long an update run takes here (imports included), so that the kills spread over all of it: a first
    # full run, then the kind of update every round makes, both in a copy of the corpus.
    calibration_docs = tmp_path / "calibration_docs"
    shutil.copytree(docs, calibration_docs)
    for step in range(2):
        if step:
            write_corpus(calibration_docs, 1, random.Random(1))
            (calibration_docs / "policy_00.txt").unlink()
        started = time.perf_counter()
        calibration = subprocess.run(
            _ingest_command(calibration_docs),
            env=_env(tmp_path / "calibration"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        update_run = time.perf_counter() - started
        assert calibration.returncode == 0, calibration.stderr

    # The first round is a full run (longer than an update); aim at the first nine tenths of an update.
    delays = [rng.uniform(0.2, 0.9 * update_run) for _ in range(MAX_ROUNDS)]
    outcomes: list[tuple[float, bool, dict[str, object]]] = []
    for round_number, delay in enumerate(delays, start=1):
        if sum(killed for _, killed, _ in outcomes) >= KILLS:
            break
        if round_number > 1:
            write_corpus(docs, round_number, rng)
            victim = docs / f"policy_{rng.randrange(24):02d}.txt"
            victim.unlink()
        process = subprocess.Popen(
            _ingest_command(docs), env=_env(index), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay)
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        # The next run, in a fresh process: ingest again (with --prune semantics not needed: the manifest
        # only holds files that exist once we re-add the victim), check, and ask.
        write_corpus(docs, round_number, rng)
        check = subprocess.run(
            [sys.executable, str(HERE / "index_check.py"), str(index), str(docs)],
            env=_env(index),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert check.returncode == 0, f"round {round_number} (killed after {delay:.2f} s): {check.stderr[-3000:]}"
        outcomes.append((round(delay, 2), killed, json.loads(check.stdout.strip().splitlines()[-1])))
    assert sum(killed for _, killed, _ in outcomes) >= KILLS, outcomes
    print(f"update run {update_run:.1f} s; rounds: {outcomes}")

    asked = subprocess.run(
        [sys.executable, "-m", "rag", "ask", "What is the grace period of plan 3?", "--json"],
        env=_env(index),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["passages"]
