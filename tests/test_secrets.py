"""The API key never appears in any output channel: stdout, stderr, --json, logs, errors, the audit log."""

from __future__ import annotations

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
