"""Model faults through the real openai client against the local stub: retried where the client retries,
otherwise one clear line (or one JSON object) and exit code 5; never a traceback or a half-printed answer."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from openai_stub import OpenAIStub
from typer.testing import CliRunner, Result

from rag.cli import app
from rag.config import Settings
from rag.index import Index
from rag.ingest import ingest_paths

QUESTION = "What is the grace period?"


@pytest.fixture
def index(tmp_path: Path, fake_settings: Settings) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.txt").write_text("The grace period is sixty days. The premium is 100 yuan.\n", encoding="utf-8")
    ingest_paths([docs], Index(fake_settings))
    return Path(fake_settings.index_dir)


def ask(index: Path, base_url: str, *extra: str, retries: int = 2, timeout: float = 10.0) -> Result:
    env = {
        "RAG_EMBEDDER": "fake",
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-test-faults",
        "RAG_MAX_RETRIES": str(retries),
        "RAG_REQUEST_TIMEOUT": str(timeout),
        "RAG_REFUSAL_MIN_SCORE": "0",
    }
    return CliRunner().invoke(app, ["ask", QUESTION, "--index", str(index), *extra], env=env)


def assert_clean_failure(result: Result, phrase: str) -> None:
    assert result.exit_code == 5, result.output
    assert result.stdout == ""  # no half-printed answer
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert phrase in result.stderr
    assert "Traceback" not in result.output


def assert_json_failure(result: Result, phrase: str) -> None:
    assert result.exit_code == 5, result.output
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ModelError" and phrase in error["message"]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("status", [429, 500])
def test_429_and_500_are_retried_then_answered(index: Path, stub: OpenAIStub, status: int) -> None:
    stub.fail(status, times=2, retry_after=0.05)
    stub.reply("The grace period is sixty days [1].")
    result = ask(index, stub.base_url, retries=2)
    assert result.exit_code == 0, result.output
    assert "sixty days [1]" in result.stdout
    assert len(stub.chat_requests) == 3


def test_500_without_retry_after_backs_off(index: Path, stub: OpenAIStub) -> None:
    stub.fail(500, times=1)
    stub.reply("Sixty days [1].")
    started = time.perf_counter()
    result = ask(index, stub.base_url, retries=1)
    assert result.exit_code == 0, result.output
    assert len(stub.chat_requests) == 2
    assert time.perf_counter() - started >= 0.3  # the client's own backoff (about 0.5 s, jittered) was waited


@pytest.mark.parametrize("status, phrase", [(429, "rate-limiting (429) after retries"), (500, "HTTP 500")])
def test_retries_are_bounded_by_the_setting(index: Path, stub: OpenAIStub, status: int, phrase: str) -> None:
    stub.fail(status, times=5, retry_after=0.05)
    result = ask(index, stub.base_url, retries=1)
    assert_clean_failure(result, phrase)
    assert len(stub.chat_requests) == 2  # one try and one retry: RAG_MAX_RETRIES=1


def test_timeout_is_a_clear_error_after_the_configured_time(index: Path, stub: OpenAIStub) -> None:
    stub.delay(5.0, "too late [1]")
    started = time.perf_counter()
    result = ask(index, stub.base_url, retries=0, timeout=0.5)
    elapsed = time.perf_counter() - started
    assert_clean_failure(result, "did not answer within the timeout; raise RAG_REQUEST_TIMEOUT")
    assert 0.4 <= elapsed < 4.0


def test_malformed_json_is_a_clear_error(index: Path, stub: OpenAIStub) -> None:
    stub.malformed()
    assert_clean_failure(ask(index, stub.base_url, retries=0), "malformed answer")
    stub.malformed()
    assert_json_failure(ask(index, stub.base_url, "--json", retries=0), "malformed answer")


def test_empty_choices_is_a_clear_error(index: Path, stub: OpenAIStub) -> None:
    stub.empty_choices()
    assert_clean_failure(ask(index, stub.base_url, retries=0), "returned no answer")
    stub.empty_choices()
    assert_json_failure(ask(index, stub.base_url, "--json", retries=0), "returned no answer")


def test_refused_connection_is_a_clear_error(index: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    assert_clean_failure(ask(index, url, retries=0), "cannot reach the chat model")
    assert_json_failure(ask(index, url, "--json", retries=0), "cannot reach the chat model")


@pytest.fixture
def plain_text_server() -> Iterator[str]:
    """A server that answers 200 with a text/plain body, as a misconfigured proxy does."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = b"<html>proxy login</html>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_a_non_json_answer_is_a_clear_error(index: Path, plain_text_server: str) -> None:
    assert_clean_failure(ask(index, plain_text_server, retries=0), "non-JSON answer")
