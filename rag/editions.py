"""Which version of a product a document is: its product name, edition and the dates it is in force.

Three places say it, the first that names a field wins, field by field:
1. a sidecar `<file>.meta.json` beside the file: {"product", "edition", "effective_from", "effective_to"};
2. Markdown front matter, a `---` block of `key: value` lines at the top of a .md file (removed from the text);
3. the document's own words, read by the rules below from its first pages and the end of its last page.

The rules were written against the real policies in ../shared/eval (scripts/eval_editions.py counts how
many documents get each field). A date counts as an effective date only when it is stated as one
(生效日期：…, 自…起施行, "effective from …"): a policy's "本合同自…开始生效" names no date and is about the
contract, not the edition, so it is never read as one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

from rag.dates import DATE, parse_date
from rag.errors import ConfigError, LoadError
from rag.records import Edition, Page

__all__ = [
    "SIDECAR_SUFFIX",
    "as_of_date",
    "content_digest",
    "edition_dict",
    "extract_edition",
    "merge_editions",
    "read_document_edition",
    "read_sidecar",
    "sidecar_of",
    "split_front_matter",
]

SIDECAR_SUFFIX = ".meta.json"
FIELDS = ("product", "edition", "effective_from", "effective_to")
# front matter keys and the field each fills (other keys, a title or an author, are left alone)
_FRONT_MATTER_KEYS = {
    "product": "product",
    "edition": "edition",
    "version": "edition",
    "effective_from": "effective_from",
    "effective": "effective_from",
    "effective_date": "effective_from",
    "effective_to": "effective_to",
}
# How much of a document the rules read: its title pages and the end of its last page (施行 statements).
HEAD_CHARS = 3000
TAIL_CHARS = 1500
# The pages held back to read the edition before chunking begins: a PDF's are in memory anyway, and a text
# file's first segments (rag.text_files.TEXT_SEGMENT_CHARS each) hold any normal document whole.
BUFFER_CHARS = 2_000_000

# ----- the rules ----------------------------------------------------------------------------------------

_EFFECTIVE_FROM = [
    re.compile(rf"(?:生效日期|施行日期|实施日期|启用日期|执行日期|生效时间)\s*[：:为是]?\s*({DATE})"),
    re.compile(rf"自\s*({DATE})\s*(?:零时|0时)?\s*起\s*(?:正式)?(?:施行|实施|生效|执行|启用|使用|开始施行|开始实施)"),
    re.compile(rf"(?:于|从)\s*({DATE})\s*(?:起)?\s*(?:正式)?(?:施行|实施|生效|启用)"),
    re.compile(
        rf"(?:effective|in force|with effect)\s+(?:from|as of|on|date)\s*[:\-–]?\s*(?:the\s+)?({DATE})", re.IGNORECASE
    ),
    re.compile(rf"effective\s+date\s*(?:of this [a-z ]{{3,30}}?)?\s*(?:is|:|-|–)?\s*({DATE})", re.IGNORECASE),
]
_EFFECTIVE_TO = [
    re.compile(rf"(?:有效期至|停止使用日期|停用日期|废止日期|失效日期|停售日期)\s*[：:为是]?\s*({DATE})"),
    re.compile(rf"(?:至|到)\s*({DATE})\s*(?:止|废止|停止使用|失效)"),
    re.compile(rf"(?:effective|valid|in force)\s+(?:until|till|to|through)\s+({DATE})", re.IGNORECASE),
]
_EDITION = [
    # a filing number or product code after its label: 条款编码：C00012345 / 备案编号：（中华人寿）〔2023〕12号
    re.compile(
        r"(?:条款编码|条款编号|条款代码|备案编号|备案号|产品编码|产品代码|注册号|报备文件编号)\s*[：:]\s*"
        r"([A-Za-z0-9\u4e00-\u9fff〔〕\[\]［］（）()\-_/]{3,60}?号|[A-Za-z0-9〔〕\[\]［］（）()\-_/]{3,40})"
    ),
    # an insurer's filing code standing alone, as in the header of the real clause: 中华人寿[2016]意外伤害保险027号
    # or with a bracketed label: 太平财险(备-家财)[2014]主2号
    re.compile(
        r"((?:[\u4e00-\u9fff]{2,10}|[（(][^（）()\n]{1,12}[)）])\s*[〔\[［(（]\s*\d{4}\s*[〕\]］)）]"
        r"\s*[\u4e00-\u9fff]{0,16}?\s*\d{1,4}\s*号)"
    ),
    re.compile(r"\bUIN\s*[:\-–]?\s*([A-Z]{3,}[A-Z0-9]{6,})"),  # India's IRDAI unique identification number
    re.compile(r"[（(]\s*(\d{4}\s*年?\s*版)\s*[)）]"),  # （2023版）
    re.compile(r"(?<![0-9])(\d{4}\s*年?\s*版)(?![本权])"),  # 2023版 in a title
    re.compile(r"(第[一二三四五六七八九十\d]{1,3}版)"),
    re.compile(r"(?:版本号?|Version)\s*[：:]?\s*([Vv]?\d+(?:\.\d+){0,3})", re.IGNORECASE),
    re.compile(r"(?<![A-Za-z0-9])([Vv]\d+\.\d+(?:\.\d+)?)(?![\d.])"),  # V2.0
]
# 《…保险条款》 or 《…保险》条款: the product a Chinese policy document applies to
_PRODUCT_ZH = re.compile(
    r"《\s*([^《》\n]{2,40}?(?:保险|险|计划)(?:[A-Z]\d?款)?)\s*(?:[（(][^（）()]{0,16}[)）])?\s*(?:产品)?(?:条款)?\s*》"
)
# a title line: 安心医疗保险（2023版）条款, PICC人保寿险团体长期重大疾病保险（G款）_产品条款,
# 中华财险燃气用户财产保险2022-09-29条款
# (the insurer's name before it dropped: 中华联合财产保险股份有限公司财产一切险 is the 财产一切险)
_PRODUCT_ZH_TITLE = re.compile(
    r"《?\s*((?:[^《》\n（()_\-—\[\]［］〔〕\s，。；：,;:]|[（(][^（）()\n]{1,8}[)）])*?(?:保险|险)(?:[A-Z]\d?款)?)"
    r"(?=[（(_\-—》\s]|\d{4}-|产品|条款|说明书|$)"
)
_INSURER = re.compile(r"^.{2,24}?(?:股份有限公司|有限责任公司|有限公司)")
# editions only a title line says: （互联网专属2022-A版）, （2019）, a date before 条款
_TITLE_EDITION = [
    re.compile(r"[（(]([^（）()]{0,10}?\d{4}[^（）()]{0,6}?)[)）]"),
    re.compile(r"(\d{4}-\d{2}-\d{2})\s*(?:产品)?条款\s*$"),
]
TITLE_LINES = 3  # the first lines of a document that may be its title
TITLE_CHARS = 80
# English: "<Name> Policy" said again and again ("Global Health Care Policy"). Not "<Name> Plan": in a 10-K
# that finds "Bemis Integration" (scripts/eval_editions.py --all).
_PRODUCT_EN = re.compile(r"\b((?:[A-Z][A-Za-z&'-]+[ \t]+){1,4})(?:Insurance[ \t]+)?Policy\b")
_NOT_A_NAME = {
    "the", "this", "your", "our", "such", "any", "each", "a", "an", "insurance", "group", "individual", "base",
    "previous", "same", "renewed", "master", "original", "new", "existing", "whole", "floater", "under",
    "for", "of", "in", "and", "as", "per", "if", "or", "to", "with", "by", "on", "at", "section", "company",
}  # fmt: skip
_PRODUCT_EN_MIN_REPEATS = 3


def extract_edition(pages: Iterable[Page]) -> Edition:
    """The product, edition and dates that the document states, from its first pages and its end."""
    texts = [page.text for page in pages if page.kind != "table" and page.text.strip()]
    if not texts:
        return Edition()
    head = "\n".join(texts[:2])[:HEAD_CHARS]
    tail = texts[-1][-TAIL_CHARS:]
    ends = f"{head}\n{tail}"
    titles = _title_lines(head)
    return Edition(
        product=_product(head, titles, "\n".join(texts)),
        edition=_first(_EDITION[:3], ends) or _first(_TITLE_EDITION, "\n".join(titles)) or _first(_EDITION[3:], ends),
        effective_from=_first_date(_EFFECTIVE_FROM, ends),
        effective_to=_first_date(_EFFECTIVE_TO, ends),
    )


def _title_lines(head: str) -> list[str]:
    """The first lines of a document, short and without sentence punctuation: where a title stands."""
    lines = [line.strip().lstrip("#").strip() for line in head.splitlines() if line.strip()][:TITLE_LINES]
    return [line for line in lines if len(line) <= TITLE_CHARS and not re.search(r"[，。；！？]", line)]


def _first(patterns: list[re.Pattern[str]], text: str) -> str | None:
    for pattern in patterns:
        for line in text.splitlines() if pattern.pattern.endswith("$") else [text]:
            if match := pattern.search(line):
                value = match.group(1)
                value = re.sub(r"\s+", "", value) if not value.isascii() else value.strip()
                return value.replace("年版", "版")
    return None


def _first_date(patterns: list[re.Pattern[str]], text: str) -> str | None:
    for pattern in patterns:
        for match in pattern.finditer(text):
            if parsed := parse_date(match.group(1)):
                return parsed
    return None


def _product(head: str, titles: list[str], whole: str) -> str | None:
    if match := _PRODUCT_ZH.search(head):
        return match.group(1).strip()
    for line in titles:
        if match := _PRODUCT_ZH_TITLE.match(_INSURER.sub("", line)):
            return match.group(1).strip()
    counts: dict[str, int] = {}
    for match in _PRODUCT_EN.finditer(whole[:200_000]):
        words = match.group(1).split()
        stops = [n for n, word in enumerate(words) if word.lower() in _NOT_A_NAME]
        words = words[stops[-1] + 1 :] if stops and stops[-1] < len(words) - 1 else words
        if len(words) >= 2 and words[-1].lower() not in _NOT_A_NAME:
            name = " ".join(words)
            counts[name] = counts.get(name, 0) + 1
    if counts:
        name, seen = max(counts.items(), key=lambda item: (item[1], len(item[0])))
        if seen >= _PRODUCT_EN_MIN_REPEATS:
            return name
    return None


# ----- sidecar and front matter --------------------------------------------------------------------------


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _checked_fields(values: dict[str, object], where: str, fix: str) -> Edition:
    fields: dict[str, str] = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        if not isinstance(value, str | int):
            raise LoadError(where, f"{key} must be text, not {type(value).__name__}", fix)
        text = str(value).strip()
        if key.startswith("effective_"):
            iso = parse_date(text)
            if iso is None:
                raise LoadError(where, f"{key} {text!r} is not a date", "write dates as YYYY-MM-DD")
            text = iso
        fields[key] = text
    if (
        fields.get("effective_from")
        and fields.get("effective_to")
        and fields["effective_to"] < fields["effective_from"]
    ):
        raise LoadError(where, "effective_to is before effective_from", "check the two dates")
    return Edition(**fields)


def read_sidecar(path: Path) -> Edition | None:
    """The edition named by `<path>.meta.json`, or None when there is no sidecar. A sidecar that cannot be
    read, or holds an unknown key or a bad date, fails the file with a message naming the sidecar."""
    sidecar = sidecar_of(path)
    try:
        raw = sidecar.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LoadError(str(sidecar), f"cannot be read ({exc.strerror or exc})", "fix or remove the sidecar") from exc
    fix = f"write a JSON object with any of {', '.join(FIELDS)}"
    try:
        values = json.loads(raw)
    except ValueError as exc:
        raise LoadError(str(sidecar), f"is not valid JSON ({exc})", fix) from exc
    if not isinstance(values, dict):
        raise LoadError(str(sidecar), "is not a JSON object", fix)
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise LoadError(str(sidecar), f"unknown key(s) {', '.join(unknown)}", fix)
    return replace(_checked_fields(values, str(sidecar), fix), origin="sidecar")


_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)


def split_front_matter(text: str, where: str = "front matter") -> tuple[Edition | None, str]:
    """The edition that a Markdown text's front matter names (None without front matter) and the text after
    it. Only flat `key: value` lines are read, quotes around a value dropped: enough for these four fields
    without a YAML parser."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return None, text
    values: dict[str, object] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        field = _FRONT_MATTER_KEYS.get(key.strip().lower().replace("-", "_"))
        if sep and field:
            values[field] = value.strip().strip("'\"")
    edition = _checked_fields(values, where, "write dates as YYYY-MM-DD in the front matter")
    return replace(edition, origin="front matter"), text[match.end() :]


