"""A cited passage as the chat page shows it: the chunk (looked up by id through the `Index`), the files it came
from, the sentence a citation points at, and, for a PDF, the page itself rendered to PNG.

The file a page is rendered from comes from the manifest, never from the request: a chunk id names a document
hash, the manifest names the files with that content, and a file is used only while its bytes still have that
hash. The rendered pages are cached in the index folder (`IndexLayout.page_images`), one PNG per document and
page, so a page is rendered once however often it is cited.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import RagError
from rag.pdfium_lock import PDFIUM_LOCK
from rag.text import CITATION_MARKER, sentence_spans

if TYPE_CHECKING:
    from rag.index import Index
    from rag.records import Chunk

__all__ = ["SourceUnavailableError", "SourceView", "cited_span", "page_png", "source_view"]

CHUNK_ID = re.compile(r"[0-9a-f]{32}")  # rag.chunking.chunk_id: 32 hex digits of a sha256
RENDER_SCALE = 1.5  # 108 dpi: small print in a policy stays legible on a laptop screen, ~250 KB a page
MAX_RENDER_PIXELS = 2400  # the longer side; a poster-sized page is scaled down rather than rendered huge
# PDFium is not thread-safe: renders take turns with each other and with an upload's ingest (PDFIUM_LOCK).


class SourceUnavailableError(RagError):
    """The passage or its page cannot be shown: an unknown chunk, a file that is not a PDF, moved or changed."""


@dataclass(frozen=True)
class SourceView:
    """One stored chunk for the passage viewer."""

    chunk_id: str
    source: str  # the file as it was ingested (the first of `sources` that still holds the content)
    sources: tuple[str, ...]  # every indexed file with this content
    page: int
    pages: tuple[int, ...]
    text: str
    clause: str | None
    heading_path: tuple[str, ...]
    kind: str
    highlight: tuple[int, int] | None  # [start, end) of the cited sentence in `text`
    page_image: bool  # GET /v1/sources/{chunk_id}/page.png can render its pages (the source is a PDF)
    highlight_page: int | None = None  # the PDF page that holds the cited sentence, when the chunk spans pages

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cited_span(text: str, claim: str | None) -> tuple[int, int] | None:
    """Where `claim` (an answer sentence citing this passage) stands in `text`: verbatim when the answer quotes
    (an extractive answer does), else the sentence sharing the most characters with it (a model paraphrases),
    the same reading as the citation's clause (`rag.qa`). None when there is nothing to point at."""
    core = CITATION_MARKER.sub("", claim or "").strip().rstrip("。.!！?？;；:：").strip()
    if not core:
        return None
    found = text.find(core)
    if found >= 0:
        return found, found + len(core)
    wanted = set(core) - set(" \t\n,，、")
    spans = sentence_spans(text)
    if not spans or not wanted:
        return None
    best = max(spans, key=lambda span: len(wanted & set(text[span[0] : span[1]])))
    return best if wanted & set(text[best[0] : best[1]]) else None


def source_view(index: Index, chunk_id: str, claim: str | None = None) -> SourceView:
    """The chunk `chunk_id` with the span of the sentence `claim` cites."""
    chunk = _chunk(index, chunk_id)
    sources = _sources_of(index, chunk)
    highlight = cited_span(chunk.text, claim)
    page_image = any(source.lower().endswith(".pdf") for source in sources)
    highlight_page = None
    if page_image and highlight and len(chunk.pages) > 1:
        highlight_page = _page_holding(index, chunk, chunk.text[highlight[0] : highlight[1]])
    return SourceView(
        chunk_id=chunk.id,
        source=sources[0] if sources else chunk.source,
        sources=tuple(sources) or (chunk.source,),
        page=chunk.page,
        pages=chunk.pages,
        text=chunk.text,
        clause=chunk.clause,
        heading_path=chunk.heading_path,
        kind=chunk.kind,
        highlight=highlight,
        page_image=page_image,
        highlight_page=highlight_page,
    )


