"""Benchmark the two PDF text backends, pypdf and pypdfium2, on the evaluation PDFs.

What it measures, on every PDF under ``../shared/eval`` (policies_zh, policies_en, annual_reports_zh,
financebench_dev/pdfs):

* speed: seconds per page (wall and CPU) for open + extract all pages + close, per file and per corpus;
  the ratio pypdf / pypdfium2 is computed per file in the same run (the two backends are interleaved file
  by file, so machine noise hits both). pypdfium2 is repeated ``--repeats`` times (median kept); pypdf
  runs once per file in the full run (it takes minutes) and ``--repeats`` times in ``--quick``;
* text quality: very short lines (<= 2 chars: words/digits broken by newlines), digit runs split by a
  newline, spurious spaces between CJK characters, characters per page, CJK/ASCII share, number tokens
  (``1,234.56``, ``29.55``, ``2019``) found by one backend but not the other, empty pages;
* pypdfium2 ``get_text_bounded()`` vs ``get_text_range()``: how often and how their output differs;
* a short sample of each backend's output on three table pages (annual report, occupation-class table, 10-K);
* encrypted PDFs built at run time with pypdf (RC4-128 and AES-128, empty and non-empty user password):
  what each backend does without and with the password;
* page-count agreement and files that fail in either backend.

Run::

    .venv/bin/python scripts/bench_pdf.py            # full: 17 PDFs, ~1,900 pages (~5 min idle; pypdf-bound)
    .venv/bin/python scripts/bench_pdf.py --quick    # smallest PDF per corpus, first 20 pages (< 1 min)
    .venv/bin/python scripts/bench_pdf.py --max-pages 50 --repeats 1   # a shorter full run
    .venv/bin/python scripts/bench_pdf.py --eval-dir /path/to/eval

It prints plain-text tables. When the evaluation folder is missing it says so and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import io
import logging
import os
import platform
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tables  # scripts/tables.py, beside this script
from tables import median, width

CORPORA = ("policies_zh", "policies_en", "annual_reports_zh", "financebench_dev/pdfs")
QUICK_MAX_PAGES = 20

CJK = re.compile(r"[\u4e00-\u9fff]")
CJK_SPACE = re.compile(r"[\u4e00-\u9fff][ \t\u3000]+(?=[\u4e00-\u9fff])")
CJK_CHAR = re.compile(r"[\u4e00-\u9fff]")
SPLIT_DIGITS = re.compile(r"\d[ \t]*\n[ \t]*(?=\d)")
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d{4,}")
WS = re.compile(r"\s")


# ----------------------------------------------------------------------------------------------- output


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        if abs(v) >= 0.01:
            return f"{v:.3f}"
        return f"{v:.2e}"
    return str(v)


table = functools.partial(tables.table, fmt=_fmt)


def short_name(path: Path, n: int = 34) -> str:
    """The file's stem cut to n display columns."""
    s = path.stem
    if width(s) <= n:
        return s
    while width(s) > n - 1:
        s = s[:-1]
    return s + "…"


# ----------------------------------------------------------------------------------------------- backends


@dataclass
class Run:
    pages: list[str] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0
    error: str = ""


def _timed(fn: Callable[[], list[str]]) -> Run:
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        pages = fn()
    except Exception as e:  # a benchmark reports a failing file, it does not stop
        return Run(error=f"{type(e).__name__}: {e}"[:120])
    return Run(pages, time.perf_counter() - w0, time.process_time() - c0)


def extract_pypdf(path: Path, max_pages: int | None) -> list[str]:
    import pypdf

    reader = pypdf.PdfReader(path)
    pages = reader.pages if max_pages is None else reader.pages[:max_pages]
    return [p.extract_text() for p in pages]


def extract_pdfium(path: Path, max_pages: int | None, mode: str = "bounded") -> list[str]:
    """pypdfium2: every object (document, page, textpage) is closed explicitly, children first."""
    import pypdfium2 as pdfium

    out = []
    doc = pdfium.PdfDocument(path)
    try:
        n = len(doc) if max_pages is None else min(len(doc), max_pages)
        for i in range(n):
            page = doc[i]
            textpage = page.get_textpage()
            try:
                out.append(textpage.get_text_bounded() if mode == "bounded" else textpage.get_text_range())
            finally:
                textpage.close()
                page.close()
    finally:
        doc.close()
    return out


