"""Files to pages: one read of each file (its bytes hashed and parsed), PDF extraction and clean-up of PDF
artefacts. Finding the files is rag/discovery.py; decoding text files, rag/text_files.py. Word, HTML and
spreadsheets are read by their own modules (rag/loaders_docx.py, rag/loaders_html.py, rag/loaders_sheets.py),
and scanned PDF pages are recognised by rag/ocr.py.

Every problem with one file is raised as a LoadError naming the file and the fix; the caller records it
and goes on with the next file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from rag.discovery import STREAMED_SUFFIXES, escape_undecodable
from rag.discovery import SUPPORTED_NAMES as SUPPORTED_NAMES
from rag.discovery import SUPPORTED_SUFFIXES as SUPPORTED_SUFFIXES
from rag.discovery import SourceFile as SourceFile
from rag.discovery import discover as discover
from rag.errors import LoadError, brief
from rag.outline import is_front_matter, known_titles, repair_wrapped_headings, split_inline_headings
from rag.pdfium_lock import PDFIUM_LOCK
from rag.records import ChunkKind, Page

if TYPE_CHECKING:
    from rag.ocr import OcrEngine
    from rag.tables import Table
from rag.text import CJK_CHARS, CJK_PUNCT, HEADING_LINE, INLINE_HEADING, LIST_OR_HEADING_START
from rag.text_files import HEAD_BYTES, HashingReader, readable_pages, text_encoding, text_segments

# A PDF, or a text file up to this size, is read into memory once, and those bytes are hashed and parsed;
# a larger text file is streamed and hashed as it is parsed (rag/loaders.read_source).
WHOLE_READ_BYTES = 16 * 1024 * 1024
# PDFs are parsed whole anyway; above this size one is parsed from the disk instead (PDFium reads it lazily),
# and hashed again after parsing to check that it did not change meanwhile
PDF_WHOLE_READ_BYTES = 256 * 1024 * 1024

# Makes the OCR engine when a scanned page first needs it (None: OCR is off).
OcrFactory = Callable[[], "OcrEngine | None"]

_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{CJK_CHARS}{CJK_PUNCT}])[ \t\u3000]+(?=[{CJK_CHARS}{CJK_PUNCT}])")
_SPACE_CJK_DIGIT = re.compile(rf"(?<=[{CJK_CHARS}])[ \t]+(?=[0-9])|(?<=[0-9])[ \t]+(?=[{CJK_CHARS}])")
_SENTENCE_END = re.compile(rf"[。！？；：.!?;:…{CJK_PUNCT[-6:]}]$")
_PAGE_NUMBER_LINE = re.compile(
    r"^\s*(第\s*\d+\s*页(\s*[,，/]?\s*共\s*\d+\s*页)?|[-–—]?\s*\d+\s*[-–—]?|page\s+\d+(\s+of\s+\d+)?|\d+\s*/\s*\d+)\s*$",
    re.IGNORECASE,
)


# "…/Page 12", "第3页": a page number inside a longer running header
_PAGE_NUMBER_IN_LINE = re.compile(r"((?i:page)|第)\d+")


def unreadable(path: Path, exc: OSError) -> LoadError:
    """What an OS error while reading a file means to the user, and what to do about it."""
    shown = escape_undecodable(str(path))
    if isinstance(exc, FileNotFoundError):
        return LoadError(shown, "the file disappeared while it was being read", "run ingest again")
    if isinstance(exc, PermissionError):
        return LoadError(shown, "permission denied", "make the file readable (chmod +r) or skip it")
    if isinstance(exc, IsADirectoryError):
        return LoadError(shown, "is a folder, not a file", "pass the folder itself")
    # a symlink loop, an I/O error, a stale network mount
    return LoadError(
        shown, f"cannot be read ({exc.strerror or exc})", "check the file (or the link to it) and the disk"
    )


def file_sha256(path: Path) -> str:
    """The hash a run compares with the manifest's to skip unchanged files. A text file whose first bytes
    show it is not text is refused first, so it is never read to the end."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            if path.suffix.lower() in STREAMED_SUFFIXES:
                head = handle.read(HEAD_BYTES)
                text_encoding(escape_undecodable(str(path)), head)
                digest.update(head)
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise unreadable(path, exc) from exc
    return digest.hexdigest()


