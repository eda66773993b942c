"""A draft answer checked against the passages it was given: each citation resolved to its source, page and
the clause of the sentence it supports."""

from __future__ import annotations

from dataclasses import replace

from rag.records import Answer, Citation, Passage
from rag.text import CITATION_MARKER, sentence_spans
from rag.verify import parse_citations, verify_answer

__all__ = ["checked"]


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
        edition=passage.edition,
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
