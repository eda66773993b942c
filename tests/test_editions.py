"""Editions: what a document says about its product, edition and dates; sidecars; front matter; which edition
is in force on a date, and that `ask` answers from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_eval
from openai_stub import OpenAIStub
from pdfgen import write_pdf
from pydantic import SecretStr
from typer.testing import CliRunner

from rag.cli import app
from rag.config import Settings
from rag.dates import parse_date
from rag.discovery import SourceFile, discover
from rag.edition_scope import same_product, scope_for
from rag.editions import (
    as_of_date,
    content_digest,
    extract_edition,
    merge_editions,
    read_document_edition,
    read_sidecar,
    split_front_matter,
)
from rag.errors import ConfigError, LoadError
from rag.index import Index
from rag.ingest import ingest_paths
from rag.loaders import load_pages
from rag.qa import answer_question
from rag.records import Edition, IngestReport, Page


def _ingest(paths: list[Path], settings: Settings) -> IngestReport:
    # not rag.ingest: once the submodule rag.ingest is imported, it shadows the function of that name
    with Index(settings) as index:
        return ingest_paths(paths, index)


def _edition(text: str) -> Edition:
    return extract_edition([Page(source="x", page=1, text=text)])


# ----- dates and rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2023年1月1日", "2023-01-01"),
        ("2023 年 10 月 8 日", "2023-10-08"),
        ("二〇二三年十二月三十一日", "2023-12-31"),
        ("2024-03-01", "2024-03-01"),
        ("2024/3/1", "2024-03-01"),
        ("1 January 2023", "2023-01-01"),
        ("April 1st, 2024", "2024-04-01"),
        ("2023-02-30", None),
        ("sometime", None),
    ],
)
def test_parse_date(text: str, iso: str | None) -> None:
    assert parse_date(text) == iso


def test_chinese_title_edition_and_effective_date() -> None:
    edition = _edition("安心医疗保险（2023版）条款\n第一条 ……\n本条款自2023年1月1日起施行。")
    assert edition == Edition(product="安心医疗保险", edition="2023版", effective_from="2023-01-01")


def test_labelled_codes_and_dates() -> None:
    edition = _edition("《安心医疗保险条款》\n条款编码：AXYL-2023-01\n生效日期：2024年3月1日\n停售日期：2025年2月28日")
    assert edition.product == "安心医疗保险" and edition.edition == "AXYL-2023-01"
    assert (edition.effective_from, edition.effective_to) == ("2024-03-01", "2025-02-28")


def test_english_version_and_effective_from() -> None:
    text = "CarePlus Health Policy Wording Version 2.0\nThis wording is effective from 1 January 2024."
    edition = _edition(text + "\nThe CarePlus Health Policy covers ... under the CarePlus Health Policy ...")
    assert edition == Edition(product="CarePlus Health", edition="2.0", effective_from="2024-01-01")
    assert _edition("Terms V2.1 apply").edition == "V2.1"


def test_a_contracts_own_start_is_no_edition_date() -> None:
    """A policy says when the contract starts (本合同自…开始生效, "the effective date of the Policy") without a
    date: that is not the date the edition comes into force."""
    edition = _edition(
        "本合同自我们同意承保、收取首期保险费并签发保险单后开始生效。"
        "within 48 months prior to the effective date of the Policy"
    )
    assert edition.effective_from is None and edition.effective_to is None


def test_a_quoted_regulations_date_is_not_the_editions() -> None:
    text = "《安心意外伤害保险条款》\n伤残等级参照《人体损伤致残程度分级》（2017年1月1日起施行）确定。"
    assert _edition(text).effective_from is None


@pytest.mark.parametrize(
    ("title", "product", "edition"),
    [  # real contract names from InsQABench
        ("TaiPing个人住院医疗费用保险（互联网专属2022-A版）", "TaiPing个人住院医疗费用保险", "互联网专属2022-A版"),
        ("《泰康团体意外伤害保险》泰康养发[2022]102号产品条款", "泰康团体意外伤害保险", "泰康养发[2022]102号"),
        ("中华财险燃气用户财产保险2022-09-29条款", "中华财险燃气用户财产保险", "2022-09-29"),
        (
            "中美联泰大都会人寿保险有限公司都会传家（2018）终身寿险（分红型）-产品条款",
            "都会传家（2018）终身寿险",
            "2018",
        ),
        ("PICC人保寿险团体长期重大疾病保险（G款）_产品条款", "PICC人保寿险团体长期重大疾病保险", None),
    ],
)
def test_title_lines(title: str, product: str, edition: str | None) -> None:
    found = _edition(title)
    assert (found.product, found.edition) == (product, edition)


def test_rules_on_the_real_chinese_clause() -> None:
    folder = shared_eval("policies_zh")
    files, _ = discover([folder / "中华借款人意外伤害保险条款.pdf"])
    edition = extract_edition(load_pages(files[0]))
    assert edition.product == "中华借款人意外伤害保险"
    assert edition.edition == "中华人寿[2016]意外伤害保险027号"
    assert edition.effective_from is None  # it states none


# ----- sidecar and front matter ------------------------------------------------------------------------------


def test_sidecar_read_and_checked(tmp_path: Path) -> None:
    doc = tmp_path / "terms.pdf"
    assert read_sidecar(doc) is None
    sidecar = tmp_path / "terms.pdf.meta.json"
    sidecar.write_text(json.dumps({"product": "安心医疗保险", "edition": "2020版", "effective_from": "2020-01-01"}))
    assert read_sidecar(doc) == Edition("安心医疗保险", "2020版", "2020-01-01", None, origin="sidecar")
    sidecar.write_text(json.dumps({"prodcut": "typo"}))
    with pytest.raises(LoadError, match=r"terms\.pdf\.meta\.json.*unknown key\(s\) prodcut"):
        read_sidecar(doc)
    sidecar.write_text(json.dumps({"effective_from": "next year"}))
    with pytest.raises(LoadError, match=r"not a date.*YYYY-MM-DD"):
        read_sidecar(doc)
    sidecar.write_text("{not json")
    with pytest.raises(LoadError, match="not valid JSON"):
        read_sidecar(doc)


def test_front_matter_parsed_and_removed() -> None:
    text = '---\ntitle: 条款\nproduct: 安心医疗保险\nversion: "2024版"\neffective_from: 2024-01-01\n---\n# 正文\n'
    edition, body = split_front_matter(text)
    assert edition == Edition("安心医疗保险", "2024版", "2024-01-01", None, origin="front matter")
    assert body == "# 正文\n"
    assert split_front_matter("# no front matter\n---\n") == (None, "# no front matter\n---\n")


def test_sidecar_over_front_matter_over_text(tmp_path: Path) -> None:
    doc = tmp_path / "terms.md"
    text = "---\nedition: 2021版\n---\n安心医疗保险（2020版）条款\n本条款自2020年1月1日起施行。\n"
    doc.write_text(text, encoding="utf-8")
    (tmp_path / "terms.md.meta.json").write_text(json.dumps({"effective_from": "2021-07-01"}))
    file = SourceFile(path=doc, source=str(doc))
    edition, pages = read_document_edition(doc, load_pages(file))
    assert edition is not None
    assert (edition.product, edition.edition, edition.effective_from) == ("安心医疗保险", "2021版", "2021-07-01")
    assert edition.origin == "sidecar+front matter+text"
    assert not any("edition:" in page.text for page in pages)  # the front matter is not indexed
    assert merge_editions(None, Edition()) is None


def test_sidecar_changes_the_digest_and_is_no_document(tmp_path: Path) -> None:
    doc = tmp_path / "terms.txt"
    doc.write_text("text", encoding="utf-8")
    plain = content_digest(doc, "abc")
    assert plain == "abc"
    (tmp_path / "terms.txt.meta.json").write_text('{"edition": "1"}')
    first = content_digest(doc, "abc")
    (tmp_path / "terms.txt.meta.json").write_text('{"edition": "2"}')
    assert len({plain, first, content_digest(doc, "abc")}) == 3
    files, problems = discover([tmp_path])
    assert [f.path.name for f in files] == ["terms.txt"] and not problems


# ----- which edition is in force ------------------------------------------------------------------------------

OLD = Edition("安心医疗保险", "2020版", "2020-01-01")
NEW = Edition("安心医疗保险", "2024版", "2024-01-01")
NOTICE = Edition("安心医疗保险")  # the product's notice: no dates, never set aside by a date
OTHER = Edition("畅行意外险", "V1.0", "2019-05-01", "2022-12-31")


def test_scope_picks_the_edition_in_force() -> None:
    catalog = {"old.pdf": OLD, "new.pdf": NEW, "notice.pdf": NOTICE, "other.pdf": OTHER}
    before = scope_for(catalog, "2022-06-01")
    assert before.exclude == {"new.pdf"} and before.allows("old.pdf") and before.allows("notice.pdf")
    assert before.allows("other.pdf") and before.allows("undated-or-unknown.pdf")
    after = scope_for(catalog, "2024-06-01")
    assert after.exclude == {"old.pdf", "other.pdf"}
    reasons = {source: why for source, _, why in after.set_aside}
    assert reasons["old.pdf"].startswith("superseded") and reasons["other.pdf"] == "no longer in force"
    assert scope_for(catalog, "2018-01-01").exclude == {"old.pdf", "new.pdf", "other.pdf"}


def test_scope_by_product() -> None:
    catalog = {"old.pdf": OLD, "new.pdf": NEW, "other.pdf": OTHER}
    scope = scope_for(catalog, "2024-06-01", product="安心医疗")
    assert scope.only == {"old.pdf", "new.pdf"}
    assert not scope.allows("other.pdf") and not scope.allows("no-edition.txt") and scope.allows("new.pdf")
    assert scope.chroma_where("new.pdf") == {
        "$and": [{"source": "new.pdf"}, {"source": {"$in": ["new.pdf", "old.pdf"]}}, {"source": {"$nin": ["old.pdf"]}}]
    }
    assert same_product("《安心医疗保险条款》", "安心医疗保险") and not same_product("x", None)


def test_as_of_accepts_dates_and_rejects_nonsense() -> None:
    assert as_of_date("2023年6月1日") == "2023-06-01" and as_of_date(None) is None
    with pytest.raises(ConfigError, match="--as-of 'soon' is not a date"):
        as_of_date("soon")


# ----- end to end: two editions with different waiting periods ----------------------------------------------


def _policy_pdf(path: Path, version: str, effective: str, days: int) -> Path:
    return write_pdf(
        path,
        [
            [
                f"CarePlus Health Policy Wording Version {version}",
                f"This policy wording is effective from {effective}.",
                "1. Definitions",
                "Hospital means an institution registered as a hospital with the local authorities.",
                "2. Waiting Period",
                f"Claims for any illness are payable only after a waiting period of {days} days from the start",
                "of the CarePlus Health Policy. Accidents are covered from the first day.",
                "3. Exclusions",
                "The CarePlus Health Policy does not cover cosmetic treatment or dental treatment.",
            ]
        ],
    )


@pytest.fixture
def two_editions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Path]:
    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    _policy_pdf(docs / "careplus_v1.pdf", "1.0", "1 January 2020", 90)
    _policy_pdf(docs / "careplus_v2.pdf", "2.0", "1 January 2024", 180)
    # A Chinese product in Markdown: one edition dated by front matter, the other by a sidecar
    (docs / "anxin_2020.md").write_text(
        "---\nproduct: 安心医疗保险\nedition: 2020版\neffective_from: 2020-01-01\n---\n"
        "# 安心医疗保险条款\n\n## 2.3 等待期\n\n本合同的等待期为90天，等待期内发生的疾病不予赔付。\n",
        encoding="utf-8",
    )
    (docs / "anxin_2024.md").write_text(
        "# 安心医疗保险条款\n\n## 2.3 等待期\n\n本合同的等待期为180天，等待期内发生的疾病不予赔付。\n", encoding="utf-8"
    )
    (docs / "anxin_2024.md.meta.json").write_text(
        json.dumps({"product": "安心医疗保险", "edition": "2024版", "effective_from": "2024-01-01"}), encoding="utf-8"
    )
    (docs / "faq.txt").write_text("How do I file a claim? Call the service line and send the hospital bills.\n")
    settings = Settings(index_dir=tmp_path / "index", embedder="fake", refusal_min_score=0.0, _env_file=None)  # type: ignore[call-arg]
    report = _ingest([docs], settings)
    assert report.added == 5 and not report.failed, report.failed
    return settings, docs


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_answer_quotes_the_edition_in_force(two_editions: tuple[Settings, Path], mode: str) -> None:
    settings, _ = two_editions
    question = "How long is the waiting period for illness?"
    for as_of, days, version, other in [
        ("2022-06-01", "90 days", "1.0", "careplus_v2"),
        ("2025-03-01", "180 days", "2.0", "careplus_v1"),
    ]:
        answer = answer_question(question, settings, as_of=as_of, mode=mode)
        assert days in answer.answer, (as_of, answer.answer)
        assert answer.citations and all(c.edition is not None for c in answer.citations)
        assert {c.edition.edition for c in answer.citations if c.edition} == {version}
        # the edition not in force is never among the passages
        assert answer.passages and not any(other in p.source for p in answer.passages)
        assert answer.audit is not None and answer.audit.editions is not None
        assert answer.audit.editions["as_of"] == as_of
        assert any(f"CarePlus Health {version}" in label for label in answer.audit.editions["used"])
    default = answer_question(question, settings, mode=mode)  # today: the newest edition
    assert "180 days" in default.answer


@pytest.mark.slow
def test_top_k_is_filled_from_the_documents_in_scope(two_editions: tuple[Settings, Path]) -> None:
    from rag.index import Index

    settings, _ = two_editions
    searcher = Index(settings).searcher()
    for mode in ("dense", "lexical", "hybrid"):
        unscoped = searcher.search("waiting period illness CarePlus", 3, mode)  # type: ignore[arg-type]
        assert any("careplus_v1" in hit.chunk.source for hit in unscoped)
        scope = searcher.edition_scope("2025-01-01", "CarePlus Health")
        hits = searcher.search("waiting period illness CarePlus", 3, mode, scope=scope)  # type: ignore[arg-type]
        assert hits and all("careplus_v2" in hit.chunk.source for hit in hits)
    # dense search always fills k: with the old edition set aside the k come from the documents in force
    dense = searcher.search("waiting period illness CarePlus", 4, "dense", scope=searcher.edition_scope("2025-01-01"))
    assert len(dense) == 4 and not any("careplus_v1" in hit.chunk.source for hit in dense)


@pytest.mark.slow
def test_the_model_is_told_the_edition(two_editions: tuple[Settings, Path], stub: OpenAIStub) -> None:
    settings, _ = two_editions
    stub.reply("The waiting period is 180 days [1].")
    llm = settings.model_copy(update={"base_url": stub.base_url, "api_key": SecretStr("sk-test")})
    answer = answer_question("waiting period for illness", llm, as_of="2025-01-01", product="CarePlus")
    prompt = stub.chat_requests[0].json["messages"][-1]["content"]
    assert "edition: CarePlus Health 2.0, in force from 2024-01-01" in prompt
    assert "CarePlus Health 1.0" not in prompt
    assert answer.mode == "llm" and answer.citations[0].edition is not None
    assert answer.to_dict()["citations"][0]["edition"]["edition"] == "2.0"


@pytest.mark.slow
def test_chinese_editions_from_front_matter_and_sidecar(two_editions: tuple[Settings, Path]) -> None:
    settings, _ = two_editions
    old = answer_question("等待期是多少天？", settings, as_of="2021-01-01", product="安心医疗保险")
    new = answer_question("等待期是多少天？", settings, as_of="2024年6月1日", product="安心医疗保险")
    assert "90天" in old.answer and "180天" not in old.answer
    assert "180天" in new.answer and "90天" not in new.answer
    assert {p.source.rsplit("/", 1)[-1] for p in new.passages} == {"anxin_2024.md"}  # the product filter
    assert new.citations[0].edition == Edition("安心医疗保险", "2024版", "2024-01-01", origin="sidecar")


@pytest.mark.slow
def test_cli_status_and_ask_show_editions(two_editions: tuple[Settings, Path]) -> None:
    settings, docs = two_editions
    env = {"RAG_EMBEDDER": "fake", "RAG_INDEX_DIR": str(settings.index_dir), "RAG_REFUSAL_MIN_SCORE": "0"}
    runner = CliRunner()
    status = runner.invoke(app, ["status", "--json"], env=env)
    assert status.exit_code == 0, status.output
    products = json.loads(status.stdout)["products"]
    assert [e["edition"] for e in products["CarePlus Health"]] == ["1.0", "2.0"]
    assert [e["effective_from"] for e in products["安心医疗保险"]] == ["2020-01-01", "2024-01-01"]
    text = runner.invoke(app, ["status"], env=env).stdout
    assert "product CarePlus Health:" in text and "2.0  2024-01-01" in text
    asked = runner.invoke(app, ["ask", "waiting period for illness", "--as-of", "2021-05-05"], env=env)
    assert asked.exit_code == 0, asked.output
    assert "90 days" in asked.stdout
    assert "CarePlus Health 1.0, in force from 2020-01-01" in asked.stdout
    assert "Edition used (as of 2021-05-05): CarePlus Health 1.0" in asked.stdout
    bad = runner.invoke(app, ["ask", "waiting period", "--as-of", "someday"], env=env)
    assert bad.exit_code != 0 and "YYYY-MM-DD" in bad.output
    # editing a sidecar re-ingests its file
    sidecar = docs / "anxin_2024.md.meta.json"
    sidecar.write_text(json.dumps({"product": "安心医疗保险", "edition": "2024版", "effective_from": "2024-02-01"}))
    assert _ingest([docs], settings).updated == 1


@pytest.mark.slow
def test_http_ask_takes_as_of_and_product_and_status_lists_editions(two_editions: tuple[Settings, Path]) -> None:
    from fastapi.testclient import TestClient

    from rag.server import create_app

    settings, _ = two_editions
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        products = client.get("/v1/status").json()["products"]
        assert [e["edition"] for e in products["CarePlus Health"]] == ["1.0", "2.0"]
        body = {"question": "waiting period for illness", "as_of": "2021-01-01", "product": "CarePlus"}
        answer = client.post("/v1/ask", json=body).json()
        assert "90 days" in answer["answer"]
        assert answer["audit"]["editions"]["product"] == "CarePlus"
        assert [e["edition"] for e in answer["audit"]["editions"]["set_aside"]] == ["2.0"]
        bad = client.post("/v1/ask", json={**body, "as_of": "someday"})
        assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["error"]["message"]
        unknown = client.post("/v1/ask", json={**body, "product": "Nonexistent Cover"})
        assert unknown.status_code == 400
        assert "the products are: CarePlus Health, 安心医疗保险" in unknown.json()["error"]["message"]
