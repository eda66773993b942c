"""The local OpenAI stub, exercised through the real ``openai`` client over real HTTP."""

from __future__ import annotations

import base64
import json
import math
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from openai_stub import EMBEDDING_DIM, OpenAIStub, fake_embedding

MESSAGES = [
    {"role": "system", "content": "Answer from the sources and cite them as [n]."},
    {"role": "user", "content": "Sources:\n[1] Paris is the capital.\n[2] Lyon is big.\n\nQ: capital?"},
]


def client(stub: OpenAIStub, **kwargs: object) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 5.0)
    return openai.OpenAI(base_url=stub.base_url, api_key="sk-test", **kwargs)  # type: ignore[arg-type]


def test_reply_and_recorded_request(stub: OpenAIStub) -> None:
    stub.reply("Paris [1]")
    resp = client(stub).chat.completions.create(model="m-1", messages=MESSAGES, seed=7, temperature=0)

    assert resp.choices[0].message.content == "Paris [1]"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.object == "chat.completion"
    assert resp.model == "m-1"
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens

    [req] = stub.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.json == {"messages": MESSAGES, "model": "m-1", "seed": 7, "temperature": 0}
    assert json.loads(req.raw) == req.json
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.headers["content-type"] == "application/json"


def test_default_content_and_queue_order(stub: OpenAIStub) -> None:
    stub.default_content = "fallback [2]"
    stub.reply("first")
    stub.fail(500, times=2)
    c = client(stub)
    ask = lambda: c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content  # noqa: E731

    assert ask() == "first"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            ask()
    assert ask() == "fallback [2]"
    assert stub.pending() == 0
    assert len(stub.chat_requests) == 4


def test_reply_with_computes_from_request(stub: OpenAIStub) -> None:
    def cite_all(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        return " ".join(f"[{n}]" for n in range(1, 10) if f"[{n}]" in prompt)

    stub.reply_with(cite_all)
    resp = client(stub).chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "[1] [2]"


def test_streaming_reassembles(stub: OpenAIStub) -> None:
    text = "巴黎是法国的首都 [1]. Paris is the capital [1]."
    stub.reply(text)
    chunks = list(
        client(stub).chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "chat.completion.chunk" and c.model == "m" for c in chunks)
    content_chunks = [c for c in chunks if c.choices]
    assert len(content_chunks) > 3
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == text
    assert content_chunks[0].choices[0].delta.role == "assistant"
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert stub.requests[0].json["stream"] is True


def test_rate_limit_then_success_is_retried(stub: OpenAIStub) -> None:
    stub.fail(429, retry_after=0.01)
    stub.reply("ok [1]")
    started = time.monotonic()
    resp = client(stub, max_retries=2).chat.completions.create(model="m", messages=MESSAGES)

    assert resp.choices[0].message.content == "ok [1]"
    assert time.monotonic() - started < 1.0  # Retry-After honoured instead of the 0.5 s+ default backoff
    assert len(stub.requests) == 2
    assert [r.headers["x-stainless-retry-count"] for r in stub.requests] == ["0", "1"]


def test_server_error_without_retries_raises(stub: OpenAIStub) -> None:
    stub.fail(500, body={"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
    with pytest.raises(openai.InternalServerError) as exc_info:
        client(stub).chat.completions.create(model="m", messages=MESSAGES)
    assert exc_info.value.status_code == 500
    assert "boom" in str(exc_info.value)
    assert len(stub.requests) == 1


def test_rate_limit_error_when_retries_exhausted(stub: OpenAIStub) -> None:
    stub.fail(429, times=2, retry_after=0.01)
    with pytest.raises(openai.RateLimitError) as exc_info:
        client(stub, max_retries=1).chat.completions.create(model="m", messages=MESSAGES)
    assert exc_info.value.code == "rate_limit_exceeded"
    assert len(stub.requests) == 2


def test_delay_beyond_client_timeout_raises_quickly(stub: OpenAIStub) -> None:
    stub.delay(5)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client(stub, timeout=0.3).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started < 2.0


def test_malformed_json_raises_json_decode_error(stub: OpenAIStub) -> None:
    # The client does not wrap this: a 200 with a broken JSON body surfaces as json.JSONDecodeError.
    stub.malformed()
    with pytest.raises(json.JSONDecodeError):
        client(stub).chat.completions.create(model="m", messages=MESSAGES)
    stub.malformed()
    with pytest.raises(json.JSONDecodeError):
        list(client(stub).chat.completions.create(model="m", messages=MESSAGES, stream=True))


def test_empty_choices(stub: OpenAIStub) -> None:
    stub.empty_choices()
    resp = client(stub).chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices == []


def test_embeddings_float_and_base64_agree(stub: OpenAIStub) -> None:
    c = client(stub)
    texts = ["policy clause 1", "常见问题", "policy clause 1"]
    default = c.embeddings.create(model="e", input=texts)  # the client asks for base64 and decodes it
    floats = c.embeddings.create(model="e", input=texts, encoding_format="float")
    explicit = c.embeddings.create(model="e", input=texts, encoding_format="base64")  # left as a string

    assert [r.json["encoding_format"] for r in stub.embedding_requests] == ["base64", "float", "base64"]
    vectors = [d.embedding for d in floats.data]
    assert [d.embedding for d in default.data] == vectors
    decoded = [list(struct.unpack(f"<{EMBEDDING_DIM}f", base64.b64decode(d.embedding))) for d in explicit.data]
    assert decoded == vectors
    assert vectors[0] == vectors[2] != vectors[1]
    assert vectors[0] == fake_embedding("policy clause 1")
    assert all(len(v) == EMBEDDING_DIM and math.isclose(math.hypot(*v), 1.0, rel_tol=1e-5) for v in vectors)
    assert [d.index for d in floats.data] == [0, 1, 2]

    single = c.embeddings.create(model="e", input="常见问题", encoding_format="float")
    assert single.data[0].embedding == vectors[1]


def test_embeddings_failures_are_scriptable(stub: OpenAIStub) -> None:
    stub.fail(503, endpoint="embeddings")
    with pytest.raises(openai.InternalServerError):
        client(stub).embeddings.create(model="e", input=["x"])
    assert client(stub).embeddings.create(model="e", input=["x"]).data


def test_models_and_unknown_path(stub: OpenAIStub) -> None:
    assert [m.id for m in client(stub).models.list()] == stub.models

    with pytest.raises(urllib.error.HTTPError) as exc_info:
        urllib.request.urlopen(f"{stub.base_url}/nope", timeout=5)
    assert exc_info.value.code == 404
    assert json.loads(exc_info.value.read())["error"]["type"] == "invalid_request_error"
    assert stub.requests[-1].path == "/v1/nope" and stub.requests[-1].json is None


def test_shutdown_is_quick_with_a_delayed_response_in_flight() -> None:
    errors: list[BaseException] = []
    with OpenAIStub() as stub:
        stub.delay(30)
        c = client(stub, timeout=30)

        def call() -> None:
            try:
                c.chat.completions.create(model="m", messages=MESSAGES)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        deadline = time.monotonic() + 5
        while not stub.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert errors and isinstance(errors[0], openai.APIConnectionError)


@pytest.mark.slow
def test_runs_as_a_separate_process() -> None:
    script = Path(__file__).with_name("openai_stub.py")
    with subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--content", "from a process [1]"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            c = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=5)
            resp = c.chat.completions.create(model="m", messages=MESSAGES)
            assert resp.choices[0].message.content == "from a process [1]"
        finally:
            proc.terminate()
            assert proc.wait(timeout=5) == 0
