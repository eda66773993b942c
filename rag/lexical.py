"""The lexical side index: BM25 over the tokens of `rag.lexical_tokens` (Chinese words and bigrams,
English words; the module says how they are made and why).

A query can also be expanded with the document words of the customer words it holds
(`rag.synonyms.expand_query`: 退保 -> 解除合同, 未到期净保费), at a lower weight than its own words.

`LexicalIndex` keeps every chunk's term frequencies and source, so `upsert` and `remove` rebuild the
BM25 weights without the caller re-sending anything. rjieba (and bm25s, in the tests and the tuning
script) are imported only when used: importing this module is instant.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.lexical_files import read_index_files, write_index_files
from rag.lexical_tokens import BIGRAM_MARK, DEFAULT_TOKENIZER, Tokenizer, tokenize
from rag.synonyms import expand_query

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# BIGRAM_MARK and tokenize live in rag.lexical_tokens; rag/gate.py and rag/extractive.py import them from here
__all__ = ["BIGRAM_MARK", "EXPANSION_WEIGHT", "BM25Params", "LexicalIndex", "Tokenizer", "tokenize"]

# the weight of a query's synonym-expansion terms against its own terms' 1.0 (scripts/eval_synonyms.py)
EXPANSION_WEIGHT = 0.5
EXPANSION_BIGRAMS = False  # whether expansion terms add their character bigrams too, as query words do


@dataclass(frozen=True)
class BM25Params:
    """BM25 (Lucene variant, as bm25s's default `method="lucene"`) parameters. Measured on InsQABench
    (a grid recorded in the README) the results hardly move over k1 0.9-2 and b 0.5-1; these are the usual ones."""

    k1: float = 1.2
    b: float = 0.75


_BATCH = 2048  # texts tokenized and turned into arrays at a time, to keep Python objects few


class LexicalIndex:
    """An immutable BM25 index over chunks: `upsert` and `remove` return a new index.

    It keeps an inverted file of term frequencies: for term `t`, the documents
    `_doc[_indptr[t]:_indptr[t + 1]]` (ascending) with their frequencies `_tf[...]`, plus each
    document's length, id and source. The BM25 weights are derived from those in a few vectorised passes,
    so an update never re-tokenizes the chunks already indexed. The scoring is bm25s's Lucene BM25
    (tests/test_lexical.py checks the scores against bm25s itself); bm25s's own indexing is not used
    because it loops in Python over every document (about 90 s for 100k chunks, against about 1 s here).
    """

    _weight: npt.NDArray[np.float32] | None

    def __init__(
        self,
        ids: list[str],
        sources: list[str],
        vocab: list[str],
        indptr: npt.NDArray[np.int64],
        doc: npt.NDArray[np.int32],
        tf: npt.NDArray[np.uint16],
        doc_len: npt.NDArray[np.int32],
        *,
        params: BM25Params | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        """Low level: `build` and `load` are the ways in."""
        import numpy as np

        if not (
            len(ids) == len(sources) == len(doc_len)
            and len(indptr) == len(vocab) + 1
            and len(doc) == len(tf) == int(indptr[-1])
        ):
            raise ValueError("inconsistent lexical index arrays")
        names = sorted(set(sources))
        code = {name: i for i, name in enumerate(names)}
        self._set(
            ids,
            names,
            np.fromiter((code[s] for s in sources), np.int32, len(sources)),
            vocab,
            {term: t for t, term in enumerate(vocab)},
            indptr,
            doc,
            tf,
            doc_len,
            params or BM25Params(),
            tokenizer or DEFAULT_TOKENIZER,
        )

    def _set(
        self,
        ids: list[str],
        source_names: list[str],
        source_code: npt.NDArray[np.int32],
        vocab: list[str],
        term_index: dict[str, int],
        indptr: npt.NDArray[np.int64],
        doc: npt.NDArray[np.int32],
        tf: npt.NDArray[np.uint16],
        doc_len: npt.NDArray[np.int32],
        params: BM25Params,
        tokenizer: Tokenizer,
    ) -> None:
        self._ids = ids
        self._source_names = source_names  # sorted; _source_code[i] indexes it
        self._source_code = source_code
        self._vocab = vocab
        self._term_index = term_index
        self._indptr = indptr
        self._doc = doc
        self._tf = tf
        self._doc_len = doc_len
        self._params = params
        self._tokenizer = tokenizer
        self._weight = None  # computed at the first search, so a run of updates does not pay for it

    def _derived(self, **changes: Any) -> LexicalIndex:
        """A new index with some of this one's parts replaced (no copies, no checks)."""
        parts: dict[str, Any] = {
            "ids": self._ids,
            "source_names": self._source_names,
            "source_code": self._source_code,
            "vocab": self._vocab,
            "term_index": self._term_index,
            "indptr": self._indptr,
            "doc": self._doc,
            "tf": self._tf,
            "doc_len": self._doc_len,
            "params": self._params,
            "tokenizer": self._tokenizer,
        }
        index = object.__new__(LexicalIndex)
        index._set(**(parts | changes))
        return index

    def _weights(self) -> npt.NDArray[np.float32]:
        """The BM25 weight of every posting: idf(t) * tf / (tf + k1 * (1 - b + b * len(d) / avg len))."""
        import numpy as np

        if self._weight is None:
            n = len(self._ids)
            k1, b = self._params.k1, self._params.b
            df = np.diff(self._indptr)
            idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
            avgdl = max(float(self._doc_len.mean()), 1e-9) if n else 1.0
            norm = (k1 * (1 - b + b * self._doc_len / avgdl)).astype(np.float32)
            weight = self._tf.astype(np.float32)
            weight /= weight + norm[self._doc]
            weight *= np.repeat(idf, df)
            self._weight = weight
        return self._weight

    # ----- construction -------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        ids: list[str],
        texts: list[str],
        sources: list[str],
        *,
        params: BM25Params | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> LexicalIndex:
        """Index `texts`; when an id repeats, its last text wins."""
        import numpy as np

        no_postings = np.zeros(0, np.int32)
        index = cls(
            [], [], [], np.zeros(1, np.int64), no_postings, np.zeros(0, np.uint16), no_postings,
            params=params, tokenizer=tokenizer,
        )  # fmt: skip
        return index.upsert(ids, texts, sources)

    def upsert(self, ids: list[str], texts: list[str], sources: list[str]) -> LexicalIndex:
        """A new index holding this one's chunks plus the given ones; a given id replaces an existing one
        (when an id repeats among the given ones, its last text wins)."""
        import numpy as np

        if not len(ids) == len(texts) == len(sources):
            raise ValueError(
                f"upsert needs as many ids, texts and sources, got {len(ids)}, {len(texts)}, {len(sources)}"
            )
        latest = {chunk_id: n for n, chunk_id in enumerate(ids)}
        new = sorted(latest.values())
        if not new:
            return self
        kept = self._without(latest.keys())
        n_kept, n_total = len(kept._ids), len(kept._ids) + len(new)
        vocab = list(kept._vocab)
        term_index = dict(kept._term_index)
        keys: list[npt.NDArray[np.int64]] = []  # term * n_total + doc, one per token
        doc_len = np.zeros(len(new), np.int32)
        for start in range(0, len(new), _BATCH):
            batch = [self._tokenizer(texts[n]) for n in new[start : start + _BATCH]]
            fresh = set(itertools.chain.from_iterable(batch)).difference(term_index)
            for token in sorted(fresh):  # sorted: the same texts always give the same index
                term_index[token] = len(vocab)
                vocab.append(token)
            lengths = np.fromiter(map(len, batch), np.int32, len(batch))
            doc_len[start : start + len(batch)] = lengths
            flat = map(term_index.__getitem__, itertools.chain.from_iterable(batch))
            key = np.fromiter(flat, np.int64, int(lengths.sum()))
            key *= n_total
            key += np.repeat(np.arange(n_kept + start, n_kept + start + len(batch), dtype=np.int64), lengths)
            keys.append(key)
        # the new postings, term-major: sort the keys and count the repeats
        key = np.concatenate(keys)
        del keys
        key.sort()
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if len(key) else np.zeros(0, np.int64)
        new_tf = np.minimum(np.diff(np.append(starts, len(key))), np.iinfo(np.uint16).max).astype(np.uint16)
        key = key[starts]
        new_term, new_doc = np.divmod(key, n_total)
        del key, starts
        # merge: a new posting goes to the end of its term's block, as its document follows all kept ones
        old_indptr = np.concatenate([kept._indptr, np.full(len(vocab) - len(kept._vocab), kept._indptr[-1])])
        where = old_indptr[new_term + 1]
        indptr = old_indptr + np.concatenate([[0], np.cumsum(np.bincount(new_term, minlength=len(vocab)))])
        names = sorted(set(kept._source_names).union(sources[n] for n in new))
        code = {name: i for i, name in enumerate(names)}
        kept_code = np.array([code[name] for name in kept._source_names], np.int32)[kept._source_code]
        new_code = np.fromiter((code[sources[n]] for n in new), np.int32, len(new))
        return kept._derived(
            ids=kept._ids + [ids[n] for n in new],
            source_names=names,
            source_code=np.concatenate([kept_code, new_code]),
            vocab=vocab,
            term_index=term_index,
            indptr=indptr,
            doc=_merge(kept._doc, where, new_doc.astype(np.int32)),
            tf=_merge(kept._tf, where, new_tf),
            doc_len=np.concatenate([kept._doc_len, doc_len]),
        )

    def remove(self, ids: Iterable[str]) -> LexicalIndex:
        """A new index without the given ids (unknown ids are ignored)."""
        return self._without(ids)

    def _without(self, ids: Iterable[str]) -> LexicalIndex:
        import numpy as np

        position = {chunk_id: i for i, chunk_id in enumerate(self._ids)}
        gone = [position[chunk_id] for chunk_id in set(ids) if chunk_id in position]
        if not gone:
            return self
        keep = np.ones(len(self._ids), bool)
        keep[gone] = False
        renumber = (np.cumsum(keep) - 1).astype(np.int32)
        posting_kept = keep[self._doc]
        indptr = np.concatenate([[0], np.cumsum(posting_kept)])[self._indptr]
        vocab, term_index = self._vocab, self._term_index
        df = np.diff(indptr)
        if np.count_nonzero(df == 0) > len(vocab) // 4:  # drop the terms no document uses any more
            used = df > 0
            vocab = [term for term, u in zip(vocab, used.tolist(), strict=True) if u]
            term_index = {term: t for t, term in enumerate(vocab)}
            indptr = np.concatenate([[0], np.cumsum(df[used])])
        used_names, source_code = np.unique(self._source_code[keep], return_inverse=True)
        return self._derived(
            ids=[chunk_id for chunk_id, k in zip(self._ids, keep.tolist(), strict=True) if k],
            source_names=[self._source_names[c] for c in used_names.tolist()],
            source_code=source_code.astype(np.int32),
            vocab=vocab,
            term_index=term_index,
            indptr=indptr.astype(np.int64),
            doc=renumber[self._doc[posting_kept]],
            tf=self._tf[posting_kept],
            doc_len=self._doc_len[keep],
        )

    # ----- reading ------------------------------------------------------------------------------------

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def search(
        self,
        query: str,
        k: int,
        source: str | None = None,
        *,
        expand: bool = True,
        allows: Callable[[str], bool] | None = None,
    ) -> list[tuple[str, float]]:
        """The `k` best chunks for `query` as (id, score), best first; only chunks with a positive score,
        only those whose source equals `source` when it is given, and only those of the sources that `allows`
        (an edition scope, rag/edition_scope.py) when it is given. Equal scores keep index order.
        `expand`: also search the document words of the customer words in `query` (`expand_query`), each
        term the query does not hold already counting `EXPANSION_WEIGHT` of a query term."""
        import numpy as np

        if k <= 0 or not self._ids:
            return []
        index = self._term_index
        terms = dict.fromkeys((index[t] for t in self._tokenizer(query) if t in index), 1.0)
        extra = expand_query(query) if expand else []
        if extra:
            for t in self._tokenizer(" ".join(extra), bigrams=EXPANSION_BIGRAMS):
                if t in index:
                    terms.setdefault(index[t], EXPANSION_WEIGHT)
        if not terms:
            return []
        scores = np.zeros(len(self._ids), np.float32)
        indptr, doc, weight = self._indptr, self._doc, self._weights()
        for term in sorted(terms):
            lo, hi = indptr[term], indptr[term + 1]
            w = terms[term]
            np.add.at(scores, doc[lo:hi], weight[lo:hi] if w == 1.0 else weight[lo:hi] * np.float32(w))
        if source is not None:
            code = bisect_left(self._source_names, source)
            if code == len(self._source_names) or self._source_names[code] != source:
                return []
            scores[self._source_code != code] = 0
        if allows is not None:
            barred = [code for code, name in enumerate(self._source_names) if not allows(name)]
            if barred:
                scores[np.isin(self._source_code, barred)] = 0
        return [(self._ids[i], float(scores[i])) for i in _top_k(scores, k).tolist()]

    # ----- persistence --------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the index to `directory`, replacing what is there, atomically: a crash at any point leaves
        the old index or the new one, never a mix (`rag.lexical_files`)."""
        write_index_files(
            directory,
            {
                "indptr": self._indptr,
                "doc": self._doc,
                "tf": self._tf,
                "doc_len": self._doc_len,
                "source_code": self._source_code,
            },
            tokenizer=self._tokenizer.fingerprint,
            k1=self._params.k1,
            b=self._params.b,
            ids=self._ids,
            source_names=self._source_names,
            vocab=self._vocab,
        )

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex | None:
        """The index saved in `directory`, or None when it is missing, unreadable, corrupt, or was built
        by another tokenizer (its tokens would not meet the queries': rebuild it from the chunks)."""
        saved = read_index_files(directory, DEFAULT_TOKENIZER.fingerprint)
        if saved is None:
            return None
        arrays = saved.arrays
        sources = [saved.source_names[c] for c in arrays["source_code"].tolist()]
        try:
            return cls(
                saved.ids, sources, saved.vocab, arrays["indptr"], arrays["doc"], arrays["tf"], arrays["doc_len"],
                params=BM25Params(k1=saved.k1, b=saved.b),
            )  # fmt: skip
        except ValueError:
            return None

    # ----- statistics (the evidence gate, rag/gate.py) ------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """The tokens this index gives `text`: the same as a query's."""
        return self._tokenizer(text)

    def idf(self, terms: Iterable[str]) -> dict[str, float]:
        """BM25's idf of each term, log(1 + (n - df + 0.5) / (df + 0.5)); a term no chunk holds (df 0) gets the
        highest value. A chunk's BM25 score for a query is at most the sum of its terms' idf."""
        import math

        n = len(self._ids)
        result = {}
        for term in terms:
            t = self._term_index.get(term)
            df = int(self._indptr[t + 1] - self._indptr[t]) if t is not None else 0
            result[term] = math.log1p((n - df + 0.5) / (df + 0.5))
        return result

    def ids_with_all(self, terms: Iterable[str]) -> list[str]:
        """The ids of the chunks that hold every one of `terms` (none when a term is unknown, or no term given)."""
        import numpy as np

        found: npt.NDArray[np.int32] | None = None
        for term in set(terms):
            t = self._term_index.get(term)
            if t is None:
                return []
            docs = self._doc[self._indptr[t] : self._indptr[t + 1]]
            found = docs if found is None else np.intersect1d(found, docs, assume_unique=True)
            if not len(found):
                return []
        return [] if found is None else [self._ids[i] for i in found.tolist()]


def _top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """The positions of the `k` highest positive scores, best first, equal scores in position order.

    Only the documents a query touched are ranked, and through the k-th best score (np.partition, no index
    array) rather than an argpartition of every document: at 1M chunks that took 11 of a search's 15 ms of CPU.
    """
    import numpy as np

    touched = np.flatnonzero(scores > 0)
    if len(touched) > k:
        values = scores[touched]
        kth = np.partition(values, len(values) - k)[len(values) - k]
        touched = touched[values >= kth]  # ties with the k-th score included; the sort below keeps the first
    return touched[np.lexsort((touched, -scores[touched]))][:k]


def _merge(old: npt.NDArray[Any], where: npt.NDArray[np.int64], new: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """`np.insert(old, where, new)` for an ascending `where`, without the sort np.insert does."""
    import numpy as np

    if len(old) == 0:
        return new
    merged = np.empty(len(old) + len(new), old.dtype)
    slots = where + np.arange(len(new))
    is_old = np.ones(len(merged), bool)
    is_old[slots] = False
    merged[slots] = new
    merged[is_old] = old
    return merged
