"""Query optimisation (rag/query_llm.py): the rewrite and the LLM rerank, through the local OpenAI stub over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub

from rag.config import Settings
from rag.index import Index
from rag.ingest import ingest_paths
from rag.prompts import count_message_tokens
from rag.qa import answer_question, request_sha256
from rag.query_llm import (
    MAX_SUBQUERIES,
    RERANK_MAX_TOKENS,
    RERANK_PASSAGE_CHARS,
    REWRITE_MAX_TOKENS,
    parse_queries,
    parse_ranking,
    rerank_messages,
)
from rag.records import Answer, Chunk, Hit, RetrievalMode
from rag.retrieval import fuse_ranked_lists

DOCS = {
    "grace.txt": "Premium payment: a late premium is accepted during the grace period of 60 days.\n",
    "waiting.txt": "Illness cover starts after a waiting period of 90 days from the policy date.\n",
    "surrender.txt": "Surrender: the cash value is paid within 30 days of the surrender request.\n",
    "exclusions.txt": "Exclusions: no benefit is paid for injuries from skydiving or motor racing.\n",
}
QUESTION = "Is my late premium accepted?"
ANSWER = "A late premium is accepted during the grace period of 60 days [1]."


@pytest.fixture
def indexed(fake_settings: Settings, tmp_path: Path, stub: OpenAIStub) -> Settings:
    """Four one-chunk files (one topic each) and the stub as the chat model; both steps off."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    assert not ingest_paths([docs], Index(fake_settings)).failed
    return fake_settings.model_copy(update={"base_url": stub.base_url, "max_retries": 0, "top_k": 2})


def _on(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update=update)


def _sources(answer: Answer) -> list[str]:
    return [Path(p.source).name for p in answer.passages]


def _queries(*queries: str) -> str:
    return json.dumps({"queries": list(queries)})


def _fused(
    settings: Settings, depth: int = 20, question: str = QUESTION, mode: RetrievalMode | None = None
) -> list[Hit]:
    return Index(settings).searcher().search(question, depth, mode or settings.retrieval_mode)


# ----------------------------------------------------------------------------------------------- rewrite


def test_rewrite_request_has_fixed_seed_temperature_and_the_question(indexed: Settings, stub: OpenAIStub) -> None:
    stub.reply(_queries("grace period for late premium payment"))
    stub.reply(ANSWER)
    answer = answer_question(QUESTION, _on(indexed, query_rewrite=True, seed=7))

    rewrite_request, answer_request = (r.json for r in stub.chat_requests)
    assert rewrite_request["seed"] == 7 and rewrite_request["temperature"] == 0
    assert rewrite_request["max_tokens"] == REWRITE_MAX_TOKENS
    assert QUESTION in rewrite_request["messages"][-1]["content"]
    assert "English" in rewrite_request["messages"][-1]["content"]
    assert '{"queries"' in rewrite_request["messages"][0]["content"]
    # the answer is asked for the original question, not the rewritten one
    assert QUESTION in answer_request["messages"][-1]["content"]
    assert "grace period for late premium payment" not in answer_request["messages"][-1]["content"]
    assert answer.question == QUESTION and answer.mode == "llm"
    record = answer.audit.query_optimisation["rewrite"]
    assert record["queries"] == ["grace period for late premium payment"] and record["warning"] is None
    assert "rerank" not in answer.audit.query_optimisation


def test_hits_found_only_by_a_sub_query_are_fused_in(indexed: Settings, stub: OpenAIStub) -> None:
    plain = answer_question(QUESTION, indexed, mode="lexical")
    assert _sources(plain) == ["grace.txt"]  # the question's own words find one file

    stub.reply(_queries("late premium grace period", "waiting period before illness cover starts"))
    answer = answer_question(QUESTION, _on(indexed, query_rewrite=True), mode="lexical")

    assert "waiting.txt" in _sources(answer) and _sources(answer)[0] == "grace.txt"
    by_source = {Path(p.source).name: p for p in answer.passages}
    assert by_source["waiting.txt"].lexical_rank is None  # scored against a rewritten query: no score kept
    assert by_source["grace.txt"].lexical_rank == 1  # the original question's rank and score are kept
    assert answer.audit.query_optimisation["rewrite"]["queries"] == [
        "late premium grace period",
        "waiting period before illness cover starts",
    ]


def test_rewrite_keeps_the_refusal_gate_on_the_original_question(indexed: Settings, stub: OpenAIStub) -> None:
    """A rewritten query that matches a passage well must not lend its similarity to the gate."""
    settings = _on(indexed, query_rewrite=True, refusal_min_score=0.99, top_k=2, rerank_depth=2)
    original = [Path(hit.chunk.source).name for hit in _fused(settings, 2, QUESTION, "dense")]
    assert "surrender.txt" not in original  # the question alone does not find it
    stub.reply(_queries(DOCS["surrender.txt"].strip()))  # the fake embedder: an exact copy scores 1.0
    answer = answer_question(QUESTION, settings, mode="dense")

    assert "surrender.txt" in _sources(answer)
    scores = {
        Path(p.source).name: c["dense_score"] for p, c in zip(answer.passages, answer.audit.chunks, strict=True)
    }
    assert scores["surrender.txt"] is None  # its 1.0 measured the rewritten query, not the question
    assert answer.mode == "refused" and answer.audit.refusal["top_dense_score"] < 0.99
    assert len(stub.chat_requests) == 1  # the rewrite only; the model is not asked to answer


