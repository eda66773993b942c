"""The OpenAI-compatible endpoints of the HTTP server: the knowledge base is the model `rag`, the last user
message is the question, and the cited sources come back in the extra top-level field `citations`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.records import Answer
from rag.server_guard import ApiError

if TYPE_CHECKING:
    from rag.server import Service

__all__ = ["MODEL_ID", "ChatRequest", "add_openai_routes"]

MODEL_ID = "rag"
STREAM_PIECE_CHARS = 16


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
        """OpenAI-compatible: the last user message is the question; the answer (with [n] markers) is the
        assistant message; the cited sources come back in the extra top-level field `citations`
        (in the last chunk when streaming). `stream: true` returns server-sent events ending with [DONE]."""
        if request.model != MODEL_ID:
            raise ApiError(404, f"the model {request.model!r} does not exist; use {MODEL_ID!r}", "not_found")
        question = _last_user_message(request.messages)
        answer = service.ask(
            question,
            top_k=request.top_k,
            seed=request.seed,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
        )
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        citations = [asdict(citation) for citation in answer.citations]
        if request.stream:
            return StreamingResponse(
                _sse(_chunks(completion_id, created, answer, citations)),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
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
            "citations": citations,
            "rag_mode": answer.mode,
            "warnings": answer.warnings,  # e.g. an image or a link the verification removed from the answer
        }


def _model_card() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "rag"}


def _last_user_message(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, list):  # content parts: keep the text ones
                content = "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
            if content and content.strip():
                return content.strip()
            break
    raise ApiError(400, "no user message with text: the last user message is the question")


def _usage(question: str, answer: str) -> dict[str, int]:
    from rag.tokens import count_tokens

    prompt, completion = count_tokens(question), count_tokens(answer)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chunks(completion_id: str, created: int, answer: Answer, citations: list[dict[str, Any]]) -> Iterator[dict]:
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID}
    yield base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    text = answer.answer
    for start in range(0, len(text), STREAM_PIECE_CHARS):
        piece = text[start : start + STREAM_PIECE_CHARS]
        yield base | {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
    yield base | {
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "citations": citations,
        "rag_mode": answer.mode,
        "warnings": answer.warnings,
    }


async def _sse(chunks: Iterator[dict]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
    yield b"data: [DONE]\n\n"
