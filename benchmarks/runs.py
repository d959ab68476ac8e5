"""Searching a benchmark index through ``Engine.search``: ranked runs, per-stage
timings, and cached per-path candidate lists for offline fusion tuning."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hybrid_search import SearchOptions

from .indexes import IndexSpec, OpenedIndex

__all__ = [
    "SearchRun",
    "search_all",
    "path_candidates",
    "cached_candidates",
    "candidates_file",
    "store_candidates",
    "doc_of",
    "STAGES",
    "ASSEMBLE",
]

STAGES = ("encode", "bm25", "sparse", "dense", "fusion", "rerank", "total")
#: Derived: total minus the timed stages = building the hits (reading rows,
#: matched-term highlighting) and analysing the query.
ASSEMBLE = "assemble"


def doc_of(chunk_id: str) -> str:
    return chunk_id.rsplit("#", 1)[0]


class SearchRun:
    """What one condition returned: per query the (chunk_id, score) list in the
    engine's final order, and the per-stage timings of every query."""

    def __init__(self) -> None:
        self.results: dict[str, list[tuple[str, float]]] = {}
        self.path_lists: dict[str, dict[str, list[tuple[str, float]]]] = {}
        self.timings: dict[str, list[float]] = {stage: [] for stage in (*STAGES, ASSEMBLE)}

    def ranking(self) -> dict[str, list[str]]:
        return {qid: [doc_of(cid) for cid, _ in hits] for qid, hits in self.results.items()}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def search_all(
    opened: OpenedIndex,
    queries: Mapping[str, str],
    options_for: Callable[[str], SearchOptions],
    *,
    label: str = "",
    warmup: int = 3,
    keep_path_lists: bool = False,
    log: Callable[[str], None] = _log,
) -> SearchRun:
    """Run every query through ``Engine.search`` with its options.

    The first ``warmup`` queries are searched once before timing starts, so
    model loading and first-call costs stay out of the latency figures."""
    engine, collection = opened.engine, opened.collection
    qids = list(queries)
    for qid in qids[:warmup]:
        engine.search(collection, queries[qid], options_for(qid))
    run = SearchRun()
    started = last = time.perf_counter()
    for n, qid in enumerate(qids, start=1):
        result = engine.search(collection, queries[qid], options_for(qid))
        run.results[qid] = [(hit.chunk_id, hit.score) for hit in result.hits]
        if keep_path_lists:
            for path in result.paths:
                ranked = sorted(
                    (hit.paths[path].rank, hit.chunk_id, hit.paths[path].score) for hit in result.hits if path in hit.paths
                )
                run.path_lists.setdefault(path, {})[qid] = [(cid, score) for _, cid, score in ranked]
        for stage in STAGES:
            if stage in result.timings_ms:
                run.timings[stage].append(result.timings_ms[stage])
        if "total" in result.timings_ms:
            timed = sum(v for s, v in result.timings_ms.items() if s != "total")
            run.timings[ASSEMBLE].append(max(0.0, result.timings_ms["total"] - timed))
        now = time.perf_counter()
        if now - last > 30:
            last = now
            log(f"[search] {label}: {n}/{len(qids)} queries, {n / (now - started):.1f} q/s")
    return run


def _cache_file(opened: OpenedIndex, cache: Path, split: str, path: str, depth: int) -> Path:
    return candidates_file(opened.spec, cache, split, path, depth)


def candidates_file(spec: IndexSpec, cache: Path, split: str, path: str, depth: int) -> Path:
    return Path(cache) / "candidates" / spec.key() / f"{split}-{path}-d{depth}.json"


def cached_candidates(
    spec: IndexSpec, queries: Mapping[str, str], path: str, *, split: str, depth: int = 100, cache: Path = Path("runs")
) -> dict[str, list[tuple[str, float]]] | None:
    """The cached lists of ``path_candidates`` for every query, or None when any is missing
    (reading them needs no index, so another process may hold it open)."""
    file = candidates_file(spec, cache, split, path, depth)
    stored: dict[str, Any] = json.loads(file.read_text()) if file.is_file() else {}
    if any(qid not in stored or stored[qid]["query"] != text for qid, text in queries.items()):
        return None
    return {qid: [(cid, float(score)) for cid, score in stored[qid]["hits"]] for qid in queries}