# ------------------------------------------------------------------------------------------------ rerank


def _rank_first(marker: str) -> Any:
    """A stub handler naming, as the first in the ranking, the passage whose line contains `marker`."""

    def handler(body: dict[str, Any]) -> str:
        lines = body["messages"][-1]["content"].splitlines()
        first = next(int(line[1 : line.index("]")]) for line in lines if line.startswith("[") and marker in line)
        return json.dumps({"ranking": [first]})

    return handler


def test_rerank_reorders_the_final_passages(indexed: Settings, stub: OpenAIStub) -> None:
    settings = _on(indexed, top_k=3, llm_rerank=True)
    fused = [Path(hit.chunk.source).name for hit in _fused(settings)]
    assert len(fused) == 4 and fused[0] != "surrender.txt"

    stub.reply_with(_rank_first("Surrender"))
    stub.reply(ANSWER)
    answer = answer_question(QUESTION, settings)

    rest = [name for name in fused if name != "surrender.txt"]
    assert _sources(answer) == ["surrender.txt", *rest[:2]]  # ranked first, the others in fused order
    rerank_request, answer_request = (r.json for r in stub.chat_requests)
    assert rerank_request["seed"] == settings.seed and rerank_request["temperature"] == 0
    assert rerank_request["max_tokens"] == RERANK_MAX_TOKENS
    assert QUESTION in rerank_request["messages"][-1]["content"]
    record = answer.audit.query_optimisation["rerank"]
    assert record["order"][:3] == [p.chunk_id for p in answer.passages] and len(record["order"]) == 4
    assert record["warning"] is None
    prompt = answer_request["messages"][-1]["content"]  # the answer's sources come in the reranked order
    assert prompt.index("Surrender") < prompt.index(DOCS[rest[0]][:20])


def test_rerank_prompt_numbers_and_truncates_passages() -> None:
    hits = [_hit(f"c{i}", ("word " * 200) if i == 2 else f"passage {i}") for i in range(1, 4)]
    system, user = rerank_messages("question?", hits)
    assert system["role"] == "system" and '{"ranking"' in system["content"]
    lines = [line for line in user["content"].splitlines() if line.startswith("[")]
    assert [line[:3] for line in lines] == ["[1]", "[2]", "[3]"]
    assert lines[1].endswith("…") and len(lines[1]) <= RERANK_PASSAGE_CHARS + 5
    assert "Question: question?" in user["content"]


# --------------------------------------------------------------------------------------------- fallbacks


@pytest.mark.parametrize(
    ("rewrite_reply", "rerank_reply"),
    [
        ("Sure! The queries are: grace period.", '{"ranking": [2, 1'),
        ('{"queries": "grace period"}', '{"ranking": [0, 99, true]}'),
        ("[1, 2, 3]", '{"order": [1]}'),
    ],
)
def test_garbage_replies_fall_back_and_the_answer_is_still_produced(
    indexed: Settings, stub: OpenAIStub, rewrite_reply: str, rerank_reply: str
) -> None:
    plain = answer_question(QUESTION, indexed)
    stub.reply(rewrite_reply)
    stub.reply(rerank_reply)
    stub.reply(ANSWER)
    answer = answer_question(QUESTION, _on(indexed, query_rewrite=True, llm_rerank=True))

    assert answer.mode == "llm" and answer.answer.startswith("A late premium")
    assert [p.chunk_id for p in answer.passages] == [p.chunk_id for p in plain.passages]
    audit = answer.audit.query_optimisation
    assert audit["rewrite"]["queries"] == []
    assert audit["rewrite"]["warning"].startswith("query rewrite failed; searched the original question only")
    assert audit["rerank"]["warning"].startswith("LLM rerank failed; kept the fused order")
    assert audit["rewrite"]["tokens"]["completion_reported"] is not None  # the call itself succeeded


def test_model_errors_fall_back(indexed: Settings, stub: OpenAIStub) -> None:
    stub.fail(500, times=2)
    stub.reply(ANSWER)
    answer = answer_question(QUESTION, _on(indexed, query_rewrite=True, llm_rerank=True))
    assert answer.mode == "llm"
    audit = answer.audit.query_optimisation
    assert "HTTP 500" in audit["rewrite"]["warning"] and "HTTP 500" in audit["rerank"]["warning"]
    assert "prompt_reported" not in audit["rewrite"]["tokens"]


