"""Evaluation sets and retrieval metrics: pure functions, no index, no model.

Two dataset shapes, recognised from a folder's files (`detect_format`):

- InsQABench (`clause_objective.json`, `clause_subjective.json`): a fixed corpus of passages and questions
  whose relevant passage is known -> `PassageDataset`, scored with `recall_at_k` / `reciprocal_rank_at_k`.
- FinanceBench (`questions.jsonl`, `pdfs/`): PDFs to ingest and questions with evidence pages ->
  `DocumentDataset`, scored with `page_hit_at_k` over the pages of the retrieved chunks.

Metric names used in `RunMetrics.metrics` come from `passage_metrics` / `page_metrics`:
"recall@k", "mrr@k", "page_hit@k".
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rag.errors import DatasetError

DatasetFormat = Literal["insqabench", "financebench"]

INSQA_OBJECTIVE = "clause_objective.json"
INSQA_SUBJECTIVE = "clause_subjective.json"
FINANCEBENCH_QUESTIONS = "questions.jsonl"
FINANCEBENCH_PDFS = "pdfs"

_ID_LENGTH = 16  # hex characters of the sha256: 64 bits, no collisions at corpus sizes we meet


@dataclass(frozen=True)
class CorpusPassage:
    id: str  # passage_id(text): identical texts share one id, so duplicates collapse
    text: str  # whitespace-normalised
    source: str  # the contract name (first one seen when the same text appears in several)


@dataclass(frozen=True)
class EvalQuery:
    id: str
    question: str
    relevant_ids: frozenset[str] = frozenset()
    relevant_pages: frozenset[tuple[str, int]] = frozenset()  # (pdf file name, 1-based page)
    source: str | None = None  # the question's own document file name (FinanceBench)


@dataclass(frozen=True)
class PassageDataset:
    name: str
    corpus: list[CorpusPassage]
    queries: list[EvalQuery]


@dataclass(frozen=True)
class DocumentDataset:
    name: str
    files: list[Path]  # every PDF under pdfs/, sorted by name
    queries: list[EvalQuery]


@dataclass
class RunMetrics:
    mode: str
    n_queries: int
    metrics: dict[str, float]
    latency_ms_p50: float
    latency_ms_p95: float
    embed_seconds: float


# ---------------------------------------------------------------------------------------------- datasets


def normalise_text(text: str) -> str:
    """Collapse whitespace runs to one space and strip: the data has double spaces and trailing blanks."""
    return " ".join(text.split())


def passage_id(text: str) -> str:
    """The content-derived id of a passage: a shortened sha256 of its normalised text."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()[:_ID_LENGTH]


