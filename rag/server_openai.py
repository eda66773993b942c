"""The OpenAI-compatible endpoints of the HTTP server: the knowledge base is the model `rag`, the last user
message is the question and the messages before it are its history (the server keeps no conversation state:
the client sends it, as with the OpenAI API). What OpenAI clients ignore comes back in the extension field
`rag` (mode, condensed question, verified answer, citations, passages, warnings): at the top level of a
completion, and on the last chunk of a stream. The older top-level `citations` and `rag_mode` stay.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.errors import RagError
from rag.records import Answer
from rag.server_guard import ApiError, error_body

if TYPE_CHECKING:
    from rag.qa_stream import AnswerStream
    from rag.server import Service

__all__ = ["MODEL_ID", "ChatRequest", "add_openai_routes"]

MODEL_ID = "rag"
log = logging.getLogger("rag.server")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The OpenAI chat-completions request; unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    seed: int | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    top_k: int | None = Field(default=None, ge=1, le=100, description="rag extension: passages to retrieve")


def add_openai_routes(app: FastAPI, service: Service) -> None:
    """/v1/models, /v1/models/{model_id} and /v1/chat/completions."""

    @app.get("/v1/models", tags=["openai"])
    def models() -> dict[str, Any]:
        """OpenAI-compatible model list: the knowledge base is the model `rag`."""
        return {"object": "list", "data": [_model_card()]}

    @app.get("/v1/models/{model_id}", tags=["openai"])
    def model(model_id: str) -> dict[str, Any]:
        if model_id != MODEL_ID:
            raise ApiError(404, f"the model {model_id!r} does not exist; use {MODEL_ID!r}", "not_found")
        return _model_card()

    @app.post("/v1/chat/completions", tags=["openai"], response_model=None)
    def chat_completions(request: ChatRequest) -> dict[str, Any] | StreamingResponse:
        """OpenAI-compatible: the last user message is the question, the earlier user and assistant messages
        its history; the answer (with [n] markers) is the assistant message. `stream: true` returns
        server-sent events, the model's tokens as they arrive, ending with [DONE]; the verified answer, its
        citations and warnings come in the extension field `rag` (on the last chunk when streaming)."""
        if request.model != MODEL_ID:
            raise ApiError(404, f"the model {request.model!r} does not exist; use {MODEL_ID!r}", "not_found")
        question, history = _split_messages(request.messages)
        options: dict[str, Any] = {
            "history": history,
            "top_k": request.top_k,
            "seed": request.seed,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if request.stream:
            stream = service.stream(question, **options)  # errors before the first token: a JSON error status
            return StreamingResponse(
                _sse(_chunks(completion_id, created, stream)),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        answer = service.ask(question, **options)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": MODEL_ID,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.answer},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": _usage(question, answer.answer),
            **_extension(answer),
        }


def rag_extension(answer: Answer) -> dict[str, Any]:
    """The `rag` field: what an OpenAI client ignores and the web page shows."""
    return {
        "mode": answer.mode,
        "model": answer.model,
        "seed": answer.seed,
        "question": answer.question,
        "condensed_question": answer.condensed_question or answer.question,
        "answer": answer.answer,
        "citations": [asdict(citation) for citation in answer.citations],
        "passages": [asdict(passage) for passage in answer.passages],
        "warnings": list(answer.warnings),
        "unsupported_sentences": list(answer.unsupported_sentences),
    }


def _extension(answer: Answer) -> dict[str, Any]:
    """The `rag` field and, for clients written before it, the top-level `citations`, `rag_mode` and `warnings`
    (e.g. an image or a link the verification removed from the answer)."""
    rag = rag_extension(answer)
    return {"citations": rag["citations"], "rag_mode": answer.mode, "warnings": rag["warnings"], "rag": rag}


def _model_card() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "rag"}


def _text_of(message: ChatMessage) -> str:
    content = message.content
    if isinstance(content, list):  # content parts: keep the text ones
        content = "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
    return (content or "").strip()


def _split_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The question (the last user message) and its history (the user and assistant messages before it).
    A client's system messages are not history: the knowledge base's own system prompt governs the answer."""
    for position in range(len(messages) - 1, -1, -1):
        if messages[position].role == "user":
            question = _text_of(messages[position])
            if not question:
                break
            history = [
                {"role": message.role, "content": text}
                for message in messages[:position]
                if message.role in ("user", "assistant") and (text := _text_of(message))
            ]
            return question, history
    raise ApiError(400, "no user message with text: the last user message is the question")


def _usage(question: str, answer: str) -> dict[str, int]:
    from rag.tokens import count_tokens

    prompt, completion = count_tokens(question), count_tokens(answer)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chunks(completion_id: str, created: int, stream: AnswerStream) -> Iterator[dict[str, Any]]:
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID}
    yield base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    try:
        for piece in stream:
            yield base | {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        answer = stream.answer
    except RagError as exc:  # the status line is sent: the failure can only travel as a last event
        log.warning("stream %s failed: %s", completion_id, exc)
        yield (
            base
            | {"choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]}
            | error_body(str(exc), type(exc).__name__)
        )
        return
    yield base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **_extension(answer)}


def _sse(chunks: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """Server-sent events. A plain iterator: Starlette runs it in a worker thread, so a slow model blocks a
    thread, never the event loop."""
    for chunk in chunks:
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
    yield b"data: [DONE]\n\n"
