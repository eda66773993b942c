"""Files to pages: discovery, decoding, PDF extraction and clean-up of PDF artefacts; Word, HTML and
spreadsheets are read by their own modules (rag/loaders_docx.py, rag/loaders_html.py, rag/loaders_sheets.py),
and scanned PDF pages are recognised by rag/ocr.py.

Every problem with one file is raised as a LoadError naming the file and the fix; the caller records it
and goes on with the next file.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import LoadError
from rag.outline import is_front_matter, known_titles, repair_wrapped_headings, split_inline_headings
from rag.records import ChunkKind, Page

if TYPE_CHECKING:
    from rag.ocr import OcrEngine
    from rag.tables import Table
from rag.text import CJK_CHARS, CJK_PUNCT, HEADING_LINE, INLINE_HEADING, LIST_OR_HEADING_START

SUPPORTED_SUFFIXES = {".pdf", ".txt", ".md", ".markdown", ".docx", ".html", ".htm", ".xlsx", ".csv"}
# What to convert an unsupported file to, as the error says it.
SUPPORTED_NAMES = "PDF, Word (.docx), HTML, Excel (.xlsx), CSV, TXT or Markdown"
# Large text files are cut into segments of about this many characters, at a line break, so that memory
# stays bounded however big the file.
TEXT_SEGMENT_CHARS = 200_000

_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{CJK_CHARS}{CJK_PUNCT}])[ \t\u3000]+(?=[{CJK_CHARS}{CJK_PUNCT}])")
_SPACE_CJK_DIGIT = re.compile(rf"(?<=[{CJK_CHARS}])[ \t]+(?=[0-9])|(?<=[0-9])[ \t]+(?=[{CJK_CHARS}])")
_SENTENCE_END = re.compile(rf"[。！？；：.!?;:…{CJK_PUNCT[-6:]}]$")
_PAGE_NUMBER_LINE = re.compile(
    r"^\s*(第\s*\d+\s*页(\s*[,，/]?\s*共\s*\d+\s*页)?|[-–—]?\s*\d+\s*[-–—]?|page\s+\d+(\s+of\s+\d+)?|\d+\s*/\s*\d+)\s*$",
    re.IGNORECASE,
)


# "…/Page 12", "第3页": a page number inside a longer running header
_PAGE_NUMBER_IN_LINE = re.compile(r"((?i:page)|第)\d+")


@dataclass(frozen=True)
class SourceFile:
    """A file found under the paths the user gave; `source` is how it is shown and stored."""

    path: Path
    source: str


def discover(paths: Iterable[str | Path]) -> tuple[list[SourceFile], list[LoadError]]:
    """Walk folders recursively; skip hidden entries; report unsupported or missing paths as errors."""
    found: dict[str, SourceFile] = {}
    problems: list[LoadError] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            problems.append(LoadError(str(root), "no such file or folder", "check the path"))
            continue
        if root.is_file():
            _add_file(root, found, problems, explicit=True)
            continue
        seen_dirs: set[tuple[int, int]] = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=None):
            info = os.stat(dirpath)
            key = (info.st_dev, info.st_ino)
            if key in seen_dirs:  # a symlink loop, or two links to one folder
                dirnames[:] = []
                continue
            seen_dirs.add(key)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith("."):
                    _add_file(Path(dirpath) / name, found, problems, explicit=False)
    return sorted(found.values(), key=lambda f: f.source), problems


def _add_file(path: Path, found: dict[str, SourceFile], problems: list[LoadError], explicit: bool) -> None:
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        problems.append(
            LoadError(
                str(path), f"unsupported file type {path.suffix or '(none)'!r}", f"convert it to {SUPPORTED_NAMES}"
            )
        )
        return
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # a dangling link or a symlink loop
        problems.append(
            LoadError(str(path), f"cannot be opened ({exc.strerror or exc})", "fix or remove the link or file")
        )
        return
    if not stat.S_ISREG(mode):  # reading a named pipe or a device would block or never end
        problems.append(
            LoadError(str(path), "not a regular file (a pipe, socket or device)", "copy its content into a file")
        )
        return
    source = os.path.normpath(str(path))
    found.setdefault(source, SourceFile(path=path, source=source))


def unreadable(path: Path, exc: OSError) -> LoadError:
    """What an OS error while reading a file means to the user, and what to do about it."""
    if isinstance(exc, FileNotFoundError):
        return LoadError(str(path), "the file disappeared while it was being read", "run ingest again")
    if isinstance(exc, PermissionError):
        return LoadError(str(path), "permission denied", "make the file readable (chmod +r) or skip it")
    if isinstance(exc, IsADirectoryError):
        return LoadError(str(path), "is a folder, not a file", "pass the folder itself")
    # a symlink loop, an I/O error, a stale network mount
    return LoadError(
        str(path), f"cannot be read ({exc.strerror or exc})", "check the file (or the link to it) and the disk"
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise unreadable(path, exc) from exc
    return digest.hexdigest()


# Makes the OCR engine when a scanned page first needs it (None: OCR is off).
OcrFactory = Callable[[], "OcrEngine | None"]


def load_pages(file: SourceFile, pdf_backend: str = "pypdfium2", ocr: OcrFactory | None = None) -> Iterator[Page]:
    """Yield the cleaned pages of one file, lazily, so a large text file never sits in memory whole.

    A text file has no pages: all of its segments are page 1. Word and HTML pages are paragraphs, a
    spreadsheet's are rows (rag/blocks.py, rag/loaders_sheets.py). A PDF page with no text layer but an
    image is recognised by the engine `ocr` makes, when given.
    """
    suffix = file.path.suffix.lower()
    if suffix == ".pdf":
        raw_pages, recognised = _pdf_text(file, pdf_backend, ocr)
        rows = _table_rows(file.path, raw_pages) if pdf_backend != "pypdf" else {}
        yield from clean_pdf_pages(file.source, raw_pages, _bookmarks(file.path), rows, recognised)
        return
    if suffix == ".docx":
        from rag.loaders_docx import docx_pages

        yield from docx_pages(file.path, file.source)
        return
    if suffix in {".html", ".htm"}:
        from rag.loaders_html import html_pages

        yield from html_pages(file.path, file.source)
        return
    if suffix in {".xlsx", ".csv"}:
        from rag.loaders_sheets import csv_pages, xlsx_pages

        yield from (xlsx_pages if suffix == ".xlsx" else csv_pages)(file.path, file.source)
        return
    markdown = suffix in {".md", ".markdown"}
    for segment in _text_segments(file.path):
        text = clean_text(segment, markdown=markdown)
        if text:
            yield Page(source=file.source, page=1, text=text)


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
    contents = [text for text in cleaned if is_front_matter(text)]
    cleaned = repair_wrapped_headings(cleaned, known_titles(contents, bookmarks))
    for number, text in enumerate(cleaned, start=1):
        kind: ChunkKind = "front" if is_front_matter(text) else "clause"
        yield Page(source=source, page=number, text=text, kind=kind, ocr=number in recognised)
        rows = (tables or {}).get(number)
        if rows:
            yield Page(source=source, page=number, text="\n".join(rows), kind="table")


def _table_rows(path: Path, raw_pages: list[str]) -> dict[int, list[str]]:
    """The ruled tables of a PDF as lines of rows, each with its header ("列: 值; 列: 值"), by page; the caption
    (or "Table") first. The pages that hold them are read again without the tables' regions, in `raw_pages`,
    so that no row is indexed twice."""
    from rag.tables import find_tables, row_text, text_outside

    by_page: dict[int, list[Table]] = {}
    for table in find_tables(path):
        by_page.setdefault(table.page, []).append(table)
    rows: dict[int, list[str]] = {}
    for number, tables in by_page.items():
        outside = text_outside(path, number, tables)
        if outside.strip() or not raw_pages[number - 1].strip():
            raw_pages[number - 1] = outside
        lines = rows.setdefault(number, [tables[0].caption or "表格 / Table"])
        for table in tables:
            lines.extend(row_text(table, row) for row in table.rows)
    return rows


def _bookmarks(path: Path) -> list[str]:
    """The titles of a PDF's bookmarks (its outline), if it has any."""
    try:
        import pypdfium2

        document = pypdfium2.PdfDocument(str(path))
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


