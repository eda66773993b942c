"""Which documents a question may be answered from, by the editions in force on a date and a product name.

Every chunk carries its document's edition in Chroma's metadata. `EditionCatalog` reads one record per
document (its first chunk) and `scope_for` decides, per product, which editions are in force on the date
asked: among a product's dated documents, those whose dates hold that day, and of those the latest
`effective_from` (a new edition supersedes the one before it even when nobody wrote down its end).
Documents whose edition states no date, and documents with no edition at all, are never set aside by a
date; a product filter keeps only the documents of that product.

The scope is applied inside the search (rag/retrieval.py), to the dense query's `where` and to the BM25
scores alike, so that top-k is filled from the documents in scope instead of being starved by a filter after it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rag.records import Edition

if TYPE_CHECKING:
    from rag.store import ChromaStore

__all__ = ["EditionCatalog", "EditionScope", "edition_from_metadata", "edition_metadata", "same_product", "scope_for"]

_METADATA_KEYS = {
    "product": "product",
    "edition": "edition",
    "effective_from": "effective_from",
    "effective_to": "effective_to",
    "edition_origin": "origin",
}


def edition_metadata(edition: Edition | None) -> dict[str, str]:
    """The Chroma metadata of a chunk's edition (only the fields that are known)."""
    if edition is None:
        return {}
    return {key: getattr(edition, name) for key, name in _METADATA_KEYS.items() if getattr(edition, name)}


def edition_from_metadata(metadata: Mapping[str, Any]) -> Edition | None:
    fields = {name: str(metadata[key]) for key, name in _METADATA_KEYS.items() if metadata.get(key)}
    edition = Edition(**fields)
    return None if edition.is_empty() else edition


_NOISE = re.compile(r"[\s《》“”\"'·・（）()]+")


def _product_key(name: str) -> str:
    key = _NOISE.sub("", name).casefold()
    return key[: -len("条款")] if key.endswith("条款") else key


def same_product(asked: str, stated: str | None) -> bool:
    """Whether a product filter names this product: equal once spaces, quotes and a final 条款 are dropped, or
    one holds the other ("安心医疗" finds 安心医疗保险)."""
    if not stated:
        return False
    a, b = _product_key(asked), _product_key(stated)
    return bool(a) and (a == b or a in b or b in a)


@dataclass(frozen=True)
class EditionScope:
    """The documents (by stored source) a search leaves out or keeps only, and why, for the audit."""

    as_of: str
    product: str | None
    exclude: frozenset[str] = frozenset()
    only: frozenset[str] | None = None  # with a product filter: the sources of that product
    in_force: tuple[tuple[str, Edition], ...] = ()  # (source, edition) of dated editions searched
    set_aside: tuple[tuple[str, Edition, str], ...] = ()  # (source, edition, why)

    def allows(self, source: str) -> bool:
        return source not in self.exclude and (self.only is None or source in self.only)

    def chroma_where(self, source: str | None) -> dict[str, Any] | None:
        """The `where` of a dense query within this scope (and on one file when `source` is given)."""
        clauses: list[dict[str, Any]] = []
        if source:
            clauses.append({"source": source})
        if self.only is not None:
            clauses.append({"source": {"$in": sorted(self.only) or [""]}})
        if self.exclude:
            clauses.append({"source": {"$nin": sorted(self.exclude)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "product": self.product,
            "in_force": [{"source": s, **asdict(e)} for s, e in self.in_force],
            "set_aside": [{"source": s, **asdict(e), "why": why} for s, e, why in self.set_aside],
        }


def scope_for(catalog: Mapping[str, Edition], as_of: str, product: str | None = None) -> EditionScope:
    """Which of the catalogued documents (source → edition) a question on `as_of` (ISO date), about `product`
    when given, may be answered from."""
    only = frozenset(s for s, e in catalog.items() if same_product(product, e.product)) if product else None
    by_product: dict[str, list[tuple[str, Edition]]] = {}
    for source, edition in sorted(catalog.items()):
        if only is not None and source not in only:
            continue
        if edition.effective_from or edition.effective_to:
            key = _product_key(edition.product) if edition.product else f"\0{source}"
            by_product.setdefault(key, []).append((source, edition))
    in_force: list[tuple[str, Edition]] = []
    set_aside: list[tuple[str, Edition, str]] = []
    for documents in by_product.values():
        current = [(s, e) for s, e in documents if _holds(e, as_of)]
        latest = max((e.effective_from or "" for _, e in current), default="")
        for source, edition in documents:
            if (source, edition) not in current:
                why = "not yet in force" if (edition.effective_from or "") > as_of else "no longer in force"
                set_aside.append((source, edition, why))
            elif (edition.effective_from or "") < latest:
                set_aside.append((source, edition, f"superseded by the edition in force from {latest}"))
            else:
                in_force.append((source, edition))
    return EditionScope(
        as_of=as_of,
        product=product,
        exclude=frozenset(source for source, _, _ in set_aside),
        only=only,
        in_force=tuple(in_force),
        set_aside=tuple(set_aside),
    )


def _holds(edition: Edition, as_of: str) -> bool:
    return (edition.effective_from or "") <= as_of and (edition.effective_to is None or as_of <= edition.effective_to)


class EditionCatalog:
    """Each stored document's edition, by source, read from the collection's first chunks and read again when
    the collection's version changes (another ingest, another replica's)."""

    def __init__(self) -> None:
        self._version: str | None = None
        self._editions: dict[str, Edition] = {}
        self._lock = threading.Lock()

    def get(self, store: ChromaStore, version: str | None) -> dict[str, Edition]:
        with self._lock:
            if version is None or version != self._version:
                self._editions = store.editions()
                self._version = version
            return self._editions