def page_png(index: Index, chunk_id: str, page: int | None = None) -> Path:
    """The PNG of `page` (one of the chunk's pages; default its first) of the PDF the chunk came from, rendered
    on first use and cached in the index folder."""
    chunk = _chunk(index, chunk_id)
    page = chunk.page if page is None else page
    if page not in chunk.pages:
        raise SourceUnavailableError(
            f"page {page} is not a page of this passage (it is on page(s) {', '.join(map(str, chunk.pages))})"
        )
    target = index.layout.page_images / f"{chunk.doc_sha256}-{page}.png"
    if target.exists():
        return target
    pdf = _pdf_of(index, chunk)
    with PDFIUM_LOCK:
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _render(pdf, page, target)
    return target


def _chunk(index: Index, chunk_id: str) -> Chunk:
    if not CHUNK_ID.fullmatch(chunk_id):
        raise SourceUnavailableError(f"{chunk_id[:80]!r} is not a chunk id (32 hex digits, as in `citations`)")
    chunk = index.chunk(chunk_id)
    if chunk is None:
        raise SourceUnavailableError(
            f"no passage {chunk_id} in the index (it was re-ingested or removed since it was cited): ask again"
        )
    return chunk


def _sources_of(index: Index, chunk: Chunk) -> list[str]:
    """The indexed files holding the chunk's document, from the manifest (empty on a Chroma server that this
    process never ingested into: it has no manifest)."""
    manifest = index.manifest()
    if manifest is None:
        return []
    return [source for source in manifest.sources_of(chunk.doc_sha256) if chunk.id in manifest.files[source].chunk_ids]


def _pdf_of(index: Index, chunk: Chunk) -> Path:
    """An indexed PDF whose bytes are still those the chunk was made from."""
    from rag.errors import LoadError
    from rag.loaders import file_sha256

    pdfs = [source for source in _sources_of(index, chunk) if source.lower().endswith(".pdf")]
    if not pdfs:
        raise SourceUnavailableError(f"{chunk.source} is not a PDF: there is no page image, only the passage text")
    for source in pdfs:
        try:
            if file_sha256(Path(source)) == chunk.doc_sha256:
                return Path(source)
        except LoadError:
            continue
    raise SourceUnavailableError(
        f"{pdfs[0]} is no longer the file that was indexed (moved, changed, or its path is relative to another "
        f"folder than the server's, {os.getcwd()}): run `rag ingest` on it again"
    )


def _page_holding(index: Index, chunk: Chunk, snippet: str) -> int | None:
    """Which of the chunk's pages holds `snippet`, read from the PDF's text layer (whitespace ignored: the
    loader joined lines and removed spaces between CJK characters); None when unsure."""
    import pypdfium2 as pdfium

    try:
        pdf = _pdf_of(index, chunk)
    except SourceUnavailableError:
        return None
    wanted = "".join(snippet.split())[:60]
    with PDFIUM_LOCK:
        document = pdfium.PdfDocument(str(pdf))
        try:
            for page in chunk.pages:
                if 1 <= page <= len(document):
                    text = document[page - 1].get_textpage().get_text_range()
                    if wanted and wanted in "".join(text.split()):
                        return page
        finally:
            document.close()
    return None


def _render(pdf: Path, page: int, target: Path) -> None:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(pdf))
    try:
        if not 1 <= page <= len(document):
            raise SourceUnavailableError(f"{pdf} has {len(document)} pages, not {page}: run `rag ingest` on it again")
        pdf_page = document[page - 1]
        width, height = pdf_page.get_size()
        scale = min(RENDER_SCALE, MAX_RENDER_PIXELS / max(width, height, 1.0))
        image = pdf_page.render(scale=scale).to_pil()
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            image.save(tmp, format="PNG")  # optimize=True: 2% smaller, 4x slower (0.6 s against 0.17 s a page)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        document.close()
