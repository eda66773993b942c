"""The ask pipeline: question → hits → numbered passages → prompt → answer with citations."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError
from rag.gate import GateDecision, decide
from rag.gate import refusal_text as gate_refusal_text
from rag.generation import chat, extractive_answer, make_client
from rag.index import Index
from rag.prompts import pack_passages, question_language
from rag.records import Answer, Audit, Citation, Hit, Passage, RetrievalMode
from rag.synonyms import expand_query
from rag.text import CITATION_MARKER, sentence_spans
from rag.verify import parse_citations, verify_answer

if TYPE_CHECKING:
    from collections.abc import Callable

    from rag.config import Settings
    from rag.retrieval import Searcher


def answer_question(
    question: str,
    settings: Settings,
    *,
    searcher: Searcher | None = None,
    top_k: int | None = None,
    mode: RetrievalMode | None = None,
    source: str | None = None,
    model: str | None = None,
    seed: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> Answer:
    """Retrieve, then refuse (evidence too weak), answer extractively (no model configured) or ask the model;
    check the draft's citations, quotes and numbers; attach the audit record (and append it to the audit log).

    With RAG_QUERY_REWRITE or RAG_LLM_RERANK on and a model configured, retrieval goes through
    `rag.query_llm.search`; the rewritten queries only drive retrieval, and the refusal gate and the answer
    still use the original `question`."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    searcher = searcher or Index(settings).searcher()
    k = top_k or settings.top_k
    retrieval_mode = mode or settings.retrieval_mode
    hits, optimisation = _retrieve(question, settings, searcher, k, retrieval_mode, source, model)
    timings["retrieve_s"] = round(time.perf_counter() - started, 6)
    passages = to_passages(hits, searcher.manifest.sources_of)
    decision = gate(question, hits, settings, searcher)
    call: _ModelCall | None = None
    if decision.refuse:
        text = gate_refusal_text(decision, question_language(question))
        answer = Answer(question=question, answer=text, mode="refused", passages=passages)
    elif not settings.llm_configured():
        text = extractive_answer(question, passages, expand=expand_query)
        answer = checked(Answer(question=question, answer=text, mode="extractive", passages=passages))
    else:
        generate_started = time.perf_counter()
        call = _ask_model(question, passages, settings, model, seed, temperature, max_tokens)
        timings["generate_s"] = round(time.perf_counter() - generate_started, 6)
        answer = checked(call.answer)
    timings["total_s"] = round(time.perf_counter() - started, 6)
    audit = Audit(
        index_fingerprint=searcher.fingerprint,
        retrieval_mode=retrieval_mode,
        top_k=k,
        source_filter=source,
        chunks=tuple(_scores_of(p, h) for p, h in zip(passages, hits, strict=True)),
        refusal={"top_dense_score": top_dense_score(hits), **decision.to_dict()},
        mode=answer.mode,
        request_sha256=call.request_sha256 if call else None,
        tokens=call.tokens if call else {},
        packing=call.packing if call else None,
        query_optimisation=optimisation,
        timings=timings,
        model=answer.model,
        seed=answer.seed,
        temperature=answer.temperature,
    )
    answer = replace(answer, audit=audit)
    if settings.audit_log is not None:
        append_audit_log(settings.audit_log, answer)
    return answer


def _retrieve(
    question: str,
    settings: Settings,
    searcher: Searcher,
    k: int,
    mode: RetrievalMode,
    source: str | None,
    model: str | None,
) -> tuple[list[Hit], dict[str, Any] | None]:
    """The hits for `question`, through the optional LLM rewrite and rerank when a model is configured."""
    if (settings.query_rewrite or settings.llm_rerank) and settings.llm_configured():
        from rag import query_llm  # rewritten queries only drive retrieval: gate and answer keep `question`

        return query_llm.search(question, settings, searcher, k, mode, source, model=model)
    return searcher.search(question, k, mode, source), None


