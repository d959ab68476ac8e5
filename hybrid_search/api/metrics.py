"""Prometheus metrics: request latency per route, search latency per stage
(fed from ``SearchResult.timings_ms``), indexing job counters, and what the
models and the store did (``Engine.usage``: micro-batch sizes, model busy
seconds, shared Milvus calls).

Each app gets its own registry, so several apps in one process (tests) never
collide. With several uvicorn workers, ``serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` and the scrape aggregates every worker's values.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import asdict

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ..types import EngineUsage

__all__ = ["CONTENT_TYPE_LATEST", "SEARCH_STAGES", "Metrics"]

#: The keys of SearchResult.timings_ms that get a histogram series each.
SEARCH_STAGES = ("encode", "bm25", "sparse", "dense", "fusion", "rows", "rerank", "total")

# Milliseconds to tens of seconds: a BM25 lookup on a small collection takes
# well under a millisecond, a cross-encoder over 200 candidates on CPU seconds.
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "hybrid_search_http_requests_total",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "hybrid_search_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.search_stage_seconds = Histogram(
            "hybrid_search_search_stage_seconds",
            "Time spent in each search stage (encode, bm25, sparse, dense, fusion, rows, rerank, total).",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.searches = Counter(
            "hybrid_search_searches_total", "Searches answered, by collection.", ["collection"], registry=self.registry
        )
        self.jobs = Counter("hybrid_search_index_jobs_total", "Indexing jobs finished, by outcome.", ["state"], registry=self.registry)
        self.jobs_queued = Gauge(
            "hybrid_search_index_jobs_queued", "Indexing jobs waiting or running.", registry=self.registry, multiprocess_mode="livesum"
        )
        self.chunks_indexed = Counter("hybrid_search_chunks_indexed_total", "Chunks written by indexing jobs.", registry=self.registry)
        self.query_encode_calls = Counter(
            "hybrid_search_query_encode_calls_total", "Model calls that encoded queries (a micro-batch is one call).", registry=self.registry
        )
        self.queries_encoded = Counter(
            "hybrid_search_queries_encoded_total",
            "Queries encoded (divided by hybrid_search_query_encode_calls_total: the mean micro-batch).",
            registry=self.registry,
        )
        self.encode_seconds = Counter(
            "hybrid_search_encode_seconds_total",
            "Wall seconds the encoders spent on query calls and on documents being indexed (the share of time the models were busy).",
            ["work"],
            registry=self.registry,
        )
        self.store_calls = Counter(
            "hybrid_search_store_calls_total", "Milvus calls made for path searches and row reads.", registry=self.registry
        )
        self.store_requests = Counter(
            "hybrid_search_store_requests_total",
            "Path searches and row reads answered (divided by hybrid_search_store_calls_total: how many shared a call).",
            registry=self.registry,
        )
        # The counter of each EngineUsage field, and the highest totals exported so far (counters take the increase).
        self._usage_counters = {
            "query_encode_calls": self.query_encode_calls,
            "queries_encoded": self.queries_encoded,
            "query_encode_seconds": self.encode_seconds.labels("queries"),
            "document_encode_seconds": self.encode_seconds.labels("documents"),
            "store_calls": self.store_calls,
            "store_requests": self.store_requests,
        }
        self._usage_seen = EngineUsage(0, 0, 0.0, 0.0, 0, 0)
        self._usage_lock = threading.Lock()

    def observe_search(self, collection: str, timings_ms: Mapping[str, float]) -> None:
        self.searches.labels(collection).inc()
        for stage, milliseconds in timings_ms.items():
            if stage in SEARCH_STAGES:
                self.search_stage_seconds.labels(stage).observe(max(milliseconds, 0.0) / 1000.0)

    def observe_usage(self, usage: EngineUsage) -> None:
        """Bring the usage counters up to ``usage`` (the engine's running totals).
        Readings taken by threads side by side may arrive out of order: each
        total only counts from the highest value seen."""
        with self._usage_lock:
            seen, now = asdict(self._usage_seen), asdict(usage)
            self._usage_seen = EngineUsage(**{name: max(now[name], seen[name]) for name in now})
        for name, counter in self._usage_counters.items():
            if now[name] > seen[name]:
                counter.inc(now[name] - seen[name])

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if multiproc_dir:
            # Several workers: each writes its values to files there; collect them all.
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=multiproc_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)

