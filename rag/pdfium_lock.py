"""One lock for every PDFium call in the process.

PDFium keeps global state and is not thread-safe (pypdfium2 leaves locking to its callers). In `rag serve` an
upload's ingest reads PDFs on one thread while the chat page asks for a rendered page on another, so every
module that opens a PDF with pypdfium2 (loaders, ocr, sources) holds this lock while it calls PDFium.
"""

from __future__ import annotations

import threading

PDFIUM_LOCK = threading.RLock()
