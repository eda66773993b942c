"""One writer per index: a second `rag ingest` fails fast with a clear message; a dead writer's lock is
recovered; `rag ask` answers from the last consistent state while an ingest runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from index_check import check_index

from rag.config import Settings
from rag.errors import IndexLockedError
from rag.index import Index, IndexLayout
from rag.ingest import ingest_paths
from rag.lock import index_lock

HOLD_LOCK = (
    "import sys, time; from pathlib import Path; from rag.lock import index_lock\n"
    "with index_lock(Path(sys.argv[1]) / '.lock'):\n"
    "    print('locked', flush=True); time.sleep(120)\n"
)


def _docs(folder: Path, files: int = 4, clauses: int = 20, tag: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    for i in range(files):
        text = "\n\n".join(
            f"Clause {i}.{j}{tag}. The grace period of plan {i} is {30 + j} days and the premium is {j * 10} yuan."
            for j in range(clauses)
        )
        (folder / f"plan_{i}.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def test_lock_is_exclusive_names_the_holder_and_is_recovered_when_it_dies(
    tmp_path: Path, fake_settings: Settings
) -> None:
    docs = _docs(tmp_path / "docs", files=2, clauses=3)
    index = Path(fake_settings.index_dir)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(index)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        with pytest.raises(IndexLockedError) as caught:
            ingest_paths([docs], Index(fake_settings))
        assert time.perf_counter() - started < 5  # fails fast, does not wait
        message = str(caught.value)
        assert f"another rag ingest (pid {holder.pid}) is writing to {index}" in message
        assert "wait for it" in message and caught.value.exit_code == 4
        assert IndexLayout(index).lock.read_text().strip() == str(holder.pid)
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: the kernel releases the flock
        holder.wait()
    report = ingest_paths([docs], Index(fake_settings))
    assert report.added == 2 and not report.failed
    with index_lock(IndexLayout(index).lock):  # released after the run, reusable in the same process
        pass


@pytest.mark.slow
def test_second_ingest_fails_fast_and_ask_answers_while_an_ingest_runs(tmp_path: Path) -> None:
    index = tmp_path / "index"
    env = {**os.environ, "RAG_EMBEDDER": "fake", "RAG_INDEX_DIR": str(index)}
    first_docs = _docs(tmp_path / "docs", files=3, clauses=10)
    done = subprocess.run(
        [sys.executable, "-m", "rag", "ingest", str(first_docs)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr

    # A long second ingest: many new files, and edits to the first ones.
    _docs(first_docs, files=40, clauses=60, tag=" (revised)")
    writer = subprocess.Popen(
        [sys.executable, "-m", "rag", "ingest", str(first_docs), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not IndexLayout(index).lock.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert IndexLayout(index).lock.read_text().strip() == str(writer.pid)

        second = subprocess.run(
            [sys.executable, "-m", "rag", "ingest", str(first_docs)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 4, second.stderr
        assert f"error: another rag ingest (pid {writer.pid}) is writing to {index}" in second.stderr
        assert "Traceback" not in second.stderr

        second_json = subprocess.run(
            [sys.executable, "-m", "rag", "ingest", str(first_docs), "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second_json.returncode == 4
        assert json.loads(second_json.stdout)["error"]["type"] == "IndexLockedError"

        asked = subprocess.run(
            [sys.executable, "-m", "rag", "ask", "What is the grace period of plan 1?", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        still_running = writer.poll() is None
        assert asked.returncode == 0, asked.stderr
        answer = json.loads(asked.stdout)
        assert answer["passages"], answer
        print(f"ask during ingest: writer still running afterwards: {still_running}")
    finally:
        out, err = writer.communicate(timeout=600)
    assert writer.returncode == 0, err
    assert not json.loads(out)["failed"]
    figures = check_index(index, first_docs)
    assert figures["files"] == 40
