"""Engine.search orders the reranked head by (1 - w) * rerank + w * normalised
fused score, on Milvus Lite with a scripted reranker (no model)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest

from hybrid_search import (
    Chunk,
    CollectionConfig,
    Engine,
    RerankConfig,
    RuntimeConfig,
    SearchOptions,
    StoreConfig,
)

pytestmark = pytest.mark.integration

# BM25 with b = 0 and a one-term query scores idf * tf * (k1 + 1) / (tf + k1):
# min-max over the head the idf cancels, so with k1 = 1.2 and tf 3, 2, 1 the
# normalised fused scores are 1, (3/8) / (4/7) = 21/32 and 0.
TEXTS = {"three": "cat cat cat", "two": "cat cat", "one": "cat"}
NORM = {"three": 1.0, "two": 21 / 32, "one": 0.0}
# The reranker disagrees with BM25: the fewer cats, the better.
RERANK = {"three": 0.1, "two": 0.5, "one": 0.9}


@dataclass
class ScriptedReranker:
    """Scores by the candidate's text, from a table: a reranker with known opinions."""

    config: RerankConfig
    scores: Mapping[str, float]

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return [self.scores[text] for text in texts]


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory):
    uri = str(tmp_path_factory.mktemp("milvus") / "interp.db")
    with Engine(StoreConfig(uri=uri), runtime=RuntimeConfig(device="cpu")) as engine:
        engine.create_collection(CollectionConfig(name="cats", dense=None, sparse=None, bm25_k1=1.2, bm25_b=0.0))
        engine.index("cats", [Chunk(doc_id, 0, text) for doc_id, text in TEXTS.items()])
    return uri


@pytest.fixture()
def make_engine(store_uri, monkeypatch):
    by_text = {TEXTS[doc_id]: score for doc_id, score in RERANK.items()}
    monkeypatch.setattr("hybrid_search.engine.load_reranker", lambda config, runtime: ScriptedReranker(config, by_text))
    opened = []

    def make(**rerank):
        engine = Engine(StoreConfig(uri=store_uri), runtime=RuntimeConfig(device="cpu"), reranker=RerankConfig(**rerank))
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        engine.close()


def search(engine, **options):
    return engine.search("cats", "cat", SearchOptions(k=10, paths=("bm25",), **options))


def test_fused_scores_are_the_hand_computed_ones(make_engine):
    plain = search(make_engine(), rerank=False)
    assert [h.doc_id for h in plain.hits] == ["three", "two", "one"]
    top, middle, bottom = (h.fused_score for h in plain.hits)
    # float32 scores from Milvus: close to the exact ratio, not bit-equal
    assert (middle - bottom) / (top - bottom) == pytest.approx(21 / 32, abs=1e-6)
    assert plain.rerank_first_stage_weight is None and all(h.combined_score is None for h in plain.hits)


@pytest.mark.parametrize(
    ("weight", "expected_order", "expected_combined"),
    [
        (0.0, ["one", "two", "three"], {"three": 0.1, "two": 0.5, "one": 0.9}),
        (1.0, ["three", "two", "one"], {"three": 1.0, "two": 21 / 32, "one": 0.0}),
        # 0.5 * rerank + 0.5 * norm: three 0.05 + 0.5 = 0.55, two 0.25 + 0.328125 = 0.578125, one 0.45 + 0 = 0.45
        (0.5, ["two", "three", "one"], {"three": 0.55, "two": 0.578125, "one": 0.45}),
    ],
)
def test_head_order_follows_the_interpolation(make_engine, weight, expected_order, expected_combined):
    result = search(make_engine(), rerank=True, rerank_first_stage_weight=weight)
    assert result.reranked and result.rerank_first_stage_weight == weight
    assert [h.doc_id for h in result.hits] == expected_order
    assert [h.rank for h in result.hits] == [1, 2, 3]
    for hit in result.hits:
        assert hit.rerank_score == RERANK[hit.doc_id]  # raw, whatever the weight
        assert hit.combined_score == pytest.approx(expected_combined[hit.doc_id], abs=1e-6)  # float32 BM25 in norm
        assert hit.score == hit.combined_score
        # and exactly the formula over the fused scores the engine saw
        fused = {h.doc_id: h.fused_score for h in result.hits}
        low, high = min(fused.values()), max(fused.values())
        norm = (fused[hit.doc_id] - low) / (high - low)
        assert hit.combined_score == pytest.approx((1 - weight) * RERANK[hit.doc_id] + weight * norm, abs=1e-9)
    if weight == 0.0:
        assert all(h.combined_score == h.rerank_score for h in result.hits)  # bit-equal: today's order


def test_config_default_and_per_query_override(make_engine):
    engine = make_engine(first_stage_weight=1.0)
    by_config = search(engine)
    assert by_config.rerank_first_stage_weight == 1.0
    assert [h.doc_id for h in by_config.hits] == ["three", "two", "one"]
    overridden = search(engine, rerank_first_stage_weight=0.0)
    assert overridden.rerank_first_stage_weight == 0.0
    assert [h.doc_id for h in overridden.hits] == ["one", "two", "three"]


def test_normalisation_is_over_the_reranked_head_only(make_engine):
    # Head = the fused top 2 (three, two): there two is the minimum, so its norm is 0.
    result = search(make_engine(), rerank_top_n=2, rerank_first_stage_weight=0.5)
    assert [h.doc_id for h in result.hits] == ["three", "two", "one"]
    three, two, one = result.hits
    assert three.combined_score == pytest.approx(0.5 * 0.1 + 0.5 * 1.0, abs=1e-9)
    assert two.combined_score == pytest.approx(0.5 * 0.5 + 0.5 * 0.0, abs=1e-9)
    # past the head: neither reranked nor combined, scored by its fused score
    assert one.rerank_score is None and one.combined_score is None and one.score == one.fused_score


def test_minimum_rerank_score_reads_the_raw_rerank_score(make_engine):
    # At w = 1 "three" has the best combined score (1.0) but a rerank score of 0.1: it is dropped.
    result = search(make_engine(), rerank_first_stage_weight=1.0, min_rerank_score=0.5)
    assert result.confident
    assert [h.doc_id for h in result.hits] == ["two", "one"]  # kept by rerank score, ordered by combined
    refused = search(make_engine(first_stage_weight=1.0, min_score=0.95))
    assert not refused.confident and refused.hits == []
