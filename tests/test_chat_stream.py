"""Conversations and real streaming over HTTP: a live server (uvicorn in a thread, fake embedder) driven by the
real `openai` client, with the stub as the backend chat model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from conftest import DATA, free_port, wait_for_http
from openai_stub import OpenAIStub

from rag.config import Settings
from rag.server import create_app

ANSWER = "等待期为30日[1]，犹豫期为签收合同后的十五日[1]。免赔额为99万元[1][7]。"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start a server over an index of data/ with the given settings overrides; yields a starter."""
    servers: list[Any] = []

    def start(**overrides: Any) -> str:
        import uvicorn

        settings = Settings(index_dir=tmp_path / "index", embedder="fake", _env_file=None, **overrides)  # type: ignore[call-arg]
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz")
        files = [("files", (p.name, p.read_bytes())) for p in sorted(DATA.iterdir())]
        httpx.post(f"{base}/v1/ingest", files=files, timeout=60).raise_for_status()
        return base

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def _client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)


def _extra(chunk: Any, name: str) -> Any:
    return (chunk.model_extra or {}).get(name)


def test_tokens_reach_the_client_before_the_model_has_finished(serve: Any, stub: OpenAIStub) -> None:
    base = serve(base_url=stub.base_url, max_retries=0)
    stub.reply(ANSWER, token_delay=0.05)  # ~20 pieces: the stub takes about a second to write it
    stream = _client(base).chat.completions.create(
        model="rag", messages=[{"role": "user", "content": "等待期是多久？"}], stream=True
    )
    chunks, first_content_at = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first_content_at is None:
            first_content_at = time.monotonic()
        chunks.append(chunk)
    assert first_content_at is not None and stub.streams_finished
    assert first_content_at < stub.streams_finished[0] - 0.3, "the first token waited for the whole answer"
    assert stub.chat_requests[-1].json["stream"] is True
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == ANSWER  # the model's draft, as it came
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    rag = _extra(last, "rag")
    assert rag["mode"] == "llm" and rag["question"] == rag["condensed_question"] == "等待期是多久？"
    assert [c["n"] for c in rag["citations"]] == [1] and rag["passages"][0]["n"] == 1
    # verification ran on the whole text: the marker [7] (no such source) is removed, the figure flagged
    assert "[7]" not in rag["answer"] and rag["answer"] != streamed
    assert any("[7]" in w for w in rag["warnings"]) and any("99" in w for w in rag["warnings"])
    assert _extra(last, "citations") == rag["citations"] and _extra(last, "rag_mode") == "llm"


def test_history_reaches_the_condenser_and_the_answer_prompt(serve: Any, stub: OpenAIStub) -> None:
    base = serve(base_url=stub.base_url, max_retries=0)
    stub.reply("安心e生的等待期是多久？")  # the condense call
    stub.reply("等待期为30日[1]。")  # the answer
    messages = [
        {"role": "system", "content": "a client's own system prompt"},
        {"role": "user", "content": "安心e生的犹豫期多长？"},
        {"role": "assistant", "content": "犹豫期为签收合同后的十五日[1]。"},
        {"role": "user", "content": "那等待期呢？"},
    ]
    completion = _client(base).chat.completions.create(model="rag", messages=messages)  # type: ignore[arg-type]
    rag = _extra(completion, "rag")
    assert rag["question"] == "那等待期呢？" and rag["condensed_question"] == "安心e生的等待期是多久？"
    assert rag["warnings"] == [] and [c["n"] for c in rag["citations"]] == [1]
    condense_request, answer_request = (r.json for r in stub.chat_requests)
    assert "安心e生的犹豫期多长？" in condense_request["messages"][-1]["content"]
    roles = [m["role"] for m in answer_request["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert answer_request["messages"][1]["content"] == "安心e生的犹豫期多长？"
    assert answer_request["messages"][2]["content"] == "犹豫期为签收合同后的十五日。"  # old markers dropped
    assert "a client's own system prompt" not in str(answer_request["messages"])
    assert "那等待期呢？" in answer_request["messages"][-1]["content"]


def test_extractive_answers_stream_in_pieces_and_end_with_the_rag_field(serve: Any) -> None:
    base = serve()
    messages = [
        {"role": "user", "content": "犹豫期内退保会有损失吗？"},
        {"role": "assistant", "content": "只扣除不超过10元的工本费[1]。"},
        {"role": "user", "content": "免赔额是多少？"},
    ]
    chunks = list(_client(base).chat.completions.create(model="rag", messages=messages, stream=True))  # type: ignore[arg-type]
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1
    rag = _extra(chunks[-1], "rag")
    assert rag["mode"] == "extractive" and rag["answer"] == "".join(pieces)
    assert rag["condensed_question"] == "免赔额是多少？"  # a standalone question is left as it is
    assert rag["citations"] and "1万元" in rag["answer"]


def test_a_model_error_before_streaming_is_a_json_error_status(serve: Any, stub: OpenAIStub) -> None:
    base = serve(base_url=stub.base_url, max_retries=0)
    stub.fail(500)
    with pytest.raises(openai.APIStatusError) as caught:
        _client(base).chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "等待期是多久？"}], stream=True
        )
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "ModelError"  # type: ignore[index]


def test_ask_accepts_history(serve: Any) -> None:
    base = serve()
    history = [{"role": "user", "content": "安心e生的免赔额是多少？"}, {"role": "assistant", "content": "1万元[1]。"}]
    body = httpx.post(f"{base}/v1/ask", json={"question": "免赔额是多少？", "history": history}, timeout=60).json()
    assert body["question"] == "免赔额是多少？" and body["condensed_question"] == "免赔额是多少？"
    assert body["audit"]["condense"]["method"] == "rules" and body["audit"]["condense"]["history_turns"] == 2
    bad = httpx.post(f"{base}/v1/ask", json={"question": "x", "history": [{"role": "system", "content": "y"}]})
    assert bad.status_code == 422


def test_a_model_failing_mid_stream_ends_with_an_error_chunk(serve: Any, stub: OpenAIStub) -> None:
    base = serve(base_url=stub.base_url, max_retries=0)
    stub.malformed()  # a broken SSE event after the status line: the failure can only be the last event
    body = {"model": "rag", "stream": True, "messages": [{"role": "user", "content": "等待期是多久？"}]}
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    import json

    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"][0]["finish_reason"] == "error" and last["error"]["type"] == "ModelError"
    assert "rag" not in last
