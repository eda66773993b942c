"""The HTTP face: a FastAPI app over the same library the CLI uses.

`create_app(settings)` builds the app; `rag serve` runs it under uvicorn. One `Searcher` (the open
collection, the embedder, the lexical index) is created per process on the first question and reused; after
an ingest through the API it catches up with the collection at once, and at most every
`RAG_LEXICAL_REFRESH_SECONDS` it notices writes by other processes (see `rag/lexical_sync.py`).

Every error is JSON `{"error": {"message", "type"}}`: domain errors with their own status, anything
unexpected as a 500 with a generic message (the traceback goes to the server log, never to the client).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import asdict
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.config import Settings
from rag.errors import (
    ConfigError,
    IndexDamagedError,
    IndexLockedError,
    IndexMismatchError,
    IndexMissingError,
    LoadError,
    ModelError,
    RagError,
    StoreUnreachableError,
)
from rag.records import Answer

logger = logging.getLogger("rag.server")

MODEL_ID = "rag"
PUBLIC_PATHS = frozenset({"/healthz"})
STREAM_PIECE_CHARS = 16

# RagError subclass -> HTTP status; the first match in the class's MRO wins, RagError itself is a 400.
STATUS_OF: dict[type[RagError], int] = {
    IndexMissingError: 404,
    IndexMismatchError: 409,
    IndexLockedError: 409,
    IndexDamagedError: 503,
    StoreUnreachableError: 503,
    ConfigError: 400,
    LoadError: 422,
    ModelError: 502,
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiError(Exception):
    """An error with an HTTP status, raised by the endpoints themselves."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def error_body(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind}}


# ----- request and response models -------------------------------------------------------------------


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="The question, in Chinese or English.")
    top_k: int | None = Field(default=None, ge=1, le=100, description="Passages to retrieve (default RAG_TOP_K).")
    mode: Literal["dense", "lexical", "hybrid"] | None = Field(default=None, description="Retrieval mode.")
    source: str | None = Field(default=None, description="Only search this file (as stored).")
    seed: int | None = Field(default=None, description="Sampling seed (default RAG_SEED).")


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


# ----- the service: shared state behind locks ---------------------------------------------------------


class Service:
    """What the endpoints share: the index (with its Searcher, opened on first use) and the ingest lock."""

    def __init__(self, settings: Settings) -> None:
        from rag.index import Index

        self.settings = settings
        self.index = Index(settings)
        self._ingest_lock = threading.Lock()  # one ingest at a time in this process
        self.started = time.time()

    def ask(self, question: str, **options: Any) -> Answer:
        from rag.qa import answer_question

        if len(question) > self.settings.max_question_chars:
            raise ApiError(
                413,
                f"the question has {len(question)} characters; the limit is {self.settings.max_question_chars} "
                "(RAG_MAX_QUESTION_CHARS)",
                "request_too_large",
            )
        return answer_question(question, self.settings, searcher=self.index.searcher(), **options)

    def ingest(self, paths: list[Path]) -> dict[str, Any]:
        from rag.ingest import ingest_paths

        with self._ingest_lock:
            report = ingest_paths(paths, self.index)
            self.index.after_ingest(report.rebuilt)
        return report.to_dict()

    def status(self) -> dict[str, Any]:
        return self.index.status()


# ----- uploads -----------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


def sanitise_filename(name: str | None) -> str:
    """A safe file name from a client's: the last path component only, no leading dots, no separators or
    control characters, at most 120 characters (the suffix kept). Never a path outside the uploads folder."""
    raw = unicodedata.normalize("NFC", name or "")
    base = PureWindowsPath(PurePosixPath(raw).name).name
    cleaned = _UNSAFE.sub("_", base).strip("._ ") or "upload"
    stem, dot, suffix = cleaned.rpartition(".")
    if dot and len(suffix) <= 10:
        return f"{stem[: 120 - len(suffix) - 1] or 'upload'}.{suffix}"
    return cleaned[:120]


async def _save_upload(upload: UploadFile, folder: Path, limit: int) -> Path:
    target = folder / sanitise_filename(upload.filename)
    tmp = folder / f".{target.name}.{uuid.uuid4().hex}.part"
    size = 0
    try:
        with open(tmp, "wb") as handle:
            while block := await upload.read(1 << 20):
                size += len(block)
                if size > limit:
                    raise ApiError(413, f"upload exceeds {limit} bytes (RAG_MAX_UPLOAD_BYTES)", "request_too_large")
                handle.write(block)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# ----- middleware: auth, body size, last-resort errors ---------------------------------------------------


