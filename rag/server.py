"""The HTTP face: a FastAPI app over the same library the CLI uses.

`create_app(settings)` builds the app; `rag serve` runs it under uvicorn. One `Searcher` (the open
collection, the embedder, the lexical index) is created per process on the first question and reused; after
an ingest through the API it catches up with the collection at once, and at most every
`RAG_LEXICAL_REFRESH_SECONDS` it notices writes by other processes (see `rag/lexical_sync.py`).

Every error is JSON `{"error": {"message", "type"}}`: domain errors with their own status, anything
unexpected as a 500 with a generic message (the traceback goes to the server log, never to the client).
"""

from __future__ import annotations

import os
import re
import threading
import time
import unicodedata
import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag import errors
from rag.config import Settings, load_settings
from rag.records import Answer
from rag.server_guard import ApiError, GuardMiddleware, error_body
from rag.server_openai import add_openai_routes
from rag.server_web import add_web_routes

if TYPE_CHECKING:
    from rag.qa_stream import AnswerStream

# RagError subclass -> HTTP status; the first match in the class's MRO wins, RagError itself is a 400.
STATUS_OF: dict[type[errors.RagError], int] = {
    errors.IndexMissingError: 404,
    errors.IndexMismatchError: 409,
    errors.IndexLockedError: 409,
    errors.IndexDamagedError: 503,
    errors.StoreUnreachableError: 503,
    errors.ConfigError: 400,
    errors.LoadError: 422,
    errors.ModelError: 502,
    errors.StorageError: 507,
}

# ----- request and response models -------------------------------------------------------------------


class HistoryMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="The question, in Chinese or English.")
    top_k: int | None = Field(default=None, ge=1, le=100, description="Passages to retrieve (default RAG_TOP_K).")
    mode: Literal["dense", "lexical", "hybrid"] | None = Field(default=None, description="Retrieval mode.")
    source: str | None = Field(default=None, description="Only search this file (as stored).")
    seed: int | None = Field(default=None, description="Sampling seed (default RAG_SEED).")
    as_of: str | None = Field(
        default=None, description="Use the editions in force on this date, YYYY-MM-DD (default today)."
    )
    product: str | None = Field(default=None, description="Only search this product's documents.")
    history: list[HistoryMessage] = Field(
        default_factory=list,
        description="Earlier turns, oldest first: a follow-up is read against them. The server keeps no state.",
    )


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

        self._check_length(question)
        return answer_question(question, self.settings, searcher=self.index.searcher(), **options)

    def stream(self, question: str, **options: Any) -> AnswerStream:
        """The answer as it is written (`rag.qa_stream`); errors before the first word raise here."""
        from rag.qa_stream import stream_answer

        self._check_length(question)
        return stream_answer(question, self.settings, searcher=self.index.searcher(), **options)

    def _check_length(self, question: str) -> None:
        if len(question) > self.settings.max_question_chars:
            raise ApiError(
                413,
                f"the question has {len(question)} characters; the limit is {self.settings.max_question_chars} "
                "(RAG_MAX_QUESTION_CHARS)",
                "request_too_large",
            )

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


# ----- the app ------------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP service over one index. Nothing is opened until the first request that needs it."""
    settings = settings or load_settings()
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
    _add_error_handlers(app)
    _add_service_routes(app, service)
    add_openai_routes(app, service)
    add_web_routes(app, service)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as JSON `{"error": {"message", "type"}}`, domain errors with their own status."""

    @app.exception_handler(errors.RagError)
    async def rag_error(request: Request, exc: errors.RagError) -> JSONResponse:
        status = next((STATUS_OF[c] for c in type(exc).__mro__ if c in STATUS_OF), 400)
        # The model calls mask the key already; this is the last gate before a client sees the message.
        message = errors.mask_secret(str(exc), request.app.state.service.settings.secrets())
        return JSONResponse(error_body(message, type(exc).__name__), status_code=status)

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


def _add_service_routes(app: FastAPI, service: Service) -> None:
    """/healthz, /v1/status, /v1/ask and /v1/ingest."""
    settings = service.settings

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
            request.question,
            history=[message.model_dump() for message in request.history],
            top_k=request.top_k,
            mode=request.mode,
            source=request.source,
            seed=request.seed,
            as_of=request.as_of,
            product=request.product,
        )
        return answer.to_dict()

    @app.post("/v1/ingest", tags=["rag"])
    async def ingest(
        files: Annotated[
            list[UploadFile], File(description="PDF, Word (.docx), HTML, Excel (.xlsx), CSV, TXT or Markdown files")
        ],
    ) -> dict[str, Any]:
        """Store the uploaded files (sanitised names, in the uploads folder of the index) and ingest them;
        returns the ingest report. An upload with an existing name replaces that file's chunks."""
        from starlette.concurrency import run_in_threadpool

        if not settings.server_allow_ingest:
            raise ApiError(403, "ingest is disabled on this server (RAG_SERVER_ALLOW_INGEST=false)", "permission_error")
        from rag.ingest import SUPPORTED_NAMES, is_supported

        folder = service.index.layout.uploads
        folder.mkdir(parents=True, exist_ok=True)
        saved: list[Path] = []
        rejected: list[dict[str, str]] = []
        for upload in files:
            name = sanitise_filename(upload.filename)
            if not is_supported(name):
                rejected.append({"path": name, "error": f"{name}: unsupported type; upload {SUPPORTED_NAMES}"})
                continue
            saved.append(await _save_upload(upload, folder, settings.max_upload_bytes))
        report = await run_in_threadpool(service.ingest, saved) if saved else _empty_report()
        report["failed"] = rejected + list(report["failed"])
        report["files"] = [path.name for path in saved]
        return report


def _empty_report() -> dict[str, Any]:
    from rag.records import IngestReport

    return IngestReport().to_dict()