def _scores_of(passage: Passage, hit: Hit) -> dict[str, Any]:
    return {
        "n": passage.n,
        "chunk_id": passage.chunk_id,
        "score": passage.score,
        "dense_score": hit.dense_score,
        "lexical_score": hit.lexical_score,
    }


@dataclass(frozen=True)
class _ModelCall:
    """One answer from the chat model, with what the audit keeps of the request."""

    answer: Answer
    request_sha256: str
    tokens: dict[str, Any]
    packing: dict[str, Any]


def _ask_model(
    question: str,
    passages: list[Passage],
    settings: Settings,
    model: str | None,
    seed: int | None,
    temperature: float | None,
    max_tokens: int | None,
) -> _ModelCall:
    """Pack the passages under the token budget, send them with the fixed seed, and return the draft."""
    chosen_max_tokens = max_tokens or settings.max_tokens
    window = settings.effective_context_window()
    packed = pack_passages(question, passages, context_window=window, max_tokens=chosen_max_tokens)
    request: dict[str, Any] = {
        "model": model or settings.chat_model,
        "messages": packed.messages,
        "seed": settings.seed if seed is None else seed,
        "temperature": settings.temperature if temperature is None else temperature,
        "max_tokens": chosen_max_tokens,
    }
    completion = chat(make_client(settings), request, settings.base_url)
    tokens = {
        "prompt": packed.prompt_tokens,
        "budget": packed.budget,
        "context_window": window,
        "max_tokens": chosen_max_tokens,
        "prompt_reported": completion.prompt_tokens,
        "completion_reported": completion.completion_tokens,
    }
    answer = Answer(
        question=question,
        answer=completion.text,
        mode="llm",
        passages=packed.passages,
        model=request["model"],
        seed=request["seed"],
        temperature=request["temperature"],
    )
    packing = {"sent": [p.n for p in packed.passages], "dropped": packed.dropped, "trimmed": packed.trimmed}
    return _ModelCall(answer, request_sha256(request), tokens, packing)


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


def checked(answer: Answer) -> Answer:
    """The draft verified against the passages it was given: invalid markers removed, citations resolved (each
    naming the clause of the sentence it supports), warnings and unsupported sentences listed."""
    by_number = {passage.n: passage for passage in answer.passages}
    verification = verify_answer(answer.answer, {n: passage.text for n, passage in by_number.items()})
    claims = _claims_by_source(verification.answer)
    return replace(
        answer,
        answer=verification.answer,
        citations=[_citation(by_number[n], claims.get(n, [])) for n in verification.cited],
        unsupported_sentences=verification.unsupported_sentences,
        warnings=verification.warnings,
    )


def _claims_by_source(text: str) -> dict[int, list[str]]:
    """The sentences of an answer that cite each source, markers removed."""
    claims: dict[int, list[str]] = {}
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        markers = parse_citations(sentence)
        claim = CITATION_MARKER.sub("", sentence).strip()
        for _, _, numbers in markers:
            for n in numbers:
                claims.setdefault(n, []).append(claim)
    return claims


def _citation(passage: Passage, claims: list[str]) -> Citation:
    return Citation(
        n=passage.n,
        source=passage.source,
        page=passage.page,
        clause=passage.clause_at(_offset_in(passage.text, claims)),
        chunk_id=passage.chunk_id,
        sources=passage.sources,
        location=passage.location(),
    )


def _offset_in(text: str, claims: list[str]) -> int:
    """Where the first claim stands in the passage: found verbatim (an extractive answer quotes), else the
    passage sentence sharing the most characters with it (a model paraphrases); 0 when nothing is cited."""
    for claim in claims:
        core = claim.rstrip("。.!！?？;；").strip()
        if core and (found := text.find(core)) >= 0:
            return found
    if not claims:
        return 0
    wanted = set(claims[0])
    spans = sentence_spans(text) or [(0, len(text))]
    best = max(spans, key=lambda span: len(wanted & set(text[span[0] : span[1]])))
    return best[0]


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
            ocr=hit.chunk.ocr,
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