def read_source(
    file: SourceFile, planned_sha256: str, pdf_backend: str = "pypdfium2", ocr: OcrFactory | None = None
) -> tuple[str, Iterator[Page]]:
    """Read `file` once: the hash of the bytes that are parsed, and the pages parsed from them.

    A PDF, or a text file up to WHOLE_READ_BYTES, is read whole and hashed; a larger text file is streamed
    (memory stays bounded) and hashed as it is read, and refused at its end if those bytes are not the ones
    `planned_sha256` (the hash its chunk ids were derived from) describes: it changed during the run."""
    try:
        handle = open(file.path, "rb")  # noqa: SIM115 - a large text file's handle lives on in its page iterator
    except OSError as exc:
        raise unreadable(file.path, exc) from exc
    try:
        if read_whole(file.path, os.fstat(handle.fileno()).st_size):
            data = handle.read()
            handle.close()
            return hashlib.sha256(data).hexdigest(), _pages(file, data, pdf_backend, ocr)
    except OSError as exc:
        handle.close()
        raise unreadable(file.path, exc) from exc
    if file.path.suffix.lower() not in STREAMED_SUFFIXES:
        handle.close()
        if file.path.suffix.lower() != ".pdf":
            raise LoadError(
                file.source,
                f"larger than {PDF_WHOLE_READ_BYTES // 2**20} MB, the most a Word, HTML or spreadsheet file is read",
                "split it into smaller files",
            )
        return planned_sha256, _verified_pdf_pages(file, planned_sha256, pdf_backend, ocr)
    return planned_sha256, _streamed_pages(file, handle, planned_sha256)


def read_whole(path: Path, size: int) -> bool:
    """Whether `read_source` reads this file whole (and so hashes it as it reads it), or streams it. Only plain
    text is streamed: PDFs, Word, HTML and spreadsheets are parsed whole by their libraries anyway."""
    return size <= (WHOLE_READ_BYTES if path.suffix.lower() in STREAMED_SUFFIXES else PDF_WHOLE_READ_BYTES)


def _verified_pdf_pages(
    file: SourceFile, planned_sha256: str, pdf_backend: str, ocr: OcrFactory | None
) -> Iterator[Page]:
    yield from _pages(file, file.path, pdf_backend, ocr)
    if file_sha256(file.path) != planned_sha256:
        raise LoadError(file.source, "the file changed while it was being read", "run ingest again")


def _streamed_pages(file: SourceFile, handle: BinaryIO, planned_sha256: str) -> Iterator[Page]:
    hashing = HashingReader(handle)
    try:
        yield from _pages(file, hashing, "pypdfium2")
    except OSError as exc:
        raise unreadable(file.path, exc) from exc
    finally:
        handle.close()
    if hashing.sha256.hexdigest() != planned_sha256:
        raise LoadError(file.source, "the file changed while it was being read", "run ingest again")


def load_pages(file: SourceFile, pdf_backend: str = "pypdfium2", ocr: OcrFactory | None = None) -> Iterator[Page]:
    """Yield the cleaned pages of one file, lazily, so a large text file never sits in memory whole.

    A text file has no pages: all of its segments are page 1. Word and HTML pages are paragraphs, a
    spreadsheet's are rows (rag/blocks.py, rag/loaders_sheets.py). A PDF page with no text layer but an
    image is recognised by the engine `ocr` makes, when given."""
    suffix = file.path.suffix.lower()
    if suffix == ".pdf":
        yield from _pages(file, file.path, pdf_backend, ocr)
        return
    try:
        if suffix not in STREAMED_SUFFIXES:
            data = file.path.read_bytes()
            yield from _pages(file, data, pdf_backend, ocr)
            return
        with open(file.path, "rb") as handle:
            yield from _pages(file, handle, pdf_backend, ocr)
    except OSError as exc:
        raise unreadable(file.path, exc) from exc


