"""Pages to chunks: token-sized, cut at clause headings and Chinese or English sentence ends.

The cutting itself is LangChain's RecursiveCharacterTextSplitter with a tiktoken length function; this
module adds what it does not know: pages, clause labels and content-derived ids.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from rag.records import Chunk, Page
from rag.text import CLAUSE_START, HEADING_LINE, MARKDOWN_HEADING

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

# Pages are split in groups of about this many characters, so a 50 MB text file never becomes one string
# in the splitter; a chunk never spans two groups.
GROUP_CHARS = 60_000

SEPARATORS = [
    rf"\n(?={CLAUSE_START})",  # a new clause or heading
    r"\n\n",
    r"\n",
    r"(?<=[。！？；])",  # Chinese sentence ends
    r"(?<=[.!?;])\s+",  # English sentence ends
    r"(?<=[，、,：:])",
    r"\s+",
    "",
]


@cache
def _splitter(chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=chunk_size,
        chunk_overlap=min(chunk_overlap, chunk_size // 2),
        length_function=_length,
        strip_whitespace=True,
    )


@lru_cache(maxsize=1 << 16)
def _short_length(text: str) -> int:
    from rag.tokens import count_tokens

    return count_tokens(text)


def _length(text: str) -> int:
    """Token count, memoised for short strings: a long run with no separator (a 1 MB line) is split into
    single characters, each measured several times, and tiktoken's per-call cost would dominate."""
    if len(text) <= 8:
        return _short_length(text)
    from rag.tokens import count_tokens

    return count_tokens(text)


def chunk_id(doc_sha256: str, index: int) -> str:
    """Derived from the document's content and the chunk's position: re-ingesting the same bytes writes
    the same ids, so a re-run or a crash can never duplicate a chunk."""
    return hashlib.sha256(f"{doc_sha256}:{index}".encode()).hexdigest()[:32]


def clause_label(line: str) -> str | None:
    stripped = line.strip()
    heading = MARKDOWN_HEADING.match(stripped)
    if heading:
        return heading.group(1)
    if HEADING_LINE.match(stripped):
        return stripped
    return None


def split_pages(pages: Iterable[Page], doc_sha256: str, chunk_size: int, chunk_overlap: int) -> Iterator[Chunk]:
    """Yield the chunks of one document in order, each with its page(s) and the clause it sits under."""
    splitter = _splitter(chunk_size, chunk_overlap)
    index = 0
    clause: str | None = None
    for group in _page_groups(pages):
        text, page_starts, page_numbers, source = _join(group)
        headings = _headings(text)
        heading_offsets = [offset for offset, _ in headings]
        search_from = 0
        for piece in _within_limit(splitter.split_text(text), chunk_size, chunk_overlap):
            start = text.find(piece, search_from)
            if start < 0:  # cannot happen with keep_separator="end"; be safe rather than wrong
                start = search_from
            search_from = start + 1
            end = start + len(piece)
            first = bisect.bisect_right(page_starts, start) - 1
            last = bisect.bisect_right(page_starts, max(start, end - 1)) - 1
            pages_of_chunk = tuple(page_numbers[first : last + 1])
            active = bisect.bisect_right(heading_offsets, start) - 1
            if active >= 0:
                clause = headings[active][1]
            elif headings and heading_offsets[0] < end:
                clause = headings[0][1]
            yield Chunk(
                id=chunk_id(doc_sha256, index),
                source=source,
                doc_sha256=doc_sha256,
                index=index,
                text=piece,
                pages=pages_of_chunk,
                clause=clause,
            )
            index += 1


def _within_limit(pieces: Iterable[str], chunk_size: int, chunk_overlap: int) -> Iterator[str]:
    """The splitter adds up the token counts of the splits it merges, but BPE is not additive: a merged
    piece can count more tokens than its parts ('grace 保险保险 . 被保险人' is 17, its parts 15). The rare
    piece over the limit is split again with a smaller limit until every part fits."""
    for piece in pieces:
        if _length(piece) <= chunk_size:
            yield piece
            continue
        limit = chunk_size - 1
        while limit > 1:
            parts = _splitter(limit, chunk_overlap).split_text(piece)
            if all(_length(part) <= chunk_size for part in parts):
                break
            limit -= max(1, limit // 8)
        else:
            parts = [char for char in piece if not char.isspace()]  # a character is a few tokens at most
        yield from parts


def _page_groups(pages: Iterable[Page]) -> Iterator[list[Page]]:
    group: list[Page] = []
    size = 0
    for page in pages:
        if not page.text.strip():
            continue
        if group and size + len(page.text) > GROUP_CHARS:
            yield group
            group, size = [], 0
        group.append(page)
        size += len(page.text)
    if group:
        yield group


def _join(group: list[Page]) -> tuple[str, list[int], list[int], str]:
    parts: list[str] = []
    starts: list[int] = []
    offset = 0
    for page in group:
        starts.append(offset)
        parts.append(page.text)
        offset += len(page.text) + 2
    return "\n\n".join(parts), starts, [page.page for page in group], group[0].source


def _headings(text: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    offset = 0
    for line in text.split("\n"):
        label = clause_label(line)
        if label:
            found.append((offset, label))
        offset += len(line) + 1
    return found
