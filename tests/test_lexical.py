"""The lexical (BM25) side index: tokenization, search, updates, persistence."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.evaluation import load_insqabench, passage_metrics, summarise
from rag.lexical import LexicalIndex
from rag.lexical_tokens import Tokenizer, tokenize

EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval" / "insqabench"

ZH_CORPUS = {
    "hesitation": "犹豫期：自您签收本合同次日起，有15日的犹豫期。在此期间请您认真审视本合同，"
    "如果您认为本合同与您的需求不相符，您可以在此期间提出解除本合同，我们将无息退还您所支付的全部保险费。",
    "waiting": "等待期：自本合同生效之日起90日内，被保险人因疾病导致身故的，我们不承担保险责任，"
    "无息退还已交保险费，本合同终止。因意外伤害导致的保险事故无等待期。",
    "grace": "宽限期：分期支付保险费的，您支付首期保险费后，除本合同另有约定外，如果您到期未支付保险费，"
    "自保险费约定支付日的次日零时起60日为宽限期。",
    "cash_value": "第十条 现金价值 保单年度末的现金价值请见现金价值表。"
    "您申请退保时，我们将在收到申请之日起30日内退还本合同的现金价值。",
    "exclusions": "责任免除：因下列情形之一导致被保险人身故的，我们不承担给付保险金的责任："
    "投保人对被保险人的故意杀害、故意伤害；被保险人故意犯罪；被保险人醉酒、酒后驾驶、无合法有效驾驶证驾驶。",
    "deductible": "免赔额：本合同的年度免赔额为人民币10,000元，"
    "指在一个保险期间内由被保险人自行承担、本合同不予赔付的部分。",
}
EN_CORPUS = {
    "en_grace": "Grace Period. If a premium is not paid by the due date, a grace period of 31 days is allowed, "
    "during which the policy stays in force.",
    "en_exclusion": "Exclusions. We will not pay benefits for any condition caused by war, nuclear radiation, "
    "or self-inflicted injury.",
    "en_claims": "Claims must be notified to the Insurer within 30 days of the event, with the original "
    "receipts and the medical report.",
    "en_pre_existing": "Pre-existing conditions are not covered during the first 24 months of cover "
    "(clause 3.2 of the Policy Schedule).",
}


def make_index(corpus: dict[str, str] | None = None) -> LexicalIndex:
    corpus = corpus if corpus is not None else ZH_CORPUS | EN_CORPUS
    ids = list(corpus)
    sources = ["zh.pdf" if not i.startswith("en_") else "en.pdf" for i in ids]
    return LexicalIndex.build(ids, list(corpus.values()), sources)


def dictionary_terms() -> list[str]:
    text = resources.files("rag").joinpath("resources/insurance_dict.txt").read_text(encoding="utf-8")
    return [line.split("#", 1)[0].split()[0] for line in text.splitlines() if line.split("#", 1)[0].strip()]


# ----- tokenization -----------------------------------------------------------------------------------


def test_dictionary_terms_are_kept_whole() -> None:
    assert "犹豫期" in tokenize("犹豫期内退保")
    assert "退保" in tokenize("犹豫期内退保")
    assert "既往症" in tokenize("既往症不在保障范围内")
    assert "免责条款" in tokenize("请阅读免责条款")


def test_every_dictionary_term_survives_segmentation() -> None:
    terms = dictionary_terms()
    assert len(terms) >= 30
    for term in terms:
        assert term.lower() in tokenize(term), term
        assert term.lower() in tokenize(f"关于{term}的约定"), term


def test_english_is_lowercased_words_without_stopwords() -> None:
    tokens = tokenize("The Insured Person's BENEFIT is PAID")
    assert {"insured", "person", "benefit", "paid"} <= set(tokens)
    assert all(t == t.lower() for t in tokens)
    assert "the" not in tokens and "is" not in tokens


def test_numbers_and_clause_numbers_are_tokens() -> None:
    assert "3.2" in tokenize("详见第3.2条")
    assert "3.2" in tokenize("see clause 3.2(a)")
    assert "10000" in tokenize("免赔额为10,000元")
    assert "30" in tokenize("三十日内") and "30" in tokenize("30日内")
    # a clause number written either way meets the other
    assert "第10条" in tokenize("第十条 保险责任")
    assert "第10条" in tokenize("第10条 保险责任")
    assert "第21条" in tokenize("依照第二十一条")


def test_full_width_characters_are_normalised() -> None:
    assert tokenize("ＡＢＣ　１２３") == tokenize("abc 123")


def test_question_words_are_dropped() -> None:
    tokens = tokenize("什么是犹豫期？")
    assert "什么" not in tokens and "是" not in tokens
    assert "犹豫期" in tokens


def test_search_mode_adds_the_words_inside_longer_ones() -> None:
    assert {"保险", "保险金"} <= set(Tokenizer(search_mode=True)("身故保险金"))


def test_tokenize_handles_empty_and_symbol_only_text() -> None:
    assert tokenize("") == []
    assert tokenize("，。！？ ---") == []


# ----- search -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("犹豫期内可以退保吗？", "hesitation"),
        ("等待期有多长？", "waiting"),
        ("保费晚交了有宽限期吗", "grace"),
        ("退保能拿回多少现金价值", "cash_value"),
        ("酒驾出事保险公司赔吗", "exclusions"),
        ("免赔额是多少", "deductible"),
        ("第10条讲什么", "cash_value"),
        ("How long is the grace period for premiums?", "en_grace"),
        ("Is war excluded?", "en_exclusion"),
        ("how many days to notify a claim", "en_claims"),
        ("pre-existing conditions", "en_pre_existing"),
        ("CLAUSE 3.2", "en_pre_existing"),
    ],
)
def test_search_finds_the_right_chunk(question: str, expected: str) -> None:
    hits = make_index().search(question, 3)
    assert hits and hits[0][0] == expected, hits


def test_search_results_are_best_first_positive_and_at_most_k() -> None:
    index = make_index()
    hits = index.search("保险费 保险金 被保险人", 4)
    assert 0 < len(hits) <= 4
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)
    assert len({chunk_id for chunk_id, _ in hits}) == len(hits)


def test_search_with_nothing_in_common_finds_nothing() -> None:
    index = make_index()
    assert index.search("量子计算机", 5) == []
    assert index.search("", 5) == []
    assert index.search("犹豫期", 0) == []


def test_k_larger_than_the_index() -> None:
    index = make_index()
    assert len(index.search("保险", 1000)) <= len(index)


def test_source_filter() -> None:
    index = make_index()
    question = "grace period 宽限期"
    everywhere = {chunk_id for chunk_id, _ in index.search(question, 10)}
    assert {"grace", "en_grace"} <= everywhere
    assert [c for c, _ in index.search(question, 10, source="en.pdf")] == ["en_grace"]
    assert [c for c, _ in index.search(question, 10, source="zh.pdf")] == ["grace"]
    assert index.search(question, 10, source="missing.pdf") == []


def test_scores_are_bm25s_lucene_scores() -> None:
    import bm25s

    texts = list((ZH_CORPUS | EN_CORPUS).values())
    ids = [str(i) for i in range(len(texts))]
    index = LexicalIndex.build(ids, texts, ids)
    reference = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    reference.index([tokenize(t) for t in texts], show_progress=False)
    for question in ["犹豫期内退保", "保险费 宽限期 60日", "grace period premium", "被保险人身故"]:
        terms = list(dict.fromkeys(t for t in tokenize(question) if t in reference.vocab_dict))
        expected = reference.get_scores(terms)
        ours = dict(index.search(question, len(ids), expand=False))  # plain BM25: no synonyms
        got = np.array([ours.get(i, 0.0) for i in ids])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ----- updates ----------------------------------------------------------------------------------------


def test_build_keeps_the_last_of_repeated_ids() -> None:
    index = LexicalIndex.build(["a", "a"], ["犹豫期", "宽限期"], ["s", "s"])
    assert index.ids == ["a"]
    assert index.search("宽限期", 5)[0][0] == "a"
    assert index.search("犹豫期", 5) == []


def test_build_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        LexicalIndex.build(["a", "b"], ["x"], ["s", "s"])


def test_upsert_adds_and_replaces() -> None:
    index = make_index()
    assert index.search("地震", 5) == []
    updated = index.upsert(
        ["grace", "quake"], ["本合同的宽限期为30日。", "地震导致的损失不在保险责任范围内。"], ["zh.pdf"] * 2
    )
    assert len(updated) == len(index) + 1
    assert updated.search("地震", 5)[0][0] == "quake"
    assert dict(updated.search("宽限期 30日", 5))["grace"] > 0
    # the old text of "grace" is gone from the index
    assert "grace" not in dict(updated.search("首期 零时", 10))
    # and the original index is unchanged
    assert index.search("地震", 5) == []
    assert "grace" in dict(index.search("首期 零时", 10))


def test_remove_removes() -> None:
    index = make_index()
    smaller = index.remove(["waiting", "not-there"])
    assert len(smaller) == len(index) - 1
    assert "waiting" not in smaller.ids
    assert all(chunk_id != "waiting" for chunk_id, _ in smaller.search("等待期 90日", 10))
    assert index.search("等待期", 1)[0][0] == "waiting"
    assert smaller.remove(smaller.ids).search("保险", 5) == []
    assert len(smaller.remove(smaller.ids)) == 0


def test_upsert_into_an_emptied_index() -> None:
    empty = make_index().remove(make_index().ids)
    again = empty.upsert(["x"], ["犹豫期"], ["s"])
    assert again.search("犹豫期", 3)[0][0] == "x"


words = st.sampled_from(["犹豫期", "宽限期", "保险费", "现金价值", "身故", "premium", "grace", "3.2", "第十条", "的"])
texts = st.lists(words, min_size=0, max_size=8).map(" ".join)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.lists(st.tuples(st.integers(0, 7), texts, st.integers(0, 2)), max_size=4)),
        st.tuples(st.just("remove"), st.lists(st.integers(0, 7), max_size=3)),
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_updates_equal_a_fresh_build(ops: list[tuple[str, list]]) -> None:  # type: ignore[type-arg]
    index = LexicalIndex.build([], [], [])
    state: dict[str, tuple[str, str]] = {}
    for op, args in ops:
        if op == "upsert":
            ids = [f"c{i}" for i, _, _ in args]
            index = index.upsert(ids, [t for _, t, _ in args], [f"s{s}" for _, _, s in args])
            for chunk_id, (_, text, source) in zip(ids, args, strict=True):
                state[chunk_id] = (text, f"s{source}")
        else:
            index = index.remove(f"c{i}" for i in args)
            for i in args:
                state.pop(f"c{i}", None)
    fresh = LexicalIndex.build(list(state), [t for t, _ in state.values()], [s for _, s in state.values()])
    assert sorted(index.ids) == sorted(fresh.ids)
    for question in ["犹豫期 保险费", "grace premium 3.2", "第10条 身故"]:
        for source in [None, "s1"]:
            got = dict(index.search(question, 10, source=source))
            want = dict(fresh.search(question, 10, source=source))
            assert got.keys() == want.keys()
            for chunk_id in got:
                assert got[chunk_id] == pytest.approx(want[chunk_id], rel=1e-5)


# ----- persistence ------------------------------------------------------------------------------------

QUESTIONS = ["犹豫期内退保", "宽限期", "grace period", "第十条 现金价值", "酒后驾驶", "保险费"]


def test_save_and_load_give_identical_results(tmp_path: Path) -> None:
    index = make_index()
    index.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded is not None
    assert loaded.ids == index.ids
    for question in QUESTIONS:
        assert loaded.search(question, 5) == index.search(question, 5)
        assert loaded.search(question, 5, source="en.pdf") == index.search(question, 5, source="en.pdf")


def test_save_replaces_an_existing_index(tmp_path: Path) -> None:
    make_index().save(tmp_path / "lexical")
    smaller = make_index().remove(["hesitation"])
    smaller.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded is not None and loaded.ids == smaller.ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lexical"]  # no temporary or old copies left


def test_empty_index_round_trip(tmp_path: Path) -> None:
    LexicalIndex.build([], [], []).save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded is not None and len(loaded) == 0 and loaded.search("保险", 3) == []


def test_load_of_a_missing_directory_is_none(tmp_path: Path) -> None:
    assert LexicalIndex.load(tmp_path / "nothing-here") is None
    (tmp_path / "empty").mkdir()
    assert LexicalIndex.load(tmp_path / "empty") is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / "meta.json").write_text("{not json", encoding="utf-8"),
        lambda d: (d / "meta.json").write_bytes(b"\xff\xfe\x00garbage"),
        lambda d: (d / "meta.json").write_text("[]", encoding="utf-8"),
        lambda d: (d / "doc.npy").unlink(),
        lambda d: (d / "doc.npy").write_bytes((d / "doc.npy").read_bytes()[:-7]),
        lambda d: (d / "indptr.npy").write_bytes(b"not an npy file"),
        lambda d: np.save(d / "tf.npy", np.zeros(3, np.float64)),
        lambda d: np.save(d / "doc.npy", np.full(len(np.load(d / "doc.npy")), 10**6, np.int32)),
        lambda d: _edit_meta(d, lambda m: m["ids"].pop()),
        lambda d: _edit_meta(d, lambda m: m.update(tokenizer="built-by-another-tokenizer")),
        lambda d: _edit_meta(d, lambda m: m.update(params={"k1": "x"})),
        lambda d: _edit_meta(d, lambda m: m.pop("vocab")),
    ],
)
def test_load_of_a_corrupt_index_is_none(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    make_index().save(tmp_path / "lexical")
    damage(tmp_path / "lexical")
    assert LexicalIndex.load(tmp_path / "lexical") is None


def _edit_meta(directory: Path, change) -> None:  # type: ignore[no-untyped-def]
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    change(meta)
    (directory / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")


def test_load_recovers_the_old_index_after_a_crash_between_the_renames(tmp_path: Path) -> None:
    index = make_index()
    index.save(tmp_path / "lexical")
    # what a crash right after moving the old index aside looks like
    (tmp_path / "lexical").rename(tmp_path / ".lexical.previous")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded is not None and loaded.search("犹豫期", 3) == index.search("犹豫期", 3)


@pytest.mark.slow
def test_importing_the_module_loads_nothing_heavy() -> None:
    code = "import sys, rag.lexical; print(sorted({'numpy', 'rjieba', 'bm25s', 'jieba'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----- quality on real questions ----------------------------------------------------------------------


@pytest.mark.skipif(not (EVAL_DIR / "clause_objective.json").exists(), reason=f"InsQABench not at {EVAL_DIR}")
def test_insqabench_recall_beats_plain_bm25() -> None:
    dataset = load_insqabench(EVAL_DIR)
    corpus = dataset.corpus
    index = LexicalIndex.build([p.id for p in corpus], [p.text for p in corpus], [p.source for p in corpus])
    metrics = summarise(
        [
            passage_metrics([chunk_id for chunk_id, _ in index.search(q.question, 10)], q.relevant_ids, (1, 5, 10))
            for q in dataset.queries
        ]
    )
    # plain BM25 over jieba tokens: recall@5 0.62, recall@10 0.73, MRR@10 0.46
    assert metrics["recall@5"] >= 0.66
    assert metrics["recall@10"] >= 0.77
    assert metrics["mrr@10"] >= 0.49


def test_top_k_matches_a_full_stable_sort_ties_included() -> None:
    """The top k (rag.lexical._top_k ranks only touched documents, through the k-th score) equals the first k
    positive scores of a full sort by score, equal scores in position order."""
    import numpy as np

    from rag.lexical import _top_k

    rng = np.random.default_rng(0)
    for _ in range(200):
        scores = rng.integers(0, 5, 500).astype(np.float32) * (rng.random(500) < 0.5)
        k = int(rng.integers(1, 80))
        order = np.lexsort((np.arange(500), -scores))
        assert _top_k(scores, k).tolist() == order[scores[order] > 0][:k].tolist()
