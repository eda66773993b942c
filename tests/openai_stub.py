"""A scriptable, local OpenAI-compatible HTTP server for tests (standard library only).

Use it as a context manager (or from a pytest fixture) and point the real ``openai`` client at it::

    with OpenAIStub() as stub:
        stub.reply("Paris [1]")
        client = openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="m", messages=[...])
        assert stub.chat_requests[0].json["seed"] == 7

Scripted behaviours are queued per endpoint ("chat" or "embeddings"); each request to that endpoint pops
one (``fail(times=3)`` queues three). When the chat queue is empty the answer is ``default_content``;
when the embeddings queue is empty the embeddings are computed normally.

Endpoints: ``POST /v1/chat/completions`` (JSON or ``stream: true`` SSE), ``POST /v1/embeddings``
(deterministic unit vectors, ``encoding_format`` float or base64), ``GET /v1/models`` and
``GET /v1/models/{id}``. Anything else is a 404 with an OpenAI-style error body.

As a separate process (for subprocess CLI tests)::

    python tests/openai_stub.py --port 0 --content "stub answer [1]"

prints its base_url on the first stdout line and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import itertools
import json
import math
import re
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["EMBEDDING_DIM", "OpenAIStub", "RecordedRequest", "fake_embedding"]

EMBEDDING_DIM = 64
STREAM_PIECE_CHARS = 4  # characters of content per streamed chunk

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "not_found"),
    408: ("timeout", None),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_TOKEN_RE = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff]|[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the stub received it."""

    method: str
    path: str  # without the query string, e.g. "/v1/chat/completions"
    query: str
    headers: dict[str, str]  # lowercased keys
    json: Any  # the parsed body, or None when the body is empty or not JSON
    raw: bytes


@dataclass
class _Behaviour:
    kind: str  # "reply" | "fail" | "malformed" | "empty"
    content: str | Callable[[dict[str, Any]], str] | None = None
    status: int = 200
    body: dict[str, Any] | None = None
    retry_after: float | None = None
    delay: float = 0.0
    token_delay: float = 0.0  # seconds between streamed chunks (``stream: true`` only)
    raw_body: bytes | None = None  # a failure's body sent as is (not JSON-encoded)


def count_tokens(text: str) -> int:
    """A plausible token count: one per CJK character, word or punctuation mark."""
    return len(_TOKEN_RE.findall(text))


