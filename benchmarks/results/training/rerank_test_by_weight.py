"""Test nDCG@10 of the CPU-trained reranker at every first-stage weight, for the record.

    python benchmarks/results/training/rerank_test_by_weight.py

`train evaluate --tune-first-stage-weight` chose w on the dev queries and
reported test at that w only (nvidia_sec_10k_reranker_cpu/evaluation.md).
This re-scores the same test lists (hybrid top 10, the served fusion, the
reranker as the engine serves it) once and orders them for every w on the
grid as the engine orders them (evaluate's `reranked_lists` and
`rankings_at`, which dev tuning uses). Nothing here chooses anything: w = 0
is the reranker alone, w = 1 the hybrid without it. Paired randomization
tests on per-query test nDCG@10: the reranker alone and the dev-chosen w
against BM25, dense and the hybrid (BM25 and dense lists from the same
collection).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

RUN = Path("runs/training/nvidia_sec_10k_reranker_cpu")
OUT = Path(__file__).parent / "nvidia_sec_10k_reranker_cpu" / "test_by_weight.json"


def main() -> None:
    from hybrid_search.config import FusionConfig, RerankConfig, RuntimeConfig, StoreConfig
    from hybrid_search.engine import Engine, SearchOptions
    from training.data import load_training_data
    from training.evaluate import FIRST_STAGE_GRID, System, eval_collection_name, paired_comparison, per_query_metric, rank_metrics, rankings_at, reranked_lists
    from training.pipeline import load_pipeline_config

    config = load_pipeline_config(Path(__file__).parent / "nvidia_sec_10k_reranker_cpu.toml")
    trained = config.reranker
    assert trained is not None
    data = load_training_data(RUN / "data")
    if os.environ.get("LIMIT"):  # a smoke run of the plumbing: nothing is written
        data = replace(data, test=data.test[: int(os.environ["LIMIT"])])
    name = eval_collection_name(System("base", dense=config.base.dense, sparse=None), "all", "en", [c.id for c in data.corpus])
    settings = config.evaluation
    reranker = RerankConfig(
        model=str(RUN / "reranker" / "model"),
        kind="cross-encoder",
        top_n=settings.rerank_top_n,
        max_length=trained.max_length,
        long_passages=trained.long_passages,
        window_overlap=trained.window_overlap,
    )
    options = SearchOptions(
        k=settings.k, depth=settings.depth, rerank=True, rerank_top_n=settings.rerank_top_n, fusion=settings.fusion or FusionConfig(), highlight=False
    )
    with Engine(StoreConfig(uri=str(RUN / "evaluation" / "eval.db")), runtime=RuntimeConfig(device="cpu"), reranker=reranker) as engine:
        assert engine.store.count(name) == len(data.corpus), "run the pipeline's evaluation first"
        lists = reranked_lists(engine, name, data.test, options)
        single = {}
        for path in ("bm25", "dense"):
            path_options = SearchOptions(k=settings.k, depth=settings.depth, paths=(path,), rerank=False, highlight=False)
            single[path] = {q.query_id: [h.chunk_id for h in engine.search(name, q.query, path_options).hits] for q in data.test}
    chosen = json.loads((OUT.parent / "evaluation.json").read_text())["first_stage_weights"]["tuned"]["hybrid+rerank"]["chosen"]
    table = {str(w): rank_metrics(data.test, rankings_at(lists, w), ("ndcg@10", "mrr@10")) for w in FIRST_STAGE_GRID}
    per_query = {label: per_query_metric(data.test, rankings, "ndcg@10") for label, rankings in single.items()}
    per_query["hybrid"] = per_query_metric(data.test, rankings_at(lists, 1.0), "ndcg@10")
    tests = {}
    for row, weight in (("reranker alone (w = 0)", 0.0), (f"dev-chosen w = {chosen}", chosen)):
        ours = per_query_metric(data.test, rankings_at(lists, weight), "ndcg@10")
        for label, other in per_query.items():
            tests[f"{row} vs {label}"] = paired_comparison(ours, other)
    result = {"queries": len(data.test), "rerank_top_n": settings.rerank_top_n, "chosen_on_dev": chosen, "test_by_weight": table, "paired_tests": tests}
    if not os.environ.get("LIMIT"):
        OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
