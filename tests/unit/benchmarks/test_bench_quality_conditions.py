"""The quality benchmark's condition names, including `default` (what a new collection serves)."""

import pytest

from benchmarks.fusion_study import ENGINE_VARIANT, Variant
from benchmarks.quality import parse_conditions
from hybrid_search.config import FusionConfig
from hybrid_search.fusion import fuse

pytestmark = pytest.mark.unit


def test_all_includes_default_over_every_path():
    conditions = {c.name: c for c in parse_conditions("all", ["bm25", "dense"], FusionConfig(method="rrf"))}
    assert set(conditions) == {"bm25", "dense", "bm25+dense", "default"}
    default = conditions["default"]
    assert default.kind == "default" and default.paths == ("bm25", "dense") and default.setting is None
    assert conditions["bm25+dense"].setting.fusion.method == "rrf"


def test_single_path_index_has_no_default_condition():
    assert [c.name for c in parse_conditions("all", ["bm25"], FusionConfig(method="rrf"))] == ["bm25"]


def test_study_variant_equals_engine_adaptive_fusion():
    ranked = {
        "bm25": [("a", 12.0), ("b", 9.0), ("c", 3.0), ("e", 2.5)],
        "dense": [("b", 0.9), ("d", 0.8), ("a", 0.1)],
        "sparse": [("c", 4.0), ("a", 1.0)],
    }
    study = Variant(*ENGINE_VARIANT).fuse(ranked)
    engine = fuse(ranked, FusionConfig())
    assert dict(study) == pytest.approx(dict(engine), abs=1e-12)


def _earlier(tmp_path, key="set-abc"):
    import json

    earlier = {
        "index": {"key": key},
        "conditions": {
            "bm25": {"kind": "single", "metrics": {"ndcg@10": 0.5}, "vs_best_single": {"stale": True}},
            "dense": {"kind": "single", "metrics": {"ndcg@10": 0.4}},
        },
        "per_query_ndcg@10": {"bm25": {"q1": 1.0, "q2": 0.0}, "dense": {"q1": 0.8, "q2": 0.0}},
        "environment": {"command": "python -m benchmarks quality set", "git_revision": "abc", "date": "d"},
    }
    path = tmp_path / "quality.json"
    path.write_text(json.dumps(earlier))
    return path


def test_keep_others_merges_earlier_conditions(tmp_path):
    from benchmarks.quality import _keep_earlier

    results = {"dense": {"kind": "single", "metrics": {"ndcg@10": 0.45}}, "default": {"kind": "default", "metrics": {"ndcg@10": 0.6}}}
    per_query = {"dense": {"q1": 0.9, "q2": 0.0}, "default": {"q1": 1.0, "q2": 0.2}}
    kept = _keep_earlier(_earlier(tmp_path), "set-abc", {"q1": {}, "q2": {}}, results, per_query)
    assert kept["conditions"] == ["bm25"] and kept["git_revision"] == "abc"
    assert list(results) == ["bm25", "dense", "default"]
    assert results["dense"]["metrics"]["ndcg@10"] == 0.45  # re-run wins
    assert "vs_best_single" not in results["bm25"]  # stale comparisons dropped
    assert per_query["bm25"] == {"q1": 1.0, "q2": 0.0}


def test_keep_others_refuses_another_index_or_other_queries(tmp_path):
    from benchmarks.quality import _keep_earlier

    with pytest.raises(ValueError, match="index"):
        _keep_earlier(_earlier(tmp_path), "set-other", {"q1": {}, "q2": {}}, {}, {})
    with pytest.raises(ValueError, match="other queries"):
        _keep_earlier(_earlier(tmp_path), "set-abc", {"q1": {}}, {}, {})
