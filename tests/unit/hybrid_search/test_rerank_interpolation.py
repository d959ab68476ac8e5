"""Rerank score interpolation: (1 - w) * rerank + w * min-max normalised fused score."""

import pytest

from hybrid_search.settings import LayeredSettings
from hybrid_search.engine import SearchOptions
from hybrid_search.rerank import combine_rerank_scores
from hybrid_search.errors import ConfigError, InputError
from hybrid_search.types import Hit, SearchResult

pytestmark = pytest.mark.unit

# The reranked head in fused order, with fused scores the reranker disagrees with.
# Fused min-max over the head (range 0.8): a 1.0, b 0.625, c 0.5, d 0.0.
HEAD = [("a", 0.9), ("b", 0.6), ("c", 0.5), ("d", 0.1)]
RERANK = {"a": 0.2, "b": 0.4, "c": 0.8, "d": 0.6}


def order(combined, head=HEAD):
    """The engine's order: combined score, fused position breaking ties."""
    position = {cid: i for i, (cid, _) in enumerate(head)}
    return sorted(combined, key=lambda cid: (-combined[cid], position[cid]))


def test_weight_zero_is_the_rerank_score_untouched():
    combined = combine_rerank_scores(HEAD, RERANK, 0.0)
    assert combined == RERANK  # exactly, not approximately
    assert order(combined) == ["c", "d", "b", "a"]


def test_weight_one_is_the_normalised_fused_score():
    combined = combine_rerank_scores(HEAD, RERANK, 1.0)
    assert combined == pytest.approx({"a": 1.0, "b": 0.625, "c": 0.5, "d": 0.0}, abs=1e-9)
    assert order(combined) == ["a", "b", "c", "d"]


def test_intermediate_weight_follows_the_formula():
    combined = combine_rerank_scores(HEAD, RERANK, 0.4)
    # 0.6 * rerank + 0.4 * fused_norm, by hand:
    expected = {
        "a": 0.6 * 0.2 + 0.4 * 1.0,  # 0.52
        "b": 0.6 * 0.4 + 0.4 * 0.625,  # 0.49
        "c": 0.6 * 0.8 + 0.4 * 0.5,  # 0.68
        "d": 0.6 * 0.6 + 0.4 * 0.0,  # 0.36
    }
    assert combined == pytest.approx({"a": 0.52, "b": 0.49, "c": 0.68, "d": 0.36}, abs=1e-9)
    assert combined == pytest.approx(expected, abs=1e-9)
    # neither the rerank order nor the fused order
    assert order(combined) == ["c", "a", "b", "d"]


def test_equal_fused_scores_normalise_to_one():
    head = [("x", 0.5), ("y", 0.5)]
    combined = combine_rerank_scores(head, {"x": 0.3, "y": 0.7}, 0.5)
    assert combined == pytest.approx({"x": 0.5 * 0.3 + 0.5, "y": 0.5 * 0.7 + 0.5}, abs=1e-9)
    # equal combined scores: fused position decides
    tied = combine_rerank_scores(head, {"x": 0.4, "y": 0.4}, 1.0)
    assert tied == {"x": 1.0, "y": 1.0} and order(tied, head) == ["x", "y"]


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan"), "0.5"])
def test_search_options_refuse_a_weight_outside_0_1(weight):
    with pytest.raises(InputError, match=r"rerank_first_stage_weight must lie in \[0, 1\]"):
        SearchOptions(rerank_first_stage_weight=weight)


@pytest.mark.parametrize("weight", [None, 0, 0.0, 0.25, 1.0])
def test_search_options_accept_a_weight_in_0_1(weight):
    assert SearchOptions(rerank_first_stage_weight=weight).rerank_first_stage_weight == weight


def make_hit(**scores):
    return Hit(
        rank=1, chunk_id="d#0", doc_id="d", text="t", title="", source="", page=None,
        heading_path=(), metadata={}, paths={}, **scores,
    )


def test_hit_score_is_the_score_it_was_ordered_by():
    assert make_hit(fused_score=0.03).score == 0.03
    assert make_hit(fused_score=0.03, rerank_score=0.8).score == 0.8
    hit = make_hit(fused_score=0.03, rerank_score=0.8, combined_score=0.71)
    assert hit.score == 0.71
    data = hit.to_dict()
    assert (data["rerank_score"], data["combined_score"], data["score"]) == (0.8, 0.71, 0.71)
    assert make_hit(fused_score=0.03).to_dict()["combined_score"] is None


def test_search_result_reports_the_weight_used():
    result = SearchResult(query="q", collection="c", hits=[], paths=("bm25",), fusion="none", reranked=True, rerank_first_stage_weight=0.3)
    assert result.to_dict()["rerank_first_stage_weight"] == 0.3
    plain = SearchResult(query="q", collection="c", hits=[], paths=("bm25",), fusion="none", reranked=False)
    assert plain.to_dict()["rerank_first_stage_weight"] is None


def test_config_file_and_environment_name_the_weight(tmp_path, monkeypatch):
    config = tmp_path / "hs.toml"
    config.write_text("[rerank]\nfirst_stage_weight = 0.25\n", encoding="utf-8")
    monkeypatch.setenv("HYBRID_SEARCH_RERANK_FIRST_STAGE_WEIGHT", "0.75")
    assert LayeredSettings.load(config).get("rerank", "first_stage_weight", None, 0.0) == 0.25
    from_env = LayeredSettings()
    assert from_env.get("rerank", "first_stage_weight", None, 0.0) == 0.75
    assert from_env.get("rerank", "first_stage_weight", 0.1, 0.0) == 0.1  # the flag wins
    monkeypatch.setenv("HYBRID_SEARCH_RERANK_FIRST_STAGE_WEIGHT", "lots")
    with pytest.raises(ConfigError, match="HYBRID_SEARCH_RERANK_FIRST_STAGE_WEIGHT"):
        from_env.get("rerank", "first_stage_weight", None, 0.0)
