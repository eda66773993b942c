"""The customer -> document synonym map, query expansion and Traditional -> Simplified folding."""

from __future__ import annotations

import pytest

from rag.lexical import LexicalIndex
from rag.lexical_tokens import tokenize
from rag.synonyms import expand_query, load_synonyms, parse_synonyms, to_simplified


def test_the_map_loads_with_enough_groups_and_no_empty_side() -> None:
    groups = load_synonyms()
    assert len(groups) >= 180
    assert all(g.customer.strip() and g.document and all(t.strip() for t in g.document) for g in groups)
    customers = [g.customer for g in groups]
    assert len(customers) == len(set(customers)), "a customer term appears on two lines"
    assert any("\u4e00" <= g.customer[0] <= "\u9fff" for g in groups)
    assert any(g.customer.isascii() for g in groups)


def test_the_map_leaves_out_words_that_would_match_everything() -> None:
    customers = {g.customer for g in load_synonyms()}
    assert not customers & {"保险", "公司", "合同", "policy", "the", "insurance", "cover"}


def test_parse_rejects_a_line_without_a_document_side() -> None:
    assert parse_synonyms("# topic\n退保\t解除合同|退还\n\n")[0].document == ("解除合同", "退还")
    with pytest.raises(ValueError, match="line 1"):
        parse_synonyms("退保 解除合同")
    with pytest.raises(ValueError):
        parse_synonyms("退保\t|")


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("退保能退多少", {"解除合同", "未到期净保费"}),
        ("人失踪了怎么赔", {"下落不明", "宣告死亡"}),
        ("出事了多久要报案？", {"保险事故通知"}),
        ("酒驾出事赔不赔？", {"酒后驾驶", "责任免除"}),
        ("Is childbirth covered?", {"maternity"}),
        ("how long before an OLD ILLNESS is covered", {"pre-existing disease"}),
        ("Do you pay for glasses?", {"spectacles"}),  # a plural
        ("I paid late, am I still covered?", {"grace period"}),
        ("保單的猶豫期多長", {"冷静期"}),  # matched after folding to Simplified
    ],
)
def test_expand_query_adds_the_document_words(question: str, expected: set[str]) -> None:
    assert expected <= set(expand_query(question))


def test_expand_query_is_stable_without_repeats_or_words_already_asked() -> None:
    terms = expand_query("犹豫期内退保能退多少钱")
    assert terms == expand_query("犹豫期内退保能退多少钱")
    assert len(terms) == len(set(terms))
    assert "犹豫期" not in terms and "退还" in terms


@pytest.mark.parametrize(
    "question", ["今天天气怎么样", "What was Ulta's revenue last quarter?", "", "Is therapy2go open?"]
)
def test_no_expansion_for_an_unrelated_question(question: str) -> None:
    assert expand_query(question) == []


def test_english_terms_match_whole_words_only() -> None:
    assert "dental" not in expand_query("physiotherapy sessions")  # not "therapy", not "teeth"
    assert "maternity" not in expand_query("my babysitter")


def test_to_simplified_folds_traditional_and_keeps_simplified() -> None:
    assert to_simplified("保險條款 理賠 猶豫期 被保險人") == "保险条款 理赔 犹豫期 被保险人"
    assert to_simplified("裡面 衞生") == "里面 卫生"  # Taiwan and Hong Kong forms
    assert to_simplified("犹豫期为十五日，显著，著作") == "犹豫期为十五日，显著，著作"
    assert to_simplified("Grace Period") == "Grace Period"


def test_the_tokenizer_folds_traditional() -> None:
    assert tokenize("保單的猶豫期") == tokenize("保单的犹豫期")


CHUNKS = {
    "hesitation": "犹豫期：自您签收本合同之日起，犹豫期为十五日。在此期间您可以书面申请解除合同，我们无息退还保险费。",
    "waiting": "等待期：自本合同生效之日起30日为等待期，等待期内因疾病发生的医疗费用不承担保险责任。",
    "notice": "保险事故通知：被保险人或者受益人知道保险事故后应当在10日内通知我们。",
}


def test_a_traditional_question_finds_a_simplified_chunk() -> None:
    index = LexicalIndex.build(list(CHUNKS), list(CHUNKS.values()), ["zh.pdf"] * len(CHUNKS))
    hits = index.search("保單的猶豫期多長", 3)
    assert hits and hits[0][0] == "hesitation"


def test_a_simplified_question_finds_a_traditional_chunk() -> None:
    traditional = {
        "hesitation": "猶豫期：自您簽收本合同之日起，猶豫期為十五日。"
        "在此期間您可以書面申請解除合同，我們無息退還保險費。",
        "waiting": "等待期：自本合同生效之日起30日為等待期，等待期內因疾病發生的醫療費用不承擔保險責任。",
    }
    index = LexicalIndex.build(list(traditional), list(traditional.values()), ["zh-tw.pdf"] * 2)
    hits = index.search("保单的犹豫期多长", 2)
    assert hits and hits[0][0] == "hesitation"


def test_expansion_finds_the_clause_in_the_documents_words() -> None:
    index = LexicalIndex.build(list(CHUNKS), list(CHUNKS.values()), ["zh.pdf"] * len(CHUNKS))
    assert index.search("出险了要报案吗", 3, expand=False) == []
    hits = index.search("出险了要报案吗", 3)
    assert hits and hits[0][0] == "notice"


def test_a_customer_term_inside_a_longer_one_yields_to_it() -> None:
    """能理赔吗 asks whether something is covered; 理赔 alone is how to claim."""
    covered = expand_query("蹦极受伤了能理赔吗")
    assert "责任免除" in covered and "保险金申请" not in covered
    assert "保险金申请" in expand_query("出险了怎么理赔")
