"""Measure the lexical index on InsQABench: recall@1/5/10 and MRR@10 per tokenizer variant and BM25 setting.

Corpus: the unique evidence snippets of clause_objective.json (parsed out of each prompt) plus the `p`
paragraphs of clause_subjective.json. Queries: every question, alone (no contract name added). Relevant:
the question's own passage. The reference point is plain bm25s over jieba.lcut tokens.

    .venv/bin/python scripts/tune_lexical.py [--eval-dir ../shared/eval/insqabench] [--grid] [--bench 100000]

--bench N times the index at scale: N chunks of about 340 characters, made of InsQABench sentences
(evidence and answers) drawn at random; build, upsert, remove, save, load and query medians.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.lexical import BM25Params, LexicalIndex, Tokenizer

PROMPT_RE = re.compile(r"这段文字来自的合同是：(.*?)\n片段内容：(.*)\n用户提问：(.*)$", re.S)
Search = Callable[[str, int], list[str]]


def load_insqabench(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(passages, [(question, index of its passage)])."""
    texts: list[str] = []
    position: dict[str, int] = {}
    queries: list[tuple[str, int]] = []

    def passage(text: str) -> int:
        text = text.strip()
        if text not in position:
            position[text] = len(texts)
            texts.append(text)
        return position[text]

    for item in json.loads((folder / "clause_objective.json").read_text(encoding="utf-8")):
        match = PROMPT_RE.search(item["input"])
        if match is None:
            raise ValueError(f"unexpected prompt layout in item {item.get('id')}")
        queries.append((match.group(3).strip(), passage(match.group(2))))
    for questions in json.loads((folder / "clause_subjective.json").read_text(encoding="utf-8")).values():
        for question, entry in questions.items():
            queries.append((question.strip(), passage(entry["p"])))
    return texts, queries


def evaluate(search: Search, queries: list[tuple[str, int]]) -> dict[str, float]:
    hits = {1: 0, 5: 0, 10: 0}
    reciprocal = 0.0
    times = []
    for question, relevant in queries:
        t = time.perf_counter()
        ranked = search(question, 10)
        times.append(time.perf_counter() - t)
        if f"p{relevant}" in ranked:
            rank = ranked.index(f"p{relevant}") + 1
            reciprocal += 1 / rank
            for k in hits:
                hits[k] += rank <= k
    n = len(queries)
    return {
        "r@1": hits[1] / n,
        "r@5": hits[5] / n,
        "r@10": hits[10] / n,
        "mrr@10": reciprocal / n,
        "ms": statistics.median(times) * 1000,
    }


def ours(texts: list[str], tokenizer: Tokenizer, params: BM25Params | None = None) -> Search:
    ids = [f"p{i}" for i in range(len(texts))]
    index = LexicalIndex.build(ids, texts, ids, tokenizer=tokenizer, params=params)
    return lambda q, k: [chunk_id for chunk_id, _ in index.search(q, k)]


def plain_bm25s(
    texts: list[str], tokenize: Callable[[str], list[str]], dedupe: bool = False, **bm25_options: object
) -> Search:
    """bm25s itself (BM25 object, `retrieve`) over the given tokens; `dedupe`: count a query term once."""
    import bm25s

    retriever = bm25s.BM25(**bm25_options)
    retriever.index([tokenize(t) for t in texts], show_progress=False)

    def search(query: str, k: int) -> list[str]:
        tokens = [t for t in tokenize(query) if t in retriever.vocab_dict]
        if dedupe:
            tokens = list(dict.fromkeys(tokens))
        if not tokens:
            return []
        docs, scores = retriever.retrieve([tokens], k=k, show_progress=False)
        return [f"p{d}" for d, s in zip(docs[0].tolist(), scores[0].tolist(), strict=True) if s > 0]

    return search


def jieba_tokens(text: str) -> list[str]:
    import jieba

    return [t for t in jieba.lcut(text) if t.strip()]


def row(name: str, make: Callable[[], Search], queries: list[tuple[str, int]]) -> None:
    t = time.perf_counter()
    search = make()
    build = time.perf_counter() - t
    m = evaluate(search, queries)
    print(
        f"{name:58} {m['r@1']:6.3f} {m['r@5']:6.3f} {m['r@10']:6.3f} {m['mrr@10']:7.3f} {build:8.2f} {m['ms']:6.2f}",
        flush=True,
    )


