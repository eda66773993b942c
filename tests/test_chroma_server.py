"""The same ingest, incremental and ask behaviour on the embedded store and on a real Chroma server, and
replicas of `rag serve` sharing one Chroma server (each with its own lexical index, kept in step)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import DATA, chroma_database
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.errors import StoreUnreachableError
from rag.index import Index
from rag.ingest import ingest_paths
from rag.qa import answer_question
from rag.retrieval import Searcher
from rag.server import create_app


@pytest.fixture(params=["embedded", "server"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    settings = Settings(index_dir=tmp_path / "index", embedder="fake", _env_file=None)  # type: ignore[call-arg]
    if request.param == "server":
        url = request.getfixturevalue("chroma_server")
        settings = settings.model_copy(update={"chroma_url": url, "chroma_database": chroma_database(url)})
    return settings


def _store_ids(settings: Settings) -> set[str]:
    return Index(settings).open_store(create=False).all_ids()


def test_ingest_incremental_and_prune(tmp_path: Path, store_settings: Settings) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DATA, docs)
    first = ingest_paths([docs], Index(store_settings))
    assert (first.added, first.failed) == (3, [])
    manifest = Index(store_settings).manifest()
    assert manifest is not None and _store_ids(store_settings) == manifest.chunk_ids()

    again = ingest_paths([docs], Index(store_settings))
    assert (again.added, again.updated, again.unchanged, again.embedded) == (0, 0, 3, 0)

    faq = docs / "faq.md"
    faq.write_text(faq.read_text(encoding="utf-8") + "\n\n## 新问题\n\n保单可以在线变更受益人。\n", encoding="utf-8")
    edited = ingest_paths([docs], Index(store_settings))
    assert (edited.added, edited.updated, edited.unchanged) == (0, 1, 2)
    manifest = Index(store_settings).manifest()
    assert manifest is not None and _store_ids(store_settings) == manifest.chunk_ids()

    faq.unlink()
    pruned = ingest_paths([docs], Index(store_settings), prune=True)
    assert pruned.removed == 1
    manifest = Index(store_settings).manifest()
    assert manifest is not None and _store_ids(store_settings) == manifest.chunk_ids()


def test_ask_in_every_retrieval_mode(store_settings: Settings) -> None:
    ingest_paths([DATA], Index(store_settings))
    searcher = Searcher(Index(store_settings))
    for mode in ("dense", "lexical", "hybrid"):
        answer = answer_question("免赔额是多少？", store_settings, searcher=searcher, mode=mode, top_k=3)  # type: ignore[arg-type]
        assert answer.mode == "extractive" and answer.citations and 1 <= len(answer.passages) <= 3, mode
    lexical = searcher.search("免赔额", 3, "lexical")
    assert lexical and lexical[0].lexical_rank == 1 and "免赔额" in lexical[0].chunk.text


def test_the_lexical_index_follows_writes_only_when_the_collection_changes(store_settings: Settings) -> None:
    ingest_paths([DATA], Index(store_settings))
    searcher = Searcher(Index(store_settings.model_copy(update={"lexical_refresh_seconds": 0.0})))
    searcher.search("免赔额", 3, "lexical")
    builds, version = searcher.lexical.rebuilds, searcher.store.version()
    searcher.search("免赔额", 3, "lexical")
    assert searcher.lexical.rebuilds == builds and searcher.store.version() == version  # nothing changed
    note = Path(store_settings.index_dir).parent / "note.txt"
    note.write_text("The zeppelin clause covers airship travel only.", encoding="utf-8")
    ingest_paths([note], Index(store_settings))
    assert searcher.store.version() != version
    assert searcher.search("zeppelin", 1, "lexical")[0].chunk.source == str(note)
    assert searcher.lexical.rebuilds == builds + 1


@pytest.mark.slow
def test_two_replicas_share_one_chroma_server(tmp_path: Path, chroma_server: str) -> None:
    database = chroma_database(chroma_server)

    def replica(name: str, **extra: object) -> Settings:
        return Settings(
            index_dir=tmp_path / name,
            embedder="fake",
            chroma_url=chroma_server,
            chroma_database=database,
            _env_file=None,  # type: ignore[call-arg]
            **extra,
        )

    writer = TestClient(create_app(replica("a")), raise_server_exceptions=False)
    reader = TestClient(create_app(replica("b", server_allow_ingest=False, lexical_refresh_seconds=0.0)))
    with writer, reader:
        # nothing in the shared collection yet: the reader says so, and stays usable
        assert reader.post("/v1/ask", json={"question": "免赔额"}).status_code == 404
        files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in sorted(DATA.iterdir())]
        assert writer.post("/v1/ingest", files=files).json()["added"] == 3
        # the reader has no manifest of its own: the collection is the truth
        first = reader.post("/v1/ask", json={"question": "免赔额是多少？", "mode": "lexical"}).json()
        assert first["citations"] and not (tmp_path / "b" / "manifest.json").exists()
        assert not [p for p in first["passages"] if "zeppelin" in p["text"]]

        note = ("note.txt", b"The zeppelin clause covers airship travel only.", "text/plain")
        assert writer.post("/v1/ingest", files=[("files", note)]).json()["added"] == 1
        answer = reader.post("/v1/ask", json={"question": "zeppelin airship", "mode": "lexical"}).json()
        assert Path(answer["passages"][0]["source"]).name == "note.txt"
        hybrid = reader.post("/v1/ask", json={"question": "zeppelin airship", "mode": "hybrid"}).json()
        assert Path(hybrid["passages"][0]["source"]).name == "note.txt"
        status = reader.get("/v1/status").json()
        assert status["store"] == chroma_server and status["collection_chunks"] > 0


def test_an_unreachable_chroma_server_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(
        index_dir=tmp_path / "index",
        embedder="fake",
        chroma_url="http://127.0.0.1:9",
        _env_file=None,  # type: ignore[call-arg]
    )
    with pytest.raises(StoreUnreachableError, match=r"127\.0\.0\.1:9.*Check that it runs") as caught:
        Searcher(Index(settings))
    assert caught.value.exit_code == 7  # not "the index is empty" (3)
