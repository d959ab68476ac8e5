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
