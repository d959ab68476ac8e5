"""The conditions file: freezing results into it, and judging drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.conditions import check_results, freeze, load_conditions

pytestmark = pytest.mark.unit


def _quality(path: Path, dataset_dir: Path) -> Path:
    metrics = {"ndcg@10": 0.5, "recall@10": 0.6, "recall@100": 0.9, "mrr@10": 0.45, "map": 0.4}
    data = {
        "dataset": {"name": "toy", "path": str(dataset_dir), "split": "test", "max_queries": None},
        "models": {
            "dense": {"model": "~/.cache/hybrid-search-models/all-MiniLM-L6-v2"},
            "sparse": None,
            "analyzer": {"language": "en"},
        },
        "conditions": {
            "bm25": {"kind": "single", "paths": ["bm25"], "rerank": False, "fusion": None, "metrics": metrics},
            "bm25+dense": {
                "kind": "fused",
                "paths": ["bm25", "dense"],
                "rerank": False,
                "fusion": {"method": "rrf", "rrf_k": 60, "normalization": "min-max", "weights": {}},
                "metrics": {**metrics, "ndcg@10": 0.55},
            },
            "tuned": {
                "kind": "tuned",
                "paths": ["bm25", "dense"],
                "rerank": False,
                "fusion": None,
                "metrics": {**metrics, "ndcg@10": 0.6},
            },
        },
        "environment": {"command": "python -m benchmarks quality toy"},
    }
    path.write_text(json.dumps(data))
    return path


def test_freeze_and_check(tmp_path: Path) -> None:
    target = tmp_path / "conditions.toml"
    freeze([_quality(tmp_path / "quality.json", tmp_path / "toy")], target, root=tmp_path)
    data = load_conditions(target)
    assert data["datasets"]["toy"]["dense"] == "minilm" and data["datasets"]["toy"]["sparse"] == "none"
    assert data["datasets"]["toy"]["path"] == str(tmp_path / "toy")
    by_name = {c["name"]: c for c in data["condition"]}
    assert set(by_name) == {"toy/bm25", "toy/bm25+dense", "toy/tuned"}
    assert by_name["toy/bm25"]["tolerance"] == 0.001
    assert by_name["toy/bm25+dense"]["fusion"] == {"method": "rrf", "rrf_k": 60, "normalization": "min-max"}
    assert by_name["toy/tuned"]["tuning"] == "tuning.json"

    measured = {"toy/bm25": {"ndcg@10": 0.5004, "recall@10": 0.6, "recall@100": 0.9, "mrr@10": 0.45, "map": 0.4}}
    ok, rows = check_results(data, measured)
    assert ok and all(r[-1] == "ok" for r in rows)
    measured["toy/bm25"]["ndcg@10"] = 0.502
    ok, rows = check_results(data, measured)
    assert not ok and [r[1] for r in rows if r[-1] == "DRIFT"] == ["ndcg@10"]
    measured["toy/bm25"].pop("map")
    ok, rows = check_results(data, measured)
    assert [r[4] for r in rows if r[1] == "map"] == ["missing"]


def test_unknown_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[[condition]]\nname = "x"\ndataset = "nope"\nrun = "bm25"\n')
    with pytest.raises(ValueError, match="nope"):
        load_conditions(tmp_path / "c.toml")