def _pages(
    file: SourceFile,
    content: bytes | Path | BinaryIO | HashingReader,
    pdf_backend: str,
    ocr: OcrFactory | None = None,
) -> Iterator[Page]:
    """The cleaned pages of `content`: a PDF's bytes (or path), the bytes of a Word, HTML or spreadsheet file,
    or a text file's bytes or binary stream. A text file has no pages: all of its segments are page 1."""
    suffix = file.path.suffix.lower()
    if isinstance(content, bytes | Path) and suffix == ".pdf":
        raw_pages, recognised = _pdf_text(file.source, content, pdf_backend, ocr)
        rows = _table_rows(content, raw_pages) if pdf_backend != "pypdf" else {}
        cleaned = clean_pdf_pages(file.source, raw_pages, _bookmarks(content), rows, recognised)
        yield from readable_pages(file.source, cleaned)
        return
    if suffix not in STREAMED_SUFFIXES:
        if not isinstance(content, bytes):
            raise TypeError(f"a {suffix} file is parsed from its bytes")
        yield from readable_pages(file.source, _document_pages(file.source, suffix, content))
        return
    if isinstance(content, Path):
        raise TypeError("a text file is read from its bytes or a stream")
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    markdown = suffix in {".md", ".markdown"}
    segments = (clean_text(segment, markdown=markdown) for segment in text_segments(file.source, stream))
    yield from readable_pages(file.source, (Page(source=file.source, page=1, text=t) for t in segments if t))


def _document_pages(source: str, suffix: str, data: bytes) -> Iterator[Page]:
    """Word, HTML and spreadsheets, by their own readers (each parses the bytes that were hashed)."""
    if suffix == ".docx":
        from rag.loaders_docx import docx_pages

        yield from docx_pages(data, source)
    elif suffix in {".html", ".htm"}:
        from rag.loaders_html import html_pages

        yield from html_pages(data, source)
    elif suffix == ".xlsx":
        from rag.loaders_sheets import xlsx_pages

        yield from xlsx_pages(data, source)
    elif suffix == ".csv":
        from rag.loaders_sheets import csv_pages

        yield from csv_pages(data, source)
    else:
        raise LoadError(source, f"unsupported file type {suffix!r}", f"convert it to {SUPPORTED_NAMES}")


def clean_pdf_pages(
    source: str,
    raw_pages: list[str],
    bookmarks: Iterable[str] = (),
    tables: dict[int, list[str]] | None = None,
    recognised: frozenset[int] = frozenset(),
) -> Iterator[Page]:
    """Drop running headers and footers (they need every page to be seen), clean each page, join the headings
    that a narrow column wrapped (using the document's own contents list and its bookmarks), and mark front
    matter. A page's table rows (`tables`, by page number) follow it as a page of kind "table". The pages
    numbered in `recognised` were read by OCR and are marked so."""
    repeated = _running_lines(raw_pages)
    cleaned = []
    for text in raw_pages:
        kept = [line for line in text.splitlines() if not _is_running_line(line, repeated)]
        cleaned.append(clean_text("\n".join(kept)))
    if repeated and not any(cleaned):
        line = next(
            line.strip() for text in raw_pages for line in text.splitlines() if _is_running_line(line, repeated)
        )
        raise LoadError(
            source,
            f"its only text is a line repeated on every page ({line[:60]!r}), taken for a running header or "
            "footer and dropped",
            "nothing else is there to index; check that it is the right file (a scan with a stamped line needs OCR)",
        )
    contents = [text for text in cleaned if is_front_matter(text)]
    cleaned = repair_wrapped_headings(cleaned, known_titles(contents, bookmarks))
    for number, text in enumerate(cleaned, start=1):
        kind: ChunkKind = "front" if is_front_matter(text) else "clause"
        yield Page(source=source, page=number, text=text, kind=kind, ocr=number in recognised)
        rows = (tables or {}).get(number)
        if rows:
            yield Page(source=source, page=number, text="\n".join(rows), kind="table")


def _table_rows(data: bytes | Path, raw_pages: list[str]) -> dict[int, list[str]]:
    """The ruled tables of a PDF as lines of rows, each with its header ("列: 值; 列: 值"), by page; the caption
    (or "Table") first. The pages that hold them are read again without the tables' regions, in `raw_pages`,
    so that no row is indexed twice."""
    from rag.tables import find_tables, row_text, text_outside

    by_page: dict[int, list[Table]] = {}
    for table in find_tables(data):
        by_page.setdefault(table.page, []).append(table)
    rows: dict[int, list[str]] = {}
    for number, tables in by_page.items():
        outside = text_outside(data, number, tables)
        if outside.strip() or not raw_pages[number - 1].strip():
            raw_pages[number - 1] = outside
        lines = rows.setdefault(number, [tables[0].caption or "表格 / Table"])
        for table in tables:
            lines.extend(row_text(table, row) for row in table.rows)
    return rows


