"""A full disk and a read-only index: one line naming the cause and the fix, nothing lost, and `ask` still
answering from a read-only index. Real small file systems: a tmpfs of 1 MB, and one remounted read-only.

Mounting needs root with CAP_SYS_ADMIN (as in CI's container here); elsewhere these tests skip, saying so.
Permissions (chmod) cannot stand in for a read-only index when running as root: root writes anyway.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.server import create_app

WORDS = ["grace", "period", "sixty", "days", "premium", "policy", "claim", "insured", "benefit", "waiting"]


def _mount(folder: Path, options: str) -> None:
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip()}): needs root with CAP_SYS_ADMIN")


def _remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    folder.mkdir()
    _mount(folder, "size=1m")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _docs(folder: Path, count: int, words: int) -> Path:
    folder.mkdir()
    rng = random.Random(7)
    for n in range(count):
        text = " ".join(f"{rng.choice(WORDS)}{rng.randint(0, 99999)}" for _ in range(words))
        (folder / f"policy{n}.txt").write_text(f"The grace period is sixty days. {text}\n")
    return folder


def _rag(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAG_EMBEDDER": "fake", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True, env=env, timeout=300)


def _one_line(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr and "chromadb" not in result.stderr


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_nothing_is_lost(tmp_path: Path, small_disk: Path) -> None:
    docs = _docs(tmp_path / "docs", 6, 6000)
    index = str(small_disk / "index")
    full = _rag("ingest", str(docs), "--index", index)
    assert full.returncode == 8, full.stderr
    _one_line(full, "is full")
    assert "free some space" in full.stderr
    as_json = _rag("ingest", str(docs), "--index", index, "--json")
    assert as_json.returncode == 8 and json.loads(as_json.stdout)["error"]["type"] == "StorageError"
    asked = _rag("ask", "What is the grace period?", "--index", index)
    assert asked.returncode in (3, 8), asked.stderr  # nothing stored yet, or the disk named as full
    assert "Traceback" not in asked.stderr and asked.stderr.count("\n") == 1
    # Room again: the same command finishes the job, and every file is there.
    _remount(small_disk, "size=64m")
    again = _rag("ingest", str(docs), "--index", index, "--json")
    assert again.returncode == 0, again.stderr
    assert _rag("ask", "What is the grace period?", "--index", index).returncode == 0
    status = json.loads(_rag("status", "--index", index, "--json").stdout)
    assert status["files"] == 6


@pytest.mark.slow
def test_ask_answers_from_a_read_only_index_and_ingest_says_it_is_read_only(
    tmp_path: Path, small_disk: Path
) -> None:
    _remount(small_disk, "size=64m")
    docs = _docs(tmp_path / "docs", 2, 50)
    index = small_disk / "index"
    assert _rag("ingest", str(docs), "--index", str(index)).returncode == 0
    before = {path: path.stat().st_mtime_ns for path in index.rglob("*")}
    _remount(small_disk, "ro")
    asked = _rag("ask", "What is the grace period?", "--index", str(index))
    assert asked.returncode == 0 and "sixty days" in asked.stdout, asked.stderr
    assert _rag("status", "--index", str(index)).returncode == 0
    (tmp_path / "new.txt").write_text("The waiting period is ninety days.\n")
    ingest = _rag("ingest", str(tmp_path / "new.txt"), "--index", str(index))
    assert ingest.returncode == 8, ingest.stderr
    _one_line(ingest, f"the index {index} is read-only (a read-only file system)")
    settings = Settings(index_dir=index, embedder="fake", _env_file=None)  # type: ignore[call-arg]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answer = client.post("/v1/ask", json={"question": "What is the grace period?"})
        upload = client.post("/v1/ingest", files=[("files", ("new.txt", b"Ninety days.\n", "text/plain"))])
    assert answer.status_code == 200 and "sixty days" in answer.json()["answer"]
    assert upload.status_code == 507 and "read-only" in upload.json()["error"]["message"], upload.text
    assert {path: path.stat().st_mtime_ns for path in index.rglob("*")} == before  # untouched


def test_storage_errors_are_recognised_from_their_cause(tmp_path: Path) -> None:
    import errno
    import sqlite3

    from rag.storage import storage_problem

    def chained(outer: Exception, cause: Exception) -> Exception:
        outer.__cause__ = cause
        return outer

    full = storage_problem(chained(RuntimeError("write failed"), OSError(errno.ENOSPC, "No space left")), tmp_path)
    assert full is not None and full.exit_code == 8 and "is full" in str(full)
    sqlite_full = storage_problem(sqlite3.OperationalError("database or disk is full"), tmp_path)
    assert sqlite_full is not None and "is full" in str(sqlite_full)
    read_only = storage_problem(OSError(errno.EROFS, "Read-only file system"), tmp_path)
    assert read_only is not None and f"the index {tmp_path} is read-only" in str(read_only)
    assert storage_problem(ValueError("a bug"), tmp_path) is None  # plenty of room, writable: not a disk problem