# ----------------------------------------------------------------------------------------------- metrics


@dataclass
class Quality:
    pages: int = 0
    chars: int = 0  # non-whitespace
    cjk: int = 0
    ascii: int = 0
    lines: int = 0  # non-empty lines
    short_lines: int = 0  # non-empty lines of <= 2 chars after strip
    split_digits: int = 0
    cjk_spaces: int = 0  # any run of spaces between two CJK characters (includes real column gaps)
    cjk_spaces_isolated: int = 0  # ... where one side is a lone CJK char: 全 资 子公司, 阅 读 指 引, （海 洋
    empty_pages: int = 0
    soft_hyphen_markers: int = 0  # pdfium's \x02 (bounded) / \ufffe (range) at a hyphenated line break

    def add(self, text: str) -> None:
        t = text.replace("\r\n", "\n").replace("\r", "\n")
        nonws = WS.sub("", t)
        self.pages += 1
        self.chars += len(nonws)
        self.cjk += len(CJK.findall(nonws))
        self.ascii += sum(1 for ch in nonws if ch < "\x7f")
        stripped = [ln.strip() for ln in t.split("\n")]
        nonempty = [ln for ln in stripped if ln]
        self.lines += len(nonempty)
        self.short_lines += sum(1 for ln in nonempty if len(ln) <= 2)
        self.split_digits += len(SPLIT_DIGITS.findall(t))
        for m in CJK_SPACE.finditer(t):
            self.cjk_spaces += 1
            s, e = m.start(), m.end()  # t[s] and t[e] are the two CJK characters
            lone_left = s == 0 or not CJK_CHAR.match(t[s - 1])
            lone_right = e + 1 >= len(t) or not CJK_CHAR.match(t[e + 1])
            self.cjk_spaces_isolated += lone_left or lone_right
        self.empty_pages += len(nonws) < 10
        self.soft_hyphen_markers += t.count("\x02") + t.count("\ufffe")


def numbers(text: str) -> set[str]:
    return set(NUMBER.findall(text))


# ----------------------------------------------------------------------------------------------- AES shim
# Only to *build* an AES-encrypted test file when `cryptography` is absent (pypdf then cannot write AES).
# Reading is never patched: what pypdf does with the file is exactly what an install without
# `cryptography` does. Plain FIPS-197 AES-128, checked against the standard's test vector at run time.


def _aes128_encryptor(key: bytes) -> Callable[[bytes], bytes]:
    exp, log = [0] * 256, [0] * 256
    x = 1
    for i in range(255):
        exp[i], log[x] = x, i
        x ^= (x << 1) ^ (0x11B if x & 0x80 else 0)
    sbox = []
    for a in range(256):
        b = exp[(255 - log[a]) % 255] if a else 0
        s = b
        for _ in range(4):
            b = ((b << 1) | (b >> 7)) & 0xFF
            s ^= b
        sbox.append(s ^ 0x63)
    xt = [((a << 1) ^ (0x11B if a & 0x80 else 0)) for a in range(256)]
    words = [list(key[i : i + 4]) for i in range(0, 16, 4)]
    rcon = 1
    for i in range(4, 44):
        t = list(words[i - 1])
        if i % 4 == 0:
            t = [sbox[t[1]] ^ rcon, sbox[t[2]], sbox[t[3]], sbox[t[0]]]
            rcon = xt[rcon]
        words.append([a ^ b for a, b in zip(words[i - 4], t, strict=True)])
    rks = [[b for w in words[4 * r : 4 * r + 4] for b in w] for r in range(11)]
    shift = [(i + 4 * (i % 4)) % 16 for i in range(16)]

    def encrypt_block(block: bytes) -> bytes:
        s = [b ^ k for b, k in zip(block, rks[0], strict=True)]
        for r in range(1, 11):
            s = [sbox[s[j]] for j in shift]
            if r < 10:
                m = []
                for c in range(0, 16, 4):
                    a0, a1, a2, a3 = s[c : c + 4]
                    m += [
                        xt[a0] ^ xt[a1] ^ a1 ^ a2 ^ a3,
                        a0 ^ xt[a1] ^ xt[a2] ^ a2 ^ a3,
                        a0 ^ a1 ^ xt[a2] ^ xt[a3] ^ a3,
                        xt[a0] ^ a0 ^ a1 ^ a2 ^ xt[a3],
                    ]
                s = m
            s = [a ^ k for a, k in zip(s, rks[r], strict=True)]
        return bytes(s)

    return encrypt_block


