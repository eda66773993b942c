"""Benchmark the two PDF text backends, pypdf and pypdfium2, on the evaluation PDFs.

What it measures, on every PDF under ``../shared/eval`` (policies_zh, policies_en, annual_reports_zh,
financebench_dev/pdfs):

* speed: CPU and wall time per page for open + extract all pages + close, per corpus; the ratio
  pypdf / pypdfium2 is computed per file in the same run (the two backends are interleaved file by file, so
  machine noise hits both). pypdfium2 is repeated ``--repeats`` times (median kept); pypdf runs once per
  file in the full run (it takes minutes) and ``--repeats`` times in ``--quick``;
* text quality: characters per page, very short lines (<= 2 chars: words and digits broken by line
  breaks), number tokens (``1,234.56``, ``29.55``, ``2019``) found on a page by one backend and not the other;
* pypdfium2 ``get_text_bounded()`` (what rag uses) against ``get_text_range()``: pages and characters that differ;
* each backend's output on three table pages (annual report, occupation-class table, 10-K);
* encrypted PDFs built at run time with pypdf (RC4-128 and AES-128, empty and non-empty user password):
  what each backend does without and with the password;
* files that fail in either backend, or whose page counts differ.

Run::

    .venv/bin/python scripts/bench_pdf.py            # full: 17 PDFs, ~1,900 pages (~5 min idle; pypdf-bound)
    .venv/bin/python scripts/bench_pdf.py --quick    # smallest PDF per corpus, first 20 pages (< 1 min)
    .venv/bin/python scripts/bench_pdf.py --max-pages 50 --repeats 1   # a shorter full run

It prints plain-text tables. When the evaluation folder is missing it says so and exits 0.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import harness
from harness import median

CORPORA = ("policies_zh", "policies_en", "annual_reports_zh", "financebench_dev/pdfs")
QUICK_MAX_PAGES = 20
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d{4,}")
WS = re.compile(r"\s")


def extract(backend: str, source: Path | bytes, pages: slice = slice(None), password: str | None = None) -> list[str]:
    """The text of `pages` with one backend: "pypdf", "pdfium" (get_text_bounded) or "pdfium-range"."""
    if backend == "pypdf":
        import pypdf

        reader = pypdf.PdfReader(source if isinstance(source, Path) else io.BytesIO(source))
        if password is not None:
            reader.decrypt(password)
        return [p.extract_text() for p in reader.pages[pages]]
    import pypdfium2 as pdfium

    out = []
    doc = pdfium.PdfDocument(source, password=password)
    try:  # every native object closed explicitly, children first
        for i in range(len(doc))[pages]:
            page = doc[i]
            textpage = page.get_textpage()
            try:
                out.append(textpage.get_text_bounded() if backend == "pdfium" else textpage.get_text_range())
            finally:
                textpage.close()
                page.close()
    finally:
        doc.close()
    return out


def quality_group(corpus: str, path: Path) -> str:
    """Per file for the small Chinese corpora (their files differ in kind), per corpus otherwise."""
    if corpus == "annual_reports_zh":
        year = re.search(r"(\d{4})年", path.stem)
        return f"annual report {year.group(1) if year else path.stem[:10]}"
    if corpus == "policies_zh":
        kinds = (("条款", "clauses"), ("须知", "notice"), ("分类表", "occupation table"))
        return "policies_zh " + next((label for key, label in kinds if key in path.stem), path.stem[-6:])
    return corpus.split("/")[0]


def add_quality(q: Counter, pages: list[str]) -> None:
    for text in pages:
        lines = [ln.strip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
        lines = [ln for ln in lines if ln]
        q.update(pages=1, chars=len(WS.sub("", text)), lines=len(lines), short=sum(len(ln) <= 2 for ln in lines))


def matching_numbers(only_a: set[str], only_b: set[str]) -> tuple[str, str] | None:
    """A number one backend got and a different rendering of it the other got (29.\\n55 vs 29.55)."""
    for a in sorted(only_a):
        da = re.sub(r"\D", "", a)
        for b in sorted(only_b):
            db = re.sub(r"\D", "", b)
            close = abs(len(da) - len(db)) <= 1 and max(len(da), len(db)) >= 3
            if close and (da.startswith(db) or db.startswith(da) or da.endswith(db) or db.endswith(da)):
                return a, b
    return None


def context(text: str, token: str, width: int = 14) -> str:
    """The text around the place where NUMBER matched `token` (not just any substring equal to it)."""
    i = next((m.start() for m in NUMBER.finditer(text) if m.group() == token), max(text.find(token), 0))
    return re.sub(r"\s+", "⏎", text[max(0, i - width) : i + len(token) + width].replace("\r\n", "\n"))


def table_samples(eval_dir: Path) -> None:
    targets = [
        ("annual report 2019, p.6 (main financial indicators)", "annual_reports_zh/*2019年*年度报告.pdf", 5),
        ("occupation-class table, p.2", "policies_zh/*职业类别分类表.pdf", 1),
        ("AMCOR 10-K, p.51 (comprehensive income)", "financebench_dev/pdfs/AMCOR_2023_10K.pdf", 50),
    ]
    print("\nTable pages: the first 260 characters of each backend (⏎ = line break)")
    for label, pattern, index in targets:
        for path in sorted(eval_dir.glob(pattern))[:1]:
            print(f"\n  {label}")
            for backend in ("pypdf", "pdfium"):
                text = extract(backend, path, slice(index, index + 1))[0].replace("\r\n", "\n")
                print(f"    {backend:9}: {text[:260].replace(chr(10), '⏎')}{'…' if len(text) > 260 else ''}")


def encryption(source: Path | None) -> None:
    import pypdf
    from pypdf._crypt_providers import crypt_provider

    def outcome(backend: str, data: bytes, password: str | None) -> str:
        try:
            return f"ok, {len(WS.sub('', extract(backend, data, slice(0, 1), password)[0]))} chars"
        except Exception as e:  # what each backend does is the finding
            msg = f"{type(e).__name__}: {e}"
            return msg if len(msg) <= 58 else msg[:57] + "…"

    rows: list[list[object]] = []
    for alg in ("RC4-128", "AES-128"):
        for pw in ("", "secret"):
            writer = pypdf.PdfWriter()
            if source is not None:
                writer.append(str(source), pages=[0])
            else:
                writer.add_blank_page(200, 200)
            try:  # AES needs the `cryptography` package in pypdf, to write as to read
                writer.encrypt(user_password=pw, owner_password="owner-pw", algorithm=alg)
                buf = io.BytesIO()
                writer.write(buf)
            except Exception as e:
                rows.append([alg, repr(pw), f"cannot build: {type(e).__name__}: {e}"[:60], "", "", ""])
                continue
            data = buf.getvalue()
            rows.append([alg, repr(pw), *(outcome(b, data, p) for b in ("pypdf", "pdfium") for p in (None, pw))])
    harness.table(
        ["cipher", "user pw", "pypdf, no password", "pypdf, decrypt(pw)", "pdfium, no password", "pdfium, password=pw"],
        rows,
        f"Encrypted PDFs built with pypdf from page 1 of {source.name if source else 'a blank page'} (owner "
        f"password 'owner-pw'); pypdf crypto provider here: {crypt_provider[0]}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest PDF per corpus, first 20 pages (< 1 min)")
    ap.add_argument("--eval-dir", type=Path, default=harness.EVAL, help=f"default: {harness.EVAL}")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of pypdfium2 per file (median kept)")
    ap.add_argument("--max-pages", type=int, default=None, help="only the first N pages of each file")
    args = ap.parse_args(argv)

    import pypdf
    import pypdfium2

    versions = f"pypdf {pypdf.__version__}", f"pypdfium2 {pypdfium2.version.PYPDFIUM_INFO}"
    harness.header("bench_pdf", *versions, f"pdfium {pypdfium2.version.PDFIUM_INFO}")
    if not args.eval_dir.is_dir():
        print(f"evaluation folder {args.eval_dir} not found: nothing to benchmark (skipped).")
        return 0
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns on odd but readable PDFs; not timed
    pages = slice(args.max_pages or (QUICK_MAX_PAGES if args.quick else None))
    pypdf_repeats = args.repeats if args.quick else 1
    files = []
    for corpus in CORPORA:
        found = sorted((args.eval_dir / corpus).glob("*.pdf"))
        if args.quick and found:
            found = [min(found, key=lambda p: p.stat().st_size)]
        files += [(corpus, f) for f in found]
    print(f"mode: {'quick' if args.quick else 'full'}; {len(files)} files; runs per file: pypdf {pypdf_repeats}, "
          f"pypdfium2 {args.repeats}")  # fmt: skip

    speed: dict[str, list[tuple[int, harness.Timing, int, harness.Timing]]] = {}  # pages and times per backend
    problems: list[list[object]] = []
    quality: dict[tuple[str, str], Counter] = {}
    only: Counter = Counter()
    examples: dict[str, list[str]] = {}
    bounded_range: Counter = Counter()
    started = time.perf_counter()
    for corpus, path in files:
        runs = {}
        for backend, repeats in (("pypdf", pypdf_repeats), ("pdfium", args.repeats)):
            try:
                runs[backend] = harness.median_of(repeats, lambda b=backend, p=path: extract(b, p, pages))
            except Exception as e:  # a benchmark reports a failing file, it does not stop
                problems.append([path.stem[:40], backend, f"{type(e).__name__}: {e}"[:100]])
        for backend, (texts, _) in runs.items():
            add_quality(quality.setdefault((quality_group(corpus, path), backend), Counter()), texts)
        print(f"  [{time.perf_counter() - started:6.1f}s] {corpus:22s} {path.stem[:40]}", file=sys.stderr, flush=True)
        if len(runs) < 2:
            continue
        (a, ta), (b, tb) = runs["pypdf"], runs["pdfium"]
        speed.setdefault(corpus, []).append((len(a), ta, len(b), tb))
        if len(a) != len(b):
            problems.append([path.stem[:40], "both", f"page counts differ: pypdf {len(a)}, pdfium {len(b)}"])
            continue
        for pa, pb in zip(a, b, strict=True):
            na, nb = set(NUMBER.findall(pa)), set(NUMBER.findall(pb.replace("\x02", "-")))
            only.update({(corpus, "pypdf"): len(na - nb), (corpus, "pdfium"): len(nb - na)})
            pair = matching_numbers(na - nb, nb - na)
            if pair and len(examples.setdefault(corpus, [])) < 4:
                examples[corpus].append(f"{context(pa, pair[0])!r} vs {context(pb, pair[1])!r}")
        for pb, pr in zip(b, extract("pdfium-range", path, pages), strict=True):
            cb, cr = Counter(WS.sub("", pb)), Counter(WS.sub("", pr))
            bounded_range.update(pages=1, differ=pb != pr, bounded=(cb - cr).total(), range=(cr - cb).total())

    rows = [speed_row(corpus, files_) for corpus, files_ in speed.items()]
    rows.append(speed_row("ALL", [f for files_ in speed.values() for f in files_]))
    harness.table(
        ["corpus", "files", "pages", "pypdf s", "pdfium s", "pypdf cpu ms/p", "pdfium cpu ms/p", "ratio cpu/p",
         "ratio wall"],
        rows,
        "Speed (open + extract every page + close). s = total wall seconds (median of runs per file); ms/p =\n"
        "  CPU ms a page, median over files; ratio cpu/p = median over files of pypdf/pdfium; ratio wall = of totals",
    )  # fmt: skip
    harness.table(["file", "backend", "problem"], problems or [["none", "", "every file read in both"]], "Problems")
    harness.table(
        ["corpus / file", "backend", "pages", "chars/page", "lines/page", "short lines %"],
        [[g, b, q["pages"], q["chars"] / max(q["pages"], 1), q["lines"] / max(q["pages"], 1),
          100 * q["short"] / max(q["lines"], 1)] for (g, b), q in quality.items()],
        "Text quality (chars = non-whitespace; short line = non-empty line of <= 2 characters)",
    )  # fmt: skip
    harness.table(
        ["corpus", "only in pypdf", "only in pdfium"],
        [[c.split("/")[0], only[(c, "pypdf")], only[(c, "pdfium")]] for c in speed],
        "Number tokens (1,234.56 / 29.55 / 2019) found on a page by one backend and not by the other",
    )
    for corpus, found in examples.items():
        print(f"  {corpus.split('/')[0]}, pypdf vs pdfium:\n" + "".join(f"    {e}\n" for e in found), end="")
    harness.table(
        ["pages", "pages differing", "chars only in bounded", "chars only in range"],
        [[bounded_range[k] for k in ("pages", "differ", "bounded", "range")]],
        "pypdfium2 get_text_bounded() vs get_text_range() on the same pages (non-whitespace characters)",
    )
    table_samples(args.eval_dir)
    encryption(next(iter(sorted((args.eval_dir / "policies_zh").glob("*投保须知.pdf"))), None))
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return 0


def speed_row(label: str, files: list[tuple[int, harness.Timing, int, harness.Timing]]) -> list[object]:
    ta, tb = sum(a.wall for _, a, _, _ in files), sum(b.wall for _, _, _, b in files)
    cpu_a = [1000 * a.cpu / max(n, 1) for n, a, _, _ in files]  # ms a page
    cpu_b = [1000 * b.cpu / max(n, 1) for _, _, n, b in files]
    ratios = [x / y for x, y in zip(cpu_a, cpu_b, strict=True) if y]
    return [label.split("/")[0], len(files), sum(f[0] for f in files), ta, tb, median(cpu_a), median(cpu_b),
            median(ratios), ta / tb if tb else "-"]  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
