"""The query plan: defaults and checks decided once, before anything runs."""

import json

import pytest

from hybrid_search import FusionConfig, InputError, QueryPlan, RerankConfig, SearchOptions
from hybrid_search.config import CollectionConfig
from hybrid_search.plan import MIN_DEFAULT_DEPTH, build_plan, default_depth

pytestmark = pytest.mark.unit

ALL = {"bm25": 1.0, "sparse": 1.0, "dense": 1.0}


def collection(**fusion) -> CollectionConfig:
    return CollectionConfig(name="kb", fusion=FusionConfig(**fusion))


def plan(options=SearchOptions(), config=None, reranker=None, requested="kb") -> QueryPlan:
    return build_plan(requested, config or collection(), "what is milvus", options, reranker)


def test_default_plan_runs_every_path_at_the_default_depth():
    made = plan()
    assert made.path_names == ("bm25", "sparse", "dense")
    assert [p.depth for p in made.paths] == [MIN_DEFAULT_DEPTH] * 3
    assert made.fusion == FusionConfig(weights=ALL) and made.fusion_label == FusionConfig().method
    assert made.rerank is None and made.highlight and made.skipped == ()


@pytest.mark.parametrize("k, depth", [(1, 100), (100, 100), (101, 101), (500, 500), (1000, 1000)])
def test_default_depth_covers_k(k, depth):
    # The same for every shell: `-k 500 --paths bm25` can return 500 hits.
    assert default_depth(k) == depth
    assert [p.depth for p in plan(SearchOptions(k=k, paths=("bm25",))).paths] == [depth]


def test_depth_per_path_falls_back_to_the_default():
    made = plan(SearchOptions(k=300, depth={"dense": 20}))
    assert {p.path: p.depth for p in made.paths} == {"bm25": 300, "sparse": 300, "dense": 20}


def test_zero_weight_path_does_not_run_and_is_reported():
    made = plan(config=collection(method="weighted", weights={"bm25": 1.0, "sparse": 0.5, "dense": 0.0}))
    assert made.path_names == ("bm25", "sparse")
    assert made.skipped == (("dense", "fusion weight 0"),)
    assert made.fusion is not None and made.fusion.weights == {"bm25": 1.0, "sparse": 0.5}
    assert [p.weight for p in made.paths] == [1.0, 0.5]


def test_query_weights_override_stored_ones_and_can_drop_a_path():
    made = plan(SearchOptions(weights={"sparse": 0.0, "dense": 2.0}))
    assert made.path_names == ("bm25", "dense")
    assert made.fusion is not None and made.fusion.weights == {"bm25": 1.0, "dense": 2.0}


def test_one_path_left_runs_unfused():
    made = plan(config=collection(weights={"bm25": 1.0, "sparse": 0.0, "dense": 0.0}))
    assert made.path_names == ("bm25",) and made.fusion is None and made.fusion_label == "none"
    assert made.paths[0].weight is None


def test_a_single_path_asked_for_runs_whatever_its_stored_weight():
    made = plan(SearchOptions(paths=("dense",)), config=collection(weights={"bm25": 1.0, "sparse": 1.0, "dense": 0.0}))
    assert made.path_names == ("dense",) and made.fusion is None


def test_weights_that_leave_nothing_to_run_are_refused():
    with pytest.raises(InputError, match="weight 0") as caught:
        plan(SearchOptions(paths=("bm25", "dense"), weights={"bm25": 0, "dense": 0}))
    assert caught.value.field == "weights"
    with pytest.raises(InputError, match="weight 0") as caught:
        plan(SearchOptions(paths=("dense",), weights={"dense": 0}))
    assert caught.value.field == "weights"


def test_fusion_parts_override_the_collection_default():
    made = plan(SearchOptions(fusion_method="weighted", normalization="z-score"), config=collection(rrf_k=10))
    assert made.fusion is not None
    assert (made.fusion.method, made.fusion.normalization, made.fusion.rrf_k) == ("weighted", "z-score", 10)
    whole = plan(SearchOptions(fusion=FusionConfig(rrf_k=5), rrf_k=7))
    assert whole.fusion is not None and whole.fusion.rrf_k == 7


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"paths": ("bm25", "bm25")}, "paths"),
        ({"paths": ("colbert",)}, "paths"),
        ({"paths": ()}, "paths"),
        ({"k": 0}, "k"),
        ({"k": True}, "k"),
        ({"depth": 0}, "depth"),
        ({"depth": {"colbert": 3}}, "depth"),
        ({"weights": {"bm25": -1.0}}, "weights"),
        ({"fusion_method": "max"}, "fusion"),
        ({"normalization": "l2"}, "normalization"),
        ({"rrf_k": -1}, "rrf_k"),
        ({"min_rerank_score": 2.0}, "min_rerank_score"),
    ],
)
def test_bad_options_name_their_field(kwargs, field):
    with pytest.raises(InputError) as caught:
        SearchOptions(**kwargs)
    assert caught.value.field == field


def test_query_and_paths_are_checked_against_the_collection():
    with pytest.raises(InputError) as caught:
        build_plan("kb", collection(), "   ", SearchOptions(), None)
    assert caught.value.field == "query"
    bm25_only = CollectionConfig(name="kb", dense=None, sparse=None)
    with pytest.raises(InputError, match="no dense path") as caught:
        build_plan("kb", bm25_only, "cats", SearchOptions(paths=("dense",)), None)
    assert caught.value.field == "paths"
    # The default paths are the collection's own.
    assert build_plan("kb", bm25_only, "cats", SearchOptions(), None).path_names == ("bm25",)


def test_rerank_is_one_decision():
    configured = RerankConfig(model="some/reranker", top_n=30, min_score=0.2, first_stage_weight=0.1)
    assert plan(reranker=configured).rerank is not None  # on by default when configured
    assert plan(SearchOptions(rerank=False), reranker=configured).rerank is None
    overridden = plan(SearchOptions(rerank_top_n=5, min_rerank_score=0.5, rerank_first_stage_weight=0.0), reranker=configured).rerank
    assert overridden is not None and (overridden.top_n, overridden.min_score, overridden.first_stage_weight) == (5, 0.5, 0.0)
    assert plan().rerank is None  # nothing configured, nothing asked
    with pytest.raises(InputError, match="no reranker is configured") as caught:
        plan(SearchOptions(rerank=True))
    assert caught.value.field == "rerank"


def test_plan_is_plain_data():
    made = plan(SearchOptions(k=3, highlight=False, fusion_method="rrf"), requested="live")
    data = json.loads(json.dumps(made.to_dict()))
    assert data["requested"] == "live" and data["collection"] == "kb" and data["highlight"] is False
    assert [p["path"] for p in data["paths"]] == ["bm25", "sparse", "dense"]
    assert data["fusion"] == {"method": "rrf", "rrf_k": 60, "weights": ALL}

