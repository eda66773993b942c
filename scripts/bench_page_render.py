"""What rendering a cited PDF page for the chat page costs (`rag.sources`: pypdfium2 at RENDER_SCALE, then PNG),
with and without PNG optimisation: median and max seconds and size per page, over the first pages of some PDFs.

    python scripts/bench_page_render.py [PDF_OR_FOLDER ...] [--pages 3]

Default: ../shared/eval/policies_zh (the Chinese policies), the first 3 pages of each of its first 3 PDFs.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from rag.sources import RENDER_SCALE

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "eval" / "policies_zh"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[DEFAULT])
    parser.add_argument("--pages", type=int, default=3, help="pages per PDF")
    parser.add_argument("--files", type=int, default=3, help="PDFs per folder")
    args = parser.parse_args()
    import pypdfium2 as pdfium

    pdfs = [p for path in args.paths for p in (sorted(path.glob("*.pdf"))[: args.files] if path.is_dir() else [path])]
    if not pdfs:
        raise SystemExit(f"no PDF under {', '.join(map(str, args.paths))}")
    print(f"{len(pdfs)} PDFs, up to {args.pages} pages each, scale {RENDER_SCALE}")
    print("| png optimize | pages | median s | max s | median KB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for optimize in (False, True):
        seconds: list[float] = []
        sizes: list[int] = []
        for pdf in pdfs:
            document = pdfium.PdfDocument(str(pdf))
            try:
                for number in range(min(args.pages, len(document))):
                    started = time.perf_counter()
                    image = document[number].render(scale=RENDER_SCALE).to_pil()
                    buffer = io.BytesIO()
                    image.save(buffer, format="PNG", optimize=optimize)
                    seconds.append(time.perf_counter() - started)
                    sizes.append(len(buffer.getvalue()))
            finally:
                document.close()
        print(
            f"| {optimize} | {len(seconds)} | {statistics.median(seconds):.3f} | {max(seconds):.3f} "
            f"| {statistics.median(sizes) / 1024:.0f} |"
        )


if __name__ == "__main__":
    main()
