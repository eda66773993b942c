"""`rag serve` times out slow clients: a request whose headers or body stall gets a 408 and a closed
connection within the configured time (a real uvicorn process, driven over raw sockets)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port, stop_process, wait_for_http

TIMEOUT = 1.0
SLACK = 2.5  # scheduling on a shared 2-core machine


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    index = tmp_path_factory.mktemp("timeouts") / "index"
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "rag", "serve", "--port", str(port), "--index", str(index)),
            *("--log-level", "warning", "--header-timeout", str(TIMEOUT), "--body-timeout", str(TIMEOUT)),
        ],
        env={**os.environ, "RAG_EMBEDDER": "fake"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
        yield "127.0.0.1", port
    finally:
        stop_process(process)


def _until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds that took."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received, time.monotonic() - started


HEAD = b"POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"


@pytest.mark.slow
def test_a_body_that_stalls_gets_a_408_and_a_closed_connection(served: tuple[str, int]) -> None:
    with socket.create_connection(served) as sock:
        sock.sendall(HEAD + b'{"question')  # 10 of the 1,000 body bytes
        answer, seconds = _until_closed(sock, 30)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"RAG_SERVER_BODY_TIMEOUT" in answer and seconds < TIMEOUT + SLACK


@pytest.mark.slow
@pytest.mark.parametrize("trickle", [False, True])
def test_headers_that_stall_or_trickle_get_a_408_and_a_closed_connection(
    served: tuple[str, int], trickle: bool
) -> None:
    with socket.create_connection(served) as sock:
        started = time.monotonic()
        sock.sendall(HEAD[:30])
        if trickle:  # a byte every 0.2 s keeps sending, but never finishes the headers
            sock.settimeout(0.2)
            for byte in HEAD[30:50]:
                try:
                    sock.sendall(bytes([byte]))
                    if sock.recv(4096):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
        answer, _ = _until_closed(sock, 30)
        seconds = time.monotonic() - started
    # a trickling client may have read the 408 in its loop already; then only the close is left
    assert answer.startswith(b"HTTP/1.1 408") or (trickle and answer == b""), answer
    assert seconds < TIMEOUT + SLACK


@pytest.mark.slow
def test_prompt_clients_and_kept_alive_connections_are_served(served: tuple[str, int]) -> None:
    host, port = served
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        for _ in range(2):  # the same connection, with a pause under the header limit in between
            assert client.get("/healthz").json() == {"status": "ok"}
            time.sleep(TIMEOUT / 2)
        response = client.post("/v1/ask", json={"question": "anything?"})
    assert response.status_code == 404 and response.json()["error"]["type"] == "IndexMissingError"


def test_the_limits_are_settings(tmp_path: Path) -> None:
    from rag.config import Settings

    settings = Settings(server_header_timeout=3, server_body_timeout=4, _env_file=None)  # type: ignore[call-arg]
    assert (settings.server_header_timeout, settings.server_body_timeout) == (3, 4)
    assert Settings(_env_file=None).server_body_timeout == 60  # type: ignore[call-arg]
