"""The lexical side index: BM25 over Chinese words and bigrams (rjieba) and English words.

`tokenize` serves documents and queries alike. A Chinese run is segmented by rjieba (with the curated
insurance/finance terms of `rag/resources/insurance_dict.txt` added, so 犹豫期 or 现金价值 stay whole),
function and question words are dropped, and the character bigrams of each stretch between them are added
as tokens of their own (`·保险`): that gives search-mode granularity and makes a question meet a clause
even where the two are segmented differently. English is lowercased and split into letter/digit words
minus a short stopword list. Numbers are tokens ("3.2", "10,000" -> "10000"), Chinese numerals also give
their value (三十日 -> "30"), and clause numbers a canonical token (第十条 and 第10条 -> "第10条").
Traditional Chinese is folded to Simplified first (`rag.synonyms.to_simplified`), so 保單的猶豫期 meets 保单的犹豫期.
A query can also be expanded with the document words of the customer words it holds (`rag.synonyms.expand_query`:
退保 -> 解除合同, 未到期净保费), at a lower weight than its own words.
Each of these choices was measured on InsQABench (the README's "Retrieval quality" has the figures).

`LexicalIndex` keeps every chunk's term frequencies and source, so `upsert` and `remove` rebuild the
BM25 weights without the caller re-sending anything. rjieba (and bm25s, in the tests and the tuning
script) are imported only when used: importing this module is instant.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import itertools
import json
import operator
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.synonyms import expand_query, to_simplified
from rag.text import CJK_CHARS, CLAUSE_REFERENCE, CN_NUMERAL_CHARS, chinese_to_int

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["EXPANSION_WEIGHT", "BM25Params", "LexicalIndex", "Tokenizer", "tokenize"]

BIGRAM_MARK = "\u00b7"  # "·" starts every bigram token, so a bigram never equals a segmented word
_FORMAT_VERSION = 1
_TOKENIZER_VERSION = 3  # bump whenever tokenization changes: saved indexes then no longer load

_CN_ONES = "零〇一二两三四五六七八九"
# rjieba's own guess (add_word with no frequency) is too low to beat a split such as 犹豫|期内
_USER_WORD_FREQ = 2000
# the weight of a query's synonym-expansion terms against its own terms' 1.0 (scripts/eval_synonyms.py)
EXPANSION_WEIGHT = 0.5
EXPANSION_BIGRAMS = False  # whether expansion terms add their character bigrams too, as query words do
_TOKEN_RE = re.compile(rf"([{CJK_CHARS}]+)|([a-z0-9]+(?:\.[0-9]+)*)")
# characters whose NFKC form matters here: full-width letters, digits, "." and "%", circled numbers, Kangxi
# radicals and compatibility ideographs (PDF text is full of those), the ideographic space
_COMPAT_RE = re.compile(
    "[\uff05\uff0e\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\u2460-\u24ff\u2e80-\u2fdf\uf900-\ufaff\u3000]+"
)
_THOUSANDS_RE = re.compile(r"(\d),(?=\d{3}(?!\d))")
_NUMERAL_RE = re.compile(f"[{CN_NUMERAL_CHARS}]+")
_UNITS = frozenset("日天年月周岁个元次倍%")

# Function words and question words. They carry no topic, and a question is full of them.
_ZH_STOPWORDS = frozenset(
    """
    的 地 得 了 着 过 吗 呢 吧 啊 呀 嘛 么 哦 之 其 该 此 这 那 这个 那个 这些 那些 这样 那样 这种 那种
    是 为 在 和 与 及 以及 或 或者 并 并且 而 且 也 都 就 还 又 再 才 把 将 被 对 于 以 从 向 由 给 让
    等 等等 之后 之前 时 时候 中 内 上 下 里 个 种 些 每
    我 我们 你 你们 您 他 她 它 他们 她们 它们 自己
    什么 怎么 怎样 怎么样 如何 哪 哪些 哪个 哪里 哪种 为什么 为何 多少 几 是否 是不是 有没有 能否 可否
    会 能 能够 可以 可 要 需要 应 应该 应当 有 没有 无 不 没 请问 请 如果 若 假如 则 那么
    """.split()  # noqa: SIM905
)
_SPACE = frozenset(" ")
_ZH_BREAKS = _ZH_STOPWORDS | _SPACE
_ZH_BARS = dict.fromkeys(_ZH_BREAKS, "|")
_SPACE_BARS = dict.fromkeys(_SPACE, "|")
_EN_STOPWORDS = frozenset(
    """
    a an the and or but if then else of to in on at by for with from into onto as is are was were be been
    being am do does did doing have has had having it its this that these those there here what which
    who whom whose when where why how can could would should will shall may might must i me my we us our
    you your he him his she her they them their s t not no nor so than too very any all each both such
    """.split()  # noqa: SIM905
)


def _normalize(text: str) -> str:
    text = _COMPAT_RE.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text).lower()
    return _THOUSANDS_RE.sub(r"\1", text) if "," in text else text


def _read_user_dict() -> list[tuple[str, int | None]]:
    text = resources.files("rag").joinpath("resources/insurance_dict.txt").read_text(encoding="utf-8")
    terms: list[tuple[str, int | None]] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            freq = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
            terms.append((fields[0], freq))
    return terms


class Tokenizer:
    """Turns text into BM25 tokens. The module's `tokenize` is the default instance; the options exist
    so that the alternatives can be measured (the README records the figures).

    search_mode: add the dictionary words inside longer words (犹豫期 -> 犹豫, 犹豫期), as jieba's
        cut_for_search does; user_dict: add rag/resources/insurance_dict.txt; hmm: let the segmenter
        join unknown words; stopwords: drop function and question words; bigrams: add the character
        bigrams of each stretch of Chinese between stopwords; numerals: add the value of Chinese
        numerals (三十日 -> 30) so that they meet arabic ones; simplified: fold Traditional Chinese to
        Simplified first.
    """

    def __init__(
        self,
        *,
        search_mode: bool = False,
        user_dict: bool = True,
        hmm: bool = True,
        stopwords: bool = True,
        bigrams: bool = True,
        numerals: bool = True,
        simplified: bool = True,
    ) -> None:
        self.search_mode = search_mode
        self.user_dict = user_dict
        self.hmm = hmm
        self.stopwords = stopwords
        self.bigrams = bigrams
        self.numerals = numerals
        self.simplified = simplified
        self._jieba: Any = None
        self._lock = threading.Lock()

    @functools.cached_property
    def fingerprint(self) -> str:
        """Changes whenever the tokens may change: options, dictionary, this code's version, rjieba's and
        OpenCC's."""
        options = [
            self.search_mode, self.user_dict, self.hmm, self.stopwords, self.bigrams, self.numerals, self.simplified,
        ]  # fmt: skip
        versions = []
        for package in ("rjieba", "opencc"):
            try:
                versions.append(importlib.metadata.version(package))
            except importlib.metadata.PackageNotFoundError:
                versions.append("unknown")
        state = [_TOKENIZER_VERSION, *versions, options, _read_user_dict() if self.user_dict else []]
        return hashlib.sha256(json.dumps(state, ensure_ascii=False).encode()).hexdigest()[:16]

    def _segmenter(self) -> Any:
        if self._jieba is None:
            with self._lock:
                if self._jieba is None:
                    import rjieba

                    jieba = rjieba.Jieba()
                    if self.user_dict:
                        for term, freq in _read_user_dict():
                            jieba.add_word(term, freq or _USER_WORD_FREQ, None)
                    self._jieba = jieba
        return self._jieba

    def __call__(self, text: str, *, bigrams: bool | None = None) -> list[str]:
        """The tokens of `text`; `bigrams` overrides the option of that name for this call."""
        jieba = self._segmenter()
        breaks = _ZH_BREAKS if self.stopwords else _SPACE
        bars = _ZH_BARS if self.stopwords else _SPACE_BARS  # break -> "|"
        stop_en = _EN_STOPWORDS if self.stopwords else frozenset()
        text = _normalize(to_simplified(text) if self.simplified else text)
        tokens: list[str] = []
        runs: list[str] = []
        for run, word in _TOKEN_RE.findall(text):
            if run:
                runs.append(run)
            elif word not in stop_en:
                tokens.append(word)
        if runs:
            # one segmenter call per text: the space between runs is a boundary it never crosses
            words = jieba.cut(" ".join(runs), self.hmm)
            tokens += itertools.filterfalse(breaks.__contains__, words)
            if self.search_mode:
                has_word = jieba.has_word
                tokens += [
                    sub
                    for w in words
                    if len(w) > 2
                    for n in (2, 3)
                    for i in range(len(w) - n + 1)
                    if (sub := w[i : i + n]) != w and has_word(sub)
                ]
            if self.bigrams if bigrams is None else bigrams:
                # the bigrams of each stretch between stopwords and run ends
                for stretch in "".join(map(bars.get, words, words)).split("|"):
                    tokens += map(operator.add, map(BIGRAM_MARK.__add__, stretch), stretch[1:])
        if self.numerals:
            for match in _NUMERAL_RE.finditer(text):
                numeral = match.group()
                end = match.end()
                if (
                    "十" in numeral
                    or (numeral[0] in _CN_ONES and ("百" in numeral or "千" in numeral))
                    or text[end : end + 1] in _UNITS
                    or text[end : end + 2] == "小时"
                ):
                    value = chinese_to_int(numeral)
                    if value is not None:
                        tokens.append(str(value))
        for number, unit in CLAUSE_REFERENCE.findall(text):
            if not number[0].isdigit():
                value = chinese_to_int(number)
                number = str(value) if value is not None else number
            tokens.append(f"第{number}{unit}")
        return tokens