# ------------------------------------------------------------------------------------------------- audit


def test_audit_hashes_equal_the_requests_the_stub_received(indexed: Settings, stub: OpenAIStub) -> None:
    stub.reply(_queries("grace period late premium"))
    stub.reply('```json\n{"ranking": [2, 1]}\n```')
    stub.reply(ANSWER)
    answer = answer_question(QUESTION, _on(indexed, query_rewrite=True, llm_rerank=True))

    rewrite_request, rerank_request, answer_request = (r.json for r in stub.chat_requests)
    audit = answer.audit.query_optimisation
    assert audit["rewrite"]["request_sha256"] == request_sha256(rewrite_request)
    assert audit["rerank"]["request_sha256"] == request_sha256(rerank_request)
    assert answer.audit.request_sha256 == request_sha256(answer_request)
    assert set(rewrite_request) == {"model", "messages", "seed", "temperature", "max_tokens"}
    for record, request in ((audit["rewrite"], rewrite_request), (audit["rerank"], rerank_request)):
        tokens = record["tokens"]
        assert tokens["prompt"] == count_message_tokens(request["messages"])
        assert tokens["prompt_reported"] > 0 and tokens["completion_reported"] > 0 and tokens["completion"] > 0
    assert sorted(audit["rerank"]["order"]) == sorted(hit.chunk.id for hit in _fused(indexed))
    assert [p.chunk_id for p in answer.passages] == audit["rerank"]["order"][:2]
    json.dumps(answer.to_dict())  # the audit log can write it


def test_both_off_sends_no_extra_request(indexed: Settings, stub: OpenAIStub) -> None:
    stub.reply(ANSWER)
    answer = answer_question(QUESTION, indexed)
    assert len(stub.requests) == 1 and answer.audit.query_optimisation is None


def test_on_without_a_model_does_nothing(indexed: Settings, stub: OpenAIStub) -> None:
    settings = _on(indexed, base_url=None, api_key=None, query_rewrite=True, llm_rerank=True)
    answer = answer_question(QUESTION, settings)
    assert answer.mode == "extractive" and answer.audit.query_optimisation is None
    assert stub.requests == []


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings(_env_file=None).query_rewrite, Settings(_env_file=None).llm_rerank) == (False, False)  # type: ignore[call-arg]
    monkeypatch.setenv("RAG_QUERY_REWRITE", "true")
    monkeypatch.setenv("RAG_LLM_RERANK", "1")
    monkeypatch.setenv("RAG_RERANK_DEPTH", "12")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.query_rewrite, settings.llm_rerank, settings.rerank_depth) == (True, True, 12)


# ------------------------------------------------------------------------------------------------- units


def _hit(chunk_id: str, text: str = "text") -> Hit:
    chunk = Chunk(id=chunk_id, source="s.txt", doc_sha256="0" * 64, index=0, text=text, pages=(1,))
    return Hit(chunk=chunk, score=0.0)


def test_fuse_ranked_lists() -> None:
    original = [_hit("a"), _hit("b"), _hit("c")]
    sub = [_hit("d"), _hit("b")]
    fused = fuse_ranked_lists([original, sub], k=10, rrf_k=5)
    assert [h.chunk.id for h in fused] == ["b", "a", "d", "c"]  # b: 1/7 + 1/7; a, d: 1/6 (tie by id); c: 1/8
    assert fused[0].score == pytest.approx(2 / 7)
    assert fused[0] is not original[1] and fused[0].chunk is original[1].chunk
    assert [h.chunk.id for h in fuse_ranked_lists([original, sub], k=2, rrf_k=5)] == ["b", "a"]
    assert fuse_ranked_lists([], k=3) == [] and [h.chunk.id for h in fuse_ranked_lists([original], 3)] == list("abc")


def test_parse_queries() -> None:
    assert parse_queries('```json\n{"queries": ["犹豫期 退保", " waiting  period "]}\n```', "q") == [
        "犹豫期 退保",
        "waiting period",
    ]
    reply = 'Here: {"queries": ["Q", "a", "A", "", 3, "b", "c", "d"]} done'
    assert parse_queries(reply, "q") == ["a", "b", "c"][:MAX_SUBQUERIES]  # original, duplicates, non-strings out
    assert parse_queries('{"queries": []}', "q") == []
    for bad in ("no json", '{"queries": "x"}', "[1]", '{"queries": [1, 2', '{"q": ["x"]}'):
        with pytest.raises(ValueError):
            parse_queries(bad, "q")


def test_parse_ranking() -> None:
    assert parse_ranking('{"ranking": [3, 1, "2", 3]}', 3) == [2, 0, 1]
    assert parse_ranking('{"ranking": [0, 4, true, 2]}', 3) == [1]
    for bad in ('{"ranking": [0, 9]}', '{"ranking": 2}', "2, 1", '{"ranking": [true]}', ""):
        with pytest.raises(ValueError):
            parse_ranking(bad, 3)