def _check_aes() -> None:
    enc = _aes128_encryptor(bytes(range(16)))
    assert enc(bytes.fromhex("00112233445566778899aabbccddeeff")).hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"


class _PyCryptAES:
    """Stand-in for pypdf's CryptAES (encrypt side only): random IV + AES-128-CBC + PKCS#7."""

    def __init__(self, key: bytes) -> None:
        self.enc = _aes128_encryptor(key)

    def encrypt(self, data: bytes) -> bytes:
        iv = os.urandom(16)
        pad = 16 - len(data) % 16
        data += bytes([pad]) * pad
        out, prev = [iv], iv
        for i in range(0, len(data), 16):
            prev = self.enc(bytes(a ^ b for a, b in zip(data[i : i + 16], prev, strict=True)))
            out.append(prev)
        return b"".join(out)

    def decrypt(self, data: bytes, *, strict: bool = True) -> bytes:
        raise NotImplementedError


def build_encrypted(source: Path | None, algorithm: str, user_password: str) -> bytes:
    import pypdf
    import pypdf._encryption as enc_mod
    from pypdf._crypt_providers import crypt_provider

    writer = pypdf.PdfWriter()
    if source is not None:
        writer.append(str(source), pages=[0])
    else:
        writer.add_blank_page(200, 200)
    patched = algorithm.startswith("AES") and crypt_provider[0] == "local_crypt_fallback"
    original = enc_mod.CryptAES
    if patched:
        _check_aes()
        enc_mod.CryptAES = _PyCryptAES  # type: ignore[misc,assignment]
    try:
        writer.encrypt(user_password=user_password, owner_password="owner-pw", algorithm=algorithm)
        buf = io.BytesIO()
        writer.write(buf)
    finally:
        enc_mod.CryptAES = original  # type: ignore[misc]
    return buf.getvalue()


def _outcome(fn: Callable[[], str]) -> str:
    try:
        return f"ok, {len(WS.sub('', fn()))} chars"
    except Exception as e:
        msg = f"{type(e).__name__}: {e}"
        return msg if len(msg) <= 58 else msg[:57] + "…"


def encryption_section(source: Path | None) -> None:
    import pypdf
    import pypdfium2 as pdfium
    from pypdf._crypt_providers import crypt_provider

    def pypdf_text(data: bytes, password: str | None) -> str:
        r = pypdf.PdfReader(io.BytesIO(data))
        if password is not None:
            r.decrypt(password)
        return r.pages[0].extract_text()

    def pdfium_text(data: bytes, password: str | None) -> str:
        doc = pdfium.PdfDocument(data, password=password)
        try:
            page = doc[0]
            tp = page.get_textpage()
            text = tp.get_text_bounded()
            tp.close()
            page.close()
            return text
        finally:
            doc.close()

    rows = []
    for alg in ("RC4-128", "AES-128"):
        for pw in ("", "secret"):
            try:
                data = build_encrypted(source, alg, pw)
            except Exception as e:
                rows.append([alg, repr(pw), f"cannot build: {type(e).__name__}: {e}"[:60], "", "", ""])
                continue
            rows.append(
                [
                    alg,
                    repr(pw),
                    _outcome(lambda d=data: pypdf_text(d, None)),
                    _outcome(lambda d=data, p=pw: pypdf_text(d, p)),
                    _outcome(lambda d=data: pdfium_text(d, None)),
                    _outcome(lambda d=data, p=pw: pdfium_text(d, p)),
                ]
            )
    src = source.name if source else "a blank page"
    table(
        ["cipher", "user pw", "pypdf, no password", "pypdf, decrypt(pw)", "pdfium, no password", "pdfium, password=pw"],
        rows,
        f"(e) Encrypted PDFs built with pypdf from page 1 of {src} (owner password 'owner-pw'); "
        f"pypdf crypto provider here: {crypt_provider[0]}",
    )
    print(
        "   pypdf: with an empty user password it decrypts transparently; with a real one it raises\n"
        "   FileNotDecryptedError until reader.decrypt(pw). AES needs the `cryptography` package (not a\n"
        "   dependency of rag): without it pypdf raises DependencyError on any AES file, even one that only\n"
        "   has an owner password. pdfium: an empty user password opens transparently; a wrong/missing one\n"
        "   raises PdfiumError('... Incorrect password error'); AES is built in."
    )


