"""The index owner: one layout, one cache key, one status, and the errors it raises."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rag
from rag.config import Settings
from rag.embeddings import FakeEmbedder
from rag.errors import IndexDamagedError, IndexMismatchError, mask_secret
from rag.index import CHUNKER_VERSION, Index, IndexLayout
from rag.ingest import ingest_paths


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    clauses = "# 第一条 犹豫期\n\n犹豫期为十五日。\n\n# 第二条 等待期\n\n等待期为90日。"
    (docs / "a.md").write_text(clauses, encoding="utf-8")
    (docs / "b.txt").write_text("The grace period is thirty days from the due date.", encoding="utf-8")
    return docs


def test_every_file_of_the_index_lives_under_its_root(tmp_path: Path) -> None:
    layout = IndexLayout(tmp_path / "idx")
    paths = [getattr(layout, name) for name in dir(IndexLayout) if isinstance(getattr(IndexLayout, name), property)]
    assert len(paths) == len(set(paths)) >= 9
    assert all(path.parent == layout.root for path in paths)


def test_the_cache_key_is_the_same_whoever_ingests(tmp_path: Path, fake_settings: Settings) -> None:
    """An injected embedder and the configured one share the cache: a rebuilt index embeds nothing."""
    docs = _docs(tmp_path)
    first = FakeEmbedder()
    ingest_paths([docs], Index(fake_settings, first))
    assert first.texts_embedded > 0
    other = fake_settings.model_copy(update={"index_dir": tmp_path / "other"})
    IndexLayout(other.index_dir).root.mkdir()
    shutil.copy(IndexLayout(fake_settings.index_dir).embed_cache, IndexLayout(other.index_dir).embed_cache)
    second = FakeEmbedder()
    report = ingest_paths([docs], Index(other, second))
    assert report.added == 2 and report.embedded == 0 and second.texts_embedded == 0
    with Index(fake_settings) as index:  # the configured embedder, through the library's face
        vectors = index.embedder.embed_queries(["犹豫期多长"], cached=True)
        again = index.embedder.embed_queries(["犹豫期多长"], cached=True)
    assert (vectors == again).all()
    cache = Index(fake_settings).open_cache()
    assert cache is not None
    with cache:
        assert set(cache.stats()["per_embedder"]) == {"fake", "fake:query"}  # type: ignore[arg-type]


def test_an_index_built_by_another_chunker_version_asks_for_a_rebuild(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _docs(tmp_path)
    ingest_paths([docs], Index(fake_settings))
    layout = IndexLayout(Path(fake_settings.index_dir))
    raw = json.loads(layout.manifest.read_text(encoding="utf-8"))
    assert raw["fingerprint"]["chunker_version"] == CHUNKER_VERSION
    del raw["fingerprint"]["chunker_version"]  # as an index from before the chunker was versioned
    layout.manifest.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(IndexMismatchError, match=rf"chunker_version: index has 0, settings ask for {CHUNKER_VERSION}"):
        ingest_paths([docs], Index(fake_settings))
    with pytest.raises(IndexMismatchError, match="older version of rag"):
        rag.ask("犹豫期多长？", fake_settings)


def test_an_unreadable_manifest_is_damage_not_a_settings_mismatch(tmp_path: Path, fake_settings: Settings) -> None:
    ingest_paths([_docs(tmp_path)], Index(fake_settings))
    IndexLayout(Path(fake_settings.index_dir)).manifest.write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexDamagedError, match=r"manifest.json is unreadable.*rag ingest --rebuild") as caught:
        rag.ask("犹豫期多长？", fake_settings)
    assert caught.value.exit_code == 6


def test_status_is_one_record_for_the_cli_and_the_server(tmp_path: Path, fake_settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from rag.server import create_app

    ingest_paths([_docs(tmp_path)], Index(fake_settings))
    status = Index(fake_settings).status()
    assert (status["documents"], status["files"], status["embedder"], status["loaded"]) == (2, 2, "fake", False)
    with TestClient(create_app(fake_settings)) as client:
        served = client.get("/v1/status").json()
    assert set(served) == set(status) and served["chunks"] == status["chunks"]


def test_version_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "rag", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"rag {rag.__version__}"


@pytest.mark.parametrize(
    "echoed",
    ["key sk-live-ABCdef123456 bad", "KEY SK-LIVE-ABCDEF123456", '{"key": "sk\\u002dlive\\u002dABCdef123456"}'],
)
def test_a_secret_is_masked_in_every_form(echoed: str) -> None:
    masked = mask_secret(echoed, "sk-live-ABCdef123456")
    assert "ABCdef123456".lower() not in masked.lower() and "sk-***" in masked


@pytest.mark.parametrize(
    "echoed",
    [
        'body {\\"key\\": \\"sk-live-ABCdef/123456\\"}',
        "sk\\\\u002dlive\\\\u002dABCdef\\\\/123456",
        "sk%2Dlive%2DABCdef%2F123456",
        "sk-live-\\u0041BCdef/123456",
    ],
)
def test_a_secret_is_masked_in_escaped_forms_and_among_several(echoed: str) -> None:
    masked = mask_secret(echoed, [None, "short", "sk-live-ABCdef/123456"])
    assert "abcdef" not in masked.lower() and "sk-***" in masked
    assert mask_secret("a short key stays", "short") == "a short key stays"


def test_rag_ingest_stays_the_function_after_the_submodule_is_imported() -> None:
    import subprocess
    import sys

    code = "import rag, rag.ingest; from rag.ingest import ingest_paths; print(callable(rag.ingest))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
