"""The ask pipeline: question → hits → numbered passages → prompt → answer with citations."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from rag.generation import chat, extractive_answer, make_client
from rag.prompts import build_messages
from rag.records import Answer, Citation, Hit, Passage, RetrievalMode
from rag.retrieval import Searcher

if TYPE_CHECKING:
    from rag.config import Settings

_MARKER = re.compile(r"[\[【]\s*(\d+(?:\s*[,，]\s*\d+)*)\s*[\]】]")


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
    timings: dict[str, float] = {}
    started = time.perf_counter()
    searcher = searcher or Searcher(settings)
    k = top_k or settings.top_k
    hits = searcher.search(question, k, mode or settings.retrieval_mode, source)
    timings["retrieve_s"] = time.perf_counter() - started
    passages = to_passages(hits)

    if not settings.llm_configured():
        text = extractive_answer(question, passages)
        answer = Answer(question=question, answer=text, mode="extractive", passages=passages)
    else:
        chosen_model = model or settings.chat_model
        chosen_seed = settings.seed if seed is None else seed
        chosen_temperature = settings.temperature if temperature is None else temperature
        request = {
            "model": chosen_model,
            "messages": build_messages(question, passages),
            "seed": chosen_seed,
            "temperature": chosen_temperature,
            "max_tokens": max_tokens or settings.max_tokens,
        }
        generate_started = time.perf_counter()
        completion = chat(make_client(settings), request, settings.base_url)
        timings["generate_s"] = time.perf_counter() - generate_started
        answer = Answer(
            question=question,
            answer=completion.text,
            mode="llm",
            passages=passages,
            model=chosen_model,
            seed=chosen_seed,
            temperature=chosen_temperature,
        )
    answer.citations = cited(answer.answer, passages)
    timings["total_s"] = time.perf_counter() - started
    answer.audit = {"index_fingerprint": searcher.fingerprint, "timings": timings}
    return answer


def to_passages(hits: list[Hit]) -> list[Passage]:
    return [
        Passage(
            n=n,
            source=hit.chunk.source,
            page=hit.chunk.page,
            text=hit.chunk.text,
            score=round(hit.score, 6),
            chunk_id=hit.chunk.id,
            clause=hit.chunk.clause,
            dense_rank=hit.dense_rank,
            lexical_rank=hit.lexical_rank,
        )
        for n, hit in enumerate(hits, start=1)
    ]


def cited(text: str, passages: list[Passage]) -> list[Citation]:
    """The passages the answer's [n] markers point at, in order of first mention."""
    by_number = {passage.n: passage for passage in passages}
    seen: list[int] = []
    for match in _MARKER.finditer(text):
        for number in re.split(r"\s*[,，]\s*", match.group(1)):
            n = int(number)
            if n in by_number and n not in seen:
                seen.append(n)
    return [
        Citation(
            n=n,
            source=by_number[n].source,
            page=by_number[n].page,
            clause=by_number[n].clause,
            chunk_id=by_number[n].chunk_id,
        )
        for n in seen
    ]
