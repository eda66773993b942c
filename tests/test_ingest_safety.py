"""Issue #14, the ingest side: one bad file never stops a batch (CLI and HTTP), the stored hash is the hash of
the bytes parsed, nothing is skipped in silence, links stay inside the given roots, names cannot drive the
terminal, and a mistyped path creates no index. The full corpus of bad kinds is in tests/test_bad_input.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pdfgen import page_tree_bomb, self_referencing_pdf, write_pdf
from typer.testing import CliRunner

from rag.batch_writer import BatchWriter
from rag.cli import app
from rag.config import Settings
from rag.discovery import SourceFile
from rag.index import Index
from rag.ingest import ingest_paths
from rag.records import Chunk
from rag.text import terminal_safe

GOOD = "The waiting period for critical illness cover is ninety days.\n"


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a_good.txt").write_text(GOOD, encoding="utf-8")
    (docs / "z_good.md").write_text("# Grace\n\nThe grace period is sixty days.\n", encoding="utf-8")
    return docs


def _stored(settings: Settings) -> dict[str, str]:
    manifest = Index(settings).manifest()
    assert manifest is not None
    return {Path(source).name: entry.sha256 for source, entry in manifest.files.items()}


def test_hostile_pdfs_fail_alone_and_the_files_around_them_are_stored(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _docs(tmp_path)
    (docs / "m_self_reference.pdf").write_bytes(self_referencing_pdf())
    (docs / "n_page_bomb.pdf").write_bytes(page_tree_bomb())
    assert (docs / "n_page_bomb.pdf").stat().st_size < 4096  # a few KB that fan out to 2**24 pages
    report = ingest_paths([docs], Index(fake_settings))
    failed = {Path(f.path).name: f.error for f in report.failed}
    assert set(failed) == {"m_self_reference.pdf", "n_page_bomb.pdf"}
    assert "page 2 could not be loaded" in failed["m_self_reference.pdf"] and "repair" in failed["m_self_reference.pdf"]
    assert "LimitReachedError" in failed["n_page_bomb.pdf"] and "re-export or repair" in failed["n_page_bomb.pdf"]
    assert set(_stored(fake_settings)) == {"a_good.txt", "z_good.md"} and report.added == 2
    assert not Index(fake_settings).layout.in_progress.exists()


def test_a_name_that_is_not_utf8_is_stored_escaped_and_found_again(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _docs(tmp_path)
    Path(os.fsdecode(bytes(docs) + b"/caf\xe9.txt")).write_text("Caf\u00e9 cover: excess 300 euros.\n", "utf-8")
    report = ingest_paths([docs], Index(fake_settings))
    assert report.failed == [] and report.added == 3
    assert "caf\\xe9.txt" in _stored(fake_settings)
    # reversible: the escaped source names the file on disk, so a second run finds it unchanged, not vanished
    again = ingest_paths([docs], Index(fake_settings), prune=True)
    assert (again.unchanged, again.removed, again.failed) == (3, 0, [])


def test_one_files_store_failure_loses_only_that_file(tmp_path: Path, fake_settings: Settings) -> None:
    """A batch that Chroma refuses because of one chunk's metadata (a lone surrogate, as an undecodable name
    was before it was escaped) is stored file by file: only that file's chunks are reported lost."""
    index = Index(fake_settings)
    store = index.open_store(create=True)

    def chunk(source: str, n: int) -> Chunk:
        return Chunk(
            id=f"{source}-{n}", source=source, doc_sha256="d", index=n, text=f"text {n} of {source}", pages=(1,)
        )

    writer = BatchWriter(store, index, embed_batch_size=4)
    try:
        ids = {
            name: writer.add_file(name, [chunk(name, n) for n in range(3)])
            for name in ("a.txt", "b\udce9.txt", "c.txt")
        }
        writer.finish()
    finally:
        writer.close()
    lost = {cid for cid in writer.failed_ids}
    assert lost == set(ids["b\udce9.txt"]) and all("Error" in why for why in writer.failed_ids.values())
    assert store.all_ids() == set(ids["a.txt"]) | set(ids["c.txt"])


