"""Text files to text: the encoding judged from the first bytes, the rest streamed in bounded segments, and
the reasons a file that holds no readable text is refused.

Every problem is a LoadError naming the file and the fix.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from rag.errors import LoadError
from rag.records import Page

# The encoding is judged from this many first bytes; a file they show is not text is never read further
# (a 4 GB file of zeros is refused after 64 KiB, never hashed in full).
HEAD_BYTES = 1 << 16
# Large text files are cut into segments of about this many characters, at a line break, so that memory
# stays bounded however big the file.
TEXT_SEGMENT_CHARS = 200_000

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_NOT_TEXT_FIX = "check the file type; only PDF, TXT and Markdown are read"


def text_encoding(shown: str, head: bytes) -> str:
    """The encoding of a text file whose first bytes are `head`, or a LoadError saying why it is not text."""
    if not head.strip():
        raise LoadError(shown, "the file is empty", "remove it or add text")
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            if not head[len(bom) :].decode(encoding.replace("-sig", ""), "replace").strip():
                raise LoadError(shown, "the file holds a byte-order mark (BOM) and no text", "remove it or add text")
            return encoding
    if b"\x00" in head:
        utf16 = _utf16_without_bom(head)
        if utf16 is None:
            raise LoadError(shown, "binary data, not text", _NOT_TEXT_FIX)
        return utf16
    for encoding in ("utf-8", "gb18030"):
        try:
            head.decode(encoding)
            return encoding
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # a multi-byte character cut by the sample's end, not bad text
                return encoding
    raise LoadError(shown, "not UTF-8, UTF-16 or GB18030 text", "re-save the file as UTF-8")


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 that lacks its BOM (Windows tools write it): Latin text then has a zero in every other byte, on
    the odd side for little-endian. Accepted when it decodes to printable text."""
    sample = head[: len(head) - len(head) % 2]
    if len(head) == HEAD_BYTES:
        sample = sample[:-2]  # a surrogate pair may be cut at the end of the sample
    odd_zeros, even_zeros = sample[1::2].count(0), sample[0::2].count(0)
    if max(odd_zeros, even_zeros) < len(sample) // 8:
        return None
    encoding = "utf-16-le" if odd_zeros > even_zeros else "utf-16-be"
    try:
        text = sample.decode(encoding)
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in text)
    if "\x00" in text or printable < 0.95 * len(text) or not any(ch.isalnum() for ch in text):
        return None
    return encoding


def text_segments(shown: str, stream: io.RawIOBase | BinaryIO) -> Iterator[str]:
    """The text of the binary `stream` in segments of about TEXT_SEGMENT_CHARS characters, cut at line
    breaks. The encoding is judged from the first HEAD_BYTES bytes; the stream is read once, front to back."""
    buffered = io.BufferedReader(stream, HEAD_BYTES)  # type: ignore[type-var]
    head = buffered.peek(HEAD_BYTES)[:HEAD_BYTES]
    encoding = text_encoding(shown, head)
    reader = io.TextIOWrapper(buffered, encoding=encoding, errors="strict", newline="")
    try:
        buffer = ""
        while True:
            block = reader.read(TEXT_SEGMENT_CHARS)
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
            shown, f"not valid {encoding} text (byte {exc.start} of a block)", "re-save the file as UTF-8"
        ) from exc
    finally:
        reader.detach()  # the caller owns (and closes) the stream


class HashingReader(io.RawIOBase):
    """A binary stream that hashes every byte read through it: the hash of exactly the bytes parsed."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self.sha256.update(memoryview(buffer)[:count])
        return int(count or 0)


def readable_pages(shown: str, pages: Iterable[Page]) -> Iterator[Page]:
    """Pass `pages` through; if none holds a letter or a digit, refuse the file and say what it held
    (private-use glyphs of a font without a Unicode map, control or zero-width characters)."""
    unreadable: Counter[str] = Counter()
    readable = False
    for page in pages:
        if not readable:
            if any(ch.isalnum() for ch in page.text):
                readable = True
            else:
                unreadable.update(_kind(ch) for ch in page.text if not ch.isspace())
        yield page
    if not readable and unreadable:
        held = " and ".join(kind for kind, _ in unreadable.most_common(2))
        raise LoadError(
            shown,
            f"no readable text: it holds only {held} characters, no letter or digit",
            "check the file's encoding, or the PDF's fonts (a font without a Unicode map needs OCR)",
        )


def _kind(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Co":
        return "private-use"
    if category == "Cc":
        return "control"
    if category == "Cf":
        return "zero-width or formatting"
    return "symbol or punctuation"
