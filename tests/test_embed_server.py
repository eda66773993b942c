"""Embeddings from another server than chat: RAG_EMBED_BASE_URL and RAG_EMBED_API_KEY."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai_stub import OpenAIStub

from rag.config import Settings
from rag.index import Index
from rag.ingest import ingest_paths
from rag.qa import answer_question
from rag.records import IngestReport


def _ingest(paths: list[Path], settings: Settings) -> IngestReport:
    with Index(settings) as index:
        return ingest_paths(paths, index)


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_embedding_endpoint_falls_back_to_the_chat_server() -> None:
    settings = _settings(base_url="http://chat.example/v1", api_key="sk-chat")
    base_url, key = settings.embedding_endpoint()
    assert base_url == "http://chat.example/v1"
    assert key is not None and key.get_secret_value() == "sk-chat"


def test_embedding_endpoint_of_its_own_never_gets_the_chat_key() -> None:
    settings = _settings(base_url="http://chat.example/v1", api_key="sk-chat", embed_base_url="http://emb.local/v1")
    assert settings.embedding_endpoint() == ("http://emb.local/v1", None)
    with_key = _settings(embed_base_url="http://emb.local/v1", embed_api_key="sk-emb", api_key="sk-chat")
    base_url, key = with_key.embedding_endpoint()
    assert base_url == "http://emb.local/v1" and key is not None and key.get_secret_value() == "sk-emb"


def test_embed_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_EMBED_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RAG_EMBED_API_KEY", "sk-local")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.embed_base_url == "http://127.0.0.1:9/v1"
    assert settings.embed_api_key is not None and settings.embed_api_key.get_secret_value() == "sk-local"


@pytest.mark.slow
def test_ingest_and_ask_use_two_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.md").write_text(
        "# 安心医疗保险条款\n\n## 2.3 等待期\n\n本合同的等待期为90天。\n\n## 2.4 责任免除\n\n酒后驾驶不赔。\n",
        encoding="utf-8",
    )
    with OpenAIStub() as chat, OpenAIStub() as embeddings:
        chat.default_content = "等待期为90天[1]。"
        settings = _settings(
            index_dir=tmp_path / "index",
            embedder="openai:local-embedder",
            base_url=chat.base_url,
            api_key="sk-hosted-chat",
            embed_base_url=embeddings.base_url,
            embed_api_key="sk-local-embed",
            refusal_min_score=0.0,
        )
        report = _ingest([tmp_path / "policy.md"], settings)
        assert report.added == 1 and not report.failed
        answer = answer_question("等待期多久？", settings)
        assert answer.mode == "llm" and "90天" in answer.answer
        # every embedding (passages at ingest, the question at ask) went to the embedding server, with its key
        assert embeddings.embedding_requests and not embeddings.chat_requests
        assert all(r.headers["authorization"] == "Bearer sk-local-embed" for r in embeddings.embedding_requests)
        assert any(r.json["input"] == ["等待期多久？"] for r in embeddings.embedding_requests)
        # and the chat server only saw the chat call, with the chat key
        assert len(chat.chat_requests) == 1 and not chat.embedding_requests
        assert chat.chat_requests[0].headers["authorization"] == "Bearer sk-hosted-chat"
