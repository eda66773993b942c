"""Properties of rag.chunking.split_pages, on generated Chinese, English and mixed clause text."""

from __future__ import annotations

import itertools
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rag.chunking import chunk_id, split_pages
from rag.loaders import clean_text
from rag.records import Chunk, Page
from rag.tokens import count_tokens

WORDS = st.sampled_from(
    [
        "保险", "被保险人", "犹豫期", "宽限期", "六十天", "。", "，", "；", "！", "？", "第三条 保险责任", "1.2",
        "grace", "period", "premium", "the", "is", "30", "days", ".", ",", "!", "?", "Section 4", "# Heading",
        "\n", "\n\n", " ", "x" * 40, "条款" * 30, "10,000", "%", "(a)",
    ]
)  # fmt: skip
PAGE_TEXT = st.lists(WORDS, min_size=1, max_size=300).map(lambda parts: clean_text(" ".join(parts)))
PAGES = st.lists(PAGE_TEXT, min_size=1, max_size=4)
SIZES = st.tuples(st.integers(16, 80), st.integers(0, 30))
SHA = "ab" * 32
PROFILE = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pages(texts: list[str]) -> list[Page]:
    return [Page(source="doc.txt", page=n, text=text) for n, text in enumerate(texts, start=1)]


def _dense(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _chunks(texts: list[str], size: int, overlap: int) -> list[Chunk]:
    return list(split_pages(_pages(texts), SHA, size, overlap))


@PROFILE
@given(PAGES, SIZES)
@example(["。 grace 保险保险 . 被保险人"], (16, 0))
def test_every_character_is_covered_in_order(texts: list[str], sizes: tuple[int, int]) -> None:
    size, overlap = sizes
    document = "".join(_dense(text) for text in texts)
    # Repetitive text makes a chunk's place ambiguous: keep every placement still possible, as
    # {start of the last chunk: end of the text covered so far}, and require one to cover everything.
    states = {0: 0}
    for chunk in _chunks(texts, size, overlap):
        piece = _dense(chunk.text)
        assert piece, "an empty chunk"
        following: dict[int, int] = {}
        for previous_start, covered in states.items():
            start = document.find(piece, previous_start)
            while 0 <= start <= covered:  # in order, and no gap after the text covered so far
                following[start] = max(following.get(start, 0), covered, start + len(piece))
                start = document.find(piece, start + 1)
        assert following, f"chunk {chunk.index} is out of order or leaves a gap: {chunk.text!r}"
        states = following
    assert max(states.values()) == len(document)


@PROFILE
@given(PAGES, SIZES)
@example(["。 grace 保险保险 . 被保险人"], (16, 0))  # merged by the splitter to 17 tokens from parts of 15
def test_no_chunk_exceeds_the_token_limit(texts: list[str], sizes: tuple[int, int]) -> None:
    size, overlap = sizes
    for chunk in _chunks(texts, size, overlap):
        assert count_tokens(chunk.text) <= size, (count_tokens(chunk.text), chunk.text)


# Text in which no word repeats, so that every chunk's place in the document is unambiguous.
UNIQUE_TEXT = st.lists(
    st.tuples(st.integers(0, 10**6), st.sampled_from([" ", "。", ". ", "\n", "，", "\n\n"])),
    min_size=1,
    max_size=200,
    unique_by=lambda pair: pair[0],
).map(lambda pairs: clean_text("".join(f"w{n}条{sep}" for n, sep in pairs)))


@PROFILE
@given(st.lists(UNIQUE_TEXT, min_size=1, max_size=1), SIZES)
def test_overlap_stays_within_its_bound(texts: list[str], sizes: tuple[int, int]) -> None:
    size, overlap = sizes
    bound = min(overlap, size // 2)
    document = "".join(_dense(text) for text in texts)
    chunks = _chunks(texts, size, overlap)
    for before, after in itertools.pairwise(chunks):
        before_end = document.find(_dense(before.text)) + len(_dense(before.text))
        after_start = document.find(_dense(after.text))
        shared = before_end - after_start  # dense characters both chunks hold
        if shared <= 0:
            continue
        prefix = _dense_prefix(after.text, shared)
        assert count_tokens(prefix) <= bound + 1, (bound, prefix)


def _dense_prefix(text: str, dense_chars: int) -> str:
    """The shortest prefix of `text` holding `dense_chars` non-whitespace characters."""
    seen = 0
    for position, char in enumerate(text, start=1):
        seen += not char.isspace()
        if seen == dense_chars:
            return text[:position]
    return text


@PROFILE
@given(PAGES, SIZES)
def test_ids_are_stable_and_positional(texts: list[str], sizes: tuple[int, int]) -> None:
    size, overlap = sizes
    first = [chunk.id for chunk in _chunks(texts, size, overlap)]
    second = [chunk.id for chunk in _chunks(list(texts), size, overlap)]
    assert first == second
    assert first == [chunk_id(SHA, index) for index in range(len(first))]
    assert len(set(first)) == len(first)
