"""Typed records passed between the pipeline's stages.

Each stage takes and returns these; nothing else crosses a stage boundary. Page numbers are 1-based
everywhere a user can see them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rag.text import is_cjk

AnswerMode = Literal["llm", "extractive", "refused"]
Role = Literal["user", "assistant"]
RetrievalMode = Literal["dense", "lexical", "hybrid"]
# What a chunk holds: clause text, front matter (cover, reading guide, table of contents), table rows, or one
# FAQ question with its answer. Front matter is ranked below clause text and never answers a question.
ChunkKind = Literal["clause", "front", "table", "faq"]
PATH_SEPARATOR = " › "


def clause_at(spans: tuple[tuple[int, str], ...], offset: int, default: str | None) -> str | None:
    """The clause label in force at `offset` of a chunk's text, from its (offset, label) spans."""
    label = default
    for start, span_label in spans:
        if start > offset:
            break
        label = span_label
    return label


def _mostly_chinese(text: str) -> bool:
    sample = text[:400]
    return sum(1 for ch in sample if is_cjk(ch)) >= 0.3 * max(1, len(sample.replace(" ", "")))


@dataclass(frozen=True)
class Edition:
    """Which version of a product's document a file is: read from the document (rag/editions.py), its sidecar
    `<file>.meta.json` or its Markdown front matter. Dates are ISO `YYYY-MM-DD`; `effective_to` is the last
    day in force. Any field may be unknown."""

    product: str | None = None
    edition: str | None = None
    effective_from: str | None = None
    effective_to: str | None = None
    origin: str = "text"  # where the fields came from: "text", "front matter", "sidecar" (joined by "+")

    def is_empty(self) -> bool:
        return not (self.product or self.edition or self.effective_from or self.effective_to)

    def label(self) -> str:
        """How citations name it: "安心医疗保险 2023版, in force from 2023-01-01"."""
        name = " ".join(part for part in (self.product, self.edition) if part) or "(unnamed edition)"
        if self.effective_from and self.effective_to:
            return f"{name}, in force {self.effective_from} to {self.effective_to}"
        if self.effective_from:
            return f"{name}, in force from {self.effective_from}"
        if self.effective_to:
            return f"{name}, in force until {self.effective_to}"
        return name


@dataclass(frozen=True)
class Page:
    """The cleaned text of one page (a text file is one page)."""

    source: str
    page: int
    text: str
    kind: ChunkKind = "clause"  # "front" for a cover, reading guide or contents page; "table" for table rows


@dataclass(frozen=True)
class Document:
    """A loaded file: its pages and the hash of its raw bytes, which ids derive from."""

    source: str
    sha256: str
    pages: tuple[Page, ...]


@dataclass(frozen=True)
class Chunk:
    """A token-bounded piece of a document, the unit that is embedded, stored and cited."""

    id: str
    source: str
    doc_sha256: str
    index: int
    text: str
    pages: tuple[int, ...]
    clause: str | None = None  # the clause in force where the chunk starts: its heading path's last step
    heading_path: tuple[str, ...] = ()  # title › chapter › clause where the chunk starts
    # Where the clause changes inside the chunk: (offset in `text`, label). Short clauses may share a chunk;
    # each sentence keeps its own clause, so that a citation names the clause of the sentence it cites.
    clause_spans: tuple[tuple[int, str], ...] = ()
    kind: ChunkKind = "clause"
    edition: Edition | None = None  # the document's product, edition and dates, when known

    @property
    def page(self) -> int:
        return self.pages[0] if self.pages else 1

    def clause_at(self, offset: int) -> str | None:
        return clause_at(self.clause_spans, offset, self.clause)

    def retrieval_text(self, heading_context: bool = True) -> str:
        """What is embedded and indexed for the chunk: its text, after its heading path when `heading_context`
        (the path without the clause heading the text itself starts with). Chinese text keeps no path: on our
        customer sets the path lifted English page hit@5 from 89.8% to 98.0% but cost Chinese page hit@1,
        clause and fact hit 2–5 points each (README, "Answer quality")."""
        if not heading_context or not self.heading_path or _mostly_chinese(self.text):
            return self.text
        path = [step for step in self.heading_path if not self.text.lstrip("# ").startswith(step)]
        return f"{PATH_SEPARATOR.join(path)}\n{self.text}" if path else self.text


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and why it was chosen: its rank in each list and the fused score."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None
    dense_score: float | None = None
    lexical_score: float | None = None


@dataclass(frozen=True)
class Passage:
    """A hit as it was shown to the model, numbered [n]."""

    n: int
    source: str
    page: int
    text: str
    score: float
    chunk_id: str
    clause: str | None = None
    dense_rank: int | None = None
    lexical_rank: int | None = None
    # Every indexed file with this content (a duplicate file is stored once): `source` is one of them.
    sources: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()
    heading_path: tuple[str, ...] = ()
    clause_spans: tuple[tuple[int, str], ...] = ()
    kind: ChunkKind = "clause"
    edition: Edition | None = None

    def clause_at(self, offset: int) -> str | None:
        return clause_at(self.clause_spans, offset, self.clause)


@dataclass(frozen=True)
class Citation:
    n: int
    source: str
    page: int
    clause: str | None
    chunk_id: str
    sources: tuple[str, ...] = ()
    edition: Edition | None = None  # which edition of the product the cited passage belongs to


@dataclass(frozen=True)
class Message:
    """One earlier turn of a conversation, as the client sent it: the history a follow-up is read against."""

    role: Role
    content: str


@dataclass(frozen=True)
class FileFailure:
    path: str
    error: str


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[FileFailure] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    embedded: int = 0
    # Chroma's files were unreadable after a killed run: they were set aside and every file re-ingested.
    rebuilt: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Audit:
    """How an answer came about, serialised the same way wherever it goes (the answer's JSON, the audit log)."""

    index_fingerprint: dict[str, Any]
    retrieval_mode: str
    top_k: int
    source_filter: str | None
    chunks: tuple[dict[str, Any], ...]  # n, chunk_id, fused score, dense and lexical scores
    refusal: dict[str, Any]  # the evidence gate's decision, its score, threshold and signals
    mode: AnswerMode
    request_sha256: str | None = None  # of the chat request as canonical JSON; None without a model call
    tokens: dict[str, Any] = field(default_factory=dict)
    packing: dict[str, Any] | None = None
    query_optimisation: dict[str, Any] | None = None
    # the date and product asked about, the editions in force that were searched and those set aside
    editions: dict[str, Any] | None = None
    # How a follow-up became a standalone question: method, history turns, and the model request with its hash.
    condense: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    model: str | None = None
    seed: int | None = None
    temperature: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["chunks"] = list(self.chunks)
        for optional in ("packing", "query_optimisation", "editions", "condense"):
            if data[optional] is None:
                data.pop(optional)
        return data


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    mode: AnswerMode
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    model: str | None = None
    seed: int | None = None
    temperature: float | None = None
    warnings: list[str] = field(default_factory=list)
    unsupported_sentences: list[str] = field(default_factory=list)
    audit: Audit | None = None
    # The standalone question retrieval and the refusal gate used: `question` itself unless a follow-up was
    # rewritten with its history (None is read as "unchanged").
    condensed_question: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["condensed_question"] = self.condensed_question or self.question
        data["audit"] = self.audit.to_dict() if self.audit is not None else {}
        for optional in ("model", "seed", "temperature"):
            if data[optional] is None:
                data.pop(optional)
        return data
