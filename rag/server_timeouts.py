"""Time limits for slow clients of `rag serve`: the request line and headers (here, at the connection level)
and the body (in `rag.server_guard.GuardMiddleware`).

uvicorn times out idle keep-alive connections only (`timeout_keep_alive`): a client that sends half a header,
or 10 of its 1,000 body bytes, holds its connection open for ever. The header limit needs the connection, which
an ASGI app never sees, so `header_timeout_protocol` subclasses uvicorn's HTTP protocol (httptools when
installed, else h11) with a timer from the moment the connection is ready for a request (opened, or the last
response sent) until the request's headers are in: when it fires, the client gets a 408 and the connection is
closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["header_timeout_protocol"]


def _timeout_response(message: str) -> bytes:
    body = json.dumps({"error": {"message": message, "type": "timeout"}}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class, with the request line and headers due within `seconds`."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools is optional for uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    late = _timeout_response(f"the request headers did not arrive within {seconds:g} s (RAG_SERVER_HEADER_TIMEOUT)")

    class HeaderTimeoutProtocol(Base):
        _header_timer: asyncio.TimerHandle | None = None
        _waiting_after: Any = None  # the cycle (request) before the one whose headers are awaited

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._header_timer is not None and self.cycle is not self._waiting_after:
                self._disarm()  # the headers are in: a request cycle started

        def on_response_complete(self) -> None:
            super().on_response_complete()
            in_flight = self.cycle is not None and not self.cycle.response_complete  # a pipelined request
            if not self.transport.is_closing() and not in_flight:
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._waiting_after = self.cycle
            self._header_timer = self.loop.call_later(seconds, self._too_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_late(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.write(late)
                self.transport.close()

    return HeaderTimeoutProtocol