def bench(folder: Path, texts: list[str], queries: list[tuple[str, int]], n: int) -> None:
    answers = [item["output"] for item in json.loads((folder / "clause_objective.json").read_text(encoding="utf-8"))]
    sentences = [s for t in texts + answers for s in re.split(r"(?<=[。；！？\n])", t) if len(s.strip()) > 4]
    rng = random.Random(0)
    chunks = []
    for _ in range(n):
        chunk = ""
        while len(chunk) < 340:
            chunk += rng.choice(sentences)
        chunks.append(chunk)
    ids = [f"c{i}" for i in range(n)]
    sources = [f"doc{i // 50}.pdf" for i in range(n)]
    tokenizer = Tokenizer()
    tokenizer("warm up")

    def timed(label: str, fn: Callable[[], object], unit: str = "s") -> object:
        t = time.perf_counter()
        result = fn()
        took = time.perf_counter() - t
        print(f"{label:44} {took * (1000 if unit == 'ms' else 1):9.2f} {unit}", flush=True)
        return result

    print(f"\n{n} chunks, {sum(map(len, chunks)) / n:.0f} characters each on average")
    timed("tokenize only (tokenize() on every chunk)", lambda: [tokenizer(c) for c in chunks[: n // 10]], "s")
    print(f"{'':44} (x10 above for all {n})")
    index = timed("build (tokenize + index)", lambda: LexicalIndex.build(ids, chunks, sources))
    assert isinstance(index, LexicalIndex)
    timed("first search (computes the BM25 weights)", lambda: index.search("保险金", 10), "ms")
    timed("upsert 10 chunks (replacing 10)", lambda: index.upsert(ids[:10], chunks[-10:], sources[:10]))
    timed("upsert 1000 new chunks", lambda: index.upsert([f"n{i}" for i in range(1000)], chunks[:1000], ids[:1000]))
    timed("remove 10 chunks", lambda: index.remove(ids[:10]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lexical"
        timed("save", lambda: index.save(path))
        size = sum(f.stat().st_size for f in path.iterdir()) / 1e6
        print(f"{'size on disk':44} {size:9.1f} MB")
        loaded = timed("load", lambda: LexicalIndex.load(path))
        assert isinstance(loaded, LexicalIndex)
        timed("first search after load", lambda: loaded.search("保险金", 10), "ms")
    for label, source in (("search k=10", None), ("search k=10, source filter", "doc7.pdf")):
        times = []
        for question, _ in queries:
            t = time.perf_counter()
            index.search(question, 10, source=source)
            times.append(time.perf_counter() - t)
        times.sort()
        p50, p95 = statistics.median(times) * 1000, times[int(0.95 * len(times))] * 1000
        print(f"{label:44} {p50:9.2f} ms p50, {p95:.2f} ms p95 ({len(times)} questions)")
    print(f"{'peak RSS of this process':44} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:9.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_dir = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "insqabench"
    parser.add_argument("--eval-dir", type=Path, default=default_dir)
    parser.add_argument("--grid", action="store_true", help="also sweep k1 and b, and bm25s's BM25 variants")
    parser.add_argument("--bench", type=int, metavar="N", help="only time the index at N chunks")
    args = parser.parse_args()
    if not (args.eval_dir / "clause_objective.json").exists():
        sys.exit(f"InsQABench not found in {args.eval_dir}")
    import jieba

    jieba.setLogLevel(60)
    jieba.initialize()
    texts, queries = load_insqabench(args.eval_dir)
    print(f"InsQABench: {len(texts)} passages, {len(queries)} questions\n")
    if args.bench:
        bench(args.eval_dir, texts, queries, args.bench)
        return

    off = {"user_dict": False, "stopwords": False, "bigrams": False, "numerals": False}
    variants: list[tuple[str, dict[str, bool]]] = [
        ("rjieba cut", off),
        ("rjieba search mode", {**off, "search_mode": True}),
        ("search + dictionary", {**off, "search_mode": True, "user_dict": True}),
        ("search + dict + stopwords", {"search_mode": True, "bigrams": False, "numerals": False}),
        ("search + dict + stopwords + numerals", {"search_mode": True, "bigrams": False}),
        ("search + dict + stopwords + numerals + bigrams", {"search_mode": True}),
        ("cut + bigrams", {**off, "bigrams": True}),
        ("cut + bigrams + dict", {"stopwords": False, "numerals": False}),
        ("cut + bigrams + dict + stopwords", {"numerals": False}),
        ("cut + bigrams + dict + stopwords + numerals (default)", {}),
        ("  default, no HMM", {"hmm": False}),
        ("  default, no dictionary", {"user_dict": False}),
        ("  default, no stopwords", {"stopwords": False}),
    ]
    header = f"{'variant (BM25 k1=1.2 b=0.75 unless said)':58} {'r@1':>6} {'r@5':>6} {'r@10':>6} {'mrr@10':>7}"
    print(f"{header} {'build s':>8} {'q ms':>6}\n{'-' * (len(header) + 16)}")
    row("baseline: bm25s over jieba.lcut (k1=1.5 b=0.75)", lambda: plain_bm25s(texts, jieba_tokens), queries)
    row(
        "bm25s over our default tokens (k1=1.2 b=0.75)",
        lambda: plain_bm25s(texts, Tokenizer(), dedupe=True, k1=1.2),
        queries,
    )
    for name, options in variants:
        row(name, lambda options=options: ours(texts, Tokenizer(**options)), queries)  # type: ignore[misc]

    if args.grid:
        print(f"\n{'default tokenizer, k1 b':58} {'r@1':>6} {'r@5':>6} {'r@10':>6} {'mrr@10':>7}")
        tokenizer = Tokenizer()
        for k1 in (0.6, 0.9, 1.2, 1.5, 2.0):
            for b in (0.3, 0.5, 0.75, 0.9, 1.0):
                row(f"ours k1={k1} b={b}", lambda k1=k1, b=b: ours(texts, tokenizer, BM25Params(k1, b)), queries)
        for method in ("robertson", "atire", "bm25l", "bm25+"):
            row(
                f"bm25s method={method}",
                lambda m=method: plain_bm25s(texts, tokenizer, dedupe=True, method=m, k1=1.2),
                queries,
            )


if __name__ == "__main__":
    main()
