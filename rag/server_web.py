"""The chat page of the HTTP server: `/` and its static files (plain HTML, CSS and JavaScript shipped in
`rag/web/`, no build step, nothing from a CDN), and the endpoints only the page needs: what this server allows
(`/v1/web/config`) and the cited passages with their PDF pages (`/v1/sources/...`).

The page and its files carry no secret and are served without the API key (the guard lets `/` and `/web/`
through); everything under `/v1/` needs it, as the rest of the API does. The page's own responses carry a
Content-Security-Policy that allows scripts, styles, images and connections from this origin only: an answer
or a passage holding Markdown like `![x](https://evil.example/t.png)` is shown as text, and even a slip that
made it an element could not load it.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse, Response

from rag.server_guard import ApiError

if TYPE_CHECKING:
    from rag.server import Service

__all__ = ["SECURITY_HEADERS", "WEB_PREFIX", "add_web_routes"]

WEB_PREFIX = "/web/"
# The page's files and their types: nothing else is served from the package folder.
_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "answer.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "uploads.js": "text/javascript; charset=utf-8",
    "viewer.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def add_web_routes(app: FastAPI, service: Service) -> None:
    """/, /web/{name}, /v1/web/config, /v1/sources/{chunk_id} and /v1/sources/{chunk_id}/page.png."""
    settings = service.settings

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return _asset("index.html")

    @app.get(WEB_PREFIX + "{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in _ASSETS:
            raise ApiError(404, f"no file {name!r} in the chat page", "not_found")
        return _asset(name)

    @app.get("/v1/web/config", tags=["web"])
    def config() -> JSONResponse:
        """What the chat page may offer on this server: the upload panel, and the limits it checks first."""
        body = {
            "allow_ingest": settings.server_allow_ingest,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_question_chars": settings.max_question_chars,
        }
        return JSONResponse(body, headers=SECURITY_HEADERS)

    @app.get("/v1/sources/{chunk_id}", tags=["web"])
    def source(
        chunk_id: str,
        cite: Annotated[str | None, Query(max_length=2000, description="the answer sentence citing it")] = None,
    ) -> JSONResponse:
        """A cited passage: its text, file(s), pages, heading path, and the span `highlight` of the sentence
        that `cite` (an answer sentence citing it) points at; `page_image` says whether its pages can be
        fetched as PNG."""
        from rag.sources import source_view

        view = _unavailable_as_404(lambda: source_view(service.index, chunk_id, cite))
        return JSONResponse(view.to_dict(), headers=SECURITY_HEADERS)

    @app.get("/v1/sources/{chunk_id}/page.png", tags=["web"], response_class=FileResponse)
    def page_image(chunk_id: str, page: Annotated[int | None, Query(ge=1)] = None) -> FileResponse:
        """A page of the PDF the passage came from (default its first page), rendered with pypdfium2 and
        cached in the index folder."""
        from rag.sources import page_png

        path = _unavailable_as_404(lambda: page_png(service.index, chunk_id, page))
        return FileResponse(path, media_type="image/png", headers={**SECURITY_HEADERS, "cache-control": "private"})


T = TypeVar("T")


def _unavailable_as_404(call: Callable[[], T]) -> T:
    from rag.sources import SourceUnavailableError

    try:
        return call()
    except SourceUnavailableError as exc:
        raise ApiError(404, str(exc), "not_found") from exc


def _asset(name: str) -> Response:
    body = files("rag").joinpath("web", name).read_bytes()
    # no-cache: the browser checks again, so an upgraded server never runs with yesterday's script
    return Response(body, media_type=_ASSETS[name], headers={**SECURITY_HEADERS, "cache-control": "no-cache"})
