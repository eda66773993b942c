"""Choose the hybrid fusion constants by measurement on InsQABench: rrf_k and the two lists' weights.

    python scripts/tune_fusion.py [--work-dir DIR] [--limit N]

Each question's dense and lexical candidate lists (depth 50) are computed once; every setting then fuses
the same lists. Vectors come from the `rag eval retrieval` index and cache in --work-dir, so a second run
embeds nothing. Skips cleanly when ../shared/eval is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "insqabench"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path(".rag-eval"))
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    if not EVAL.exists():
        print(f"skipped: {EVAL} is absent")
        return 0
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    from rag.config import Settings
    from rag.eval_runner import _passage_index, _slug
    from rag.evaluation import load_insqabench, passage_metrics, summarise
    from rag.retrieval import reciprocal_rank_fusion

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    dataset = load_insqabench(EVAL, limit=args.limit)
    settings = settings.model_copy(update={"index_dir": args.work_dir / f"{dataset.name}-{_slug(settings.embedder)}"})
    retriever, _ = _passage_index(dataset, settings, print)
    retriever.embed_questions([q.question for q in dataset.queries])
    lists = [
        (retriever.search(q.question, "dense", 50, None), retriever.search(q.question, "lexical", 50, None), q)
        for q in dataset.queries
    ]
    print(f"{len(lists)} questions; recall@5 / MRR@10")
    print(f"{'rrf_k':>6}{'w_dense':>9}{'w_lex':>7}{'r@1':>8}{'r@5':>8}{'r@10':>8}{'mrr@10':>8}")
    for name, fused in (("dense", lambda d, lex: d), ("lexical", lambda d, lex: lex)):
        m = summarise([passage_metrics([h.chunk.id for h in fused(d, lex)][:10], q.relevant_ids, (1, 5, 10))
                       for d, lex, q in lists])  # fmt: skip
        print(f"{name:>22}{m['recall@1']:>8.3f}{m['recall@5']:>8.3f}{m['recall@10']:>8.3f}{m['mrr@10']:>8.3f}")
    for rrf_k in (5, 20, 60):
        for w_dense, w_lex in ((1.0, 1.0), (0.7, 1.0), (0.5, 1.0), (0.3, 1.0)):
            per_query = []
            for d, lex, q in lists:
                fused = reciprocal_rank_fusion(d, lex, 10, rrf_k, w_dense, w_lex)
                per_query.append(passage_metrics([h.chunk.id for h in fused], q.relevant_ids, (1, 5, 10)))
            m = summarise(per_query)
            print(f"{rrf_k:>6}{w_dense:>9}{w_lex:>7}{m['recall@1']:>8.3f}{m['recall@5']:>8.3f}"
                  f"{m['recall@10']:>8.3f}{m['mrr@10']:>8.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
