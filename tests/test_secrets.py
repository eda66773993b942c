"""The API key never appears in any output channel: stdout, stderr, --json, logs, errors, the audit log."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pytest
from openai_stub import OpenAIStub
from typer.testing import CliRunner

from rag.cli import app
from rag.config import Settings
from rag.index import Index
from rag.ingest import ingest_paths

KEY = "sk-test-SECRET-123"


@pytest.fixture
def index(tmp_path: Path, fake_settings: Settings) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.txt").write_text("The grace period is sixty days.\n", encoding="utf-8")
    ingest_paths([docs], Index(fake_settings))
    return Path(fake_settings.index_dir)


def test_the_key_appears_nowhere(
    index: Path, tmp_path: Path, stub: OpenAIStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    audit = tmp_path / "audit.jsonl"
    env = {
        "RAG_EMBEDDER": "fake",
        "OPENAI_BASE_URL": stub.base_url,
        "OPENAI_API_KEY": KEY,
        "RAG_MAX_RETRIES": "0",
        "RAG_REFUSAL_MIN_SCORE": "0",
        "RAG_AUDIT_LOG": str(audit),
    }
    runner = CliRunner()
    question = ["ask", "What is the grace period?", "--index", str(index)]
    stub.reply("Sixty days [1].")
    stub.reply("Sixty days [1].")
    # A server that echoes the key in its error body (some proxies do) must not make it reach the user.
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}}
    stub.fail(401, body=echo)
    stub.fail(401, body=echo)
    stub.fail(500, body=echo)
    stub.fail(500, body=echo)
    stub.malformed()
    results = [
        runner.invoke(app, question, env=env),
        runner.invoke(app, [*question, "--json"], env=env),
        runner.invoke(app, question, env=env),
        runner.invoke(app, [*question, "--json"], env=env),
        runner.invoke(app, question, env=env),
        runner.invoke(app, [*question, "--json"], env=env),
        runner.invoke(app, question, env=env),
        runner.invoke(app, ["status", "--index", str(index), "--json"], env=env),
        runner.invoke(app, ["ingest", str(tmp_path / "docs"), "--index", str(index), "--json"], env=env),
    ]
    assert [r.exit_code for r in results] == [0, 0, 5, 5, 5, 5, 5, 0, 0], [r.output for r in results]
    # The key did reach the server, so the test would see it if it leaked.
    assert stub.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert "HTTP 500" in results[4].stderr
    for result in results:
        assert KEY not in result.stdout and KEY not in result.stderr
        assert "SECRET" not in result.output
    assert audit.exists() and KEY not in audit.read_text(encoding="utf-8")
    assert KEY not in caplog.text


# --- a server that echoes the key, in every form, on both model paths and both faces -------------------------

ESCAPED = "sk\\u002dtest\\u002dSECRET\\u002d123"  # the key JSON-escaped, as some servers write it
ECHOES = {
    "as given": json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}).encode(),
    "upper case": json.dumps({"error": {"message": f"key {KEY.upper()} unknown"}}).encode(),
    # JSON whose string holds the escape itself, once decoded: the client's message shows `sk\u002d...`
    "JSON-escaped": json.dumps({"error": {"message": f'bad key "{ESCAPED}"'}}).encode(),
    # a message quoting escaped JSON: {\"api_key\": \"sk-...\"}
    "quoted in escaped JSON": json.dumps({"error": {"message": f'said {{\\"api_key\\": \\"{KEY}\\"}}'}}).encode(),
}


def _leaks(text: str) -> bool:
    return "secret" in text.lower()


def _model_env(stub: OpenAIStub, embedder: str) -> dict[str, str]:
    return {
        "RAG_EMBEDDER": embedder,
        "OPENAI_BASE_URL": stub.base_url,
        "OPENAI_API_KEY": KEY,
        "RAG_MAX_RETRIES": "0",
        "RAG_REFUSAL_MIN_SCORE": "0",
    }


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "policy.txt").write_text("The grace period is sixty days.\n", encoding="utf-8")
    return docs


@pytest.mark.slow
def test_cli_masks_an_echoed_key_from_chat_and_embeddings_also_with_debug(tmp_path: Path, stub: OpenAIStub) -> None:
    """Each echo form on each path (embeddings at ingest, at query time, chat), with and without --debug."""
    runner = CliRunner()
    docs = _docs(tmp_path)
    env, fake_env = _model_env(stub, "openai:stub-embed"), _model_env(stub, "fake")
    built, fake_index = str(tmp_path / "openai-index"), str(tmp_path / "fake-index")
    assert runner.invoke(app, ["ingest", str(docs), "--index", built], env=env).exit_code == 0
    assert runner.invoke(app, ["ingest", str(docs), "--index", fake_index], env=fake_env).exit_code == 0
    outputs = []
    for debug, body in itertools.product(([], ["--debug"]), ECHOES.values()):
        stub.fail(401, endpoint="embeddings", raw_body=body)  # embeddings at ingest time
        fresh = str(tmp_path / f"fresh{len(outputs)}")
        outputs.append(runner.invoke(app, ["ingest", str(docs), "--index", fresh, *debug], env=env))
        stub.fail(401, endpoint="embeddings", raw_body=body)  # embeddings at query time
        outputs.append(runner.invoke(app, ["ask", "grace period?", "--index", built, *debug], env=env))
        stub.fail(401, raw_body=body)  # the chat call
        outputs.append(runner.invoke(app, ["ask", "grace period?", "--index", fake_index, *debug], env=fake_env))
    assert [result.exit_code for result in outputs] == [5] * len(outputs), [r.output for r in outputs]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in stub.requests)  # the key did go out
    for result in outputs:
        assert not _leaks(result.stdout + result.stderr), result.stderr
    embedding_errors = [r for i, r in enumerate(outputs) if i % 3 != 2]  # they quote the server; a chat 401 does not
    assert all("sk-***" in result.stderr for result in embedding_errors)
    half = len(outputs) // 2
    assert all("Traceback" in result.stderr for result in outputs[half:])  # --debug shows it, masked
    assert not any("Traceback" in result.stderr for result in outputs[:half])


@pytest.mark.slow
def test_http_error_bodies_mask_an_echoed_key(
    tmp_path: Path, stub: OpenAIStub, caplog: pytest.LogCaptureFixture
) -> None:
    """/v1/ingest (embeddings at ingest), /v1/ask (embeddings at query time; chat), /v1/chat/completions."""
    from fastapi.testclient import TestClient

    from rag.server import create_app

    caplog.set_level(logging.DEBUG)
    base = {"base_url": stub.base_url, "api_key": KEY, "max_retries": 0, "refusal_min_score": 0.0, "_env_file": None}
    upload = [("files", ("policy.txt", b"The grace period is sixty days.\n", "text/plain"))]
    question = {"question": "grace period?"}
    chat = {"model": "rag", "messages": [{"role": "user", "content": "grace period?"}]}
    quoting, other = [], []
    openai_settings = Settings(index_dir=tmp_path / "openai", embedder="openai:stub-embed", **base)
    with TestClient(create_app(openai_settings), raise_server_exceptions=False) as client:
        for body in ECHOES.values():
            stub.fail(401, endpoint="embeddings", raw_body=body)
            quoting.append(client.post("/v1/ingest", files=upload))  # embeddings at ingest: the 502 of the report
        assert client.post("/v1/ingest", files=upload).status_code == 200
        for body in ECHOES.values():
            stub.fail(401, endpoint="embeddings", raw_body=body)
            quoting.append(client.post("/v1/ask", json=question))  # embeddings at query time
    fake_settings = Settings(index_dir=tmp_path / "fake", embedder="fake", **base)
    with TestClient(create_app(fake_settings), raise_server_exceptions=False) as client:
        assert client.post("/v1/ingest", files=upload).status_code == 200
        for body in ECHOES.values():
            stub.fail(401, raw_body=body)
            other.append(client.post("/v1/ask", json=question))  # the chat call
            stub.fail(401, raw_body=body)
            other.append(client.post("/v1/chat/completions", json=chat))  # the OpenAI-compatible face
    for response in quoting + other:
        assert response.status_code == 502 and response.json()["error"]["type"] == "ModelError", response.text
        assert not _leaks(response.text), response.text
    assert all("sk-***" in response.text for response in quoting), [r.text for r in quoting]
    assert not _leaks(caplog.text)