_DEFAULT_TOKENIZER = Tokenizer()


def tokenize(text: str) -> list[str]:
    """BM25 tokens of `text` (a document or a query)."""
    return _DEFAULT_TOKENIZER(text)


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
            tokenizer or _DEFAULT_TOKENIZER,
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

    def search(self, query: str, k: int, source: str | None = None, *, expand: bool = True) -> list[tuple[str, float]]:
        """The `k` best chunks for `query` as (id, score), best first; only chunks with a positive score,
        and only those whose source equals `source` when it is given. Equal scores keep index order.
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
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[scores[top] > 0]
        top = top[np.lexsort((top, -scores[top]))]
        return [(self._ids[i], float(scores[i])) for i in top.tolist()]

    # ----- persistence --------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the index to `directory`, replacing what is there. The files go to a temporary sibling
        directory first, which then takes the place of the old one by renames; a crash at any point
        leaves the old index or the new one, never a mix (`load` falls back to the old one if the crash
        came between the two renames)."""
        import numpy as np

        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        try:
            arrays: dict[str, npt.NDArray[Any]] = {
                "indptr": self._indptr,
                "doc": self._doc,
                "tf": self._tf,
                "doc_len": self._doc_len,
                "source_code": self._source_code,
            }
            for name, array in arrays.items():
                with open(tmp / f"{name}.npy", "wb") as f:
                    np.save(f, array, allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
            meta = {
                "format": _FORMAT_VERSION,
                "tokenizer": self._tokenizer.fingerprint,
                "params": {"k1": self._params.k1, "b": self._params.b},
                "shapes": {name: len(array) for name, array in arrays.items()},
                "ids": self._ids,
                "source_names": self._source_names,
                "vocab": self._vocab,
            }
            # meta.json is written last: a directory without it is never a valid index
            with open(tmp / "meta.json", "w", encoding="utf-8") as f:
                json.dump(meta, f, ensure_ascii=False, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            old = _previous(directory)
            shutil.rmtree(old, ignore_errors=True)
            if directory.exists():
                os.replace(directory, old)
            os.replace(tmp, directory)
            _fsync_directory(directory.parent)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex | None:
        """The index saved in `directory`, or None when it is missing, unreadable, corrupt, or was built
        by another tokenizer (its tokens would not meet the queries': rebuild it from the chunks)."""
        import numpy as np

        directory = Path(directory)
        if not (directory / "meta.json").exists() and (_previous(directory) / "meta.json").exists():
            directory = _previous(directory)  # a save crashed between its two renames
        try:
            with open(directory / "meta.json", encoding="utf-8") as f:
                meta = json.load(f)
            if (
                not isinstance(meta, dict)
                or meta.get("format") != _FORMAT_VERSION
                or meta.get("tokenizer") != _DEFAULT_TOKENIZER.fingerprint
            ):
                return None
            params = BM25Params(k1=float(meta["params"]["k1"]), b=float(meta["params"]["b"]))
            if not (params.k1 >= 0 and 0 <= params.b <= 1):
                return None
            arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False) for name in _ARRAYS}
            ids, names, vocab = meta["ids"], meta["source_names"], meta["vocab"]
            indptr, doc, tf = arrays["indptr"], arrays["doc"], arrays["tf"]
            doc_len, code = arrays["doc_len"], arrays["source_code"]
            if not (
                all(arrays[name].ndim == 1 and len(arrays[name]) == meta["shapes"][name] for name in _ARRAYS)
                and indptr.dtype == np.int64
                and doc.dtype == doc_len.dtype == code.dtype == np.int32
                and tf.dtype == np.uint16
                and len(ids) == len(doc_len) == len(code)
                and len(indptr) == len(vocab) + 1
                and indptr[0] == 0
                and indptr[-1] == len(doc)
                and bool(np.all(np.diff(indptr) >= 0))
                and (len(doc) == 0 or (doc.min() >= 0 and doc.max() < len(ids)))
                and (len(code) == 0 or (code.min() >= 0 and code.max() < len(names)))
                and all(isinstance(x, str) for x in (*ids, *names, *vocab))
            ):
                return None
            sources = [names[c] for c in code.tolist()]
            return cls(ids, sources, vocab, indptr, doc, tf, doc_len, params=params)
        except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError):
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


_ARRAYS = ("indptr", "doc", "tf", "doc_len", "source_code")


def _previous(directory: Path) -> Path:
    """Where `save` keeps the old index during the swap."""
    return directory.with_name(f".{directory.name}.previous")


def _fsync_directory(directory: Path) -> None:
    """Make the renames in `directory` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