class GuardMiddleware:
    """Bearer auth (when RAG_SERVER_API_KEY is set), request-size limits, and JSON for any unhandled error."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        key = settings.server_api_key
        self._key = key.get_secret_value().encode() if key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self._key is not None and path not in PUBLIC_PATHS and not self._authorised(headers):
            await _send_json(
                send,
                401,
                error_body("missing or wrong API key: send 'Authorization: Bearer <key>'", "auth_error"),
                {"www-authenticate": "Bearer"},
            )
            return
        limit = self.settings.max_upload_bytes if path.endswith("/ingest") else self.settings.max_request_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_json(send, 413, error_body(f"request body exceeds {limit} bytes", "request_too_large"))
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ApiError(413, f"request body exceeds {limit} bytes", "request_too_large")
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except ApiError as exc:
            if not started:
                await _send_json(send, exc.status, error_body(str(exc), exc.kind))
        except Exception:
            logger.exception("unexpected error on %s %s", scope.get("method"), path)
            if not started:
                await _send_json(send, 500, error_body("internal server error (see the server log)", "server_error"))

    def _authorised(self, headers: dict[str, str]) -> bool:
        assert self._key is not None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._key)


async def _send_json(send: Send, status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# ----- the app ------------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP service over one index. Nothing is opened until the first request that needs it."""
    settings = settings or Settings()
    service = Service(settings)
    app = FastAPI(
        title="rag",
        version="0.1.0",
        description=(
            "Grounded, cited answers from your own documents. Errors are JSON `{error: {message, type}}`. "
            "When RAG_SERVER_API_KEY is set, every endpoint but /healthz needs `Authorization: Bearer <key>`."
        ),
    )
    app.state.service = service
    app.add_middleware(GuardMiddleware, settings=settings)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        status = next((STATUS_OF[c] for c in type(exc).__mro__ if c in STATUS_OF), 400)
        return JSONResponse(error_body(str(exc), type(exc).__name__), status_code=status)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(str(exc), exc.kind), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', ()) if part != 'body')}: {error.get('msg')}"
            for error in exc.errors()
        )
        return JSONResponse(error_body(f"invalid request: {problems}", "invalid_request_error"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, ApiError):  # e.g. the size limit hit while FastAPI parsed a form
            return await api_error(request, exc.__cause__)
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code, headers=exc.headers)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers. Never needs the API key."""
        return {"status": "ok"}

    @app.get("/v1/status", tags=["service"])
    def status() -> dict[str, Any]:
        """What the index holds, how it was built, and whether this process has opened it yet."""
        return service.status()

    @app.post("/v1/ask", tags=["rag"])
    def ask(request: AskRequest) -> dict[str, Any]:
        """The same JSON as `rag ask --json`: answer, mode, citations, passages, audit."""
        answer = service.ask(
            request.question, top_k=request.top_k, mode=request.mode, source=request.source, seed=request.seed
        )
        return answer.to_dict()

    @app.post("/v1/ingest", tags=["rag"])
    async def ingest(
        files: Annotated[list[UploadFile], File(description="PDF, TXT or Markdown files")],
    ) -> dict[str, Any]:
        """Store the uploaded files (sanitised names, in the uploads folder of the index) and ingest them;
        returns the ingest report. An upload with an existing name replaces that file's chunks."""
        from starlette.concurrency import run_in_threadpool

        if not settings.server_allow_ingest:
            raise ApiError(403, "ingest is disabled on this server (RAG_SERVER_ALLOW_INGEST=false)", "permission_error")
        from rag.ingest import is_supported

        folder = service.index.layout.uploads
        folder.mkdir(parents=True, exist_ok=True)
        saved: list[Path] = []
        rejected: list[dict[str, str]] = []
        for upload in files:
            name = sanitise_filename(upload.filename)
            if not is_supported(name):
                rejected.append({"path": name, "error": f"{name}: unsupported type; upload PDF, TXT or Markdown"})
                continue
            saved.append(await _save_upload(upload, folder, settings.max_upload_bytes))
        report = await run_in_threadpool(service.ingest, saved) if saved else _empty_report()
        report["failed"] = rejected + list(report["failed"])
        report["files"] = [path.name for path in saved]
        return report

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
        }

    return app


def _empty_report() -> dict[str, Any]:
    from rag.records import IngestReport

    return IngestReport().to_dict()


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
    }


async def _sse(chunks: Iterator[dict]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
    yield b"data: [DONE]\n\n"
