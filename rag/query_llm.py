"""Query optimisation with the chat model, both steps optional and off by default (README, "Query optimisation").

- Rewrite (`RAG_QUERY_REWRITE`): one call restates the customer's question in the documents' vocabulary and
  splits a compound question into at most three sub-queries. The original question and every rewritten query
  are searched, and the lists are fused by reciprocal rank.
- Rerank (`RAG_LLM_RERANK`): one listwise call over the top `RAG_RERANK_DEPTH` hits (each passage cut to
  about 300 characters) returns the model's order; hits it does not mention follow in their fused order.

The rewritten queries only drive retrieval: the refusal gate and the answer (extractive or by the model) still
use the ORIGINAL question, and so does the rerank. A hit found only by a rewritten query carries no dense or
lexical score (those scores would measure the rewritten query, not the customer's question), so the gate judges
the original question's similarity alone. Either call may fail (model error, unusable JSON): the step then
falls back (the original question alone, the fused order), the ask goes on, and the warning is in the audit.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rag.errors import ModelError
from rag.generation import Completion, chat, make_client
from rag.prompts import count_message_tokens, question_language
from rag.qa import request_sha256  # rag.qa imports this module only inside answer_question: no cycle
from rag.retrieval import fuse_ranked_lists
from rag.tokens import count_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence

    import openai

    from rag.config import Settings
    from rag.edition_scope import EditionScope
    from rag.records import Hit, RetrievalMode
    from rag.retrieval import Searcher

logger = logging.getLogger(__name__)

MAX_SUBQUERIES = 3
REWRITE_MAX_TOKENS = 150
RERANK_MAX_TOKENS = 100
RERANK_PASSAGE_CHARS = 300
LANGUAGE_NAMES = {"zh": "Chinese (keep the question's own script, simplified or traditional)", "en": "English"}

REWRITE_SYSTEM = (
    "You turn a customer's question about an insurance policy into search queries for the policy documents "
    "(clauses, definitions, exclusions, FAQs, tables). Restate the question in the wording such documents use: "
    "'hesitation period' or 'free-look period' (犹豫期), 'waiting period' (等待期), 'sum insured' (保险金额), "
    "'deductible' (免赔额), 'exclusions' (责任免除), 'surrender' (退保), 'claim' (理赔), 'insured' (被保险人). "
    "If the question asks about several things, write one self-contained query per thing, at most three; "
    "otherwise write one query. Keep every fact of the question (ages, amounts, dates, product names); add none, "
    "and do not answer. Write in the language of the question. "
    'Reply with JSON only, no other text: {"queries": ["..."]}'
)
REWRITE_USER = "Language of the question: {language}\nQuestion: {question}"

RERANK_SYSTEM = (
    "You rank numbered passages from insurance documents by how directly each one answers the customer's "
    "question: a passage that states the answer comes first, a passage on the same topic that does not answer "
    "comes later, and an unrelated passage is left out. Judge only from the passages' text. "
    'Reply with JSON only, no other text: {"ranking": [passage numbers, best first]}'
)
RERANK_USER = 'Question: {question}\n\nPassages:\n{passages}\n\nReply with {{"ranking": [...]}}.'


def search(
    question: str,
    settings: Settings,
    searcher: Searcher,
    k: int,
    mode: RetrievalMode,
    source: str | None = None,
    *,
    model: str | None = None,
    scope: EditionScope | None = None,
) -> tuple[list[Hit], dict[str, Any]]:
    """The top `k` hits for `question` with the optional rewrite and rerank applied, and their audit record
    (`{"rewrite": {...}, "rerank": {...}}`, each step present when it is on). Every query retrieves a pool of
    max(k, rerank_depth) hits. The ORIGINAL question, not a rewritten one, goes on to the refusal gate and
    the answer: the caller keeps it."""
    client = make_client(settings)
    chosen_model = model or settings.chat_model
    pool = max(k, settings.rerank_depth)
    original = searcher.search(question, pool, mode, source, scope=scope)
    hits = original
    audit: dict[str, Any] = {}
    if settings.query_rewrite:
        queries, audit["rewrite"] = rewrite(question, client, settings, chosen_model)
        lists = [original, *(searcher.search(query, pool, mode, source, scope=scope) for query in queries)]
        hits = scored_by_original(fuse_ranked_lists(lists, pool, settings.rrf_k), original)
    if settings.llm_rerank and len(hits) < 2:
        audit["rerank"] = {"skipped": f"{len(hits)} hit(s): nothing to rank"}
    elif settings.llm_rerank:
        depth = settings.rerank_depth
        ranked, audit["rerank"] = rerank(question, hits[:depth], client, settings, chosen_model)
        hits = ranked + hits[depth:]
    return hits[:k], audit


def scored_by_original(fused: Sequence[Hit], original: Sequence[Hit]) -> list[Hit]:
    """Fused hits with the original question's ranks and scores; a hit it did not retrieve has none."""
    found = {hit.chunk.id for hit in original}
    return [
        hit
        if hit.chunk.id in found
        else replace(hit, dense_rank=None, lexical_rank=None, dense_score=None, lexical_score=None)
        for hit in fused
    ]