# ----------------------------------------------------------------------------------------------- main


def pick_files(eval_dir: Path, quick: bool) -> list[tuple[str, Path]]:
    out = []
    for corpus in CORPORA:
        files = sorted((eval_dir / corpus).glob("*.pdf"))
        if quick and files:
            files = [min(files, key=lambda p: p.stat().st_size)]
        out += [(corpus, f) for f in files]
    return out


def quality_group(corpus: str, path: Path) -> str:
    """Per file for the small Chinese corpora (their files differ in kind), per corpus otherwise."""
    if corpus == "annual_reports_zh":
        year = re.search(r"(\d{4})年", path.stem)
        return f"annual report {year.group(1) if year else path.stem[:10]}"
    if corpus == "policies_zh":
        kinds = (("条款", "clauses"), ("须知", "notice"), ("分类表", "occupation table"))
        return "policies_zh " + next((label for key, label in kinds if key in path.stem), path.stem[-6:])
    return corpus.split("/")[0]


def sample(text: str, limit: int = 260) -> str:
    t = text.replace("\r\n", "\n")
    t = t[:limit].replace("\n", "⏎")
    return t + ("…" if len(text) > limit else "")


def table_samples(eval_dir: Path) -> None:
    targets = [
        ("annual report 2019, p.6 (main financial indicators)", "annual_reports_zh/*2019年*年度报告.pdf", 5),
        ("occupation-class table, p.2", "policies_zh/*职业类别分类表.pdf", 1),
        ("AMCOR 10-K, p.51 (comprehensive income)", "financebench_dev/pdfs/AMCOR_2023_10K.pdf", 50),
    ]
    print("\n(d) Table pages: first 260 characters of each backend (⏎ = line break)")
    for label, pattern, index in targets:
        hits = sorted(eval_dir.glob(pattern))
        if not hits:
            continue
        import pypdf
        import pypdfium2 as pdfium

        a = pypdf.PdfReader(hits[0]).pages[index].extract_text()
        doc = pdfium.PdfDocument(hits[0])
        page = doc[index]
        tp = page.get_textpage()
        b = tp.get_text_bounded()
        tp.close()
        page.close()
        doc.close()
        print(f"\n  {label}")
        print(f"    pypdf    : {sample(a)}")
        print(f"    pypdfium2: {sample(b)}")


