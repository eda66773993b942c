"""The ask pipeline: question → hits → numbered passages → prompt → answer with citations."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.citing import checked
from rag.condense import Condensed, as_history, condense
from rag.editions import as_of_date
from rag.errors import ConfigError, RequestError
from rag.gate import GateDecision, decide
from rag.gate import refusal_text as gate_refusal_text
from rag.generation import chat, extractive_answer, make_client
from rag.index import Index
from rag.prompts import PackedPrompt, pack_passages, question_language
from rag.records import Answer, Audit, Hit, Message, Passage, RetrievalMode
from rag.synonyms import expand_query

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from rag.config import Settings
    from rag.edition_scope import EditionScope
    from rag.retrieval import Searcher


def answer_question(
    question: str,
    settings: Settings,
    *,
    history: Sequence[Message | dict[str, Any]] | None = None,
    searcher: Searcher | None = None,
    top_k: int | None = None,
    mode: RetrievalMode | None = None,
    source: str | None = None,
    model: str | None = None,
    seed: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    as_of: str | date | None = None,
    product: str | None = None,
) -> Answer:
    """Condense a follow-up with its `history`, retrieve, then refuse (evidence too weak), answer extractively
    (no model configured) or ask the model; check the draft's citations, quotes and numbers; attach the audit
    record (and append it to the audit log).

    With RAG_QUERY_REWRITE or RAG_LLM_RERANK on and a model configured, retrieval goes through
    `rag.query_llm.search`; the rewritten queries only drive retrieval, and the refusal gate and the answer
    still use the (condensed) question.

    Only the editions in force on `as_of` (today when None) are searched, and only `product`'s documents when
    it is given (rag/edition_scope.py); documents that state no edition are always searched."""
    prepared = prepare(
        question,
        settings,
        history=history,
        searcher=searcher,
        top_k=top_k,
        mode=mode,
        source=source,
        model=model,
        seed=seed,
        as_of=as_of,
        product=product,
    )
    if prepared.decision.refuse:
        return finish(prepared, settings, refusal(prepared))
    if not settings.llm_configured():
        return finish(prepared, settings, checked(extractive(prepared)))
    generate_started = time.perf_counter()
    request = model_request(prepared, settings, model, seed, temperature, max_tokens)
    completion = chat(make_client(settings), request.body, settings.base_url)
    prepared.timings["generate_s"] = round(time.perf_counter() - generate_started, 6)
    call = request.call(completion.text, completion.prompt_tokens, completion.completion_tokens)
    return finish(prepared, settings, checked(call.answer), call)


@dataclass(frozen=True)
class Prepared:
    """A question made ready to answer: condensed, retrieved, numbered and past the refusal gate."""

    question: str
    condensed: Condensed
    history: tuple[Message, ...]
    hits: list[Hit]
    passages: list[Passage]
    decision: GateDecision
    retrieval_mode: RetrievalMode
    top_k: int
    source: str | None
    optimisation: dict[str, Any] | None
    scope: EditionScope | None
    searcher: Searcher
    started: float
    timings: dict[str, float]  # filled in as the stages run; frozen record, growing log


def prepare(
    question: str,
    settings: Settings,
    *,
    history: Sequence[Message | dict[str, Any]] | None = None,
    searcher: Searcher | None = None,
    top_k: int | None = None,
    mode: RetrievalMode | None = None,
    source: str | None = None,
    model: str | None = None,
    seed: int | None = None,
    as_of: str | date | None = None,
    product: str | None = None,
) -> Prepared:
    """Everything before the answer is written: condense, retrieve, gate. Errors here (index, model while
    condensing) come before any text is streamed."""
    if not any(ch.isalnum() for ch in question):
        raise RequestError(f"the question {question.strip()!r} has no words: ask a question in Chinese or English")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    searcher = searcher or Index(settings).searcher()
    if source is not None:
        check_source(source, searcher.manifest.files)
    turns = as_history(history)
    condensed = condense(question, turns, settings, model=model, seed=seed)
    if turns:
        timings["condense_s"] = round(time.perf_counter() - started, 6)
    k = top_k or settings.top_k
    retrieval_mode = mode or settings.retrieval_mode
    scope = searcher.edition_scope(as_of_date(as_of), product)
    hits, optimisation = _retrieve(
        condensed.standalone, settings, searcher, k, retrieval_mode, source, model, scope
    )
    timings["retrieve_s"] = round(time.perf_counter() - started, 6)
    passages = to_passages(hits, searcher.manifest.sources_of)
    decision = gate(condensed.standalone, hits, settings, searcher)
    return Prepared(
        question,
        condensed,
        turns,
        hits,
        passages,
        decision,
        retrieval_mode,
        k,
        source,
        optimisation,
        scope,
        searcher,
        started,
        timings,
    )


def refusal(prepared: Prepared) -> Answer:
    text = gate_refusal_text(prepared.decision, question_language(prepared.question))
    return Answer(question=prepared.question, answer=text, mode="refused", passages=prepared.passages)


def extractive(prepared: Prepared) -> Answer:
    """The extractive draft (not yet checked), quoting the passages for the standalone question."""
    text = extractive_answer(prepared.condensed.standalone, prepared.passages, expand=expand_query)
    return Answer(question=prepared.question, answer=text, mode="extractive", passages=prepared.passages)


def finish(prepared: Prepared, settings: Settings, answer: Answer, call: ModelCall | None = None) -> Answer:
    """The answer with its condensed question and audit record, appended to the audit log."""
    prepared.timings["total_s"] = round(time.perf_counter() - prepared.started, 6)
    hits, passages = prepared.hits, prepared.passages
    audit = Audit(
        index_fingerprint=prepared.searcher.fingerprint,
        retrieval_mode=prepared.retrieval_mode,
        top_k=prepared.top_k,
        source_filter=prepared.source,
        chunks=tuple(_scores_of(p, h) for p, h in zip(passages, hits, strict=True)),
        refusal={"top_dense_score": top_dense_score(hits), **prepared.decision.to_dict()},
        mode=answer.mode,
        request_sha256=call.request_sha256 if call else None,
        tokens=call.tokens if call else {},
        packing=call.packing if call else None,
        query_optimisation=prepared.optimisation,
        editions=_editions_audit(prepared.scope, answer),
        condense=prepared.condensed.to_audit() if prepared.history else None,
        timings=dict(prepared.timings),
        model=answer.model,
        seed=answer.seed,
        temperature=answer.temperature,
    )
    answer = replace(answer, audit=audit, condensed_question=prepared.condensed.standalone)
    if settings.audit_log is not None:
        append_audit_log(settings.audit_log, answer)
    return answer


def check_source(source: str, stored: Collection[str]) -> None:
    """A RequestError when `source` (--source) names no stored file, listing the stored names closest to it.
    No check when nothing is listed locally (a shared Chroma server's replica may have no manifest)."""
    if not stored or source in stored:
        return
    import difflib

    by_name: dict[str, list[str]] = {}
    for name in stored:
        by_name.setdefault(Path(name).name, []).append(name)
    same_name = sorted(by_name.get(Path(source).name, []))
    close = difflib.get_close_matches(source, list(stored), n=5, cutoff=0.5)
    close += [
        full for name in difflib.get_close_matches(Path(source).name, list(by_name), n=5, cutoff=0.5)
        for full in sorted(by_name[name])
    ]
    closest = list(dict.fromkeys([*same_name, *close]))[:5]
    hint = f"the closest: {', '.join(closest)}" if closest else f"{len(stored)} files are stored (`rag status`)"
    raise RequestError(f"--source {source!r} names no stored file; {hint}")


def _retrieve(
    question: str,
    settings: Settings,
    searcher: Searcher,
    k: int,
    mode: RetrievalMode,
    source: str | None,
    model: str | None,
    scope: EditionScope | None = None,
) -> tuple[list[Hit], dict[str, Any] | None]:
    """The hits for `question`, through the optional LLM rewrite and rerank when a model is configured."""
    if (settings.query_rewrite or settings.llm_rerank) and settings.llm_configured():
        from rag import query_llm  # rewritten queries only drive retrieval: gate and answer keep `question`

        return query_llm.search(question, settings, searcher, k, mode, source, model=model, scope=scope)
    return searcher.search(question, k, mode, source, scope=scope), None


def _editions_audit(scope: EditionScope | None, answer: Answer) -> dict[str, Any] | None:
    """The date and product asked about, the editions searched and set aside, and the editions the answer's
    citations (or, without citations, its passages) come from."""
    if scope is None:
        return None
    cited = [c.edition for c in answer.citations] or [p.edition for p in answer.passages]
    used = list(dict.fromkeys(edition.label() for edition in cited if edition is not None))
    return {**scope.to_dict(), "used": used}


def _scores_of(passage: Passage, hit: Hit) -> dict[str, Any]:
    return {
        "n": passage.n,
        "chunk_id": passage.chunk_id,
        "score": passage.score,
        "dense_score": hit.dense_score,
        "lexical_score": hit.lexical_score,
    }


@dataclass(frozen=True)
class ModelCall:
    """One answer from the chat model, with what the audit keeps of the request."""

    answer: Answer
    request_sha256: str
    tokens: dict[str, Any]
    packing: dict[str, Any]


@dataclass(frozen=True)
class ModelRequest:
    """The chat request for a prepared question: the passages packed under the token budget with as much
    history as fits, the fixed seed."""

    body: dict[str, Any]
    packed: PackedPrompt
    question: str
    window: int

    def call(self, text: str, prompt_reported: int | None = None, completion_reported: int | None = None) -> ModelCall:
        tokens = {
            "prompt": self.packed.prompt_tokens,
            "budget": self.packed.budget,
            "context_window": self.window,
            "max_tokens": self.body["max_tokens"],
            "prompt_reported": prompt_reported,
            "completion_reported": completion_reported,
        }
        answer = Answer(
            question=self.question,
            answer=text.strip(),
            mode="llm",
            passages=self.packed.passages,
            model=self.body["model"],
            seed=self.body["seed"],
            temperature=self.body["temperature"],
        )
        packed = self.packed
        packing: dict[str, Any] = {
            "sent": [p.n for p in packed.passages],
            "dropped": packed.dropped,
            "trimmed": packed.trimmed,
        }
        if packed.history_sent or packed.history_dropped:
            packing |= {"history_sent": packed.history_sent, "history_dropped": packed.history_dropped}
        return ModelCall(answer, request_sha256(self.body), tokens, packing)


def model_request(
    prepared: Prepared,
    settings: Settings,
    model: str | None,
    seed: int | None,
    temperature: float | None,
    max_tokens: int | None,
) -> ModelRequest:
    chosen_max_tokens = max_tokens or settings.max_tokens
    window = settings.effective_context_window()
    packed = pack_passages(
        prepared.question,
        prepared.passages,
        context_window=window,
        max_tokens=chosen_max_tokens,
        history=prepared.history,
        condensed=prepared.condensed.standalone,
    )
    body: dict[str, Any] = {
        "model": model or settings.chat_model,
        "messages": packed.messages,
        "seed": settings.seed if seed is None else seed,
        "temperature": settings.temperature if temperature is None else temperature,
        "max_tokens": chosen_max_tokens,
    }
    return ModelRequest(body, packed, prepared.question, window)


def top_dense_score(hits: list[Hit]) -> float | None:
    scores = [hit.dense_score for hit in hits if hit.dense_score is not None]
    return round(max(scores), 6) if scores else None


def gate(question: str, hits: list[Hit], settings: Settings, searcher: Searcher) -> GateDecision:
    """The evidence gate (rag/gate.py) over the searcher's lexical index and store; the threshold is the
    language's (RAG_REFUSAL_MIN_SCORE overrides it; 0 turns the gate off)."""
    language = question_language(question)
    threshold = settings.effective_refusal_min_score(language)

    def fetch_texts(ids: list[str]) -> list[str]:
        return [chunk.text for chunk in searcher.store.get_chunks(ids)]

    return decide(question, hits, threshold, language, searcher.lexical.get(), fetch_texts)


def request_sha256(request: dict[str, Any]) -> str:
    """sha256 of the exact request as canonical JSON (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def append_audit_log(path: Path, answer: Answer) -> None:
    """Append one JSON line for `answer`. Settings (and so any API key) never go into it."""
    record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **answer.to_dict()}
    line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line.encode("utf-8"))  # one write per line: concurrent askers do not interleave
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise ConfigError(f"cannot append to the audit log {path} ({exc}): fix RAG_AUDIT_LOG or its folder") from exc


def to_passages(hits: list[Hit], sources_of: Callable[[str], list[str]] | None = None) -> list[Passage]:
    """Number the hits. `sources_of(doc_sha256)` names every file with the same content (a duplicate file is
    stored once, under whichever name was written last): all of them are kept in `sources`."""
    return [
        Passage(
            n=n,
            source=_primary(hit, sources_of),
            sources=_sources(hit, sources_of),
            page=hit.chunk.page,
            text=hit.chunk.text,
            score=round(hit.score, 6),
            chunk_id=hit.chunk.id,
            clause=hit.chunk.clause,
            pages=hit.chunk.pages,
            heading_path=hit.chunk.heading_path,
            clause_spans=hit.chunk.clause_spans,
            kind=hit.chunk.kind,
            edition=hit.chunk.edition,
            dense_rank=hit.dense_rank,
            lexical_rank=hit.lexical_rank,
        )
        for n, hit in enumerate(hits, start=1)
    ]


def _sources(hit: Hit, sources_of: Callable[[str], list[str]] | None) -> tuple[str, ...]:
    known = tuple(sources_of(hit.chunk.doc_sha256)) if sources_of and hit.chunk.doc_sha256 else ()
    return known or (hit.chunk.source,)


def _primary(hit: Hit, sources_of: Callable[[str], list[str]] | None) -> str:
    sources = _sources(hit, sources_of)
    return hit.chunk.source if hit.chunk.source in sources else sources[0]
