"""Measure synonym expansion and Traditional -> Simplified folding in the lexical index, nothing embedded.

InsQABench (the clause QA set of ../shared/eval/insqabench): a LexicalIndex over the passages, every
question searched, lexical recall@1/5/10 and MRR@10, for: no folding, no expansion (the tokenizer before
this change); folding alone; folding with expansion at several weights, with and without the character
bigrams of the expansion terms. Its questions are mostly worded like the clauses, so expansion must not
hurt there (the rule: expansion stays on by default only if it costs at most 0.005 of recall@5).

Customer set (tests/data/answers/{policies_zh,policies_en,data}.jsonl, the answerable questions): a
LexicalIndex over the pages of the real policies and data/, lexical page hit@1/5 (a hit: a page of the
question's file among its evidence pages), where the customer's words are not the documents'.

    .venv/bin/python scripts/eval_synonyms.py [--eval-dir ../shared/eval/insqabench]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rag.lexical as lexical
from rag.evaluation import PassageDataset, load_insqabench, passage_metrics, summarise
from rag.lexical import LexicalIndex
from rag.lexical_tokens import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "eval"
CUSTOMER_SETS = ("policies_zh", "policies_en", "data")
KS = (1, 5, 10)
# (row label, fold Traditional, expand, expansion weight, expansion bigrams)
VARIANTS = [
    ("no fold, no expansion", False, False, 0.0, False),
    ("fold, no expansion", True, False, 0.0, False),
    ("fold, expand w=0.25", True, True, 0.25, False),
    ("fold, expand w=0.5", True, True, 0.5, False),
    ("fold, expand w=1.0", True, True, 1.0, False),
    ("fold, expand w=0.5 +bigrams", True, True, 0.5, True),
    ("fold, expand w=1.0 +bigrams", True, True, 1.0, True),
]


def run(search: Callable[[str, int], list[str]], questions: list[tuple[str, Callable[[list[str]], dict[str, float]]]]):
    per_query, times = [], []
    for question, score in questions:
        t = time.perf_counter()
        ranked = search(question, max(KS))
        times.append(time.perf_counter() - t)
        per_query.append(score(ranked))
    return summarise(per_query), statistics.median(times) * 1000


def insqabench(dataset: PassageDataset) -> dict[str, tuple[dict[str, float], float]]:
    ids = [p.id for p in dataset.corpus]
    texts = [p.text for p in dataset.corpus]
    sources = [p.source for p in dataset.corpus]
    indexes = {
        fold: LexicalIndex.build(ids, texts, sources, tokenizer=Tokenizer(simplified=fold)) for fold in (False, True)
    }
    questions = [
        (q.question, lambda ranked, rel=q.relevant_ids: passage_metrics(ranked, rel, KS)) for q in dataset.queries
    ]
    return {
        label: measure(indexes[fold], expand, w, bigrams, questions) for label, fold, expand, w, bigrams in VARIANTS
    }


def customer_set() -> tuple[dict[str, tuple[dict[str, float], float]], int]:
    from rag.loaders import discover, load_pages

    files, _ = discover([str(SHARED / "policies_zh"), str(SHARED / "policies_en"), str(ROOT / "data")])
    ids, texts, sources = [], [], []
    for f in files:
        for page in load_pages(f):
            ids.append(f"{Path(f.source).name}#{page.page}")
            texts.append(page.text)
            sources.append(Path(f.source).name)
    indexes = {
        fold: LexicalIndex.build(ids, texts, sources, tokenizer=Tokenizer(simplified=fold)) for fold in (False, True)
    }
    questions = []
    for name in CUSTOMER_SETS:
        for line in (ROOT / "tests" / "data" / "answers" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("answerable") and row.get("file"):
                relevant = {f"{row['file']}#{p}" for p in row["pages"]}
                questions.append((row["question"], lambda ranked, rel=relevant: page_hits(ranked, rel)))
    results = {
        label: measure(indexes[fold], expand, w, bigrams, questions) for label, fold, expand, w, bigrams in VARIANTS
    }
    return results, len(questions)


def page_hits(ranked: list[str], relevant: set[str]) -> dict[str, float]:
    return {f"page_hit@{k}": float(any(r in relevant for r in ranked[:k])) for k in KS}


def measure(index: LexicalIndex, expand: bool, weight: float, bigrams: bool, questions):
    lexical.EXPANSION_WEIGHT, lexical.EXPANSION_BIGRAMS = weight, bigrams
    return run(lambda q, k: [i for i, _ in index.search(q, k, expand=expand)], questions)


def table(title: str, results: dict[str, tuple[dict[str, float], float]]) -> str:
    metrics = list(next(iter(results.values()))[0])
    head = ["variant".ljust(30), *(m.rjust(11) for m in metrics), "query ms".rjust(9)]
    lines = [title, " ".join(head), "-" * len(" ".join(head))]
    for label, (values, ms) in results.items():
        lines.append(" ".join([label.ljust(30), *(f"{values[m]:11.4f}" for m in metrics), f"{ms:9.2f}"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=SHARED / "insqabench")
    args = parser.parse_args()
    defaults = lexical.EXPANSION_WEIGHT, lexical.EXPANSION_BIGRAMS
    dataset = load_insqabench(args.eval_dir)
    print(
        table(
            f"InsQABench lexical, {len(dataset.queries)} questions, {len(dataset.corpus)} passages", insqabench(dataset)
        )
    )
    print()
    results, n = customer_set()
    print(table(f"Customer set lexical page hit ({', '.join(CUSTOMER_SETS)}), {n} answerable questions", results))
    print(f"\ndefaults: EXPANSION_WEIGHT={defaults[0]}, EXPANSION_BIGRAMS={defaults[1]}, search(expand=True)")


if __name__ == "__main__":
    main()