def path_candidates(
    opened: OpenedIndex,
    queries: Mapping[str, str],
    path: str,
    *,
    split: str,
    depth: int = 100,
    cache: Path = Path("runs"),
    log: Callable[[str], None] = _log,
) -> dict[str, list[tuple[str, float]]]:
    """One path's top-``depth`` (chunk_id, raw score) per query, exactly as
    ``Engine.search`` ranks them, cached per index, split, path and depth."""
    file = _cache_file(opened, cache, split, path, depth)
    stored: dict[str, Any] = json.loads(file.read_text()) if file.is_file() else {}
    missing = {qid: text for qid, text in queries.items() if qid not in stored or stored[qid]["query"] != text}
    if missing:
        log(f"[candidates] {opened.spec.dataset.name}/{split}/{path}: searching {len(missing)} queries")
        for qid, hits in _one_path_lists(opened, missing, path, depth).items():
            stored[qid] = {"query": missing[qid], "hits": [[cid, score] for cid, score in hits]}
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(stored))
    return {qid: [(cid, float(score)) for cid, score in stored[qid]["hits"]] for qid in queries}


def _one_path_lists(
    opened: OpenedIndex, queries: Mapping[str, str], path: str, depth: int, batch: int = 64
) -> dict[str, list[tuple[str, float]]]:
    """What ``Engine.search(paths=(path,), depth=depth)`` ranks, without its
    per-query overheads: the query is analysed and encoded exactly as there (one
    query at a time, only by the path's own encoder, so the vectors are
    identical), the store is asked for ids only, many queries per call.
    Checked against Engine.search in tests/integration/benchmarks."""
    engine, collection = opened.engine, opened.collection
    analyzer = engine.analyzer(collection)
    encoders = engine.encoders(collection) if path != "bm25" else None
    data: dict[str, Any] = {}
    for qid, text in queries.items():
        if path == "bm25":
            terms = analyzer.tokenize(text)
            data[qid] = " ".join(terms) if terms else None
        elif path == "sparse":
            assert encoders is not None and encoders.sparse is not None
            sparse = encoders.encode_queries([text])[1] if encoders.shared_m3 else encoders.sparse.encode_queries([text])
            data[qid] = sparse[0] if sparse and sparse[0] else None
        else:
            assert encoders is not None and encoders.dense is not None
            dense = encoders.encode_queries([text])[0] if encoders.shared_m3 else encoders.dense.encode_queries([text])
            assert dense is not None
            data[qid] = [float(x) for x in dense[0]]
    out: dict[str, list[tuple[str, float]]] = {qid: [] for qid, value in data.items() if value is None}
    searchable = [qid for qid, value in data.items() if value is not None]
    for start in range(0, len(searchable), batch):
        part = searchable[start : start + batch]
        found = engine.store.search(collection, path, [data[q] for q in part], limit=depth, output_fields=("id",))  # type: ignore[arg-type]
        for qid, hits in zip(part, found):
            out[qid] = [(row["id"], score) for row, score in hits]
    return {qid: out[qid] for qid in queries}


def store_candidates(
    opened: OpenedIndex,
    queries: Mapping[str, str],
    path: str,
    lists: Mapping[str, list[tuple[str, float]]],
    *,
    split: str,
    depth: int,
    cache: Path,
) -> None:
    """Save single-path lists a quality run already produced (so tuning needs no new searches)."""
    file = _cache_file(opened, cache, split, path, depth)
    stored: dict[str, Any] = json.loads(file.read_text()) if file.is_file() else {}
    for qid, hits in lists.items():
        stored[qid] = {"query": queries[qid], "hits": [[cid, score] for cid, score in hits]}
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(stored))