def _pdf_text(file: SourceFile, backend: str, ocr: OcrFactory | None) -> tuple[list[str], frozenset[int]]:
    """The text of each page, and the numbers of the pages whose text OCR recognised: with an OCR engine, the
    pages that have no text layer but an image (a scan) are recognised; a PDF with no text at all is
    recognised whole."""
    try:
        raw_pages = list(_pdf_pages(file.path, backend))
    except LoadError as exc:
        if ocr is None or not exc.problem.startswith("no text layer"):
            raise
        raw_pages = []
    if ocr is None:
        return raw_pages, frozenset()
    from rag.ocr import recognise_scanned_pages

    return recognise_scanned_pages(file.path, file.source, raw_pages, ocr)


def _pdf_pages(path: Path, backend: str) -> Iterator[str]:
    """pypdfium2 first (an order of magnitude faster, and no line break after every text run); pypdf reads
    what PDFium cannot open. A file that needs a password or has no text layer fails in both."""
    if backend == "pypdf":
        yield from _pypdf_pages(path)
        return
    try:
        pages = list(_pdfium_pages(path))
    except LoadError as exc:
        if not exc.problem.startswith("not a readable PDF"):
            raise
        pages = list(_pypdf_pages(path))
    yield from pages


def _pypdf_pages(path: Path) -> Iterator[str]:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(
                str(path), "encrypted PDF that needs a password", "save an unencrypted copy and ingest that"
            )
        page_count = len(reader.pages)
    except LoadError:
        raise
    except FileNotDecryptedError as exc:
        raise LoadError(str(path), "encrypted PDF that needs a password", "save an unencrypted copy") from exc
    except (FileNotFoundError, PermissionError) as exc:
        raise unreadable(path, exc) from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise LoadError(str(path), f"not a readable PDF ({exc})", "re-export or repair the PDF") from exc
    if page_count == 0:
        raise LoadError(str(path), "the PDF has no pages", "re-export the PDF")
    any_text = False
    for index in range(page_count):
        try:
            text = reader.pages[index].extract_text() or ""
        except Exception as exc:  # pypdf raises many types on damaged page streams
            raise LoadError(str(path), f"page {index + 1} could not be read ({exc})", "repair the PDF") from exc
        any_text = any_text or bool(text.strip())
        yield text
    if not any_text:
        raise LoadError(
            str(path), "no text layer: scanned? OCR it first", "run OCR (e.g. ocrmypdf) and ingest the result"
        )