def merge_editions(*editions: Edition | None) -> Edition | None:
    """Field by field, the first edition that names it wins; None when none names anything."""
    known = [edition for edition in editions if edition is not None and not edition.is_empty()]
    if not known:
        return None
    givers = {name: next((e for e in known if getattr(e, name)), None) for name in FIELDS}
    fields = {name: getattr(giver, name) if giver else None for name, giver in givers.items()}
    origins = [e.origin for e in known if any(giver is e for giver in givers.values())]
    return Edition(**fields, origin="+".join(dict.fromkeys(origins)))


# ----- a document's edition at ingest --------------------------------------------------------------------


def content_digest(path: Path, file_digest: str) -> str:
    """The digest that chunk ids derive from: the file's own, mixed with its sidecar's bytes when it has one,
    so that editing a sidecar re-ingests the file (and an unchanged file without a sidecar keeps its ids)."""
    try:
        extra = sidecar_of(path).read_bytes()
    except FileNotFoundError:
        return file_digest
    except OSError:
        return file_digest  # read_sidecar reports it when the file is loaded
    return hashlib.sha256(file_digest.encode("ascii") + b"\0" + extra).hexdigest()


def read_document_edition(path: Path, pages: Iterator[Page]) -> tuple[Edition | None, Iterator[Page]]:
    """The edition of the file at `path` (sidecar, then front matter, then its text) and its pages, the
    front matter removed. Pages are held back (up to BUFFER_CHARS) to be read before chunking starts."""
    held: list[Page] = []
    size = 0
    for page in pages:
        held.append(page)
        size += len(page.text)
        if size >= BUFFER_CHARS:
            break
    front: Edition | None = None
    if held and path.suffix.lower() in {".md", ".markdown"}:
        front, body = split_front_matter(held[0].text, f"{held[0].source} (front matter)")
        if front is not None:
            held[0] = replace(held[0], text=body.strip())
            if not held[0].text:
                held.pop(0)
    edition = merge_editions(read_sidecar(path), front, extract_edition(held))

    def all_pages() -> Iterator[Page]:
        yield from held
        yield from pages

    return edition, all_pages()


def edition_dict(edition: Edition | None) -> dict[str, str] | None:
    """How the manifest keeps an edition: its known fields."""
    if edition is None:
        return None
    return {name: value for name in (*FIELDS, "origin") if (value := getattr(edition, name))}


def today() -> str:
    return date.today().isoformat()


def as_of_date(value: str | date | None) -> str | None:
    """The ISO date of an `--as-of` value (a date, or text such as 2023-06-01 or 2023年6月1日); None for none."""
    if value is None or isinstance(value, date):
        return value.isoformat() if value is not None else None
    parsed = parse_date(value)
    if parsed is None:
        raise ConfigError(f"--as-of {value!r} is not a date: write it as YYYY-MM-DD, e.g. 2024-06-01")
    return parsed
