"""A document's outline, as its authors laid it out: headings on lines of their own, wrapped headings joined
back together, front matter recognised, and the heading path in force at every point of the text.

The loaders call the page-level passes (`split_inline_headings`, `repair_wrapped_headings`,
`is_front_matter`); the chunker walks the text with `OutlineWalker`, which keeps the heading path across
pages and names the clause of every span.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.records import PATH_SEPARATOR
from rag.text import LEVEL_CHAPTER, LEVEL_CLAUSE, LEVEL_ITEM, HeadingMatch, classify_heading, has_cjk

# "3) 30-day waiting period (Code - Excl03)" inside a line: a heading that PDF extraction ran into its
# neighbours. It goes on a line of its own, and so does the body after it.
_INLINE_EXCLUSION = re.compile(r"(?<=\S)\s+(?=\d{1,2}\)\s+[^()\n]{2,80}?\(\s*Code\s*[-–:]?\s*Excl\s*\d+\s*\))")
_AFTER_EXCLUSION = re.compile(r"(\(\s*Code\s*[-–:]?\s*Excl\s*\d+\s*\))[ \t]+(?=\S)", re.IGNORECASE)
_INLINE_SECTION = re.compile(r"(?<=\S)\s+(?=SECTION\s+[A-Z]\)\s+[A-Z]{3,})")
# Front matter: a table of contents (dotted leaders) or a reading guide.
_LEADERS = re.compile(r"(?:\.{5,}|…{3,}|·{5,}|\. \. \. \.)")
_FRONT_TITLES = re.compile(
    r"^\s*(?:条款目录|目\s*录|阅读指引|Contents|Table of Contents|CONTENTS|TABLE OF CONTENTS|Index|INDEX)\s*$",
    re.MULTILINE,
)
_WRAP_LIMIT = 20  # characters a wrapped heading's remainder may have on the next line
# A Chinese definition starts its body with 指 ("means"): "8.6无合法有效驾 / 驶证驾驶指下列情形之一".
_DEFINITION_BODY = re.compile(r"^([^\s，。；：、（）]{1,8}?)(?=指)")


def split_inline_headings(text: str) -> str:
    """Put headings that PDF extraction ran into other text on lines of their own (English exclusion codes
    and SECTION headings; Chinese numbered clauses are split by the loader's own pattern)."""
    text = _INLINE_SECTION.sub("\n", text)
    text = _INLINE_EXCLUSION.sub("\n", text)
    return _AFTER_EXCLUSION.sub(r"\1\n", text)


def is_front_matter(text: str) -> bool:
    """A table of contents or a reading guide: it points to the clauses but answers nothing. Recognised by its
    dotted leaders, its title on a line of its own, or lines that are nearly all bare numbered headings."""
    if len(_LEADERS.findall(text)) >= 3 or _FRONT_TITLES.search(text):
        return True
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 8:
        return False
    bare = sum(
        1 for line in lines if (match := classify_heading(line)) and match.number and match.title_end == len(line)
    )
    return bare >= 0.7 * len(lines)


def known_titles(contents: Iterable[str], bookmarks: Iterable[str] = ()) -> dict[str, str]:
    """The full title of each numbered heading, by number, from the document's contents pages (front matter:
    they list the headings whole) and from the PDF's bookmarks."""
    titles: dict[str, str] = {}
    lines = [line.strip() for text in contents for line in text.splitlines()]
    for line in [*lines, *(b.strip() for b in bookmarks)]:
        match = classify_heading(line)
        if match is None or not match.titled or not match.number or match.title_end != len(line):
            continue
        if len(line) > len(titles.get(match.number, "")):
            titles[match.number] = line
    return titles


def repair_wrapped_headings(pages: Sequence[str], titles: dict[str, str]) -> list[str]:
    """Join headings that a narrow column wrapped onto the next line ("1.2合同成立及生" + "效您向我们…"): the
    missing end is moved back from the body's first line, so that no heading character ends up in the body."""
    repaired = []
    for text in pages:
        lines = [part for line in text.split("\n") for part in _split_known(line, titles)]
        for i in range(len(lines) - 1):
            lines[i], lines[i + 1] = _rejoin(lines[i], lines[i + 1], titles)
        repaired.append("\n".join(lines))
    return repaired


def _split_known(line: str, titles: dict[str, str]) -> list[str]:
    """A line that starts with a known heading and runs on into its body ("1.1 Free Look Period The…"), cut in two."""
    match = classify_heading(line)
    full = titles.get(match.number or "", "") if match is not None else ""
    stripped = line.strip()
    if full and stripped.startswith(full) and len(stripped) > len(full):
        return [full, stripped[len(full) :].lstrip()]
    return [line]


def _rejoin(line: str, following: str, titles: dict[str, str]) -> tuple[str, str]:
    match = classify_heading(line)
    if match is None or not match.number or not match.titled or match.title_end != len(line.strip()):
        return line, following
    full = titles.get(match.number, "")
    head, body = line.strip(), following.lstrip()
    compact_full, compact_head = full.replace(" ", ""), head.replace(" ", "")
    if len(compact_full) > len(compact_head) and compact_full.startswith(compact_head):
        missing = compact_full[len(compact_head) :]
        if len(missing) <= _WRAP_LIMIT and body.startswith(missing):
            return head + missing, body[len(missing) :]
        return line, following
    if full:  # the contents list has it, and it is whole
        return line, following
    title = head[len(match.number) :]
    if has_cjk(title) and len(title) >= 5 and (definition := _DEFINITION_BODY.match(body)):
        return head + definition.group(1), body[definition.end() :]
    return line, following


@dataclass(frozen=True)
class OutlinePoint:
    """Where a heading opens, and the outline in force from there on."""

    offset: int
    level: int  # as opened: a list entry that looks like a chapter heading counts as an item
    label: str  # the clause a citation names: "2.4责任免除", "2.4责任免除 › 3", "Excl18 Maternity"
    path: tuple[str, ...]  # title › chapter › clause (the title first)
    heading: HeadingMatch


class OutlineWalker:
    """Follows the headings of one document in reading order, across pages and groups of pages."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._stack: list[tuple[int, HeadingMatch]] = []  # (level as opened, heading)

    def path(self) -> tuple[str, ...]:
        return (self.title, *(match.label for _, match in self._stack))

    def label(self) -> str | None:
        """The clause in force: the innermost heading; a numbered item is named with its clause."""
        if not self._stack:
            return None
        level, match = self._stack[-1]
        if level < LEVEL_ITEM or len(self._stack) == 1:
            return match.label
        return f"{self._stack[-2][1].label}{PATH_SEPARATOR}{match.label}"

    def walk(self, text: str, base: int = 0) -> list[OutlinePoint]:
        """The headings of `text` (offsets from `base`), each with the outline in force after it."""
        points = []
        offset = 0
        for line in text.split("\n"):
            match = classify_heading(line)
            if match is not None and not self._stack and match.label == self.title:
                match = None  # the document's own title, already first in every path
            if match is not None:
                self._open(match)
                start = base + offset + len(line) - len(line.lstrip())
                points.append(OutlinePoint(start, self._stack[-1][0], self.label() or "", self.path(), match))
            offset += len(line) + 1
        return points

    def _open(self, match: HeadingMatch) -> None:
        level = LEVEL_ITEM if not match.titled or self._is_list_entry(match) else match.level
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, match))

    def _is_list_entry(self, match: HeadingMatch) -> bool:
        """ "17. Surgery on ears" under an exclusion "2) Specified disease (Code-Excl02)" is an entry of that
        clause's list, not a new chapter: a plain "N." inside a clause that is not itself numbered "N.M"."""
        if match.level != LEVEL_CHAPTER or not (match.number or "").isdigit():
            return False
        open_clauses = [m for lvl, m in self._stack if LEVEL_CLAUSE <= lvl < LEVEL_ITEM]
        return bool(open_clauses) and "." not in (open_clauses[-1].number or ".")
