"""`python -m benchmarks ...` end to end on a 20-document BEIR set with the
tiny models: tune, quality (JSON, Markdown, PNG), conditions freeze + check,
bm25, and scale on two small synthetic sizes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.__main__ import app

pytestmark = pytest.mark.integration

runner = CliRunner()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.mark.slow  # ~20 s: tune, quality, conditions freeze/check end to end on tiny models
def test_tune_quality_and_conditions(beir_set: Path, model_options: list[str], workdir: Path) -> None:
    cache, out = workdir / "runs", workdir / "results"
    _invoke("tune", str(beir_set), *model_options, "--cache", str(cache), "--out", str(out))
    tuning = json.loads((out / "tuning.json").read_text())
    assert tuning["method"] == "dev" and tuning["dev_queries"] == 5
    assert tuning["selected"]["dev_ndcg@10"] >= tuning["dev_best_single"]["ndcg@10"] - 1e-12
    assert tuning["stored_default"]["fusion"]["method"] in ("rrf", "weighted")
    assert "tuned on every" not in (out / "tuning.md").read_text()

    conditions_arg = "bm25,sparse,dense,bm25+sparse+dense,tuned"
    _invoke("quality", str(beir_set), *model_options, "--conditions", conditions_arg, "--cache", str(cache), "--out", str(out))
    data = json.loads((out / "quality.json").read_text())
    expected = set(conditions_arg.split(","))
    assert set(data["conditions"]) == expected
    assert data["index"]["reused"]  # tune built it, quality reused it
    best = data["best_single"]["condition"]
    assert best in ("bm25", "sparse", "dense")
    for name, r in data["conditions"].items():
        assert set(r["metrics"]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "map"}
        assert all(0.0 <= v <= 1.0 for v in r["metrics"].values())
        assert r["latency_ms"]["total"]["p95"] >= r["latency_ms"]["total"]["p50"] > 0
        if name != best:
            assert r["vs_best_single"]["condition"] == best
    assert data["environment"]["command"].startswith("python -m benchmarks")
    assert data["environment"]["machine"]["cpu_count"] >= 1
    assert "pymilvus" in data["environment"]["packages"]
    assert (out / "quality.md").read_text().startswith("# Retrieval quality")
    assert (out / "quality-recall.png").read_bytes()[:4] == b"\x89PNG"

    conditions = workdir / "conditions.toml"
    _invoke("conditions", "freeze", str(out / "quality.json"), "--file", str(conditions))
    frozen = tomllib.loads(conditions.read_text())
    assert len(frozen["condition"]) == len(expected)
    output = _invoke("conditions", "check", "tinyset/bm25", "tinyset/tuned", "--file", str(conditions), "--cache", str(cache))
    assert "all conditions reproduced" in output

    # A drifted expectation fails the check (exit status 1).
    expected_bm25 = frozen["condition"][0]["expected"]["ndcg@10"]
    conditions.write_text(conditions.read_text().replace(f'"ndcg@10" = {expected_bm25!r}', '"ndcg@10" = 0.0001', 1))
    result = runner.invoke(app, ["conditions", "check", "tinyset/bm25", "--file", str(conditions), "--cache", str(cache)])
    assert result.exit_code == 1 and "DRIFT" in result.output


def test_reranked_conditions(beir_set: Path, model_options: list[str], workdir: Path, tiny_models) -> None:
    cache, out = workdir / "runs", workdir / "rerank"
    reranker = ["--reranker", str(tiny_models.cross_encoder), "--rerank-kind", "cross-encoder", "--rerank-top-n", "20"]
    args = ["--conditions", "bm25+dense,bm25+dense>rerank", "--max-queries", "3", "--cache", str(cache), "--out", str(out)]
    _invoke("quality", str(beir_set), *model_options, *reranker, *args)
    data = json.loads((out / "quality.json").read_text())
    reranked = data["conditions"]["bm25+dense>rerank"]
    assert reranked["rerank"] and "rerank" in reranked["latency_ms"]
    assert data["models"]["reranker"]["model"] == str(tiny_models.cross_encoder)
    assert data["dataset"]["max_queries"] == 3


def test_bm25_comparison(beir_set: Path, workdir: Path) -> None:
    out = workdir / "bm25"
    _invoke("bm25", str(beir_set), "--language", "en", "--out", str(out))
    data = json.loads((out / "bm25-tinyset.json").read_text())
    assert set(data["results"]) == {"hybrid-search (Milvus BM25)", "rank-bm25 (BM25Okapi)", "bm25s (lucene)"}
    engine = data["results"]["hybrid-search (Milvus BM25)"]
    assert engine["index_docs_per_s"] > 0 and engine["queries_per_s"] > 0
    # bm25s uses Milvus's IDF on the same tokens: the same top 10.
    assert data["results"]["bm25s (lucene)"]["top10_overlap_with_engine"] > 0.9
    assert set(data["ratios"]) == {"rank-bm25 (BM25Okapi)", "bm25s (lucene)"}


def test_scale_small(workdir: Path) -> None:
    out = workdir / "scale"
    _invoke(
        "scale",
        "--sizes",
        "200,400",
        "--dim",
        "16",
        "--queries",
        "5",
        "--vocab",
        "500",
        "--work-dir",
        str(workdir / "scale-db"),
        "--out",
        str(out),
    )
    data = json.loads((out / "scale.json").read_text())
    assert [p["n"] for p in data["points"]] == [200, 400]
    assert all(p["rows"] == p["n"] for p in data["points"])
    for p in data["points"]:
        assert p["insert_rows_per_s"] > 0 and p["disk_mib"] > 0 and p["memory_mib"] > 0
        assert set(p["latency_ms"]) == {"bm25", "sparse", "dense", "hybrid"}
    assert (out / "scale.png").read_bytes()[:4] == b"\x89PNG"
    assert "growth exponent" in (out / "scale.md").read_text()
