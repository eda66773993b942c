"""Follow-up questions: the offline rules, the model's condensing through the stub, the history in the prompt,
and `rag.Conversation` over data/ with the fake embedder."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import DATA
from openai_stub import OpenAIStub

import rag
from rag.condense import CONDENSE_PROMPT, as_history, condense, recent_turns
from rag.condense_rules import condense_by_rules
from rag.config import Settings
from rag.index import Index
from rag.ingest import ingest_paths
from rag.prompts import count_message_tokens, pack_passages
from rag.qa import answer_question, request_sha256
from rag.records import Message, Passage


def _history(*texts: str) -> list[Message]:
    return [Message("user" if i % 2 == 0 else "assistant", text) for i, text in enumerate(texts)]


@pytest.mark.parametrize(
    ("earlier", "follow_up", "standalone"),
    [
        (("犹豫期有多长？", "十五日[1]。"), "那等待期呢？", "等待期有多长？"),
        (("安心e生的犹豫期多长？", "十五日。"), "那等待期呢？", "安心e生的等待期多长？"),
        (("犹豫期有多长？", "十五日。", "那等待期呢？", "30日。"), "宽限期呢？", "宽限期有多长？"),
        (("酒驾出事赔不赔？", "不赔。"), "那猝死呢？", "猝死赔不赔？"),
        (("一级伤残赔多少？", "100%。"), "那十级呢？", "十级伤残赔多少？"),
        (("借款人意外险多大年纪能买？", "18至60周岁。"), "这个保险能保几年？", "借款人意外险能保几年？"),
        (("免赔额是什么意思？", "自行承担的费用。"), "这个怎么算？", "免赔额怎么算？"),
        (
            ("人失踪了找不到，保险怎么赔？", "宣告死亡。"),
            "那后来人又回来了呢？",
            "人失踪了找不到，保险，后来人又回来了？",
        ),
        (("Is cosmetic surgery covered?", "No."), "what about maternity?", "Is maternity covered?"),
        (
            ("How long is the free look period on the Global Health Policy?", "15 days."),
            "and the grace period?",
            "How long is the grace period on the Global Health Policy?",
        ),
        (
            ("What was Ulta's revenue last quarter?", "$3.2 billion."),
            "and MGM?",
            "What was MGM's revenue last quarter?",
        ),
        (
            ("What is the free look period?", "15 days."),
            "and for the family plan?",
            "What is the free look period for the family plan?",
        ),
        (
            ("If I cancel after 2 months how much do I get back?", "65%."),
            "what about after 8 months?",
            "If I cancel after 8 months how much do I get back?",
        ),
        (
            ("Is the claim settled within 30 days?", "Yes."),
            "what if they need to investigate it?",
            "Is the claim settled within 30 days, if they need to investigate it?",
        ),
        (
            ("is MGM still paying a dividend", "No."),
            "what did they get for selling the Mirage?",
            "what did MGM get for selling the Mirage?",
        ),
    ],
)
def test_rules_carry_the_subject_into_a_follow_up(earlier: tuple[str, ...], follow_up: str, standalone: str) -> None:
    assert condense_by_rules(follow_up, _history(*earlier)) == standalone


@pytest.mark.parametrize(
    ("earlier", "question"),
    [
        ("犹豫期有多长？", "免赔额是多少？"),
        ("犹豫期有多长？", "出事了多久要报案？"),
        ("What is the free look period?", "How long is the grace period?"),
        ("Is maternity covered?", "Does the policy pay for physiotherapy sessions after surgery?"),
        ("how much cash does ulta have", "what share of Ulta's sales came from cosmetics last quarter?"),
    ],
)
def test_a_standalone_question_is_left_unchanged(earlier: str, question: str) -> None:
    assert condense_by_rules(question, _history(earlier, "an answer [1].")) == question


def test_history_is_read_from_messages_or_dicts_and_cut_to_the_last_turns() -> None:
    history = as_history(
        [
            {"role": "system", "content": "not history"},
            {"role": "user", "content": " q1 "},
            Message("assistant", "a1"),
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "  "},
            {"role": "user", "content": "q3"},
        ]
    )
    assert history == (Message("user", "q1"), Message("assistant", "a1"), Message("user", "q2"), Message("user", "q3"))
    assert recent_turns(history, 2) == (Message("user", "q2"), Message("user", "q3"))


def test_without_history_nothing_is_condensed_or_called(stub: OpenAIStub) -> None:
    settings = Settings(base_url=stub.base_url, _env_file=None)  # type: ignore[call-arg]
    condensed = condense("那等待期呢？", (), settings)
    assert (condensed.standalone, condensed.method, condensed.changed) == ("那等待期呢？", "none", False)
    assert stub.chat_requests == []


@pytest.fixture(scope="module")
def data_index(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(index_dir=tmp_path_factory.mktemp("chat") / "index", embedder="fake", _env_file=None)  # type: ignore[call-arg]
    assert not ingest_paths([DATA], Index(settings)).failed
    return settings


def test_offline_a_follow_up_retrieves_the_right_clause(data_index: Settings) -> None:
    conversation = rag.Conversation(data_index)
    first = conversation.ask("安心e生的犹豫期多长？")
    assert first.condensed_question == first.question and "十五日" in first.answer
    follow = conversation.ask("那等待期呢？")
    assert follow.question == "那等待期呢？" and follow.condensed_question == "安心e生的等待期多长？"
    assert "30日为等待期" in follow.answer
    assert any(c.clause and "第三条" in c.clause for c in follow.citations), follow.citations
    assert follow.audit is not None and follow.audit.condense == {
        "method": "rules",
        "history_turns": 2,
        "condensed_question": "安心e生的等待期多长？",
    }
    alone = answer_question("那等待期呢？", data_index)  # the same words without history: no subject to carry
    assert alone.condensed_question == "那等待期呢？" and (alone.audit and alone.audit.condense) is None
    assert [t.question for t in conversation.turns] == ["安心e生的犹豫期多长？", "那等待期呢？"]
    conversation.reset()
    assert conversation.turns == () and conversation.history() == []


def test_the_model_condenses_with_the_history_and_the_audit_keeps_request_and_hash(
    data_index: Settings, stub: OpenAIStub, tmp_path: Path
) -> None:
    settings = data_index.model_copy(update={"base_url": stub.base_url, "max_retries": 0, "audit_log": tmp_path / "a"})
    history = [{"role": "user", "content": "安心e生的犹豫期多长？"}, {"role": "assistant", "content": "十五日[1]。"}]
    hashes = []
    for _ in range(2):
        stub.reply("安心e生的等待期是多久？")
        stub.reply("等待期为30日[1]。")
        answer = rag.ask("那等待期呢？", settings, history=history)
        assert answer.condensed_question == "安心e生的等待期是多久？" and answer.mode == "llm"
        assert answer.audit is not None and answer.audit.condense is not None
        record = answer.audit.condense
        assert record["method"] == "llm" and record["request"]["seed"] == settings.seed
        assert record["request_sha256"] == request_sha256(record["request"])
        hashes.append(record["request_sha256"])
    assert hashes[0] == hashes[1]  # the same history and question: the same request
    condense_request = stub.chat_requests[0].json
    assert condense_request["messages"][0]["content"] == CONDENSE_PROMPT
    assert condense_request["seed"] == settings.seed and condense_request["temperature"] == 0.0
    assert "安心e生的犹豫期多长？" in condense_request["messages"][1]["content"]
    assert "那等待期呢？" in condense_request["messages"][1]["content"]
    answer_request = stub.chat_requests[1].json
    assert [m["role"] for m in answer_request["messages"]] == ["system", "user", "assistant", "user"]
    assert "安心e生的等待期是多久？" in answer_request["messages"][-1]["content"]  # the standalone reading
    assert (tmp_path / "a").read_text(encoding="utf-8").count('"request_sha256"') >= 2


def _passage(n: int, words: int) -> Passage:
    return Passage(n=n, source="doc.md", page=1, text=" ".join(["coverage"] * words) + ".", score=1.0, chunk_id=f"c{n}")


def test_history_fills_what_the_sources_leave_oldest_turns_dropped_first() -> None:
    passages = [_passage(1, 150), _passage(2, 150)]
    history = _history("first question " * 40, "first answer " * 40, "second question", "second answer [3]")
    roomy = pack_passages("and then?", passages, context_window=4000, max_tokens=100, history=history)
    assert roomy.history_sent == 4 and roomy.history_dropped == 0
    assert roomy.messages[4]["content"] == "second answer"  # old markers pointed at other sources
    bare = pack_passages("and then?", passages, context_window=4000, max_tokens=100)
    tight_window = bare.prompt_tokens + 100 + 64 + 40  # room for the sources and a short turn, not the long one
    tight = pack_passages("and then?", passages, context_window=tight_window, max_tokens=100, history=history)
    assert [p.n for p in tight.passages] == [1, 2] and not tight.dropped and not tight.trimmed
    assert tight.history_sent == 2 and tight.history_dropped == 2
    assert [m["content"] for m in tight.messages[1:3]] == ["second question", "second answer"]
    assert count_message_tokens(tight.messages) <= tight.budget
    cramped = pack_passages("and then?", passages, context_window=bare.prompt_tokens + 164, max_tokens=100,
                            history=history)  # fmt: skip
    assert [p.n for p in cramped.passages] == [1, 2] and cramped.history_sent == 0  # sources kept, history gone
    assert replace(cramped, history_dropped=0).history_dropped == 0


def test_the_answer_sets_questions_stand_on_their_own_after_any_other() -> None:
    """Every single question of the customer sets, asked right after the one before it in its file, is left as
    typed: the rules fill gaps, they do not rewrite complete questions."""
    import json

    from conftest import REPO

    rewritten = []
    for name in ("data", "policies_zh", "policies_en", "financebench"):
        lines = (REPO / "tests" / "data" / "answers" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        questions = [json.loads(line)["question"] for line in lines if line.strip()]
        for previous, question in itertools.pairwise(questions):
            if condense_by_rules(question, _history(previous, "an answer [1].")) != question:
                rewritten.append((previous, question))
    assert rewritten == []