def detect_format(folder: Path) -> DatasetFormat:
    """Recognise an evaluation folder from its files; a clear `DatasetError` (a ValueError) otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"evaluation dataset folder not found: {folder}")
    insqa = (folder / INSQA_OBJECTIVE).is_file() or (folder / INSQA_SUBJECTIVE).is_file()
    finbench = (folder / FINANCEBENCH_QUESTIONS).is_file() and (folder / FINANCEBENCH_PDFS).is_dir()
    if insqa and finbench:
        raise DatasetError(f"{folder} holds the files of both InsQABench and FinanceBench: keep one dataset per folder")
    if insqa:
        return "insqabench"
    if finbench:
        return "financebench"
    raise DatasetError(
        f"{folder} is not a recognised evaluation dataset: expected {INSQA_OBJECTIVE} and/or "
        f"{INSQA_SUBJECTIVE} (InsQABench), or {FINANCEBENCH_QUESTIONS} with a {FINANCEBENCH_PDFS}/ folder "
        "(FinanceBench)"
    )


def load_dataset(folder: Path, limit: int | None = None) -> PassageDataset | DocumentDataset:
    """Load the dataset in `folder`; `limit` keeps the first N queries, the corpus stays whole."""
    if detect_format(folder) == "insqabench":
        return load_insqabench(folder, limit)
    return load_financebench(folder, limit)


# The objective prompt: "...\n这段文字来自的合同是：<contract>\n片段内容：<snippet>\n用户提问：<question>".
# The question may run over several lines (3 of the 960 items), so it takes the rest of the prompt.
_OBJECTIVE_PROMPT = re.compile(
    r"这段文字来自的合同是\s*[：:]\s*(?P<contract>[^\n]*?)\s*\n"
    r"\s*片段内容\s*[：:]\s*(?P<snippet>.*?)\s*\n"
    r"\s*用户提问\s*[：:]\s*(?P<question>.*?)\s*\Z",
    re.DOTALL,
)


def _parse_objective_prompt(prompt: str) -> tuple[str, str, str] | None:
    """(contract, snippet, question) from an objective prompt, or None when the markers are not there."""
    match = _OBJECTIVE_PROMPT.search(prompt)
    if match is None:
        return None
    contract, snippet, question = (match.group(g).strip() for g in ("contract", "snippet", "question"))
    if not (contract and snippet and question):
        return None
    return contract, snippet, question


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be a non-negative number of queries, got {limit}")


class _Corpus:
    """Passages by id, in first-seen order; the same text seen again keeps its first source."""

    def __init__(self) -> None:
        self._passages: dict[str, CorpusPassage] = {}

    def add(self, text: str, source: str) -> str:
        text = normalise_text(text)
        pid = passage_id(text)
        self._passages.setdefault(pid, CorpusPassage(id=pid, text=text, source=source))
        return pid

    def passages(self) -> list[CorpusPassage]:
        return list(self._passages.values())


def load_insqabench(folder: Path, limit: int | None = None) -> PassageDataset:
    """InsQABench clause QA as a passage-retrieval set.

    Corpus: the unique evidence snippets of the objective prompts plus the `p` paragraphs of the subjective
    set, deduplicated by normalised text. Queries: the objective questions (id "objective-<id>") then the
    subjective ones (id "subjective-<contract n>-<question n>", 1-based), each relevant to its own passage.
    """
    _check_limit(limit)
    folder = Path(folder)
    objective_path, subjective_path = folder / INSQA_OBJECTIVE, folder / INSQA_SUBJECTIVE
    if not objective_path.is_file() and not subjective_path.is_file():
        raise DatasetError(f"{folder} has neither {INSQA_OBJECTIVE} nor {INSQA_SUBJECTIVE}")
    corpus = _Corpus()
    queries: list[EvalQuery] = []
    if objective_path.is_file():
        queries += _insqa_objective(objective_path, corpus)
    if subjective_path.is_file():
        queries += _insqa_subjective(subjective_path, corpus)
    return PassageDataset(
        name=folder.name,
        corpus=corpus.passages(),
        queries=queries if limit is None else queries[:limit],
    )


def _insqa_objective(path: Path, corpus: _Corpus) -> list[EvalQuery]:
    """The objective questions, each relevant to the evidence snippet of its prompt (added to `corpus`)."""
    items = _read_json(path)
    if not isinstance(items, list):
        raise DatasetError(f"{path}: expected a JSON list of items, got {type(items).__name__}")
    queries: list[EvalQuery] = []
    for n, item in enumerate(items, start=1):
        item_id = item.get("id", n) if isinstance(item, dict) else n
        prompt = None
        if isinstance(item, dict):
            prompt = item.get("input", item.get("prompt"))
        parsed = _parse_objective_prompt(prompt) if isinstance(prompt, str) else None
        if parsed is None:
            raise DatasetError(
                f"{path}: item {item_id} has no prompt ('input') with the markers "
                "这段文字来自的合同是：… 片段内容：… 用户提问：…"
            )
        contract, snippet, question = parsed
        pid = corpus.add(snippet, contract)
        queries.append(EvalQuery(id=f"objective-{item_id}", question=question, relevant_ids=frozenset({pid})))
    return queries


def _insqa_subjective(path: Path, corpus: _Corpus) -> list[EvalQuery]:
    """The subjective questions, each relevant to its paragraph `p` (added to `corpus`)."""
    contracts = _read_json(path)
    if not isinstance(contracts, dict):
        raise DatasetError(
            f"{path}: expected an object {{contract: {{question: {{p, answer}}}}}}, got {type(contracts).__name__}"
        )
    queries: list[EvalQuery] = []
    for c, (contract, by_question) in enumerate(contracts.items(), start=1):
        if not isinstance(by_question, dict):
            raise DatasetError(f"{path}: contract {contract!r} does not map questions to items")
        for q, (question, item) in enumerate(by_question.items(), start=1):
            paragraph = item.get("p") if isinstance(item, dict) else None
            if not isinstance(paragraph, str) or not paragraph.strip() or not question.strip():
                raise DatasetError(f"{path}: contract {contract!r}, question {q} has no paragraph p")
            pid = corpus.add(paragraph, contract.strip())
            queries.append(
                EvalQuery(
                    id=f"subjective-{c}-{q}",
                    question=question.strip(),
                    relevant_ids=frozenset({pid}),
                )
            )
    return queries


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}, line {number}: not valid JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{path}, line {number}: expected a JSON object")
        rows.append(row)
    return rows


def load_financebench(folder: Path, limit: int | None = None) -> DocumentDataset:
    """FinanceBench as a document set: the PDFs under pdfs/ and questions with 1-based evidence pages.

    Each question's document is pdfs/<doc_name>.pdf. Evidence pages come from every entry of its `evidence`
    list (`evidence_page_num`, 0-based in the data, is shifted to 1-based); an entry's own `doc_name`
    (or `evidence_doc_name`) names its document, defaulting to the question's.
    """
    _check_limit(limit)
    folder = Path(folder)
    questions_path, pdf_dir = folder / FINANCEBENCH_QUESTIONS, folder / FINANCEBENCH_PDFS
    if not questions_path.is_file() or not pdf_dir.is_dir():
        raise DatasetError(f"{folder} needs {FINANCEBENCH_QUESTIONS} and a {FINANCEBENCH_PDFS}/ folder")
    files = sorted((p for p in pdf_dir.iterdir() if p.is_file() and p.suffix.lower() == ".pdf"), key=lambda p: p.name)
    available = {p.name for p in files}

    queries: list[EvalQuery] = []
    missing: set[str] = set()
    for n, row in enumerate(_read_jsonl(questions_path), start=1):
        qid = str(row.get("financebench_id") or f"line-{n}")
        question, doc_name = row.get("question"), row.get("doc_name")
        if not isinstance(question, str) or not question.strip() or not isinstance(doc_name, str):
            raise DatasetError(f"{questions_path}: {qid} lacks 'question' or 'doc_name'")
        source = f"{doc_name}.pdf"
        pages: set[tuple[str, int]] = set()
        evidence = row.get("evidence") or []
        if not isinstance(evidence, list):
            raise DatasetError(f"{questions_path}: {qid} has an 'evidence' that is not a list")
        for entry in evidence:
            if not isinstance(entry, dict):
                raise DatasetError(f"{questions_path}: {qid} has an evidence entry that is not an object")
            evidence_doc = entry.get("doc_name") or entry.get("evidence_doc_name") or doc_name
            page = entry.get("evidence_page_num")
            try:
                page_number = int(page)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise DatasetError(
                    f"{questions_path}: {qid} has an evidence page that is not a number: {page!r}"
                ) from None
            if page_number < 0:
                raise DatasetError(f"{questions_path}: {qid} has a negative evidence page: {page_number}")
            pages.add((f"{evidence_doc}.pdf", page_number + 1))
        if not pages:
            raise DatasetError(f"{questions_path}: {qid} has no evidence page")
        missing.update(name for name in {source, *(name for name, _ in pages)} if name not in available)
        queries.append(EvalQuery(id=qid, question=question.strip(), relevant_pages=frozenset(pages), source=source))
    if missing:
        raise DatasetError(
            f"{pdf_dir} lacks {len(missing)} PDF(s) the questions refer to: {', '.join(sorted(missing))}"
        )
    return DocumentDataset(
        name=folder.name,
        files=files,
        queries=queries if limit is None else queries[:limit],
    )


# ---------------------------------------------------------------------------------------------- metrics


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def recall_at_k(ranked_ids: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Fraction of the relevant ids found among the top k (with one relevant passage: hit@k)."""
    _check_k(k)
    if not relevant:
        raise ValueError("recall is undefined for a query without relevant ids")
    wanted = set(relevant)
    return len(wanted.intersection(ranked_ids[:k])) / len(wanted)