def fake_embedding(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """A deterministic unit vector derived from a hash of ``text``; float32-exact values."""
    raw = b""
    counter = 0
    while len(raw) < 4 * dim:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    ints = struct.unpack(f"<{dim}i", raw[: 4 * dim])
    vec = [i / 2**31 for i in ints]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    # Round through float32 so the "float" and "base64" encodings carry exactly the same numbers.
    return list(struct.unpack(f"<{dim}f", struct.pack(f"<{dim}f", *(v / norm for v in vec))))


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    err_type, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {
        "error": {
            "message": message or f"stub error (HTTP {status})",
            "type": err_type,
            "param": None,
            "code": code,
        }
    }


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages") or []
    return 3 + sum(4 + count_tokens(_message_text(m.get("content"))) for m in messages if isinstance(m, dict))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    stub: OpenAIStub

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or go away mid-response are routine in tests: stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.stub._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.stub._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    # -- plumbing -------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        stub = self.server.stub
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        stub._record(
            RecordedRequest(
                method=self.command,
                path=path,
                query=parts.query,
                headers={k.lower(): v for k, v in self.headers.items()},
                json=parsed,
                raw=raw,
            )
        )
        try:
            if self.command == "POST" and path == "/v1/chat/completions":
                self._chat(parsed)
            elif self.command == "POST" and path == "/v1/embeddings":
                self._embeddings(parsed)
            elif self.command == "GET" and path == "/v1/models":
                self._send_json(200, {"object": "list", "data": [stub._model_card(m) for m in stub.models]})
            elif self.command == "GET" and path.startswith("/v1/models/"):
                model = path.removeprefix("/v1/models/")
                if model in stub.models:
                    self._send_json(200, stub._model_card(model))
                else:
                    self._send_json(404, _error_body(404, f"The model '{model}' does not exist"))
            else:
                self._send_json(404, _error_body(404, f"Unknown request URL: {self.command} {self.path}"))
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", self.server.stub._next_request_id())
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json", headers)

    def _wait(self, behaviour: _Behaviour | None) -> bool:
        """Apply a scripted delay; False when the stub is shutting down (drop the connection)."""
        if behaviour is None or behaviour.delay <= 0:
            return True
        if self.server.stub._closing.wait(behaviour.delay):
            self.close_connection = True
            return False
        return True

    def _send_failure(self, behaviour: _Behaviour) -> None:
        headers = {}
        if behaviour.retry_after is not None:
            headers["retry-after"] = f"{behaviour.retry_after:g}"
        if behaviour.raw_body is not None:
            self._send(behaviour.status, behaviour.raw_body, "application/json", headers)
            return
        self._send_json(behaviour.status, behaviour.body or _error_body(behaviour.status), headers)

    def _bad_request(self, message: str) -> None:
        self._send_json(400, _error_body(400, message))

    # -- endpoints ------------------------------------------------------------------------------------

    def _chat(self, body: Any) -> None:
        stub = self.server.stub
        if not isinstance(body, dict):
            self._bad_request("We could not parse the JSON body of your request.")
            return
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            self._bad_request("'model' and 'messages' are required properties.")
            return
        behaviour = stub._pop("chat")
        if not self._wait(behaviour):
            return
        if behaviour is not None and behaviour.kind == "fail":
            self._send_failure(behaviour)
            return
        if behaviour is not None and behaviour.kind == "malformed" and not body.get("stream"):
            self._send(200, b'{"id": "chatcmpl-stub", "choices": [{"message": ', "application/json")
            return

        content: str | None = None
        if behaviour is None or behaviour.kind == "reply":
            source = behaviour.content if behaviour is not None else None
            if source is None:
                source = stub.default_content
            content = source(body) if callable(source) else source

        completion_id = f"chatcmpl-stub{stub._next_id():06d}"
        created = int(time.time())
        model = str(body["model"])
        prompt_tokens = _prompt_tokens(body)
        completion_tokens = count_tokens(content or "")
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if body.get("stream"):
            malformed = behaviour is not None and behaviour.kind == "malformed"
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            token_delay = behaviour.token_delay if behaviour is not None else stub.default_token_delay
            self._stream(
                completion_id, created, model, content, usage if include_usage else None, malformed, token_delay
            )
            return

        choices = []
        if content is not None:
            choices.append(
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            )
        self._send_json(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": choices,
                "usage": usage,
                "system_fingerprint": "fp_stub",
            },
        )

    def _stream(
        self,
        completion_id: str,
        created: int,
        model: str,
        content: str | None,
        usage: dict[str, int] | None,
        malformed: bool,
        token_delay: float = 0.0,
    ) -> None:
        # Close-delimited body (no Content-Length), as streaming servers commonly do over HTTP/1.1.
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("x-request-id", self.server.stub._next_request_id())
        self.end_headers()

        def chunk(choices: list[dict[str, Any]], chunk_usage: dict[str, int] | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_stub",
                "choices": choices,
                "usage": chunk_usage,
            }

        events: list[str] = []
        if malformed:
            events.append('{"id": "chatcmpl-stub", "choices": [{"delta": ')
        elif content is not None:
            events.append(json.dumps(chunk([_delta({"role": "assistant", "content": ""})])))
            for i in range(0, len(content), STREAM_PIECE_CHARS):
                piece = content[i : i + STREAM_PIECE_CHARS]
                events.append(json.dumps(chunk([_delta({"content": piece})]), ensure_ascii=False))
            events.append(json.dumps(chunk([_delta({}, finish_reason="stop")])))
        if usage is not None and not malformed:
            events.append(json.dumps(chunk([], usage)))
        events.append("[DONE]")
        stub = self.server.stub
        for position, data in enumerate(events):
            if token_delay > 0 and 0 < position < len(events) - 1 and stub._closing.wait(token_delay):
                return  # shutting down: drop the connection mid-stream
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()
        with stub._lock:
            stub.streams_finished.append(time.monotonic())

    def _embeddings(self, body: Any) -> None:
        stub = self.server.stub
        if not isinstance(body, dict) or "input" not in body or not body.get("model"):
            self._bad_request("'model' and 'input' are required properties.")
            return
        behaviour = stub._pop("embeddings")
        if not self._wait(behaviour):
            return
        if behaviour is not None and behaviour.kind == "fail":
            self._send_failure(behaviour)
            return
        if behaviour is not None and behaviour.kind == "malformed":
            self._send(200, b'{"object": "list", "data": [', "application/json")
            return
        inputs = body["input"]
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]  # one text, or one pre-tokenized input
        if not isinstance(inputs, list) or not inputs:
            self._bad_request("'input' must be a non-empty string or array.")
            return
        texts = [t if isinstance(t, str) else json.dumps(t) for t in inputs]
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            self._bad_request(f"Invalid encoding_format: {fmt!r}")
            return
        dim = body.get("dimensions") or stub.embedding_dim
        data = []
        for index, text in enumerate(texts):
            vec = fake_embedding(text, int(dim))
            encoded: Any = vec
            if fmt == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(count_tokens(t) for t in texts)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": str(body["model"]),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