def rewrite(question: str, client: openai.OpenAI, settings: Settings, model: str) -> tuple[list[str], dict[str, Any]]:
    """The rewritten queries (none on failure: the original question alone is searched) and the call's record."""
    language = LANGUAGE_NAMES[question_language(question)]
    messages = [
        {"role": "system", "content": REWRITE_SYSTEM},
        {"role": "user", "content": REWRITE_USER.format(language=language, question=question)},
    ]
    request, record = _request(model, messages, settings.seed, REWRITE_MAX_TOKENS)
    record["queries"] = []
    try:
        record["queries"] = parse_queries(_call(client, request, settings, record).text, question)
    except (ModelError, ValueError) as exc:
        _fall_back(record, "query rewrite failed; searched the original question only", exc)
    return record["queries"], record


def rerank(
    question: str, hits: Sequence[Hit], client: openai.OpenAI, settings: Settings, model: str
) -> tuple[list[Hit], dict[str, Any]]:
    """`hits` in the model's order (unmentioned ones after, in their order; on failure the order is kept)."""
    messages = rerank_messages(question, hits)
    request, record = _request(model, messages, settings.seed, RERANK_MAX_TOKENS)
    ranking: list[int] = []
    try:
        ranking = parse_ranking(_call(client, request, settings, record).text, len(hits))
    except (ModelError, ValueError) as exc:
        _fall_back(record, "LLM rerank failed; kept the fused order", exc)
    chosen = set(ranking)
    reordered = [hits[i] for i in ranking] + [hit for i, hit in enumerate(hits) if i not in chosen]
    record["order"] = [hit.chunk.id for hit in reordered]
    return reordered, record


def rerank_messages(question: str, hits: Sequence[Hit]) -> list[dict[str, str]]:
    """The listwise prompt: the question and the passages numbered from 1, each cut to RERANK_PASSAGE_CHARS."""
    lines = []
    for n, hit in enumerate(hits, start=1):
        text = " ".join(hit.chunk.text.split())
        if len(text) > RERANK_PASSAGE_CHARS:
            text = text[:RERANK_PASSAGE_CHARS].rstrip() + "…"
        lines.append(f"[{n}] {text}")
    user = RERANK_USER.format(question=question, passages="\n".join(lines))
    return [{"role": "system", "content": RERANK_SYSTEM}, {"role": "user", "content": user}]


def parse_queries(reply: str, question: str) -> list[str]:
    """The queries of a reply {"queries": [...]}: non-empty strings, without duplicates or the original question,
    at most MAX_SUBQUERIES. ValueError when the reply holds no such object."""
    queries = _json_object(reply).get("queries")
    if not isinstance(queries, list):
        raise ValueError(f'expected {{"queries": [...]}}, got {_short(reply)!r}')
    seen = {" ".join(question.split()).casefold()}
    kept: list[str] = []
    for query in queries:
        if not isinstance(query, str) or not query.strip():
            continue
        key = " ".join(query.split()).casefold()
        if key not in seen:
            seen.add(key)
            kept.append(" ".join(query.split()))
    return kept[:MAX_SUBQUERIES]


def parse_ranking(reply: str, count: int) -> list[int]:
    """The 0-based positions named by a reply {"ranking": [n, ...]} (1-based numbers; numbers out of 1..count and
    repeats are ignored). ValueError when the reply holds no such object or no number in range."""
    ranking = _json_object(reply).get("ranking")
    if not isinstance(ranking, list):
        raise ValueError(f'expected {{"ranking": [...]}}, got {_short(reply)!r}')
    positions: list[int] = []
    for item in ranking:
        if isinstance(item, str) and item.strip().isdigit():
            item = int(item)
        if isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= count and item - 1 not in positions:
            positions.append(item - 1)
    if not positions:
        raise ValueError(f"no passage number between 1 and {count} in {_short(reply)!r}")
    return positions


_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)


def _json_object(reply: str) -> dict[str, Any]:
    """The JSON object in a reply, tolerating a Markdown code fence or words around it."""
    text = _FENCE.sub("", reply)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError(f"no JSON object in the reply {_short(reply)!r}")
    data = json.loads(text[start : end + 1])
    if not isinstance(data, dict):
        raise ValueError(f"the reply is not a JSON object: {_short(reply)!r}")
    return data


def _request(
    model: str, messages: list[dict[str, str]], seed: int, max_tokens: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request (fixed seed, temperature 0) and its audit record: hash, token counts, warning."""
    request = {"model": model, "messages": messages, "seed": seed, "temperature": 0.0, "max_tokens": max_tokens}
    record: dict[str, Any] = {
        "request_sha256": request_sha256(request),
        "tokens": {"prompt": count_message_tokens(messages), "max_tokens": max_tokens},
        "warning": None,
    }
    return request, record


def _call(client: openai.OpenAI, request: dict[str, Any], settings: Settings, record: dict[str, Any]) -> Completion:
    started = time.perf_counter()
    try:
        completion = chat(client, request, settings.base_url)
    finally:
        record["seconds"] = round(time.perf_counter() - started, 6)
    record["tokens"].update(
        completion=count_tokens(completion.text),
        prompt_reported=completion.prompt_tokens,
        completion_reported=completion.completion_tokens,
    )
    return completion


def _fall_back(record: dict[str, Any], what: str, exc: Exception) -> None:
    record["warning"] = f"{what}: {exc}"
    logger.warning("%s: %s", what, exc)


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
