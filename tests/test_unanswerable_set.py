"""Sanity checks for the hand-written unanswerable-question set used to calibrate the refusal gate."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

DATA_FILE = Path(__file__).resolve().parent / "data" / "unanswerable.jsonl"
INSQABENCH_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "insqabench"

VALID_LANGS = {"zh", "en"}
VALID_CATEGORIES = {"off_topic", "other_insurer", "not_stated"}
ID_RE = re.compile(r"^ua-\d{3,}$")


def _load() -> list[dict]:
    rows = []
    with DATA_FILE.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            assert line.strip(), f"blank line {lineno}"
            rows.append(json.loads(line))
    return rows


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).strip().lower()


def _insqabench_questions() -> set[str]:
    questions: set[str] = set()
    objective = INSQABENCH_DIR / "clause_objective.json"
    subjective = INSQABENCH_DIR / "clause_subjective.json"
    if objective.is_file():
        for item in json.loads(objective.read_text(encoding="utf-8")):
            match = re.search(r"用户提问：(.*)", item.get("input", ""), re.S)
            if match:
                questions.add(_norm(match.group(1)))
    if subjective.is_file():
        for per_contract in json.loads(subjective.read_text(encoding="utf-8")).values():
            questions.update(_norm(q) for q in per_contract)
    return questions


def test_schema_and_counts() -> None:
    rows = _load()
    assert len(rows) >= 100
    for row in rows:
        assert set(row) == {"id", "question", "lang", "category"}, row
        assert ID_RE.match(row["id"]), row
        assert isinstance(row["question"], str) and row["question"].strip(), row
        assert row["lang"] in VALID_LANGS, row
        assert row["category"] in VALID_CATEGORIES, row
    langs = Counter(r["lang"] for r in rows)
    assert langs["zh"] >= 30 and langs["en"] >= 30, langs
    cats = Counter(r["category"] for r in rows)
    assert all(cats[c] >= 10 for c in VALID_CATEGORIES), cats


def test_unique_ids_and_questions() -> None:
    rows = _load()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    questions = [_norm(r["question"]) for r in rows]
    dupes = [q for q, n in Counter(questions).items() if n > 1]
    assert not dupes, dupes


def test_language_tag_matches_text() -> None:
    for row in _load():
        has_cjk = bool(re.search(r"[\u4e00-\u9fff]", row["question"]))
        assert has_cjk == (row["lang"] == "zh"), row


def test_not_copied_from_insqabench() -> None:
    if not INSQABENCH_DIR.is_dir():
        pytest.skip(f"InsQABench not available at {INSQABENCH_DIR}")
    bench = _insqabench_questions()
    if not bench:
        pytest.skip("no InsQABench questions found")
    overlap = [r["id"] for r in _load() if _norm(r["question"]) in bench]
    assert not overlap, overlap
