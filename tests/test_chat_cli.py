"""`rag chat`: in a pseudo-terminal (pexpect) as a person types it, and `--json` as a script drives it."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from conftest import DATA, REPO
from openai_stub import OpenAIStub

from rag.chat_cli import run_json
from rag.config import Settings
from rag.conversation import Conversation
from rag.index import Index
from rag.ingest import ingest_paths


@pytest.fixture(scope="module")
def fake_index(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(index_dir=tmp_path_factory.mktemp("chat") / "index", embedder="fake", _env_file=None)  # type: ignore[call-arg]
    assert not ingest_paths([DATA], Index(settings)).failed
    return settings


def test_json_mode_answers_each_line_with_its_history(fake_index: Settings) -> None:
    import json

    out = io.StringIO()
    lines = io.StringIO("安心e生的犹豫期多长？\n\n那等待期呢？\n/reset\n那等待期呢？\n")
    assert run_json(Conversation(fake_index), lines, out) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["turn"] for r in records] == [1, 2, 1]
    assert records[1]["condensed_question"] == "安心e生的等待期多长？" and "30日" in records[1]["answer"]
    assert records[2]["condensed_question"] == "那等待期呢？"  # after /reset there is nothing to carry


@pytest.mark.slow
def test_chat_in_a_pseudo_terminal(fake_index: Settings) -> None:
    pexpect = pytest.importorskip("pexpect")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RAG_"))}
    env |= {"RAG_EMBEDDER": "fake", "PYTHONPATH": str(REPO), "ORT_DISABLE_TELEMETRY": "1", "TERM": "dumb"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "rag", "chat", "--index", str(fake_index.index_dir)],
        env=env,
        encoding="utf-8",
        timeout=60,
        cwd=str(Path(fake_index.index_dir).parent),
    )
    try:
        child.expect("extractive answers")
        child.expect_exact("you> ")
        child.sendline("安心e生的犹豫期多长？")
        child.expect("十五日")
        child.expect("Sources:")
        child.expect(r"\[1\] \S+\.md, page 1")
        child.expect_exact("you> ")
        child.sendline("那等待期呢？")
        child.expect_exact("(searching for: 安心e生的等待期多长？)")
        child.expect("30日为等待期")
        child.expect_exact("you> ")
        child.sendline("/sources")
        child.expect_exact("passages for: 安心e生的等待期多长？")
        child.expect(r"\[1\] .*page 1")
        child.expect_exact("you> ")
        child.sendcontrol("c")  # Ctrl-C on the prompt: a new prompt, not an exit
        child.expect_exact("you> ")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before


@pytest.mark.slow
def test_ctrl_d_leaves_cleanly(fake_index: Settings) -> None:
    pexpect = pytest.importorskip("pexpect")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RAG_"))}
    env |= {"RAG_EMBEDDER": "fake", "PYTHONPATH": str(REPO), "TERM": "dumb"}
    child = pexpect.spawn(sys.executable, ["-m", "rag", "chat", "--index", str(fake_index.index_dir)], env=env,
                          encoding="utf-8", timeout=60)  # fmt: skip
    child.expect_exact("you> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_interactive_chat_streams_the_model_and_shows_the_checked_answer(
    fake_index: Settings, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.chat_cli import run_interactive

    settings = fake_index.model_copy(update={"base_url": stub.base_url, "max_retries": 0})
    typed = iter(["安心e生的等待期多久？", "/sources", "/reset", "/nope"])

    def fake_input(prompt: str) -> str:
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    stub.reply("等待期为30日[1][9]。", token_delay=0.01)
    out = io.StringIO()
    assert run_interactive(Conversation(settings), out) == 0
    text = out.getvalue()
    assert "rag chat: a chat model." in text and "等待期为30日[1][9]。\n" in text  # the draft, as streamed
    assert "checked answer: 等待期为30日[1]。" in text and "warning: citation [9] refers to no source" in text
    assert "Sources:\n  [1] " in text and "passages for: 安心e生的等待期多久？" in text
    assert "(new conversation)" in text and "unknown command /nope" in text
    assert stub.chat_requests[-1].json["stream"] is True


def test_interactive_chat_never_prints_a_control_sequence_raw(
    fake_index: Settings, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.chat_cli import run_interactive

    settings = fake_index.model_copy(update={"base_url": stub.base_url, "max_retries": 0})
    typed = iter(["免赔额是多少？"])

    def fake_input(prompt: str) -> str:
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    stub.reply("免赔额为1万元[1]。\n\x1b]0;owned\x07\x1b[2J还有一行[1]。")
    out = io.StringIO()
    assert run_interactive(Conversation(settings), out) == 0
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]0;owned\\x07\\x1b[2J" in text
    assert "免赔额为1万元[1]。\n" in text  # an answer keeps its lines
