"""Fusion tuned on a training run's dev queries, for its base and tuned
evaluation collections, reported on test with a paired test against BM25
(``python -m benchmarks training-fusion CONFIG``).

For each system the run evaluated (``base``: the models before training;
``tuned``: with the trained parts swapped in), the per-path lists come from
``Engine.search`` on its evaluation collection (depth 100) and are fused
offline with ``benchmarks.tuning`` over its usual grid (RRF k and weighted
min-max / z-score, per-path weights 0-2, a weight of 0 dropping the path),
selected on the run's dev queries (held out of training), ties to fewer paths.
The test queries never choose anything. BM25 + dense is tuned alone, and with
the sparse path when the collection has one, so each path's share of the gain
shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .training_inputs import TrainingRun

__all__ = ["SYSTEMS", "fusion_combos", "run_training_fusion"]

SYSTEMS = ("base", "tuned")
DEPTH = 100


def fusion_combos(paths: Sequence[str]) -> list[tuple[str, ...]]:
    """The path sets tuned: BM25 + dense, and all three when there is a sparse path."""
    combos = [("bm25", "dense")] if {"bm25", "dense"} <= set(paths) else []
    if {"bm25", "sparse", "dense"} <= set(paths):
        combos.append(("bm25", "sparse", "dense"))
    return combos


def run_training_fusion(run: TrainingRun, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    from hybrid_search.config import RuntimeConfig, StoreConfig
    from hybrid_search.engine import Engine, SearchOptions
    from hybrid_search.evaluation import paired_randomization_test

    from .report import environment, write_json
    from .runs import doc_of
    from .tuning import grid, score_matrix, select

    data = run.load_data()
    queries = [q for split in (data.dev, data.test) for q in split]
    qrels = {q.query_id: {doc_of(cid): grade for cid, grade in q.relevant.items()} for q in queries}
    dev_ids = [q.query_id for q in data.dev]
    test_ids = [q.query_id for q in data.test]
    corpus_ids = [c.id for c in data.corpus]
    systems: dict[str, Any] = {}
    result: dict[str, Any] = {"run": str(run.out), "config": str(run.config_file), "dev_queries": len(dev_ids), "test_queries": len(test_ids), "systems": systems}
    run.require(run.out / "evaluation" / "eval.db", "the run's evaluation collections")
    # A long timeout: Milvus Lite may start slowly on a busy machine.
    with Engine(StoreConfig(uri=run.store_uri, timeout_s=600), runtime=RuntimeConfig(device="cpu")) as engine:
        for system in SYSTEMS:
            name = run.collection(system, corpus_ids)
            if engine.store.count(name) != len(data.corpus):
                raise RuntimeError(f"{name} holds {engine.store.count(name)} of {len(data.corpus)} chunks: re-run the pipeline's evaluation")
            paths = engine.open_collection(name).paths
            log(f"{system}: {name} ({', '.join(paths)})")
            candidates: dict[str, dict[str, list[tuple[str, float]]]] = {}
            for path in paths:
                options = SearchOptions(k=DEPTH, paths=(path,), depth=DEPTH, rerank=False, highlight=False)
                candidates[path] = {q.query_id: [(h.chunk_id, h.fused_score) for h in engine.search(name, q.query, options).hits] for q in queries}
            bm25_test = score_matrix(candidates, qrels, test_ids, grid(("bm25",)))[0]
            rows: dict[str, Any] = {"collection": name, "paths": list(paths)}
            for path in paths:
                rows[f"{path}_test_ndcg@10"] = round(float(score_matrix(candidates, qrels, test_ids, grid((path,)))[0].mean()), 4)
            for combo in fusion_combos(paths):
                settings = grid(combo)
                best, dev_means = select(settings, score_matrix(candidates, qrels, dev_ids, settings))
                test_row = score_matrix(candidates, qrels, test_ids, [settings[best]])[0]
                rows["+".join(combo)] = {
                    "settings_in_grid": len(settings),
                    "chosen": settings[best].describe(),
                    "dev_ndcg@10": round(float(dev_means[best]), 4),
                    "test_ndcg@10": round(float(test_row.mean()), 4),
                    "test_vs_bm25_delta": round(float(test_row.mean() - bm25_test.mean()), 4),
                    "test_vs_bm25_p": round(paired_randomization_test(list(test_row), list(bm25_test)), 4),
                }
            systems[system] = rows
    result["environment"] = environment()
    write_json(run.results / "fusion_tuning.json", result)
    return result