def reciprocal_rank_at_k(ranked_ids: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1 / rank of the first relevant id within the top k; 0.0 when none is there."""
    _check_k(k)
    wanted = set(relevant)
    for rank, rid in enumerate(ranked_ids[:k], start=1):
        if rid in wanted:
            return 1.0 / rank
    return 0.0


def page_hit_at_k(
    ranked_pages: Sequence[Collection[tuple[str, int]]],
    relevant_pages: Collection[tuple[str, int]],
    k: int,
) -> float:
    """1.0 if any evidence page is among the pages of the top-k chunks (a chunk may span several pages)."""
    _check_k(k)
    wanted = set(relevant_pages)
    return 1.0 if any(not wanted.isdisjoint(pages) for pages in ranked_pages[:k]) else 0.0


def passage_metrics(ranked_ids: Sequence[str], relevant: Collection[str], ks: Iterable[int]) -> dict[str, float]:
    """One query's "recall@k" for every k and "mrr@<largest k>"."""
    ks = sorted(set(ks))
    if not ks:
        raise ValueError("no k given")
    scores = {f"recall@{k}": recall_at_k(ranked_ids, relevant, k) for k in ks}
    scores[f"mrr@{ks[-1]}"] = reciprocal_rank_at_k(ranked_ids, relevant, ks[-1])
    return scores


def page_metrics(
    ranked_pages: Sequence[Collection[tuple[str, int]]],
    relevant_pages: Collection[tuple[str, int]],
    ks: Iterable[int],
) -> dict[str, float]:
    """One query's "page_hit@k" for every k."""
    ks = sorted(set(ks))
    if not ks:
        raise ValueError("no k given")
    return {f"page_hit@{k}": page_hit_at_k(ranked_pages, relevant_pages, k) for k in ks}


def parse_ks(text: str) -> tuple[int, ...]:
    """Parse the text of a --k option, like 1,5,10, into sorted unique ks, each at least 1."""
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"k must be a comma-separated list of whole numbers, like 1,5,10: got {text!r}") from None
    if not ks or ks[0] < 1:
        raise ValueError(f"k must be a comma-separated list of numbers of at least 1, like 1,5,10: got {text!r}")
    return tuple(ks)


def summarise(per_query: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over the queries, keys in first-seen order; every query must have them all."""
    if not per_query:
        return {}
    names = list(per_query[0])
    for scores in per_query:
        if set(scores) != set(names):
            raise ValueError(f"queries scored on different metrics: {sorted(names)} vs {sorted(scores)}")
    return {name: math.fsum(scores[name] for scores in per_query) / len(per_query) for name in names}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100), linear between closest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def format_table(runs: list[RunMetrics], title: str) -> str:
    """A plain aligned text table: one row per mode, the metric columns, p50/p95 latency, embed seconds."""
    names: list[str] = []
    for run in runs:
        names.extend(name for name in run.metrics if name not in names)
    header = ["mode", "queries", *names, "p50 ms", "p95 ms", "embed s"]
    rows = [
        [
            run.mode,
            str(run.n_queries),
            *(f"{run.metrics[name]:.3f}" if name in run.metrics else "-" for name in names),
            f"{run.latency_ms_p50:.1f}",
            f"{run.latency_ms_p95:.1f}",
            f"{run.embed_seconds:.1f}",
        ]
        for run in runs
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([title, line(header), rule, *(line(row) for row in rows)])
