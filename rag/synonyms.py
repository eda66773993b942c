"""Customer words -> document words, and Traditional -> Simplified Chinese folding.

A customer asks 人失踪了怎么赔 where the clause says 下落不明 and 宣告死亡, or "Is childbirth covered?" where
the policy says maternity. `expand_query` returns the document words of every group of the curated map
`rag/resources/synonyms.tsv` whose customer term occurs in the question, for the lexical index to search
too. `to_simplified` folds Traditional Chinese (Taiwan, Hong Kong) to Simplified with OpenCC, so that a
question and a clause meet whichever script each was written in.

Nothing is read or imported at import time: the map is loaded, and OpenCC imported, at the first call.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["SynonymGroup", "expand_query", "load_synonyms", "to_simplified"]

_RESOURCE = "resources/synonyms.tsv"
_CJK_RE = re.compile("[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class SynonymGroup:
    customer: str  # lowercased
    document: tuple[str, ...]  # lowercased, in the file's order


def parse_synonyms(text: str) -> list[SynonymGroup]:
    """The groups of a synonyms file: `customer<TAB>doc|doc...` lines, `#` comments, blank lines."""
    groups: list[SynonymGroup] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        customer, tab, documents = line.partition("\t")
        terms = tuple(dict.fromkeys(t.strip().lower() for t in documents.split("|") if t.strip()))
        if not tab or not customer.strip() or not terms:
            raise ValueError(f"synonyms line {number}: expected 'customer term<TAB>document term|...', got {raw!r}")
        groups.append(SynonymGroup(customer.strip().lower(), terms))
    return groups


@functools.cache
def load_synonyms() -> tuple[SynonymGroup, ...]:
    """The curated map shipped with the package (read once)."""
    return tuple(parse_synonyms(resources.files("rag").joinpath(_RESOURCE).read_text(encoding="utf-8")))


@functools.cache
def _matchers() -> tuple[tuple[Any, SynonymGroup], ...]:
    """(how to find the customer term, its group): a substring for Chinese, a whole-word regex otherwise."""
    matchers: list[tuple[Any, SynonymGroup]] = []
    for group in load_synonyms():
        if _CJK_RE.search(group.customer):
            matchers.append((group.customer, group))
            continue
        words = [re.escape(w) for w in group.customer.split()]
        last = words[-1]
        # simple plurals: claim/claims, glass/glasses, baby/babies
        last = f"(?:{last[:-1]}ies|{last}s?)" if last.endswith("y") else f"{last}(?:s|es)?"
        pattern = r"\s+".join([*words[:-1], last])
        matchers.append((re.compile(rf"(?<![a-z0-9'-]){pattern}(?![a-z0-9'-])"), group))
    return tuple(matchers)


def expand_query(text: str) -> list[str]:
    """The document terms of every group whose customer term occurs in `text`, in the map's order,
    without repeats and without the terms `text` already holds. A Chinese customer term inside a longer one
    that also occurs yields to it: 能理赔吗 (is it covered) is not 理赔 (how to claim)."""
    question = to_simplified(text).lower()
    matched = []
    for matcher, group in _matchers():
        found = matcher in question if isinstance(matcher, str) else matcher.search(question) is not None
        if found:
            matched.append((matcher, group))
    longer = [m for m, _ in matched if isinstance(m, str)]
    seen: dict[str, None] = {}
    for matcher, group in matched:
        if isinstance(matcher, str) and any(matcher != other and matcher in other for other in longer):
            continue
        for term in group.document:
            if term not in question:
                seen.setdefault(term, None)
    return list(seen)


@functools.cache
def _converter() -> Any:
    import opencc

    # hk2s: Traditional (Hong Kong and Taiwan forms, 裏/裡/衞) to Simplified; Simplified text is left as it is
    return opencc.OpenCC("hk2s")


def to_simplified(text: str) -> str:
    """`text` with Traditional Chinese characters and phrases folded to Simplified (保險條款 -> 保险条款)."""
    if text.isascii():
        return text
    return str(_converter().convert(text))