def _pdfium_pages(path: Path) -> Iterator[str]:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        message = str(exc).lower()
        if "password" in message:
            raise LoadError(str(path), "encrypted PDF that needs a password", "save an unencrypted copy") from exc
        raise LoadError(str(path), f"not a readable PDF ({exc})", "re-export or repair the PDF") from exc
    except (FileNotFoundError, PermissionError) as exc:
        raise unreadable(path, exc) from exc
    try:
        if len(document) == 0:
            raise LoadError(str(path), "the PDF has no pages", "re-export the PDF")
        any_text = False
        for index in range(len(document)):
            page = document[index]
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
                str(path), "no text layer: scanned? OCR it first", "run OCR (e.g. ocrmypdf) and ingest the result"
            )
    finally:
        document.close()


def _decode(path: Path, head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        raise LoadError(str(path), "binary data, not text", f"check the file type; {SUPPORTED_NAMES} are read")
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for encoding in ("utf-8", "gb18030"):
        try:
            head.decode(encoding)
            return encoding
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # a multi-byte character cut by the sample's end, not bad text
                return encoding
    raise LoadError(str(path), "not UTF-8, UTF-16 or GB18030 text", "re-save the file as UTF-8")


def _text_segments(path: Path) -> Iterator[str]:
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except (FileNotFoundError, PermissionError) as exc:
        raise unreadable(path, exc) from exc
    if not head.strip():
        raise LoadError(str(path), "the file is empty", "remove it or add text")
    encoding = _decode(path, head)
    try:
        with open(path, encoding=encoding, errors="strict", newline="") as handle:
            buffer = ""
            while True:
                block = handle.read(TEXT_SEGMENT_CHARS)
                if not block:
                    break
                buffer += block
                cut = buffer.rfind("\n", 0, len(buffer))
                if cut <= 0 or len(buffer) < TEXT_SEGMENT_CHARS:
                    if len(buffer) < 2 * TEXT_SEGMENT_CHARS:
                        continue
                    cut = len(buffer)  # one enormous line: cut it anyway
                yield buffer[:cut]
                buffer = buffer[cut:]
            if buffer.strip():
                yield buffer
    except UnicodeDecodeError as exc:
        raise LoadError(
            str(path), f"not valid {encoding} text (byte {exc.start} of a block)", "re-save the file as UTF-8"
        ) from exc
    except FileNotFoundError as exc:
        raise unreadable(path, exc) from exc
