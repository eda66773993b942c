"""Text for PDF pages that have no text layer (scans): render the page, recognise it, return plain lines.

Two engines behind one small interface, chosen by `RAG_OCR`:
- "rapidocr" (the default): RapidOCR on onnxruntime with the PP-OCRv4 Chinese/English models that ship inside
  its wheel, so nothing is downloaded. An optional extra: `pip install 'rag[ocr]'`.
- "vision": an OpenAI-compatible vision model (`RAG_OCR_MODEL`, at the chat model's base URL) given the page
  as an image and asked to transcribe it.
- "off": a scanned page stays an error ("no text layer").

Nothing is imported or loaded until the first scanned page needs it; an engine is then kept for the process.
"""

from __future__ import annotations

import base64
import io
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rag.errors import ConfigError, LoadError, ModelError, mask_secret
from rag.pdfium_lock import PDFIUM_LOCK
from rag.text import has_cjk

if TYPE_CHECKING:
    from PIL.Image import Image

    from rag.config import Settings

OcrMode = Literal["rapidocr", "vision", "off"]
# Pages are rendered at this resolution for recognition (an A4 page is 1654 x 2339 pixels); RapidOCR's limit
# on the longest side is raised above that so that it does not shrink the page again (scripts/eval_ocr.py).
RENDER_DPI = 200
MAX_SIDE = 2400
INSTALL_HINT = "install the OCR extra: pip install 'rag[ocr]' (or set RAG_OCR=vision to use a vision model)"
VISION_PROMPT = (
    "Transcribe all the text on this page exactly as printed, in reading order, one line of the page per line. "
    "Keep the original language (Chinese stays Chinese). Write table rows as lines with cells separated by ' | '. "
    "Output only the text: no comments, no Markdown fences."
)


class OcrEngine(Protocol):
    name: str

    def recognise(self, image: Image) -> str:
        """The text of one page image, lines in reading order."""
        ...


@dataclass(frozen=True)
class Box:
    """One recognised text line: its box (x0, top, x1, bottom in pixels) and text."""

    x0: float
    top: float
    x1: float
    bottom: float
    text: str


def lines_from_boxes(boxes: Sequence[Box]) -> str:
    """Recognised boxes as lines of text in reading order: boxes whose vertical centres fall within half a line
    height of each other are one line, read left to right; within a line Chinese joins without a space."""
    rows: list[list[Box]] = []
    for box in sorted(boxes, key=lambda b: ((b.top + b.bottom) / 2, b.x0)):
        centre, height = (box.top + box.bottom) / 2, box.bottom - box.top
        if rows:
            last = rows[-1]
            last_centre = sum((b.top + b.bottom) / 2 for b in last) / len(last)
            if abs(centre - last_centre) <= 0.5 * max(height, last[0].bottom - last[0].top):
                last.append(box)
                continue
        rows.append([box])
    out = []
    for row in rows:
        text = ""
        for box in sorted(row, key=lambda b: b.x0):
            piece = box.text.strip()
            if not piece:
                continue
            glue = "" if not text or (has_cjk(text[-1]) and has_cjk(piece[0])) else " "
            text += glue + piece
        if text:
            out.append(text)
    return "\n".join(out)


class RapidOcr:
    """RapidOCR (PP-OCRv4 det + rec, onnxruntime). One instance is not safe across threads: calls are serialised."""

    name = "rapidocr"

    def __init__(self, threads: int | None = None) -> None:
        try:
            os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise ConfigError(f"OCR needs RapidOCR, which is not installed: {INSTALL_HINT}") from exc
        threads = threads or os.cpu_count() or 1
        # No dilation of the text map: with it, the tight line spacing of policy wordings merged two lines into
        # one box, of which one line was read (English 71% → 95% on a policy page, scripts/eval_ocr.py). No
        # angle classifier: scans are upright, and it costs a pass over every line.
        self._engine = RapidOCR(
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
            max_side_len=MAX_SIDE,
            print_verbose=False,
            det_donot_use_dilation=True,
            use_cls=False,
        )
        self._lock = threading.Lock()

    def recognise(self, image: Image) -> str:
        import numpy as np

        array = np.asarray(image.convert("RGB"))[:, :, ::-1]  # RapidOCR reads OpenCV's BGR order
        with self._lock:
            result, _ = self._engine(array)
        boxes = []
        for points, text, _score in result or []:
            xs = [float(p[0]) for p in points]
            ys = [float(p[1]) for p in points]
            boxes.append(Box(min(xs), min(ys), max(xs), max(ys), str(text)))
        return lines_from_boxes(boxes)


