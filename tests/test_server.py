"""The HTTP service through FastAPI's TestClient (in process), with the fake embedder."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA
from fastapi.testclient import TestClient
from openai_stub import OpenAIStub
from pydantic import SecretStr

from rag.config import Settings
from rag.server import Service, create_app, sanitise_filename


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(index_dir=tmp_path / "index", embedder="fake", _env_file=None, **overrides)  # type: ignore[call-arg]


def _upload(client: TestClient, *paths: Path, names: list[str] | None = None, **kwargs: Any) -> Any:
    files = [
        ("files", ((names[i] if names else path.name), path.read_bytes(), "application/octet-stream"))
        for i, path in enumerate(paths)
    ]
    return client.post("/v1/ingest", files=files, **kwargs)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path)), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def loaded(client: TestClient) -> TestClient:
    response = _upload(client, *sorted(DATA.iterdir()))
    assert response.status_code == 200, response.text
    return client


def _assert_error(response: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type"}, body
    assert "Traceback" not in response.text and 'File "' not in response.text
    if kind:
        assert body["error"]["type"] == kind
    return body["error"]


def test_healthz_status_and_ask_on_an_empty_index(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    status = client.get("/v1/status").json()
    assert status["chunks"] == 0 and status["store"] == "embedded" and status["loaded"] is False
    error = _assert_error(client.post("/v1/ask", json={"question": "犹豫期有多长？"}), 404, "IndexMissingError")
    assert "rag ingest" in error["message"]


def test_ingest_uploads_then_ask_returns_the_cli_json(loaded: TestClient, tmp_path: Path) -> None:
    status = loaded.get("/v1/status").json()
    assert status["files"] == 3 and status["chunks"] > 0
    response = loaded.post("/v1/ask", json={"question": "免赔额是多少？", "top_k": 3, "seed": 7})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {"question", "answer", "mode", "citations", "passages", "audit"} <= set(answer)
    assert answer["mode"] == "extractive" and len(answer["passages"]) == 3 and answer["citations"]
    uploads = tmp_path / "index" / "uploads"
    assert {Path(p["source"]).parent for p in answer["passages"]} == {uploads}
    assert loaded.get("/v1/status").json()["loaded"] is True


def test_upload_names_are_sanitised_and_unsupported_types_refused(client: TestClient, tmp_path: Path) -> None:
    faq = DATA / "faq.md"
    response = _upload(client, faq, faq, names=["../../../etc/evil faq.md", "run.sh"])
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["added"] == 1 and report["files"] == ["evil_faq.md"]
    assert [f["path"] for f in report["failed"]] == ["run.sh"]
    assert (tmp_path / "index" / "uploads" / "evil_faq.md").exists()
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Windows\\system32\\x.txt", "x.txt"),
        (".hidden.md", "hidden.md"),
        ("保险 条款(2024).pdf", "保险_条款_2024_.pdf"),
        ("", "upload"),
        ("a" * 300 + ".md", "a" * 117 + ".md"),
    ],
)
def test_sanitise_filename(name: str, safe: str) -> None:
    assert sanitise_filename(name) == safe


def test_a_second_upload_is_seen_by_the_next_question_lexically(loaded: TestClient, tmp_path: Path) -> None:
    loaded.post("/v1/ask", json={"question": "warm up"})  # the searcher now exists and holds a lexical index
    note = tmp_path / "note.txt"
    note.write_text("The zeppelin clause covers airship travel only.", encoding="utf-8")
    assert _upload(loaded, note).json()["added"] == 1
    answer = loaded.post("/v1/ask", json={"question": "zeppelin airship", "mode": "lexical"}).json()
    assert Path(answer["passages"][0]["source"]).name == "note.txt"


def test_auth_is_required_except_for_healthz(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-server-secret-123"
    caplog.set_level(logging.DEBUG)
    app = create_app(_settings(tmp_path, server_api_key=SecretStr(key)))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        for path in ("/v1/status", "/v1/models", "/openapi.json"):
            response = client.get(path)
            _assert_error(response, 401, "auth_error")
            assert response.headers["www-authenticate"] == "Bearer"
        _assert_error(client.post("/v1/ask", json={"question": "x"}), 401)
        _assert_error(client.get("/v1/status", headers={"Authorization": "Bearer wrong"}), 401)
        ok = client.get("/v1/status", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        client.post("/v1/ask", json={"question": "x"}, headers={"Authorization": f"Bearer {key}"})
    assert key not in caplog.text


def test_size_limits_answer_413_as_json(tmp_path: Path) -> None:
    settings = _settings(tmp_path, max_upload_bytes=2000, max_question_chars=50, max_request_bytes=3000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        _assert_error(client.post("/v1/ask", json={"question": "问" * 51}), 413, "request_too_large")
        _assert_error(client.post("/v1/ask", json={"question": "x" * 5000}), 413, "request_too_large")
        big = tmp_path / "big.txt"
        big.write_text("保险" * 2000, encoding="utf-8")
        _assert_error(_upload(client, big), 413, "request_too_large")
        _assert_error(
            client.post(
                "/v1/chat/completions", json={"model": "rag", "messages": [{"role": "user", "content": "问" * 60}]}
            ),
            413,
        )


def test_errors_are_json_without_tracebacks(loaded: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    error = _assert_error(loaded.post("/v1/ask", json={"question": ""}), 422, "invalid_request_error")
    assert "question" in error["message"]
    _assert_error(loaded.post("/v1/ask", json={"question": "x", "top_k": 0}), 422)
    _assert_error(loaded.post("/v1/ask", content=b"{not json", headers={"content-type": "application/json"}), 422)
    _assert_error(loaded.get("/v1/nowhere"), 404)
    _assert_error(loaded.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": []}), 422)
    _assert_error(
        loaded.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
        404,
        "not_found",
    )

    def explode(self: Service, question: str, **options: Any) -> Any:
        raise RuntimeError("secret internal detail /srv/private")

    monkeypatch.setattr(Service, "ask", explode)
    error = _assert_error(loaded.post("/v1/ask", json={"question": "x"}), 500, "server_error")
    assert "secret" not in error["message"]


def test_openapi_lists_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/ask", "/v1/ingest", "/v1/status", "/healthz", "/v1/chat/completions", "/v1/models"} <= set(paths)


def test_models_and_chat_completions(loaded: TestClient) -> None:
    assert [m["id"] for m in loaded.get("/v1/models").json()["data"]] == ["rag"]
    messages = [
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": "免赔额是多少？"},
    ]
    body = loaded.post("/v1/chat/completions", json={"model": "rag", "messages": messages}).json()
    assert body["object"] == "chat.completion" and body["model"] == "rag"
    content = body["choices"][0]["message"]["content"]
    assert body["choices"][0]["message"]["role"] == "assistant" and "[1]" in content
    assert body["citations"] and body["citations"][0]["n"] == 1 and body["rag_mode"] == "extractive"
    ask = loaded.post("/v1/ask", json={"question": "免赔额是多少？"}).json()
    assert content == ask["answer"] and body["citations"] == ask["citations"]

    with loaded.stream(
        "POST", "/v1/chat/completions", json={"model": "rag", "messages": messages, "stream": True}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks) == content
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"] == body["citations"]


def test_chat_completions_in_llm_mode_use_the_chat_model(tmp_path: Path, stub: OpenAIStub) -> None:
    settings = _settings(tmp_path, base_url=stub.base_url, max_retries=0)
    stub.reply_with(lambda body: "免赔额为人民币1万元[1]。")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        _upload(client, *sorted(DATA.iterdir()))
        body = client.post(
            "/v1/chat/completions",
            json={"model": "rag", "messages": [{"role": "user", "content": "免赔额是多少？"}], "seed": 9},
        ).json()
    assert body["rag_mode"] == "llm" and body["choices"][0]["message"]["content"] == "免赔额为人民币1万元[1]。"
    assert [c["n"] for c in body["citations"]] == [1]
    assert stub.chat_requests[-1].json["seed"] == 9


def test_ingest_can_be_disabled_on_read_replicas(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, server_allow_ingest=False)), raise_server_exceptions=False) as c:
        _assert_error(_upload(c, DATA / "faq.md"), 403, "permission_error")
