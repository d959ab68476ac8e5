"""benchmarks/load.py: percentiles, the /metrics histogram reader, and the
refusal of tiny models (numbers from them would mean nothing)."""

from __future__ import annotations

import pytest
import typer

from benchmarks.load import LoadConfig, _check_models, _percentile, _Recorder, stage_latencies, usage_counters, usage_markdown, usage_summary
from hybrid_search.api.metrics import Metrics
from hybrid_search.types import EngineUsage

pytestmark = pytest.mark.unit

METRICS = """# HELP hybrid_search_search_stage_seconds Time spent in each search stage.
# TYPE hybrid_search_search_stage_seconds histogram
hybrid_search_search_stage_seconds_bucket{le="0.01",stage="encode"} 0.0
hybrid_search_search_stage_seconds_bucket{le="0.1",stage="encode"} 50.0
hybrid_search_search_stage_seconds_bucket{le="1.0",stage="encode"} 100.0
hybrid_search_search_stage_seconds_bucket{le="+Inf",stage="encode"} 100.0
hybrid_search_search_stage_seconds_count{stage="encode"} 100.0
hybrid_search_search_stage_seconds_sum{stage="encode"} 20.0
hybrid_search_search_stage_seconds_bucket{le="0.01",stage="rerank"} 0.0
hybrid_search_search_stage_seconds_bucket{le="+Inf",stage="rerank"} 0.0
hybrid_search_search_stage_seconds_count{stage="rerank"} 0.0
hybrid_search_search_stage_seconds_sum{stage="rerank"} 0.0
"""


def test_percentile_is_nearest_rank():
    values = [float(i) for i in range(1, 101)]
    assert _percentile(values, 50) == 50.0 and _percentile(values, 99) == 99.0 and _percentile(values, 100) == 100.0
    assert _percentile([], 50) is None and _percentile([7.0], 99) == 7.0


def test_stage_latencies_interpolate_like_prometheus():
    stages = stage_latencies(METRICS)
    assert set(stages) == {"encode"}  # a stage never observed is left out
    encode = stages["encode"]
    assert encode["mean_ms"] == 200.0
    assert encode["p50_ms"] == pytest.approx(100.0)  # the 50th sample ends the 0.1 s bucket
    assert encode["p95_ms"] == pytest.approx(910.0)  # 90% of the way through 0.1..1.0 s


def test_usage_over_a_run_from_the_servers_counters():
    # Read back from what the server's Metrics really export, before and after a run of 20 s.
    metrics = Metrics()
    metrics.observe_usage(EngineUsage(10, 10, 1.0, 3.0, 40, 40))
    before = usage_counters(metrics.render().decode())
    metrics.observe_usage(EngineUsage(110, 410, 13.0, 7.0, 740, 1640))
    after = usage_counters(metrics.render().decode())
    usage = usage_summary(before, after, 20.0)
    assert usage == {
        "query_encode_calls": 100,
        "queries_encoded": 400,
        "mean_query_batch": 4.0,
        "model_busy_queries": 0.6,
        "model_busy_documents": 0.2,
        "store_calls": 700,
        "store_requests": 1600,
        "store_requests_per_call": 2.29,
    }
    text = usage_markdown(usage)
    assert "mean micro-batch 4.0" in text and "busy 60% of the run with queries and 20% with documents" in text
    # A server without the counters (an older one): nothing to divide.
    assert usage_summary({}, {}, 20.0)["mean_query_batch"] is None


def test_recorder_counts_errors_per_endpoint():
    recorder = _Recorder()
    for seconds in (0.01, 0.02, 0.03):
        recorder.record("search", seconds, True)
    recorder.record("search", 0.5, False, "503 busy")
    summary = recorder.summary(elapsed=2.0)
    assert summary["requests"] == 4 and summary["errors"] == 1 and summary["qps"] == 2.0
    assert summary["endpoints"]["search"]["p99_ms"] == 500.0 and summary["error_samples"] == ["search: 503 busy"]


def test_tiny_or_missing_models_are_refused(tmp_path):
    with pytest.raises(typer.BadParameter, match="does not exist"):
        _check_models(LoadConfig(dense_model=tmp_path / "nope", sparse_model=None))
    tiny = tmp_path / "tiny-models" / "dense"
    tiny.mkdir(parents=True)
    with pytest.raises(typer.BadParameter, match="tiny test model"):
        _check_models(LoadConfig(dense_model=tiny, sparse_model=None))
