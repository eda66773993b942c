"""`rag serve` as a real process on a free port, driven by the real `openai` client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import openai
import pytest
from conftest import DATA, free_port, stop_process, wait_for_http

from rag.config import Settings
from rag.index import Index
from rag.ingest import ingest_paths

KEY = "sk-e2e-test-key"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    index = tmp_path_factory.mktemp("serve") / "index"
    settings = Settings(index_dir=index, embedder="fake", _env_file=None)  # type: ignore[call-arg]
    assert not ingest_paths([DATA], Index(settings)).failed
    port = free_port()
    env = {**os.environ, "RAG_EMBEDDER": "fake", "RAG_SERVER_API_KEY": KEY}
    log = open(index.parent / "serve.log", "wb")  # noqa: SIM115 - closed after the process stops
    process = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--port", str(port), "--index", str(index), "--log-level", "warning"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=index.parent,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process(process)
        log.close()
    assert KEY not in (index.parent / "serve.log").read_text(encoding="utf-8", errors="replace")


@pytest.mark.slow
def test_openai_client_non_streaming(served: str) -> None:
    client = openai.OpenAI(base_url=served, api_key=KEY, max_retries=0)
    assert [model.id for model in client.models.list()] == ["rag"]
    completion = client.chat.completions.create(
        model="rag", messages=[{"role": "user", "content": "How long is the grace period?"}]
    )
    content = completion.choices[0].message.content
    assert content and "[1]" in content
    citations = (completion.model_extra or {})["citations"]
    assert citations and {"n", "source", "page", "clause", "chunk_id"} <= set(citations[0])


@pytest.mark.slow
def test_openai_client_streaming(served: str) -> None:
    client = openai.OpenAI(base_url=served, api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "犹豫期有多长？"}]
    whole = client.chat.completions.create(model="rag", messages=messages)  # type: ignore[arg-type]
    pieces, citations = [], None
    for chunk in client.chat.completions.create(model="rag", messages=messages, stream=True):  # type: ignore[arg-type]
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        citations = (chunk.model_extra or {}).get("citations", citations)
    assert len(pieces) > 1
    assert "".join(pieces) == whole.choices[0].message.content
    assert citations == (whole.model_extra or {})["citations"]


@pytest.mark.slow
def test_openai_client_without_the_key_is_refused(served: str) -> None:
    client = openai.OpenAI(base_url=served, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert caught.value.status_code == 401
