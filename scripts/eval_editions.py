"""How many documents get each edition field from the rules of rag/editions.py, and whether it is right.

Reads the real documents in ../shared/eval through the same loader and rules as `rag ingest` (no sidecar, no
front matter: the documents' own words only) and prints, per document, the product, edition and dates found,
checked against what a person reads in each policy (EXPECTED, hand-read; a document not listed there is not a
policy, so any field found in it counts as a false find). Then a table per field: documents with the field
stated, found, right, wrong (found but not what is stated) and missed.

Run::

    PYTHONPATH=. .venv/bin/python scripts/eval_editions.py [--eval-dir ../shared/eval] [--all]

Then the same rules on the 371 contract names in InsQABench's prompts, each read as a document's title line.

`--all` also reads the annual reports and FinanceBench filings (not policies: a check for false finds; slow,
several minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from rag.discovery import discover
from rag.editions import FIELDS, extract_edition
from rag.loaders import load_pages
from rag.records import Page

# What each real policy document states, read by hand (None: the document does not state it).
EXPECTED: dict[str, dict[str, str | None]] = {
    "中华借款人意外伤害保险条款.pdf": {
        "product": "中华借款人意外伤害保险",
        "edition": "中华人寿[2016]意外伤害保险027号",  # the filing code in its header
        "effective_from": None,  # "本合同自…开始生效" is the contract's start, with no date
        "effective_to": None,
    },
    "中华借款人意外伤害保险投保须知.pdf": {
        "product": "中华借款人意外伤害保险",  # "本产品适用《中华借款人意外伤害保险》条款"
        "edition": None,
        "effective_from": None,
        "effective_to": None,
    },
    "中华联合人寿职业类别分类表.pdf": dict.fromkeys(FIELDS),  # an occupation table of the insurer, no product
    "BAJHLIP23020V012223_BajajAllianz_GlobalHealthCare_PolicyWordings.pdf": {
        "product": "Global Health Care",
        "edition": "BAJHLIP23020V012223",  # "Policy Wordings UIN- BAJHLIP23020V012223"
        "effective_from": None,  # only "the effective date of the Policy", undated
        "effective_to": None,
    },
}
POLICY_SETS = ("policies_zh", "policies_en")
TITLES = "insqabench"
# A title states an edition when it holds a year (2023版, （2019）, 2021-01-29, 泰康养发[2022]106号).
_STATES_EDITION = re.compile(r"(?:19|20)\d{2}")
OTHER_SETS = ("annual_reports_zh", "financebench_dev/pdfs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "eval")
    parser.add_argument("--all", action="store_true", help="also the annual reports and filings (not policies)")
    args = parser.parse_args()
    if not args.eval_dir.exists():
        print(f"{args.eval_dir} is absent: evaluation material lives beside the checkout in ../shared/eval")
        return 1
    sets = POLICY_SETS + (OTHER_SETS if args.all else ())
    files, _ = discover([args.eval_dir / name for name in sets])
    files = [file for file in files if file.path.suffix.lower() == ".pdf"]
    tally = {field: dict.fromkeys(("stated", "found", "right", "wrong", "missed"), 0) for field in FIELDS}
    print(f"{'document':<44} {'s':>5}  " + "  ".join(f"{field:<24}" for field in FIELDS))
    for file in files:
        started = time.perf_counter()
        edition = extract_edition(load_pages(file))
        seconds = time.perf_counter() - started
        expected = EXPECTED.get(file.path.name, dict.fromkeys(FIELDS))
        cells = []
        for field in FIELDS:
            got, want = getattr(edition, field), expected[field]
            row = tally[field]
            row["stated"] += want is not None
            row["found"] += got is not None
            row["right"] += got is not None and got == want
            row["wrong"] += got is not None and got != want
            row["missed"] += want is not None and got is None
            mark = "" if got == want else (" ✗" if got is not None else " (missed)")
            cells.append(f"{(got or '-') + mark:<24}")
        print(f"{file.path.name[:44]:<44} {seconds:5.1f}  " + "  ".join(cells))
    print(f"\n{len(files)} documents ({', '.join(sets)})")
    print(f"{'field':<16} {'stated':>6} {'found':>6} {'right':>6} {'wrong':>6} {'missed':>6}")
    for field, row in tally.items():
        print(f"{field:<16} " + " ".join(f"{row[key]:>6}" for key in ("stated", "found", "right", "wrong", "missed")))
    titles_table(args.eval_dir / TITLES)
    return 0


def contract_titles(folder: Path) -> list[str]:
    """The unique contract names of InsQABench's prompts ("这段文字来自的合同是：…"): real product titles."""
    names: set[str] = set()
    for name in ("clause_objective.json", "clause_subjective.json"):
        text = json.dumps(json.loads((folder / name).read_text(encoding="utf-8")), ensure_ascii=False)
        names.update(match.group(1).strip() for match in re.finditer(r"这段文字来自的合同是：(.*?)\\n", text))
    return sorted(names)


def titles_table(folder: Path) -> None:
    """Each InsQABench contract name read as the title line of a document. Proxies, not hand labels: a title
    states a product when it holds 保险 or 险, an edition when it holds a year; a find is counted "in title"
    when it is a piece of the title (a rule that made something up would fail that)."""
    if not folder.exists():
        print(f"\n{folder} is absent: no contract titles")
        return
    titles = contract_titles(folder)
    rows = {field: dict.fromkeys(("stated", "found", "in title", "missed"), 0) for field in ("product", "edition")}
    for title in titles:
        edition = extract_edition([Page(source="title", page=1, text=title)])
        bare = re.sub(r"\s+", "", title)
        for field, stated in (("product", "险" in title), ("edition", bool(_STATES_EDITION.search(title)))):
            got = getattr(edition, field)
            row = rows[field]
            row["stated"] += stated
            row["found"] += got is not None
            row["in title"] += got is not None and re.sub(r"\s+", "", got).replace("版", "") in bare.replace("版", "")
            row["missed"] += stated and got is None
    print(f"\n{len(titles)} InsQABench contract titles (proxies: stated = holds 险 / a year)")
    print(f"{'field':<16} {'stated':>6} {'found':>6} {'in title':>8} {'missed':>6}")
    for field, row in rows.items():
        print(f"{field:<16} {row['stated']:>6} {row['found']:>6} {row['in title']:>8} {row['missed']:>6}")


if __name__ == "__main__":
    sys.exit(main())