class VisionOcr:
    """An OpenAI-compatible chat model that reads images (e.g. gpt-4o-mini), at the chat model's base URL."""

    name = "vision"

    def __init__(self, settings: Settings) -> None:
        if not settings.llm_configured():
            raise ConfigError(
                "RAG_OCR=vision needs a vision model server: set OPENAI_BASE_URL (or OPENAI_API_KEY) and "
                "RAG_OCR_MODEL, or set RAG_OCR=rapidocr"
            )
        from rag.generation import make_client

        self._client = make_client(settings)
        self._model = settings.ocr_model
        self._where = settings.base_url or "the OpenAI API"

    def recognise(self, image: Image) -> str:
        import openai

        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        messages: Any = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": VISION_PROMPT},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
                ],
            }
        ]
        try:
            response = self._client.chat.completions.create(model=self._model, messages=messages, temperature=0)
        except openai.APIError as exc:  # the key is masked: a server may echo it in its error body
            problem = mask_secret(f"{type(exc).__name__}: {exc}", self._client.api_key)
            raise ModelError(
                f"the vision model {self._model!r} at {self._where} could not read a scanned page ({problem}); "
                "check RAG_OCR_MODEL, or set RAG_OCR=rapidocr"
            ) from None
        text = response.choices[0].message.content if response.choices else None
        return _strip_fences(text or "")


def _strip_fences(text: str) -> str:
    lines = text.strip().splitlines()
    if lines and lines[0].startswith("```"):
        lines = lines[1:]
    if lines and lines[-1].startswith("```"):
        lines = lines[:-1]
    return "\n".join(lines).strip()


_ENGINES: dict[tuple[Any, ...], OcrEngine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(settings: Settings) -> OcrEngine | None:
    """The OCR engine `settings` ask for (None for "off"), made once per process and settings."""
    mode: OcrMode = settings.ocr
    if mode == "off":
        return None
    key = (mode, settings.ocr_model, settings.base_url) if mode == "vision" else (mode,)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = VisionOcr(settings) if mode == "vision" else RapidOcr()
        return _ENGINES[key]


def render_page(document: Any, index: int, dpi: int = RENDER_DPI) -> Image:
    """Page `index` (0-based) of an open pypdfium2 document as a PIL image at `dpi`."""
    page = document[index]
    try:
        bitmap = page.render(scale=dpi / 72)
        try:
            return bitmap.to_pil()
        finally:
            bitmap.close()
    finally:
        page.close()


def recognise_scanned_pages(
    pdf: bytes | str, source: str, texts: list[str], factory: Callable[[], OcrEngine | None]
) -> tuple[list[str], frozenset[int]]:
    """`texts` (one per page; empty when the PDF has no text layer at all) with the scanned pages recognised:
    those with no text but an image. Returns the texts and the 1-based numbers of the recognised pages. The
    engine is made (and its models loaded) only when a scanned page is found."""
    import pypdfium2 as pdfium

    try:
        with PDFIUM_LOCK:  # PDFium is not thread-safe (rag/pdfium_lock.py); recognition runs outside the lock
            document = pdfium.PdfDocument(pdf)  # the bytes read (or, for a very large PDF, its path)
    except Exception as exc:  # read by pypdf only: no page can be rendered
        if any(text.strip() for text in texts):
            return texts, frozenset()
        raise LoadError(source, "no text layer: scanned? OCR it first", "run OCR (e.g. ocrmypdf)") from exc
    try:
        texts = list(texts) or [""] * len(document)
        with PDFIUM_LOCK:
            scanned = [i for i in range(len(texts)) if not texts[i].strip() and _has_image(document, i)]
        has_text = any(text.strip() for text in texts)
        if not scanned:
            if has_text:
                return texts, frozenset()
            raise LoadError(
                source,
                "no text layer: scanned? OCR it first",
                "its pages hold no image either: check that the file is not blank, or export it again with its text",
            )
        try:
            engine = factory()
        except ConfigError as exc:
            raise LoadError(
                source, f"{len(scanned)} scanned page(s) without a text layer, and {exc}", "then ingest it again"
            ) from exc
        if engine is None:
            if has_text:  # OCR is off: the scanned pages are left out, as before OCR existed
                return texts, frozenset()
            raise LoadError(
                source,
                "no text layer: scanned? OCR it first",
                "turn OCR on: RAG_OCR=rapidocr (pip install 'rag[ocr]') or RAG_OCR=vision; or run ocrmypdf",
            )
        for index in scanned:
            try:
                with PDFIUM_LOCK:
                    image = render_page(document, index)
                texts[index] = engine.recognise(image)
            except ModelError as exc:
                raise LoadError(source, f"OCR of page {index + 1} failed: {exc}", "ingest it again later") from exc
        recognised = frozenset(i + 1 for i in scanned if texts[i].strip())
        if not recognised and not has_text:
            raise LoadError(
                source,
                f"OCR ({engine.name}) found no text on its {len(scanned)} scanned page(s)",
                "check the scan (legible, upright, at least 200 dpi), or ingest a text version",
            )
        return texts, recognised
    finally:
        with PDFIUM_LOCK:
            document.close()


def _has_image(document: Any, index: int) -> bool:
    import pypdfium2.raw as raw

    page = document[index]
    try:
        return any(True for _ in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=3))
    finally:
        page.close()
