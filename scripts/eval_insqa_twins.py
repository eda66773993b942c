"""InsQABench recall@k counting near-identical twins: a hit counts when it is the question's own passage or a
passage whose character 3-gram Jaccard similarity with it is at least --jaccard (0.8).

About a third of InsQABench's gold snippets have a near-identical twin from another insurer's contract, and
the questions do not name their contract: no retriever can tell the twins apart from the question alone. The
plain figure counts the twin as a miss; this one shows how much of the gap that is. Retrieval goes through the
same `Searcher` as `rag ask`, on the index `rag eval retrieval` builds (run that first; its cached question
vectors are reused).

    python scripts/eval_insqa_twins.py [--work-dir .rag-eval] [--k 1,5,10] [--jaccard 0.8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rag.config import Settings
from rag.evaluation import load_insqabench
from rag.index import Index
from rag.records import RetrievalMode
from rag.retrieval import Searcher

ROOT = Path(__file__).resolve().parents[1]
INSQA = ROOT.parent / "shared" / "eval" / "insqabench"


def trigrams(text: str) -> set[str]:
    squashed = "".join(text.split())
    return {squashed[i : i + 3] for i in range(max(1, len(squashed) - 2))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".rag-eval")
    parser.add_argument("--k", default="1,5,10")
    parser.add_argument("--jaccard", type=float, default=0.8)
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    dataset = load_insqabench(INSQA)
    grams = {p.id: trigrams(p.text) for p in dataset.corpus}
    twins = {
        pid: {other for other in grams if other == pid or jaccard(grams[pid], grams[other]) >= args.jaccard}
        for pid in {q for query in dataset.queries for q in query.relevant_ids}
    }
    with_twin = sum(1 for pid, found in twins.items() if len(found) > 1)
    print(f"{with_twin} of {len(twins)} gold passages have a twin at Jaccard >= {args.jaccard}")
    settings = Settings().model_copy(update={"index_dir": args.work_dir / f"insqabench-{Settings().embedder}"})
    with Index(settings) as index:
        searcher = Searcher(index, cache_queries=True)
        searcher.embed_questions([query.question for query in dataset.queries])
        modes: tuple[RetrievalMode, ...] = ("dense", "lexical", "hybrid")
        print(f"{'mode':8} " + " ".join(f"{f'recall@{k}':>10} {f'+twins@{k}':>10}" for k in ks))
        for mode in modes:
            plain = dict.fromkeys(ks, 0)
            counted = dict.fromkeys(ks, 0)
            for query in dataset.queries:
                ids = [hit.chunk.id for hit in searcher.search(query.question, max(ks), mode)]
                accepted = set().union(*(twins[pid] for pid in query.relevant_ids))
                for k in ks:
                    plain[k] += any(i in query.relevant_ids for i in ids[:k])
                    counted[k] += any(i in accepted for i in ids[:k])
            n = len(dataset.queries)
            print(f"{mode:8} " + " ".join(f"{plain[k] / n:10.3f} {counted[k] / n:10.3f}" for k in ks))


if __name__ == "__main__":
    main()
