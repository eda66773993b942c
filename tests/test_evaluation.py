"""Evaluation sets and retrieval metrics: hand-worked numbers, tiny fixtures, the real sets if present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.evaluation import (
    DatasetError,
    DocumentDataset,
    EvalQuery,
    PassageDataset,
    RunMetrics,
    detect_format,
    format_table,
    load_dataset,
    load_financebench,
    load_insqabench,
    page_hit_at_k,
    page_metrics,
    parse_ks,
    passage_id,
    passage_metrics,
    percentile,
    recall_at_k,
    reciprocal_rank_at_k,
    summarise,
)

EVAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
INSQA = EVAL_ROOT / "insqabench"
FINBENCH = EVAL_ROOT / "financebench_dev"

# ------------------------------------------------------------------------------------------------- metrics

# Three queries, one relevant passage each, ranked lists best first:
#   q1 relevant "a": a is at rank 1            -> RR 1
#   q2 relevant "b": b is at rank 3            -> RR 1/3
#   q3 relevant "c": c is not in the top 10    -> RR 0
# recall@1 = 1/3 (only q1), recall@5 = 2/3 (q1, q2), MRR@10 = (1 + 1/3 + 0) / 3 = 4/9.
RUNS = [
    (["a", "x", "y"], {"a"}),
    (["x", "y", "b", "z"], {"b"}),
    ([f"n{i}" for i in range(10)] + ["c"], {"c"}),
]


def test_hand_worked_recall_and_mrr() -> None:
    per_query = [passage_metrics(ranked, relevant, [10, 1, 5]) for ranked, relevant in RUNS]
    assert list(per_query[0]) == ["recall@1", "recall@5", "recall@10", "mrr@10"]
    means = summarise(per_query)
    assert means["recall@1"] == pytest.approx(1 / 3)
    assert means["recall@5"] == pytest.approx(2 / 3)
    assert means["recall@10"] == pytest.approx(2 / 3)  # c sits at rank 11
    assert means["mrr@10"] == pytest.approx(4 / 9)
    assert reciprocal_rank_at_k(RUNS[2][0], {"c"}, 11) == pytest.approx(1 / 11)


def test_recall_with_several_relevant_and_duplicates() -> None:
    # relevant {a, b}; ranked a, a (a second chunk of the same passage), x, b
    ranked = ["a", "a", "x", "b"]
    assert recall_at_k(ranked, {"a", "b"}, 1) == 0.5
    assert recall_at_k(ranked, {"a", "b"}, 3) == 0.5  # the duplicate a is not counted twice
    assert recall_at_k(ranked, {"a", "b"}, 4) == 1.0
    assert recall_at_k(ranked, {"a", "b"}, 100) == 1.0  # k beyond the list
    assert reciprocal_rank_at_k(ranked, {"b"}, 4) == 0.25
    assert reciprocal_rank_at_k(ranked, {"b"}, 3) == 0.0
    assert recall_at_k([], {"a"}, 5) == 0.0


def test_metrics_reject_bad_arguments() -> None:
    with pytest.raises(ValueError):
        recall_at_k(["a"], set(), 1)
    with pytest.raises(ValueError):
        recall_at_k(["a"], {"a"}, 0)
    with pytest.raises(ValueError):
        page_hit_at_k([], {("a.pdf", 1)}, 0)
    with pytest.raises(ValueError):
        summarise([{"recall@1": 1.0}, {"recall@5": 1.0}])


def test_page_hit_with_multi_page_chunks() -> None:
    ranked_pages = [
        {("A.pdf", 1), ("A.pdf", 2)},  # a chunk straddling pages 1-2
        {("B.pdf", 4)},  # right page number, wrong file
        {("A.pdf", 3), ("A.pdf", 4)},  # contains the evidence page 4 of A
    ]
    evidence = {("A.pdf", 4), ("A.pdf", 9)}
    assert page_hit_at_k(ranked_pages, evidence, 1) == 0.0
    assert page_hit_at_k(ranked_pages, evidence, 2) == 0.0
    assert page_hit_at_k(ranked_pages, evidence, 3) == 1.0
    assert page_hit_at_k(ranked_pages, {("A.pdf", 2)}, 1) == 1.0  # second page of the first chunk
    assert page_metrics(ranked_pages, evidence, [1, 5]) == {"page_hit@1": 0.0, "page_hit@5": 1.0}
    assert page_hit_at_k([], evidence, 5) == 0.0


def test_percentile() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)  # halfway between 2 and 3
    # position (4 - 1) * 0.95 = 2.85: 3 + 0.85 * (4 - 3)
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarise_empty_and_parse_ks() -> None:
    assert summarise([]) == {}
    assert parse_ks("10,1, 5,5") == (1, 5, 10)
    for bad in ("", "0,5", "a,b"):
        with pytest.raises(ValueError):
            parse_ks(bad)


def test_format_table_aligns_rows() -> None:
    runs = [
        RunMetrics("dense", 3, {"recall@1": 1 / 3, "mrr@10": 4 / 9}, 12.34, 56.78, 9.5),
        RunMetrics("hybrid", 3, {"recall@1": 2 / 3, "mrr@10": 0.5}, 1.0, 2.0, 0.0),
    ]
    table = format_table(runs, "InsQABench retrieval")
    lines = table.splitlines()
    assert lines[0] == "InsQABench retrieval"
    assert lines[1].split() == [
        "mode",
        "queries",
        "recall@1",
        "mrr@10",
        "p50",
        "ms",
        "p95",
        "ms",
        "embed",
        "s",
    ]
    assert lines[3].split() == ["dense", "3", "0.333", "0.444", "12.3", "56.8", "9.5"]
    assert lines[4].split() == ["hybrid", "3", "0.667", "0.500", "1.0", "2.0", "0.0"]
    assert len({len(line) for line in lines[1:]}) == 1  # aligned: every row as wide as the header


# ------------------------------------------------------------------------------------------------ fixtures

PREAMBLE = "你是一个保险行业的从业者，需要为保险的消费者解答问题。下面根据保险合同的片段给出回答："


def objective_prompt(contract: str, snippet: str, question: str) -> str:
    return f"{PREAMBLE}\n这段文字来自的合同是：{contract}\n片段内容：{snippet} \n用户提问：{question}"


def write_insqabench(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    objective = [
        {
            "input": objective_prompt("甲合同", "第一条 保险期间为一年。", "保险期间多长？"),
            "output": "一年",
            "id": 1,
        },
        # the same snippet, under a sister contract, with a double space: collapses into passage 1
        {
            "input": objective_prompt("乙合同", "第一条  保险期间为一年。", "保障多久？"),
            "output": "一年",
            "id": 2,
        },
        # a question that runs over several lines (as 3 real items do)
        {
            "input": objective_prompt(
                "甲合同", "第二条 犹豫期为十五日。", "犹豫期多久？\n* 犹豫期：可退保的期间"
            ),
            "output": "十五日",
            "id": 5,
        },
    ]
    subjective = {
        "甲合同": {
            "犹豫期内退保要钱吗？": {"p": "第二条 犹豫期为十五日。", "answer": "[答案]: 不要"},  # = snippet 2
            "谁是受益人？": {"p": "第三条 受益人由投保人指定。", "answer": "[答案]: 指定"},
        },
        "丙合同": {"如何理赔？": {"p": "第九条 理赔请提交申请书。", "answer": "[答案]: 提交"}},
    }
    (folder / "clause_objective.json").write_text(json.dumps(objective, ensure_ascii=False), encoding="utf-8")
    (folder / "clause_subjective.json").write_text(
        json.dumps(subjective, ensure_ascii=False), encoding="utf-8"
    )
    return folder


def write_financebench(folder: Path, pdfs: tuple[str, ...] = ("ACME_2022_10K", "ACME_2023Q1_10Q")) -> Path:
    (folder / "pdfs").mkdir(parents=True, exist_ok=True)
    for name in pdfs:
        (folder / "pdfs" / f"{name}.pdf").write_bytes(b"%PDF-1.4\n")
    rows = [
        {
            "financebench_id": "financebench_id_00001",
            "company": "Acme",
            "doc_name": "ACME_2022_10K",
            "question": "What was Acme's FY2022 revenue?",
            "answer": "$10",
            "evidence": [
                {
                    "evidence_text": "Revenue 10",
                    "doc_name": "ACME_2022_10K",
                    "evidence_page_num": 0,
                    "evidence_text_full_page": "...",
                },
            ],
        },
        {
            "financebench_id": "financebench_id_00002",
            "company": "Acme",
            "doc_name": "ACME_2023Q1_10Q",
            "question": "How did margins change?",
            "answer": "Up",
            "evidence": [
                {
                    "evidence_text": "a",
                    "doc_name": "ACME_2023Q1_10Q",
                    "evidence_page_num": 4,
                    "evidence_text_full_page": "...",
                },
                {
                    "evidence_text": "b",
                    "doc_name": "ACME_2023Q1_10Q",
                    "evidence_page_num": 4,
                    "evidence_text_full_page": "...",
                },
                {
                    "evidence_text": "c",
                    "doc_name": "ACME_2023Q1_10Q",
                    "evidence_page_num": 11,
                    "evidence_text_full_page": "...",
                },
            ],
        },
    ]
    text = "\n".join(json.dumps(row) for row in rows) + "\n\n"
    (folder / "questions.jsonl").write_text(text, encoding="utf-8")
    return folder


def test_load_insqabench_fixture(tmp_path: Path) -> None:
    data = load_dataset(write_insqabench(tmp_path / "insqa"))
    assert isinstance(data, PassageDataset)
    assert data.name == "insqa"
    # 3 objective snippets (2 identical after whitespace collapse) + 3 paragraphs (1 equal to a snippet) -> 4
    texts = [p.text for p in data.corpus]
    assert texts == [
        "第一条 保险期间为一年。",
        "第二条 犹豫期为十五日。",
        "第三条 受益人由投保人指定。",
        "第九条 理赔请提交申请书。",
    ]
    assert [p.source for p in data.corpus] == ["甲合同", "甲合同", "甲合同", "丙合同"]
    assert all(p.id == passage_id(p.text) for p in data.corpus)
    by_text = {p.text: p.id for p in data.corpus}
    assert [q.id for q in data.queries] == [
        "objective-1",
        "objective-2",
        "objective-5",
        "subjective-1-1",
        "subjective-1-2",
        "subjective-2-1",
    ]
    q1, q2, q5, s11, _, _ = data.queries
    assert q1 == EvalQuery("objective-1", "保险期间多长？", frozenset({by_text["第一条 保险期间为一年。"]}))
    assert q2.relevant_ids == q1.relevant_ids
    assert q5.question == "犹豫期多久？\n* 犹豫期：可退保的期间"
    assert s11.relevant_ids == q5.relevant_ids == {by_text["第二条 犹豫期为十五日。"]}
    corpus_ids = {p.id for p in data.corpus}
    assert all(q.relevant_ids and q.relevant_ids <= corpus_ids for q in data.queries)


def test_insqabench_limit_keeps_the_whole_corpus(tmp_path: Path) -> None:
    folder = write_insqabench(tmp_path / "insqa")
    data = load_insqabench(folder, limit=2)
    assert [q.id for q in data.queries] == ["objective-1", "objective-2"]
    assert len(data.corpus) == 4
    assert load_insqabench(folder, limit=0).queries == []
    with pytest.raises(ValueError):
        load_insqabench(folder, limit=-1)


def test_insqabench_names_the_item_it_cannot_parse(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "clause_objective.json").write_text(
        json.dumps([{"input": "没有标记的提示", "output": "", "id": 7}], ensure_ascii=False), encoding="utf-8"
    )
    with pytest.raises(DatasetError, match=r"item 7"):
        load_insqabench(folder)


def test_passage_id_is_content_derived() -> None:
    assert passage_id("第一条  保险期间。 ") == passage_id("第一条 保险期间。")
    assert passage_id("a") != passage_id("b")
    assert len(passage_id("a")) == 16


def test_load_financebench_fixture(tmp_path: Path) -> None:
    folder = write_financebench(tmp_path / "fb")
    data = load_dataset(folder, limit=None)
    assert isinstance(data, DocumentDataset)
    assert [f.name for f in data.files] == ["ACME_2022_10K.pdf", "ACME_2023Q1_10Q.pdf"]
    first, second = data.queries
    assert first == EvalQuery(
        id="financebench_id_00001",
        question="What was Acme's FY2022 revenue?",
        relevant_pages=frozenset({("ACME_2022_10K.pdf", 1)}),  # page 0 in the data is page 1
        source="ACME_2022_10K.pdf",
    )
    assert second.relevant_pages == {("ACME_2023Q1_10Q.pdf", 5), ("ACME_2023Q1_10Q.pdf", 12)}
    assert second.relevant_ids == frozenset()
    limited = load_financebench(folder, limit=1)
    assert [q.id for q in limited.queries] == ["financebench_id_00001"]
    assert len(limited.files) == 2


def test_financebench_missing_pdf_is_named(tmp_path: Path) -> None:
    folder = write_financebench(tmp_path / "fb", pdfs=("ACME_2022_10K",))
    with pytest.raises(DatasetError, match=r"ACME_2023Q1_10Q\.pdf"):
        load_financebench(folder)


def test_detect_format(tmp_path: Path) -> None:
    assert detect_format(write_insqabench(tmp_path / "a")) == "insqabench"
    assert detect_format(write_financebench(tmp_path / "b")) == "financebench"
    bogus = tmp_path / "bogus"
    bogus.mkdir()
    (bogus / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bogus.*clause_objective\.json.*questions\.jsonl") as caught:
        detect_format(bogus)
    assert isinstance(caught.value, RagError)
    with pytest.raises(ValueError, match="not found"):
        detect_format(tmp_path / "nowhere")
    with pytest.raises(ValueError):
        load_dataset(bogus)


# ------------------------------------------------------------------------------------------------ real sets


def require(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"evaluation set not present: {folder}")
    return folder


def test_real_insqabench() -> None:
    folder = require(INSQA)
    assert detect_format(folder) == "insqabench"
    data = load_insqabench(folder)
    objective = {q.id for q in data.queries if q.id.startswith("objective-")}
    assert len(objective) == 960
    assert len(data.queries) == 1060
    assert len({q.id for q in data.queries}) == 1060
    # 918 (contract, snippet) pairs, 886 distinct snippet texts, 885 once whitespace is collapsed;
    # 98 distinct paragraphs in the subjective set, 14 of them equal to an objective snippet.
    assert len(data.corpus) == 885 + 98 - 14
    assert len({p.id for p in data.corpus}) == len(data.corpus)
    corpus_ids = {p.id for p in data.corpus}
    assert all(len(q.relevant_ids) == 1 and q.relevant_ids <= corpus_ids for q in data.queries)
    assert all(q.question and "用户提问" not in q.question for q in data.queries)
    assert all(p.text and p.source for p in data.corpus)
    print(f"InsQABench: {len(data.corpus)} passages, {len(data.queries)} queries")


def test_real_financebench() -> None:
    folder = require(FINBENCH)
    assert detect_format(folder) == "financebench"
    data = load_financebench(folder)
    assert len(data.queries) == 45
    assert len(data.files) == 11
    names = {f.name for f in data.files}
    for query in data.queries:
        assert query.source in names
        assert query.relevant_pages
        assert all(name in names and page >= 1 for name, page in query.relevant_pages)
    assert all(f.is_file() for f in data.files)
