"""Pages to chunks: token-sized, cut at clause headings and Chinese or English sentence ends.

The cutting itself is LangChain's RecursiveCharacterTextSplitter with a tiktoken length function; this
module adds what it does not know: pages, clause labels and content-derived ids.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator
from functools import cache, lru_cache
from pathlib import PurePath
from typing import TYPE_CHECKING

from rag.outline import OutlinePoint, OutlineWalker
from rag.records import Chunk, ChunkKind, Page
from rag.text import CLAUSE_START, LEVEL_CHAPTER, LEVEL_ITEM, LEVEL_SUBCLAUSE, classify_heading

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

# Pages are split in groups of about this many characters, so a 50 MB text file never becomes one string
# in the splitter; a chunk never spans two groups.
GROUP_CHARS = 60_000
# A section of at most this many tokens is a heading with next to nothing under it: it joins the next one.
TINY_SECTION = 24
# Within this many tokens of the chunk size, a packed chunk is counted exactly rather than by its parts' sum.
PACKING_MARGIN = 16

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


def split_pages(pages: Iterable[Page], doc_sha256: str, chunk_size: int, chunk_overlap: int) -> Iterator[Chunk]:
    """Yield the chunks of one document in order, along its outline.

    The text is cut at its headings into sections; neighbouring sections share a chunk while they fit and
    belong to the same chapter, and a section longer than a chunk is split at paragraph and sentence ends
    (with overlap). Each chunk records its page(s), the heading path where it starts, the clause of every
    span inside it, and its kind: a FAQ question with its answer, front matter, table rows, or clause text."""
    walker: OutlineWalker | None = None
    index = 0
    for group, following in _with_next(_page_groups(pages)):
        text, page_starts, page_numbers, source = _join(group)
        if walker is None:
            walker = OutlineWalker(_title(source, text))
        kind, section = group[0].kind, group[0].section
        path, label = walker.path(), walker.label()
        if kind == "table":  # rows are not headings: the caption (the section, or the first line) joins the path
            caption = section or text.split("\n", 1)[0].strip()
            path, label = (*path, caption), caption
            points = []
        elif kind == "faq":
            points = _faq_points(text, page_starts, (*path, section) if section else path)
        else:
            points = walker.walk(text)
            if following is not None and following[0].section is not None:
                # headings right over a Word, HTML or sheet table name its rows: they are no chunk of their own
                cut = _before_trailing_headings(text, points)
                text, points = text[:cut], [p for p in points if p.offset < cut]
        for start, end in _pieces(text, points, kind, chunk_size, chunk_overlap):
            content = _content_start(text, points, start, end)
            active = [p for p in points if p.offset <= content]
            if active:
                path, label = active[-1].path, active[-1].label
            inside = tuple((p.offset - start, p.label) for p in points if start < p.offset < end)
            first = bisect.bisect_right(page_starts, start) - 1
            last = bisect.bisect_right(page_starts, max(start, end - 1)) - 1
            yield Chunk(
                id=chunk_id(doc_sha256, index),
                source=source,
                doc_sha256=doc_sha256,
                index=index,
                text=text[start:end],
                pages=tuple(page_numbers[first : last + 1]),
                clause=label,
                heading_path=path,
                clause_spans=inside,
                kind=_kind_of(kind, points, start, end),
                ocr=group[0].ocr,
            )
            index += 1


def _with_next(groups: Iterable[list[Page]]) -> Iterator[tuple[list[Page], list[Page] | None]]:
    """Each group with the one after it (None after the last)."""
    previous: list[Page] | None = None
    for group in groups:
        if previous is not None:
            yield previous, group
        previous = group
    if previous is not None:
        yield previous, None


def _before_trailing_headings(text: str, points: list[OutlinePoint]) -> int:
    """Where the headings that end `text` with nothing under them begin (len(text) if it ends with a body)."""
    cut = len(text)
    for point in reversed(points):
        heading = text[point.offset : cut].strip()
        if "\n" in heading or point.heading.title_end < len(heading):  # a body under it, or after it on its line
            break
        cut = point.offset
    return cut


def _faq_points(text: str, page_starts: list[int], path: tuple[str, ...]) -> list[OutlinePoint]:
    """FAQ pages (a spreadsheet's question/answer rows) hold one pair each, the question on the first line:
    each page opens a question under `path`. Lines of an answer that look like headings open nothing, and the
    pairs leave the document's outline as it was."""
    points = []
    for start in page_starts:
        first = text[start:].split("\n", 1)[0]
        match = classify_heading(first)
        if match is not None and match.question:
            points.append(OutlinePoint(start, LEVEL_SUBCLAUSE, match.label, (*path, match.label), match))
    return points


def _title(source: str, text: str) -> str:
    """A Markdown document's "#" heading when it opens the document, else the file's name without suffix."""
    first = text.lstrip().split("\n", 1)[0]
    match = classify_heading(first)
    if first.startswith("# ") and match is not None:
        return match.label
    return PurePath(source).stem


def _content_start(text: str, points: list[OutlinePoint], start: int, end: int) -> int:
    """Where a chunk's own content starts: after a lone line before its first heading (the document's title
    line that joined the first section), so that the chunk is labelled by that heading."""
    first = next((p for p in points if start <= p.offset < end), None)
    if (
        first is not None
        and len(text[start : first.offset].strip()) <= 40
        and text[start : first.offset].count("\n") <= 2
    ):
        return first.offset
    return start


def _kind_of(kind: ChunkKind, points: list[OutlinePoint], start: int, end: int) -> ChunkKind:
    """A chunk that is one FAQ question with its answer is "faq"; other kinds come from the page."""
    if kind != "clause":
        return kind
    opening = [p for p in points if start <= p.offset < end and p.level < LEVEL_ITEM]
    if len(opening) == 1 and opening[0].heading.question:
        return "faq"
    return "clause"


def _pieces(
    text: str, points: list[OutlinePoint], kind: ChunkKind, chunk_size: int, chunk_overlap: int
) -> Iterator[tuple[int, int]]:
    """(start, end) of each chunk of `text`: sections packed together while they fit, long ones split."""
    cuts = [p.offset for p in points if p.level < LEVEL_ITEM and p.offset > 0]
    bounds = [0, *cuts, len(text)]
    sections = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1) if text[bounds[i] : bounds[i + 1]].strip()]
    opens_chapter = {p.offset for p in points if p.level <= LEVEL_CHAPTER or p.heading.question}
    current: tuple[int, int] | None = None
    current_tokens = 0
    for start, end in sections:
        if kind == "table":  # rows: one section; packed by the splitter at row ends
            yield from _split(text, start, end, chunk_size, 0)
            continue
        if kind == "faq":  # one question with its answer: a chunk of its own, however short
            yield from _split(text, start, end, chunk_size, chunk_overlap)
            continue
        tokens = _length(text[start:end])
        if current is not None:
            # a heading with (almost) nothing under it yet goes with what follows, never alone
            tiny = current_tokens <= TINY_SECTION
            # the sum of the parts, counted exactly only near the limit (BPE is not additive, but close):
            # counting the growing chunk again at every section made packing quadratic in its sections
            merged = current_tokens + tokens
            if chunk_size - PACKING_MARGIN < merged <= chunk_size + PACKING_MARGIN:
                merged = _length(text[current[0] : end])
            opens_new = start in opens_chapter  # a new chapter or a FAQ question
            if tiny or (merged <= chunk_size and not opens_new):
                current, current_tokens = (current[0], end), merged
                continue
            yield from _split(text, *current, chunk_size, chunk_overlap)
        current, current_tokens = (start, end), tokens
    if current is not None:
        yield from _split(text, *current, chunk_size, chunk_overlap)


def _split(text: str, start: int, end: int, chunk_size: int, chunk_overlap: int) -> Iterator[tuple[int, int]]:
    """`text[start:end]` as it is when it fits, else cut by the splitter; offsets stay in `text`."""
    section = text[start:end]
    stripped = section.strip()
    if not stripped:
        return
    lead = section.find(stripped)
    if _length(stripped) <= chunk_size:
        yield start + lead, start + lead + len(stripped)
        return
    search_from = 0
    for piece in _within_limit(_splitter(chunk_size, chunk_overlap).split_text(section), chunk_size, chunk_overlap):
        found = section.find(piece, search_from)
        if found < 0:  # cannot happen with keep_separator="end"; be safe rather than wrong
            found = search_from
        search_from = found + 1
        yield start + found, start + found + len(piece)


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
        if group and (
            size + len(page.text) > GROUP_CHARS
            or (page.kind, page.section, page.ocr) != (group[0].kind, group[0].section, group[0].ocr)
        ):
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
