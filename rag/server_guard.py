"""The HTTP server's guard, in front of the FastAPI app: bearer auth (when RAG_SERVER_API_KEY is set),
request-size limits, the body's time limit (RAG_SERVER_BODY_TIMEOUT; the headers' is in server_timeouts.py),
and a JSON body `{"error": {"message", "type"}}` for any error the app lets through (unexpected ones as a 500
with a generic message; the traceback goes to the server log, never to the client).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from rag.config import Settings
from rag.errors import mask_secret

__all__ = ["PUBLIC_PATHS", "PUBLIC_PREFIXES", "ApiError", "GuardMiddleware", "error_body"]

logger = logging.getLogger("rag.server")

PUBLIC_PATHS = frozenset({"/healthz", "/"})  # "/" is the chat page: it holds no secret and asks for the key
PUBLIC_PREFIXES = ("/web/",)  # the chat page's static files

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
    """The JSON body of every error the server sends."""
    return {"error": {"message": message, "type": kind}}


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
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if self._key is not None and not public and not self._authorised(headers):
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
        body_done = False
        timed_out = False
        timeout = self.settings.server_body_timeout
        deadline = asyncio.get_running_loop().time() + timeout

        async def limited_receive() -> Message:
            nonlocal received, body_done, timed_out
            if body_done:  # later calls wait for the disconnect (a streamed answer): no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except TimeoutError:
                timed_out = True
                raise ApiError(
                    408, f"the request body did not arrive within {timeout:g} s (RAG_SERVER_BODY_TIMEOUT)", "timeout"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    raise ApiError(413, f"request body exceeds {limit} bytes", "request_too_large")
            else:
                body_done = True
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if timed_out:  # the rest of the body may never come: do not wait for it on this connection
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except ApiError as exc:
            if not started:
                extra = {"connection": "close"} if timed_out else None
                await _send_json(send, exc.status, error_body(str(exc), exc.kind), extra)
        except Exception as exc:
            from rag.storage import storage_problem

            trace = mask_secret("".join(traceback.format_exception(exc)), self.settings.secrets())
            logger.error("unexpected error on %s %s\n%s", scope.get("method"), path, trace)
            problem = storage_problem(exc, self.settings.index_dir)  # a full disk, a read-only index: say so
            if not started and problem is not None:
                await _send_json(send, 507, error_body(str(problem), "StorageError"))
            elif not started:
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