def main(argv: Sequence[str] | None = None) -> int:
    default_eval = Path(__file__).resolve().parents[2] / "shared" / "eval"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest PDF per corpus, first 20 pages (< 1 min)")
    ap.add_argument("--eval-dir", type=Path, default=default_eval, help=f"default: {default_eval}")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of pypdfium2 per file (median kept)")
    ap.add_argument("--max-pages", type=int, default=None, help="only the first N pages of each file")
    args = ap.parse_args(argv)

    print(f"bench_pdf  {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, cpu_count={os.cpu_count()}")
    print(f"python {platform.python_version()}", end="")
    if not args.eval_dir.is_dir():
        print(f"\nevaluation folder {args.eval_dir} not found: nothing to benchmark (skipped).")
        return 0
    import pypdf
    import pypdfium2

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns on odd but readable PDFs; not timed
    print(
        f", pypdf {pypdf.__version__}, pypdfium2 {pypdfium2.version.PYPDFIUM_INFO} "
        f"(pdfium {pypdfium2.version.PDFIUM_INFO})"
    )
    print(f"load average: {os.getloadavg()} (shared machine: read wall times as noisy; CPU times and ratios hold)")

    quick = args.quick
    max_pages = args.max_pages or (QUICK_MAX_PAGES if quick else None)
    pypdf_repeats = args.repeats if quick else 1
    files = pick_files(args.eval_dir, quick)
    if not files:
        print(f"no PDFs under {args.eval_dir}: skipped.")
        return 0
    print(
        f"mode: {'quick' if quick else 'full'}; {len(files)} files; pypdf runs per file: {pypdf_repeats}; "
        f"pypdfium2 runs per file: {args.repeats}"
    )

    speed_rows, fails = [], []
    per_corpus: dict[str, dict[str, list]] = {}
    quality: dict[tuple[str, str], Quality] = {}
    num_only: dict[tuple[str, str], int] = Counter()
    num_examples: dict[str, list[str]] = {}
    bvr = Counter()
    bvr_chars: dict[str, Counter] = {"bounded": Counter(), "range": Counter()}
    t_bounded, t_range = 0.0, 0.0
    t_start = time.perf_counter()
    for corpus, path in files:
        runs_a = [_timed(lambda p=path: extract_pypdf(p, max_pages)) for _ in range(pypdf_repeats)]
        runs_b = [_timed(lambda p=path: extract_pdfium(p, max_pages)) for _ in range(args.repeats)]
        a, b = runs_a[0], runs_b[0]
        for name, run in (("pypdf", a), ("pypdfium2", b)):
            if run.error:
                fails.append([short_name(path), name, run.error])
        na, nb = len(a.pages), len(b.pages)
        wa = median([r.wall for r in runs_a]) / max(na, 1)
        ca = median([r.cpu for r in runs_a]) / max(na, 1)
        wb = median([r.wall for r in runs_b]) / max(nb, 1)
        cb = median([r.cpu for r in runs_b]) / max(nb, 1)
        ok = not a.error and not b.error
        speed_rows.append(
            [
                corpus.split("/")[0],
                short_name(path),
                na if not a.error else "FAIL",
                nb if not b.error else "FAIL",
                "yes" if na == nb else "NO",
                wa,
                ca,
                wb,
                cb,
                (ca / cb) if ok and cb else "-",
            ]
        )
        pc = per_corpus.setdefault(
            corpus, {"pages": [], "wa": [], "wb": [], "ca": [], "cb": [], "ratio": [], "ta": [], "tb": []}
        )
        if ok:
            pc["pages"].append(na)
            pc["wa"].append(wa)
            pc["wb"].append(wb)
            pc["ca"].append(ca)
            pc["cb"].append(cb)
            pc["ratio"].append(ca / cb if cb else float("nan"))
            pc["ta"].append(median([r.wall for r in runs_a]))
            pc["tb"].append(median([r.wall for r in runs_b]))
        for name, run in (("pypdf", a), ("pypdfium2", b)):
            q = quality.setdefault((quality_group(corpus, path), name), Quality())
            for t in run.pages:
                q.add(t)
        if ok and na == nb:
            for ta, tb in zip(a.pages, b.pages, strict=True):
                sa, sb = numbers(ta), numbers(tb.replace("\x02", "-"))
                only_a, only_b = sa - sb, sb - sa
                num_only[(corpus, "pypdf")] += len(only_a)
                num_only[(corpus, "pdfium")] += len(only_b)
                ex = num_examples.setdefault(corpus, [])
                pair = _matching_numbers(only_a, only_b)
                if pair and len(ex) < 4:
                    ex.append(f"{_context(ta, pair[0])!r} vs {_context(tb, pair[1])!r}")
        # bounded vs range: same pages, each timed (text extraction call only)
        if not b.error:
            import pypdfium2 as pdfium

            doc = pdfium.PdfDocument(path)
            n = len(doc) if max_pages is None else min(len(doc), max_pages)
            for i in range(n):
                page = doc[i]
                tp = page.get_textpage()
                t0 = time.perf_counter()
                tb_ = tp.get_text_bounded()
                t1 = time.perf_counter()
                tr_ = tp.get_text_range()
                t2 = time.perf_counter()
                t_bounded += t1 - t0
                t_range += t2 - t1
                bvr["pages"] += 1
                if tb_ != tr_:
                    bvr["differ"] += 1
                    cbnd, crng = Counter(tb_), Counter(tr_)
                    bvr_chars["bounded"].update(cbnd - crng)
                    bvr_chars["range"].update(crng - cbnd)
                tp.close()
                page.close()
            doc.close()
        print(f"  [{time.perf_counter() - t_start:6.1f}s] {corpus:22s} {short_name(path)}", file=sys.stderr, flush=True)

    table(
        [
            "corpus",
            "file",
            "pages pypdf",
            "pages pdfium",
            "agree",
            "pypdf s/p wall",
            "pypdf s/p cpu",
            "pdfium s/p wall",
            "pdfium s/p cpu",
            "ratio cpu",
        ],
        speed_rows,
        "Speed per file (open + extract every page + close; s/p = seconds per page; ratio = pypdf/pdfium CPU)",
    )
    rows = []
    all_ = {k: [] for k in ("pages", "wa", "wb", "ca", "cb", "ratio", "ta", "tb")}
    for corpus, pc in per_corpus.items():
        for k in all_:
            all_[k] += pc[k]
        rows.append(_speed_summary(corpus, pc))
    rows.append(_speed_summary("ALL", all_))
    table(
        [
            "corpus",
            "files",
            "pages",
            "pypdf total s",
            "pdfium total s",
            "pypdf med s/p",
            "pdfium med s/p",
            "pypdf med cpu s/p",
            "pdfium med cpu s/p",
            "med ratio (cpu)",
            "total ratio (wall)",
        ],
        rows,
        "Speed summary (medians over files; totals are wall seconds, median of repeats)",
    )
    if fails:
        table(["file", "backend", "error"], fails, "Failures")
    else:
        print("\nFailures: none (every file opened and extracted in both backends)")

    rows = []
    for (group, name), q in quality.items():
        rows.append(
            [
                group,
                name,
                q.pages,
                q.chars / max(q.pages, 1),
                100 * q.cjk / max(q.chars, 1),
                100 * q.ascii / max(q.chars, 1),
                q.lines / max(q.pages, 1),
                100 * q.short_lines / max(q.lines, 1),
                q.split_digits / max(q.pages, 1),
                q.cjk_spaces,
                q.cjk_spaces_isolated,
                1000 * q.cjk_spaces_isolated / max(q.cjk, 1),
                q.empty_pages,
                q.soft_hyphen_markers,
            ]
        )
    table(
        [
            "corpus / file",
            "backend",
            "pages",
            "chars/page",
            "CJK %",
            "ASCII %",
            "lines/page",
            "short lines %",
            "split digits/page",
            "CJK␣CJK",
            "lone-char CJK␣CJK",
            "per 1k CJK",
            "empty pages",
            "\\x02 marks",
        ],
        rows,
        "Text quality (chars = non-whitespace; short line = non-empty line of <= 2 chars; split digit = digit,\n"
        "  newline, digit; CJK␣CJK = spaces between two CJK characters (real column gaps included); lone-char =\n"
        "  one side is a single CJK character (全 资 子公司, （海 洋矿产): the spurious ones; \\x02 = pdfium's\n"
        "  marker for a hyphen at a line break, map it to '-')",
    )
    print(
        "  note: a table row ending in a number followed by a row starting with one also counts as a split "
        "digit,\n  so neither backend reaches 0; the difference between them is the signal."
    )
    rows = []
    for corpus in per_corpus:
        rows.append([corpus.split("/")[0], num_only[(corpus, "pypdf")], num_only[(corpus, "pdfium")]])
    table(
        ["corpus", "only in pypdf", "only in pdfium"],
        rows,
        "Number tokens (1,234.56 / 29.55 / 2019) found on a page by one backend and not by the other",
    )
    for corpus, ex in num_examples.items():
        if ex:
            print(f"  {corpus.split('/')[0]}, pypdf vs pdfium:")
            for e in ex:
                print(f"    {e}")

    print("\npypdfium2 get_text_bounded() vs get_text_range() on the same textpages")
    table(
        [
            "pages",
            "pages differing",
            "chars only in bounded",
            "chars only in range",
            "bounded ms/page",
            "range ms/page",
        ],
        [
            [
                bvr["pages"],
                bvr["differ"],
                _top(bvr_chars["bounded"]),
                _top(bvr_chars["range"]),
                1000 * t_bounded / max(bvr["pages"], 1),
                1000 * t_range / max(bvr["pages"], 1),
            ]
        ],
    )
    print(
        "  The same characters either way. get_text_range() breaks more wrapped table cells with an extra line\n"
        "  break (承诺\\r\\n内容 where bounded gives 承诺内容) and returns the line-break hyphen as U+FFFE\n"
        "  (bounded: \\x02); pypdfium2 documents it as UCS-2 only, while get_text_bounded() decodes full UTF-16\n"
        "  (characters outside the BMP, e.g. rare CJK in names) and keeps only text inside the page box.\n"
        f"  bounded costs {1000 * (t_bounded - t_range) / max(bvr['pages'], 1):.2f} ms a page more (it asks PDFium "
        "twice: size, then text), nothing next to\n  pypdf's ~100 ms a page: use get_text_bounded()."
    )

    table_samples(args.eval_dir)
    print()
    notice = next(iter(sorted((args.eval_dir / "policies_zh").glob("*投保须知.pdf"))), None)
    encryption_section(notice)
    print(
        "\nNotes: pypdfium2 objects wrap native PDFium handles; close textpage, page and document explicitly\n"
        "(children before parents) or use `with`; finalizers exist but run late. PDFium is not thread-safe, not\n"
        "even across different documents (pypdfium2 docs: crash or corruption), and ctypes releases the GIL\n"
        "during calls: keep all PDFium calls in one thread (or behind one lock), or use worker processes.\n"
        "Other work (chunking, embedding) may run in other threads meanwhile."
    )
    print(f"\ntotal run time {time.perf_counter() - t_start:.0f} s")
    return 0