def _bookmarks(data: bytes | Path) -> list[str]:
    """The titles of a PDF's bookmarks (its outline), if it has any."""
    try:
        import pypdfium2

        with PDFIUM_LOCK:
            document = pypdfium2.PdfDocument(_pdf_input(data))
            try:
                titles = (bookmark.get_title() for bookmark in document.get_toc(max_depth=8))  # pypdfium2 5
                return [title.strip() for title in titles if title and title.strip()]
            finally:
                document.close()
    except Exception:  # a PDF pypdfium2 cannot open was read by pypdf: it simply has no bookmarks here
        return []


def _edge_lines(text: str, depth: int = 6) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[:depth] + lines[-depth:]


def _line_shape(line: str) -> str:
    """A line as compared across pages: digits count as one symbol only in short lines such as page ids
    ("1-14", "第3页共9页"), so that numbered body text is never taken for a running header."""
    compact = re.sub(r"\s+", "", line)
    if len(re.sub(r"\d", "", compact)) <= 6:
        return re.sub(r"\d+", "#", compact)
    return _PAGE_NUMBER_IN_LINE.sub(r"\1#", compact)


def _running_lines(pages: list[str]) -> set[str]:
    """Lines near the top or bottom of at least half the pages (3 or more): headers, footers, page ids."""
    if len(pages) < 3:
        return set()
    counts: Counter[str] = Counter()
    for text in pages:
        counts.update({_line_shape(line) for line in _edge_lines(text)})
    threshold = max(3, len(pages) // 2)
    return {shape for shape, count in counts.items() if count >= threshold and shape}


def _is_running_line(line: str, repeated: set[str]) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    return _line_shape(stripped) in repeated or bool(_PAGE_NUMBER_LINE.match(stripped))


def clean_text(text: str, markdown: bool = False) -> str:
    """Undo what PDF extraction does to prose: CJK spacing, hard line breaks, stray whitespace."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = text.replace("\u00a0", " ").replace("\ufeff", "")
    if not markdown:
        # a clause heading goes on a line of its own before CJK spacing is removed, or it would run into its body
        text = "\n".join(INLINE_HEADING.sub(r"\1\n", line) for line in text.split("\n"))
    text = _SPACE_BETWEEN_CJK.sub("", text)
    text = _SPACE_CJK_DIGIT.sub("", text)
    if markdown:
        return re.sub(r"\n{3,}", "\n\n", text).strip()
    return split_inline_headings(_join_broken_lines(text))


def _join_broken_lines(text: str) -> str:
    out: list[str] = []
    for raw in text.split("\n"):
        line = re.sub(r"[ \t]+", " ", raw).strip()
        if not line:
            if out and out[-1] != "":
                out.append("")
            continue
        if (
            out
            and out[-1]
            and not _SENTENCE_END.search(out[-1])
            and not LIST_OR_HEADING_START.match(line)
            and not HEADING_LINE.match(out[-1])
        ):
            previous = out[-1]
            if previous.endswith("-") and line[:1].islower():
                out[-1] = previous[:-1] + line
            elif re.search(rf"[{CJK_CHARS}{CJK_PUNCT}]$", previous) or re.match(rf"[{CJK_CHARS}{CJK_PUNCT}]", line):
                out[-1] = previous + line
            else:
                out[-1] = previous + " " + line
        else:
            out.append(line)
    return "\n".join(out).strip()


def _pdf_text(
    shown: str, data: bytes | Path, backend: str, ocr: OcrFactory | None
) -> tuple[list[str], frozenset[int]]:
    """The text of each page, and the numbers of the pages whose text OCR recognised: with an OCR engine, the
    pages that have no text layer but an image (a scan) are recognised; a PDF with no text at all is
    recognised whole."""
    try:
        raw_pages = list(_pdf_pages(shown, data, backend))
    except LoadError as exc:
        if ocr is None or not exc.problem.startswith("no text layer"):
            raise
        raw_pages = []
    if ocr is None:
        return raw_pages, frozenset()
    from rag.ocr import recognise_scanned_pages

    return recognise_scanned_pages(_pdf_input(data), shown, raw_pages, ocr)


def _pdf_pages(shown: str, data: bytes | Path, backend: str) -> Iterator[str]:
    """pypdfium2 first (an order of magnitude faster, and no line break after every text run); pypdf reads
    what PDFium cannot open. A file that needs a password or has no text layer fails in both."""
    if backend == "pypdf":
        yield from _pypdf_pages(shown, data)
        return
    try:
        with PDFIUM_LOCK:
            pages = list(_pdfium_pages(shown, data))
    except LoadError as exc:
        if not exc.problem.startswith("not a readable PDF"):
            raise
        pages = list(_pypdf_pages(shown, data))
    yield from pages


def _pypdf_pages(shown: str, data: bytes | Path) -> Iterator[str]:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data) if isinstance(data, bytes) else str(data), strict=False)
        if reader.is_encrypted and not _opens_without_password(reader):
            raise LoadError(shown, "encrypted PDF that needs a password", "save an unencrypted copy and ingest that")
        page_count = len(reader.pages)
    except LoadError:
        raise
    except FileNotDecryptedError as exc:
        raise LoadError(shown, "encrypted PDF that needs a password", "save an unencrypted copy") from exc
    except Exception as exc:  # pypdf raises many types on damaged files (LimitReachedError on a page tree
        # that fans out to millions of pages)
        raise LoadError(shown, f"not a readable PDF ({brief(exc)})", "re-export or repair the PDF") from exc
    if page_count == 0:
        raise LoadError(shown, "the PDF has no pages", "re-export the PDF")
    any_text = False
    for index in range(page_count):
        try:
            text = reader.pages[index].extract_text() or ""
        except Exception as exc:  # pypdf raises many types on damaged page streams
            raise LoadError(shown, f"page {index + 1} could not be read ({brief(exc)})", "repair the PDF") from exc
        any_text = any_text or bool(text.strip())
        yield text
    if not any_text:
        raise LoadError(shown, "no text layer: scanned? OCR it first", "run OCR (e.g. ocrmypdf) and ingest the result")


def _opens_without_password(reader: Any) -> bool:
    try:
        return bool(reader.decrypt(""))
    except Exception:  # an encryption pypdf cannot undo here (a missing crypto library) needs a password too
        return False


def _pdfium_pages(shown: str, data: bytes | Path) -> Iterator[str]:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(_pdf_input(data))
    except pdfium.PdfiumError as exc:
        # Not told apart here: PDFium's error code can be the previous file's (after an encrypted PDF, a broken
        # one also read "Incorrect password"). pypdf, which reads what PDFium cannot, says which it is.
        raise LoadError(shown, f"not a readable PDF ({exc})", "re-export or repair the PDF") from exc
    try:
        if len(document) == 0:
            raise LoadError(shown, "the PDF has no pages", "re-export the PDF")
        any_text = False
        for index in range(len(document)):
            try:
                page = document[index]
            except pdfium.PdfiumError as exc:  # a page tree that contains itself, a page object that is not one
                raise LoadError(
                    shown,
                    f"page {index + 1} could not be loaded, a damaged page tree ({exc})",
                    "repair or re-export the PDF",
                ) from exc
            textpage = page.get_textpage()
            try:
                # bounded: full UTF-16 (rare CJK outside the BMP) and fewer breaks inside table cells than
                # get_text_range(); PDFium marks a hyphen at a line break as \x02 (scripts/bench_pdf.py)
                text = textpage.get_text_bounded().replace("\x02", "-")
            finally:
                textpage.close()
                page.close()
            any_text = any_text or bool(text.strip())
            yield text
        if not any_text:
            raise LoadError(
                shown, "no text layer: scanned? OCR it first", "run OCR (e.g. ocrmypdf) and ingest the result"
            )
    finally:
        document.close()


def _pdf_input(data: bytes | Path) -> bytes | str:
    """What PDFium opens: the bytes read, or the path of a PDF too large to hold (read lazily from disk)."""
    return data if isinstance(data, bytes) else str(data)
