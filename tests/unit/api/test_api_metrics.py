"""The usage counters of /metrics: the engine's running totals exported as
Prometheus counters, whatever order concurrent readings arrive in."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from hybrid_search.api.metrics import Metrics
from hybrid_search.types import EngineUsage

pytestmark = pytest.mark.unit


def exported(metrics: Metrics) -> dict[str, float]:
    values = {}
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("hybrid_search_") and "_created" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_counters_follow_the_engine_totals():
    metrics = Metrics()
    metrics.observe_usage(EngineUsage(2, 5, 0.25, 1.5, 8, 20))
    metrics.observe_usage(EngineUsage(3, 9, 0.5, 1.5, 10, 26))
    values = exported(metrics)
    assert values["hybrid_search_query_encode_calls_total"] == 3
    assert values["hybrid_search_queries_encoded_total"] == 9
    assert values['hybrid_search_encode_seconds_total{work="queries"}'] == pytest.approx(0.5)
    assert values['hybrid_search_encode_seconds_total{work="documents"}'] == pytest.approx(1.5)
    assert values["hybrid_search_store_calls_total"] == 10
    assert values["hybrid_search_store_requests_total"] == 26


def test_a_reading_that_arrives_late_adds_nothing():
    # Two threads read the totals, the later reading is exported first.
    metrics = Metrics()
    metrics.observe_usage(EngineUsage(4, 10, 1.0, 0.0, 12, 30))
    metrics.observe_usage(EngineUsage(3, 7, 0.75, 0.5, 9, 22))
    values = exported(metrics)
    assert values["hybrid_search_query_encode_calls_total"] == 4
    assert values["hybrid_search_queries_encoded_total"] == 10
    # Documents moved on in the late reading only: that much is new.
    assert values['hybrid_search_encode_seconds_total{work="documents"}'] == pytest.approx(0.5)
    assert values["hybrid_search_store_requests_total"] == 30
    metrics.observe_usage(EngineUsage(5, 12, 1.25, 0.5, 13, 33))
    assert exported(metrics)["hybrid_search_queries_encoded_total"] == 12