def _delta(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


class OpenAIStub:
    """A local OpenAI-compatible server on 127.0.0.1 (random port), scripted from the test."""

    def __init__(
        self,
        default_content: str | Callable[[dict[str, Any]], str] = "stub answer [1]",
        *,
        port: int = 0,
        token_delay: float = 0.0,
    ) -> None:
        self.default_content = default_content  # a callable answers from the request body
        self.default_token_delay = token_delay  # between streamed chunks when no behaviour is queued
        self.embedding_dim = EMBEDDING_DIM
        self.models: list[str] = ["stub-chat", "stub-embed"]
        self.requests: list[RecordedRequest] = []
        # time.monotonic() when each streamed answer's last event ([DONE]) was written
        self.streams_finished: list[float] = []
        self.base_url = ""
        self._port = port
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Behaviour]] = {"chat": deque(), "embeddings": deque()}
        self._ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._connections: set[socket.socket] = set()
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> OpenAIStub:
        if self._server is not None:
            raise RuntimeError("OpenAIStub already started")
        self._closing.clear()
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.stub = self
        self._server = server
        host, port = server.server_address[:2]
        self.base_url = f"http://{host}:{port}/v1"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._closing.set()  # wake any delayed handler so it drops its connection
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # unblock handlers idling on keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting ------------------------------------------------------------------------------------

    def reply(self, content: str, *, delay: float = 0.0, token_delay: float = 0.0) -> None:
        """Queue one chat answer (sent as JSON, or as SSE chunks if the request has ``stream: true``, then
        ``token_delay`` seconds apart, as a model writing its answer)."""
        self._push("chat", _Behaviour("reply", content=content, delay=delay, token_delay=token_delay))

    def reply_with(
        self, handler: Callable[[dict[str, Any]], str], *, delay: float = 0.0, token_delay: float = 0.0
    ) -> None:
        """Queue one chat answer computed from the request body."""
        self._push("chat", _Behaviour("reply", content=handler, delay=delay, token_delay=token_delay))

    def fail(
        self,
        status: int,
        times: int = 1,
        body: dict[str, Any] | None = None,
        retry_after: float | None = None,
        *,
        endpoint: str = "chat",
        raw_body: bytes | None = None,
    ) -> None:
        """Queue ``times`` error responses with an OpenAI-style error body (or ``body``, or ``raw_body`` sent
        byte for byte, e.g. hand-escaped JSON that echoes a key as ``sk\\u002d...``).

        ``retry_after`` sets the Retry-After header in seconds; the openai client honours it
        (up to 120 s), so keep it small.
        """
        for _ in range(times):
            self._push(
                endpoint,
                _Behaviour("fail", status=status, body=body, retry_after=retry_after, raw_body=raw_body),
            )

    def delay(self, seconds: float, content: str | None = None, *, endpoint: str = "chat") -> None:
        """Queue one normal response (``content`` or the default) sent after ``seconds``."""
        self._push(endpoint, _Behaviour("reply", content=content, delay=seconds))

    def malformed(self, *, endpoint: str = "chat") -> None:
        """Queue one 200 response whose body is not valid JSON (a broken SSE event when streaming)."""
        self._push(endpoint, _Behaviour("malformed"))

    def empty_choices(self) -> None:
        """Queue one valid chat completion with ``"choices": []``."""
        self._push("chat", _Behaviour("empty"))

    # -- inspection -----------------------------------------------------------------------------------

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == "/v1/chat/completions"]

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == "/v1/embeddings"]

    def pending(self, endpoint: str = "chat") -> int:
        """How many scripted behaviours are still queued for ``endpoint``."""
        with self._lock:
            return len(self._queues[endpoint])

    # -- internals used by the handler ----------------------------------------------------------------

    def _push(self, endpoint: str, behaviour: _Behaviour) -> None:
        if endpoint not in self._queues:
            raise ValueError(f"endpoint must be one of {sorted(self._queues)}, not {endpoint!r}")
        with self._lock:
            self._queues[endpoint].append(behaviour)

    def _pop(self, endpoint: str) -> _Behaviour | None:
        with self._lock:
            queue = self._queues[endpoint]
            return queue.popleft() if queue else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _next_request_id(self) -> str:
        with self._lock:
            return f"req_stub{next(self._request_ids):06d}"

    @staticmethod
    def _model_card(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1700000000, "owned_by": "stub"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the OpenAI-compatible test stub.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--content", default="stub answer [1]", help="the answer to every chat request")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed chunks")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with OpenAIStub(args.content, port=args.port, token_delay=args.token_delay) as stub:
        print(stub.base_url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
