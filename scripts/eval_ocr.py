"""OCR accuracy and speed on real policy pages: render text-layer pages to images, recognise them with the
engine `rag ingest` uses for scans (rag/ocr.py), and compare with the page's own text layer.

Character accuracy = 1 - edit distance / reference length, both sides with all whitespace removed (line
breaks and spacing are layout, not recognition). A second, order-free figure (the characters both share, as
multisets) separates recognition errors from reading-order differences (tables, two columns). The most
frequent character confusions are listed, so a missed target says what the errors are spent on.

    python scripts/eval_ocr.py --pages 10            # 10 Chinese + 10 English pages, evenly spaced
    python scripts/eval_ocr.py --pages 10 --threads 2

Needs the `ocr` extra (pip install 'rag[ocr]') and ../shared/eval (policies_zh, policies_en).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
SETS = {"zh": EVAL / "policies_zh", "en": EVAL / "policies_en"}
MIN_CHARS = 200  # a sampled page must hold at least this much text


def normalise(text: str) -> str:
    """Whitespace removed; full-width ASCII folded (PDF text layers and OCR disagree on ，vs , only as to
    width in some fonts: not counted as an error) and the PDFium hyphen marker undone."""
    import unicodedata

    text = text.replace("\x02", "-").replace("\ufffe", "")
    text = "".join(ch for ch in unicodedata.normalize("NFKC", text) if not ch.isspace())
    return text


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, O(len(a) * len(b)) time and O(len(b)) memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        append = current.append
        for j, cb in enumerate(b, start=1):
            append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def confusions(reference: str, recognised: str) -> Counter[str]:
    """What the differences are: "a→b" substitutions, "-x" characters missed, "+x" characters invented."""
    found: Counter[str] = Counter()
    matcher = difflib.SequenceMatcher(None, reference, recognised, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "replace" and i2 - i1 == j2 - j1:
            found.update(f"{x}→{y}" for x, y in zip(reference[i1:i2], recognised[j1:j2], strict=True))
        elif op in ("replace", "delete"):
            found.update(f"-{x}" for x in reference[i1:i2])
        if op in ("replace", "insert") and not (op == "replace" and i2 - i1 == j2 - j1):
            found.update(f"+{y}" for y in recognised[j1:j2])
    return found


def sample_pages(language: str, count: int) -> list[tuple[Path, int, str]]:
    """`count` pages with a text layer, spread evenly over the set's PDFs: (file, 0-based page, text)."""
    import pypdfium2 as pdfium

    candidates: list[tuple[Path, int, str]] = []
    for pdf in sorted(SETS[language].glob("*.pdf")):
        document = pdfium.PdfDocument(str(pdf))
        try:
            for index in range(len(document)):
                page = document[index]
                textpage = page.get_textpage()
                text = textpage.get_text_bounded()
                textpage.close()
                page.close()
                if len(normalise(text)) >= MIN_CHARS:
                    candidates.append((pdf, index, text))
        finally:
            document.close()
    if len(candidates) <= count:
        return candidates
    step = len(candidates) / count
    return [candidates[int(i * step)] for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=10, help="pages per language")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    parser.add_argument("--dpi", type=int, default=None, help="render resolution (default: rag.ocr.RENDER_DPI)")
    parser.add_argument("--languages", default="zh,en")
    parser.add_argument("--top", type=int, default=12, help="confusions listed per language")
    args = parser.parse_args()
    if not EVAL.is_dir():
        print(f"skipped: {EVAL} is missing", file=sys.stderr)
        return 0
    import pypdfium2 as pdfium

    from rag.ocr import RENDER_DPI, RapidOcr, render_page

    dpi = args.dpi or RENDER_DPI
    engine = RapidOcr(threads=args.threads)
    print(f"engine: {engine.name}, {args.threads} threads, {dpi} dpi, {os.cpu_count()} cores on this machine\n")
    print(
        "| lang | pages | char accuracy (median) | char accuracy (pooled) | order-free | pages/s (wall) "
        "| CPU s/page | pages/s if the cores were free |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    details: list[str] = []
    for language in args.languages.split(","):
        pages = sample_pages(language, args.pages)
        accuracies: list[float] = []
        seconds: list[float] = []
        cpu: list[float] = []
        errors = total = shared = 0
        confused: Counter[str] = Counter()
        for pdf, index, text in pages:
            document = pdfium.PdfDocument(str(pdf))
            try:
                started, cpu_started = time.perf_counter(), time.process_time()
                image = render_page(document, index, dpi)
                recognised = engine.recognise(image)
                seconds.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
            finally:
                document.close()
            reference, hypothesis = normalise(text), normalise(recognised)
            distance = edit_distance(reference, hypothesis)
            accuracies.append(1 - distance / len(reference))
            errors += distance
            total += len(reference)
            shared += sum((Counter(reference) & Counter(hypothesis)).values())
            confused.update(confusions(reference, hypothesis))
            details.append(
                f"  {language} {pdf.name} p{index + 1}: {accuracies[-1]:.2%} "
                f"({seconds[-1]:.1f} s wall, {cpu[-1]:.1f} s CPU)"
            )
        if not pages:
            continue
        print(
            f"| {language} | {len(pages)} | {statistics.median(accuracies):.2%} | {1 - errors / total:.2%} "
            f"| {shared / total:.2%} | {len(pages) / sum(seconds):.3f} | {statistics.median(cpu):.1f} "
            f"| {len(pages) * min(args.threads, os.cpu_count() or 1) / sum(cpu):.3f} |"
        )
        kinds = Counter(
            "substituted" if "→" in k else "missed" if k[0] == "-" else "invented" for k in confused.elements()
        )
        top = ", ".join(f"{k} ×{n}" for k, n in confused.most_common(args.top))
        details.append(f"  {language} errors: {dict(kinds)}; most frequent: {top}")
    print(
        "\nTimes count rendering and recognition, not the text-layer read. On a shared machine the wall-clock rate "
        "depends on the load; the CPU time (all threads) divided over the cores gives the rate on idle cores."
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}\n")
    print("\n".join(re.sub(r"\s+$", "", line) for line in details))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