def test_the_stored_hash_is_the_hash_of_the_bytes_parsed(tmp_path: Path, fake_settings: Settings) -> None:
    """The file is edited after the run hashed it to plan, before it is read: what is stored is the edit,
    under the edit's hash, not the old hash (which would make every later run call it unchanged)."""
    docs = _docs(tmp_path)
    target = docs / "a_good.txt"
    old = target.read_bytes()
    edited = b"Edited mid-run: the waiting period is now thirty days.\n"

    def edit(event: str, source: str, done: int, total: int) -> None:
        if event == "file" and source.endswith("a_good.txt"):
            target.write_bytes(edited)

    report = ingest_paths([docs], Index(fake_settings), progress=edit)
    assert report.failed == []
    assert _stored(fake_settings)["a_good.txt"] == hashlib.sha256(edited).hexdigest() != hashlib.sha256(old).hexdigest()
    texts = [c.text for c in Index(fake_settings).open_store(create=False).iter_chunks()]
    assert any("thirty days" in t for t in texts) and not any("ninety days" in t for t in texts)
    target.write_bytes(old)  # the edit undone: the next run must see a change
    assert ingest_paths([docs], Index(fake_settings)).updated == 1


def test_a_streamed_file_that_changes_while_it_is_read_is_not_stored(
    tmp_path: Path, fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text files above WHOLE_READ_BYTES are streamed and hashed as they are parsed: bytes that are not the
    ones planned are refused, never stored under the planned hash."""
    import rag.loaders

    monkeypatch.setattr(rag.loaders, "WHOLE_READ_BYTES", 16)  # so a small file takes the streamed path
    docs = _docs(tmp_path)
    target = docs / "a_good.txt"

    def edit(event: str, source: str, done: int, total: int) -> None:
        if event == "file" and source.endswith("a_good.txt"):
            target.write_text("Changed after planning: sixty days.\n", encoding="utf-8")

    report = ingest_paths([docs], Index(fake_settings), progress=edit)
    assert [(Path(f.path).name, "changed while it was being read" in f.error) for f in report.failed] == [
        ("a_good.txt", True)
    ]
    assert set(_stored(fake_settings)) == {"z_good.md"}
    again = ingest_paths([docs], Index(fake_settings))  # unchanged since: stored, under its hash
    assert again.added == 1 and _stored(fake_settings)["a_good.txt"] == hashlib.sha256(target.read_bytes()).hexdigest()


def _bytes_read() -> int:
    return int(
        next(line for line in Path("/proc/self/io").read_text().splitlines() if line.startswith("rchar")).split()[1]
    )


def test_a_4gb_sparse_text_file_is_refused_by_its_first_bytes(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _docs(tmp_path)
    with open(docs / "huge.txt", "wb") as handle:
        handle.truncate(4 << 30)
    before = _bytes_read()
    report = ingest_paths([docs], Index(fake_settings))
    read = _bytes_read() - before
    assert [(Path(f.path).name, "binary data" in f.error) for f in report.failed] == [("huge.txt", True)]
    assert report.added == 2
    assert read < 256 << 20, f"{read} bytes read: the 4 GB file was hashed"


def test_utf16_without_bom_is_read(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _docs(tmp_path)
    (docs / "windows.txt").write_bytes("第七条 宽限期三十日。\nGrace period thirty days.\n".encode("utf-16-le"))
    (docs / "windows_be.txt").write_bytes("Clause 8. Cooling-off period 21 days.\n".encode("utf-16-be"))
    report = ingest_paths([docs], Index(fake_settings))
    assert report.failed == [] and report.added == 4
    texts = [c.text for c in Index(fake_settings).open_store(create=False).iter_chunks()]
    assert any("宽限期三十日" in t for t in texts) and any("Cooling-off period 21 days" in t for t in texts)


def test_links_out_of_the_roots_are_reported_unless_followed(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _docs(tmp_path)
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (docs / "passwd.txt").symlink_to(outside / "passwd")
    (docs / "inner.txt").symlink_to(docs / "a_good.txt")
    report = ingest_paths([docs], Index(fake_settings))
    assert [
        (Path(f.path).name, "outside the paths given" in f.error and "--follow-symlinks" in f.error)
        for f in report.failed
    ] == [("passwd.txt", True)]
    assert set(_stored(fake_settings)) == {"a_good.txt", "inner.txt", "z_good.md"}
    followed = fake_settings.model_copy(update={"follow_symlinks": True})
    assert ingest_paths([docs], Index(followed)).added == 1 and "passwd.txt" in _stored(followed)
    # a link named on the command line is read wherever it leads
    other = fake_settings.model_copy(update={"index_dir": tmp_path / "other"})
    assert ingest_paths([docs / "passwd.txt"], Index(other)).added == 1


def test_what_is_not_a_file_is_reported_not_skipped(tmp_path: Path, fake_settings: Settings) -> None:
    docs = _docs(tmp_path)
    os.mkfifo(tmp_path / "fifo.txt")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    report = ingest_paths([docs, "/dev/null", tmp_path / "fifo.txt", tmp_path / "zero.txt"], Index(fake_settings))
    assert sorted((f.path, f.error.split(": ")[1]) for f in report.failed) == sorted(
        [
            ("/dev/null", "not a regular file (a device)"),
            (str(tmp_path / "fifo.txt"), "not a regular file (a pipe or socket)"),
            (str(tmp_path / "zero.txt"), "not a regular file (a device)"),
        ]
    )
    assert report.added == 2


def test_cli_a_mistyped_path_creates_no_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["ingest", "polcies"], env={"RAG_EMBEDDER": "fake"})
    assert result.exit_code == 1
    assert "failed: polcies: no such file or folder: check the path" in result.output
    assert not (tmp_path / ".rag").exists()


def test_cli_names_cannot_forge_report_lines_or_drive_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    docs = _docs(tmp_path)
    (docs / "x\nfailed: forged.txt").write_bytes(b"\x00\x01")
    (docs / "\x1b]0;pwned\x07\x1b[2J.txt").write_bytes(b"\x00\x01")
    result = CliRunner().invoke(
        app, ["ingest", str(docs), "--index", str(tmp_path / "idx")], env={"RAG_EMBEDDER": "fake"}
    )
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert not any(line.startswith("failed: forged") for line in lines)
    assert f"failed: {docs}/x\\nfailed: forged.txt: binary data, not text" in "\n".join(lines)
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert f"{docs}/\\x1b]0;pwned\\x07\\x1b[2J.txt: binary data" in result.output


def test_terminal_safe_escapes_controls_and_undecodable_bytes_only() -> None:
    assert terminal_safe("a\nb\r\x1b[2J\x07\x9b\u202eé中文 ok") == "a\\nb\\r\\x1b[2J\\x07\\x9b\\u202eé中文 ok"
    assert terminal_safe("caf\udce9.txt") == "caf\\xe9.txt"


def test_http_ingest_of_hostile_pdfs_answers_200_and_keeps_the_rest(tmp_path: Path) -> None:
    from rag.server import create_app

    settings = Settings(index_dir=tmp_path / "index", embedder="fake", _env_file=None)  # type: ignore[call-arg]
    files = [
        ("files", ("loop.pdf", self_referencing_pdf(), "application/pdf")),
        ("files", ("bomb.pdf", page_tree_bomb(), "application/pdf")),
        ("files", ("good.txt", GOOD.encode(), "text/plain")),
    ]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post("/v1/ingest", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["added"] == 1 and sorted(Path(f["path"]).name for f in body["failed"]) == ["bomb.pdf", "loop.pdf"]
    assert {p.name for p in (tmp_path / "index" / "uploads").iterdir()} >= {"loop.pdf", "bomb.pdf", "good.txt"}
    assert set(_stored(settings)) == {"good.txt"}


def test_a_pdf_too_large_to_hold_is_parsed_from_disk_and_checked_after(
    tmp_path: Path, fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.loaders

    monkeypatch.setattr(rag.loaders, "PDF_WHOLE_READ_BYTES", 16)  # every PDF takes the from-disk path
    docs = _docs(tmp_path)
    write_pdf(docs / "b_policy.pdf", [["Clause 3. The deductible is 500 yuan."], ["Clause 4. Renewal is yearly."]])
    write_pdf(docs / "c_policy.pdf", [["Clause 5. The excess is 100 yuan."]])
    replacement = (docs / "b_policy.pdf").read_bytes().replace(b"500 yuan", b"900 yuan")

    def edit(event: str, source: str, done: int, total: int) -> None:
        if event == "file" and source.endswith("c_policy.pdf"):
            (docs / "c_policy.pdf").write_bytes(replacement)

    report = ingest_paths([docs], Index(fake_settings), progress=edit)
    assert [(Path(f.path).name, "changed while it was being read" in f.error) for f in report.failed] == [
        ("c_policy.pdf", True)
    ]
    stored = _stored(fake_settings)
    assert stored["b_policy.pdf"] == hashlib.sha256((docs / "b_policy.pdf").read_bytes()).hexdigest()
    assert "c_policy.pdf" not in stored


@pytest.mark.slow
def test_the_progress_bar_on_a_terminal_shows_chunks_an_eta_and_the_file_embedded(tmp_path: Path) -> None:
    import re
    import sys

    import pexpect

    docs = tmp_path / "docs"
    docs.mkdir()
    clause = "被保险人应当在事故发生后及时通知本公司，本公司按合同约定给付保险金。"
    for n in range(8):
        body = "\n\n".join(f"## 第{k}条\n\n文件{n}条款{k}：{clause * 8}" for k in range(60))
        (docs / f"policy_{n}.md").write_text(body, encoding="utf-8")
    env = {**os.environ, "RAG_EMBEDDER": "fake", "PYTHONPATH": os.pathsep.join(sys.path)}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "rag", "ingest", str(docs), "--index", str(tmp_path / "index")],
        env=env,
        encoding="utf-8",
        timeout=240,
        dimensions=(24, 200),
    )
    child.expect(pexpect.EOF)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before or "")
    frames = [line for line in re.split(r"[\r\n]+", screen) if line.startswith("embed")]
    assert frames, screen[-2000:]
    assert any(re.search(r"\d+/\d+ chunks .*ETA .*policy_\d\.md", frame) for frame in frames), frames[-5:]
    assert "added 8" in screen


def test_a_broken_pdf_read_after_an_encrypted_one_is_not_called_encrypted(tmp_path: Path) -> None:
    """PDFium's error code outlives the file it was set for: a broken PDF opened after an encrypted one read
    "Incorrect password" too. Each must be told what is wrong with it, in either order."""
    from test_bad_input import _encrypted_pdf

    from rag.errors import LoadError
    from rag.loaders import load_pages

    encrypted, bomb = tmp_path / "encrypted.pdf", tmp_path / "bomb.pdf"
    _encrypted_pdf(encrypted, "s3cret")
    bomb.write_bytes(page_tree_bomb())
    for order in ((encrypted, bomb), (bomb, encrypted)):
        problems = {}
        for path in order:
            with pytest.raises(LoadError) as caught:
                list(load_pages(SourceFile(path=path, source=path.name)))
            problems[path] = caught.value.problem
        assert problems[encrypted] == "encrypted PDF that needs a password"
        assert problems[bomb].startswith("not a readable PDF (LimitReachedError"), problems[bomb]
