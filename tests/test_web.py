"""The chat page's server side through FastAPI's TestClient (fake embedder): the page and its files, their
security headers, the key, and the passage endpoints (`/v1/sources/...`), whose file comes from the manifest."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, REPO
from fastapi.testclient import TestClient
from pdfgen import write_pdf

from rag.config import Settings
from rag.index import Index
from rag.ingest import ingest_paths
from rag.server import create_app
from rag.sources import cited_span

KEY = "sk-web-unit"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _pdf(path: Path) -> Path:
    return write_pdf(
        path,
        [
            ["HARBOUR MUTUAL DENTAL RIDER", "", "1. Definitions", "Dental accident means damage to sound teeth."],
            ["2. Dental Accident Benefit", "We pay up to 2,000 dollars a year for treatment of a dental accident."],
        ],
    )


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Settings, Path]]:
    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(DATA / "faq.md", docs / "faq.md")
    _pdf(docs / "rider.pdf")
    settings = Settings(index_dir=tmp_path / "index", embedder="fake", server_api_key=KEY, _env_file=None)  # type: ignore[call-arg]
    assert not ingest_paths([docs], Index(settings)).failed
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, settings, docs


def _chunk_ids(settings: Settings, suffix: str) -> list[str]:
    manifest = Index(settings).manifest()
    assert manifest is not None
    return [cid for source, entry in manifest.files.items() if source.endswith(suffix) for cid in entry.chunk_ids]


def test_the_page_is_public_with_security_headers_and_the_api_keeps_its_key(served: Any) -> None:
    client, _, _ = served
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
    # no inline script or style in the page: everything comes from its own files
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text) and "style=" not in page.text
    assert KEY not in page.text
    shipped = sorted(path.name for path in (REPO / "rag" / "web").iterdir() if path.name != "index.html")
    assert {"app.js", "style.css"} <= set(shipped)
    for name in shipped:  # every file of the page is served
        asset = client.get(f"/web/{name}")
        assert asset.status_code == 200 and asset.headers["x-content-type-options"] == "nosniff", name
        text = asset.text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace, never fetched
        assert "http://" not in text and "https://" not in text, name  # nothing from elsewhere
    assert client.get("/web/%2e%2e/v1/status").status_code == 404  # the public prefix reaches no API route
    assert client.get("/web/server.py").status_code == 404
    assert client.get("/v1/web/config").status_code == 401
    assert client.get("/v1/web/config", headers=AUTH).json()["allow_ingest"] is True


def test_source_view_names_the_files_and_the_cited_sentence(served: Any) -> None:
    client, settings, _ = served
    chunk_id = _chunk_ids(settings, "rider.pdf")[-1]
    cite = "The rider pays up to 2,000 dollars a year for treatment of a dental accident. [1]"
    assert client.get(f"/v1/sources/{chunk_id}").status_code == 401
    view = client.get(f"/v1/sources/{chunk_id}", params={"cite": cite}, headers=AUTH).json()
    assert view["source"].endswith("rider.pdf") and view["page_image"] is True
    start, end = view["highlight"]
    assert "2,000 dollars" in view["text"][start:end] and "Definitions" not in view["text"][start:end]
    faq = _chunk_ids(settings, "faq.md")[0]
    assert client.get(f"/v1/sources/{faq}", headers=AUTH).json()["page_image"] is False


def test_page_png_is_rendered_once_and_cached_in_the_index(served: Any) -> None:
    client, settings, _ = served
    chunk_id = _chunk_ids(settings, "rider.pdf")[0]
    response = client.get(f"/v1/sources/{chunk_id}/page.png", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    (cached,) = (Path(settings.index_dir) / "page_images").glob("*.png")
    assert cached.read_bytes() == response.content
    faq = _chunk_ids(settings, "faq.md")[0]
    assert client.get(f"/v1/sources/{faq}/page.png", headers=AUTH).status_code == 404  # not a PDF


def test_the_file_comes_from_the_manifest_and_must_still_be_the_one_indexed(served: Any) -> None:
    client, settings, docs = served
    chunk_id = _chunk_ids(settings, "rider.pdf")[0]
    for bad in ("..%2F..%2Fetc%2Fpasswd", "0" * 31 + "g", "../manifest.json"):
        assert client.get(f"/v1/sources/{bad}/page.png", headers=AUTH).status_code == 404
    assert client.get(f"/v1/sources/{'0' * 32}", headers=AUTH).status_code == 404
    assert client.get(f"/v1/sources/{chunk_id}/page.png?page=7", headers=AUTH).status_code == 404
    _pdf(docs / "rider.pdf").write_bytes((docs / "rider.pdf").read_bytes().replace(b"2,000", b"9,999"))
    changed = client.get(f"/v1/sources/{chunk_id}/page.png", headers=AUTH)
    assert changed.status_code == 404 and "no longer the file that was indexed" in changed.json()["error"]["message"]
    assert not (Path(settings.index_dir) / "page_images").exists()


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        ("犹豫期为十五日。[1]", "犹豫期为十五日"),  # quoted: found verbatim
        ("The look period lasts fifteen days [1].", None),  # paraphrased English: the closest sentence
        ("", None),
    ],
)
def test_cited_span(claim: str, expected: str | None) -> None:
    text = "第二条 犹豫期\n犹豫期为十五日。期间可退保。\nThe free look period lasts 15 days."
    span = cited_span(text, claim)
    if not claim:
        assert span is None
    elif expected:
        assert span is not None and text[span[0] : span[1]] == expected
    else:
        assert span is not None and text[span[0] : span[1]] == "The free look period lasts 15 days."


def test_config_tells_the_page_when_uploads_are_off(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "index", embedder="fake", server_allow_ingest=False, _env_file=None)  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/web/config").json()["allow_ingest"] is False  # the page hides its upload panel
        assert client.get("/").status_code == 200
