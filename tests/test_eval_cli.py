from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_eval
from typer.testing import CliRunner

from rag.cli import app
from rag.records import Chunk, Hit
from rag.retrieval import reciprocal_rank_fusion


def _hit(chunk_id: str, dense: int | None = None, lexical: int | None = None) -> Hit:
    chunk = Chunk(id=chunk_id, source="s", doc_sha256="d", index=0, text=chunk_id, pages=(1,))
    return Hit(chunk=chunk, score=0.0, dense_rank=dense, lexical_rank=lexical)


def test_reciprocal_rank_fusion_on_a_hand_built_ranking() -> None:
    dense = [_hit("a", dense=1), _hit("b", dense=2), _hit("c", dense=3)]
    lexical = [_hit("c", lexical=1), _hit("d", lexical=2), _hit("a", lexical=3)]
    fused = reciprocal_rank_fusion(dense, lexical, k=4, rrf_k=10)
    # a: 1/11 + 1/13 = 0.1678; c: 1/13 + 1/11 = 0.1678 (tie, broken by id); b: 1/12 = 0.0833; d: 1/12 = 0.0833
    assert [hit.chunk.id for hit in fused] == ["a", "c", "b", "d"]
    assert fused[0].score == pytest.approx(1 / 11 + 1 / 13)
    assert (fused[0].dense_rank, fused[0].lexical_rank) == (1, 3)
    assert (fused[1].dense_rank, fused[1].lexical_rank) == (3, 1)
    assert (fused[3].dense_rank, fused[3].lexical_rank) == (None, 2)


@pytest.mark.slow
def test_eval_retrieval_on_a_30_question_slice_of_insqabench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = shared_eval("insqabench")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        ["eval", "retrieval", str(folder), "--limit", "30", "--json", "--work-dir", str(tmp_path / "work")],
        env={"RAG_EMBEDDER": "fake"},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"dataset", "dense", "lexical", "hybrid"}
    for mode in ("dense", "lexical", "hybrid"):
        metrics = report[mode]
        assert metrics["n_queries"] == 30
        assert 0.0 <= metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@10"] <= 1.0
        assert metrics["mrr@10"] <= metrics["recall@10"]
    # BM25 over segmented Chinese must find most questions' own clause: the plain-jieba baseline is 0.62
    assert report["lexical"]["recall@5"] >= 0.62