def _speed_summary(label: str, pc: dict[str, list]) -> list[object]:
    ta, tb = sum(pc["ta"]), sum(pc["tb"])
    return [
        label.split("/")[0],
        len(pc["pages"]),
        sum(pc["pages"]),
        ta,
        tb,
        median(pc["wa"]),
        median(pc["wb"]),
        median(pc["ca"]),
        median(pc["cb"]),
        median(pc["ratio"]),
        ta / tb if tb else "-",
    ]


def _matching_numbers(only_a: set[str], only_b: set[str]) -> tuple[str, str] | None:
    """A number one backend got and a different rendering of it the other got (29.\\n55 vs 29.55)."""
    for a in sorted(only_a):
        da = re.sub(r"\D", "", a)
        for b in sorted(only_b):
            db = re.sub(r"\D", "", b)
            close = abs(len(da) - len(db)) <= 1 and max(len(da), len(db)) >= 3
            if close and (da.startswith(db) or db.startswith(da) or da.endswith(db) or db.endswith(da)):
                return a, b
    return None


def _context(text: str, token: str, width: int = 14) -> str:
    """The text around the place where NUMBER matched `token` (not just any substring equal to it)."""
    i = next((m.start() for m in NUMBER.finditer(text) if m.group() == token), max(text.find(token), 0))
    return re.sub(r"\s+", "⏎", text[max(0, i - width) : i + len(token) + width].replace("\r\n", "\n"))


def _top(c: Counter, n: int = 4) -> str:
    return " ".join(f"{ch!r}x{k}" for ch, k in c.most_common(n)) or "-"


if __name__ == "__main__":
    sys.exit(main())
