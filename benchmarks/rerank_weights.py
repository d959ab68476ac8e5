"""A training run's reranker at every first-stage weight
(``python -m benchmarks rerank-weights CONFIG``): the weight ``w`` of
``RerankConfig.first_stage_weight`` chosen on the run's dev queries, test
reported at every w for the record and compared at the chosen one.

Lists: the engine's hybrid lists (the evaluation's fusion, top ``[evaluation]
rerank_top_n`` reranked) from the run's base evaluation collection. Dev is
reranked here by ``Engine.search`` with the run's reranker (as trained:
length, windows). Test is reranked the same way, or, with ``--offloaded``, its
scores are read from ``scores.json`` (``rerank-offload score``, made on a GPU
over the same lists; the unreranked metrics are re-checked so the lists are
proven the same). Each list is ordered for every w as ``Engine.search`` orders
it (``training.evaluate.rankings_at``).

Choice rule, fixed before any test number is seen: the w on the grid
0, 0.1, ..., 1 with the best dev nDCG@10; ties go to the smaller w (the
reranker used as much as dev allows). The reranker alone (w = 0) and the
chosen w are compared with BM25, dense and the hybrid without rerank by a
paired randomization test on per-query test nDCG@10.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hybrid_search.errors import InputError

from .training_inputs import TrainingRun

__all__ = ["RULE", "choose_weight", "rerank_weights_markdown", "run_rerank_weights", "weight_table"]

METRICS = ("ndcg@10", "recall@10", "mrr@10")
RULE = "best dev ndcg@10 over w in 0..1 step 0.1; ties to the smaller w"


def weight_table(queries: Sequence[Any], lists: Sequence[Any], metrics: Sequence[str] = METRICS) -> dict[str, dict[str, float]]:
    """Metrics of ``lists`` ordered at every weight of the grid, keyed by ``str(w)``."""
    from training.evaluate import FIRST_STAGE_GRID, rank_metrics, rankings_at

    return {str(w): rank_metrics(queries, rankings_at(lists, w), metrics) for w in FIRST_STAGE_GRID}


def choose_weight(table: Mapping[str, Mapping[str, float]], metric: str = "ndcg@10") -> float:
    """The rule: best ``metric``, ties to the smaller weight."""
    best = max(row[metric] for row in table.values())
    return min(float(w) for w, row in table.items() if row[metric] == best)


def _offloaded_test_lists(run: TrainingRun, engine: Any, name: str, test: Sequence[Any], options: Any) -> list[Any]:
    """The hybrid test lists searched here (fused scores), with the offloaded rerank scores by position."""
    from training.evaluate import rank_metrics

    scored = json.loads(run.require(run.results / "scores.json", "the offloaded scores").read_text(encoding="utf-8"))
    if scored.get("rerank") != run.rerank_settings():
        raise InputError(f"scores.json was scored with {scored.get('rerank')}, the run serves {run.rerank_settings()}")
    scores = scored["scores"]["hybrid"]
    heads = {q.query_id: [(h.chunk_id, h.fused_score) for h in engine.search(name, q.query, options).hits] for q in test}
    recorded = json.loads(run.require(run.results / "unreranked.json", "the offloaded lists' metrics").read_text(encoding="utf-8"))["hybrid"]
    again = rank_metrics(test, {q: [c for c, _ in head] for q, head in heads.items()}, list(recorded))
    if any(abs(again[m] - recorded[m]) > 1e-4 for m in again):
        raise InputError(f"the hybrid lists differ from those the offloaded scores were made for ({again} vs {recorded})")
    lists = []
    for qid, head in heads.items():
        if len(scores[qid]) != len(head):
            raise InputError(f"query {qid}: {len(scores[qid])} offloaded scores for {len(head)} hits")
        lists.append((qid, head, {cid: float(s) for (cid, _), s in zip(head, scores[qid], strict=True)}, []))
    return lists


def run_rerank_weights(
    run: TrainingRun, *, model: Path | None = None, offloaded: bool = False, device: str = "cpu", log: Callable[[str], None] = print
) -> dict[str, Any]:
    from dataclasses import replace

    from hybrid_search.config import (
        FusionConfig,
        RerankConfig,
        RuntimeConfig,
        StoreConfig,
    )
    from hybrid_search.engine import Engine, SearchOptions
    from training.evaluate import (
        paired_comparison,
        per_query_metric,
        rankings_at,
        reranked_lists,
    )

    from .report import environment, write_json, write_text

    settings = run.evaluation
    data = run.load_data()
    if not data.dev:
        raise InputError(f"{run.data_dir} has no dev queries to choose the weight on")
    name = run.collection("base", [c.id for c in data.corpus])
    run.require(Path(run.store_uri), "the run's evaluation collections")
    folder = run.require(Path(model) if model is not None else run.reranker_model, "the trained reranker")
    reranker = RerankConfig(model=str(folder), kind="cross-encoder", **run.rerank_settings())
    top_n = settings.rerank_top_n
    search = SearchOptions(k=settings.k, depth=settings.depth, rerank=False, highlight=False, fusion=settings.fusion or FusionConfig())
    reranked = replace(search, rerank=True, rerank_top_n=top_n)
    with Engine(StoreConfig(uri=run.store_uri, timeout_s=600), runtime=RuntimeConfig(device=device), reranker=reranker) as engine:  # type: ignore[arg-type]
        if engine.store.count(name) != len(data.corpus):
            raise InputError(f"the evaluation collection {name} is incomplete: run the pipeline's evaluation first")
        log(f"reranking {len(data.dev)} dev queries with {folder}")
        lists = {"dev": reranked_lists(engine, name, data.dev, reranked)}
        if offloaded:
            lists["test"] = _offloaded_test_lists(run, engine, name, data.test, search)
        else:
            log(f"reranking {len(data.test)} test queries")
            lists["test"] = reranked_lists(engine, name, data.test, reranked)
        single = {}
        for path in ("bm25", "dense"):
            options = SearchOptions(k=settings.k, depth=settings.depth, paths=(path,), rerank=False, highlight=False)
            single[path] = {q.query_id: [h.chunk_id for h in engine.search(name, q.query, options).hits] for q in data.test}
    queries = {"dev": data.dev, "test": data.test}
    table = {split: weight_table(queries[split], lists[split]) for split in ("dev", "test")}
    chosen = choose_weight(table["dev"])
    others = {label: per_query_metric(data.test, rankings, "ndcg@10") for label, rankings in single.items()}
    others["hybrid, no rerank"] = per_query_metric(data.test, rankings_at(lists["test"], 1.0), "ndcg@10")
    tests = {}
    for row, weight in (("reranker alone (w = 0)", 0.0), (f"dev-chosen w = {chosen}", chosen)):
        ours = per_query_metric(data.test, rankings_at(lists["test"], weight), "ndcg@10")
        for label, other in others.items():
            tests[f"{row} vs {label}"] = paired_comparison(ours, other)
    result = {
        "config": str(run.config_file),
        "model": str(folder),
        "rerank": run.rerank_settings(),
        "fusion": str(search.fusion),
        "test_scores": "offloaded (scores.json)" if offloaded else "scored here",
        "queries": {split: len(queries[split]) for split in queries},
        "rule": RULE,
        "chosen_first_stage_weight": chosen,
        "by_weight": table,
        "paired_tests": tests,
        "environment": environment(),
    }
    write_json(run.results / "rerank_weights.json", result)
    write_text(run.results / "rerank_weights.md", rerank_weights_markdown(result))
    return result


def rerank_weights_markdown(result: Mapping[str, Any]) -> str:
    chosen = result["chosen_first_stage_weight"]
    dev, test = result["by_weight"]["dev"], result["by_weight"]["test"]
    lines = [
        f"First-stage weight chosen on {result['queries']['dev']} dev queries ({result['rule']}): **w = {chosen}**.",
        "",
        "| w | dev nDCG@10 | test nDCG@10 | test recall@10 | test MRR@10 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for w in dev:
        mark = " (chosen)" if float(w) == chosen else ""
        lines.append(f"| {w}{mark} | {dev[w]['ndcg@10']:.4f} | {test[w]['ndcg@10']:.4f} | {test[w]['recall@10']:.4f} | {test[w]['mrr@10']:.4f} |")
    lines += ["", "Paired randomization tests on per-query test nDCG@10 (w = 1 is the hybrid without rerank):", ""]
    for label, comparison in result["paired_tests"].items():
        lines.append(f"- {label}: {comparison['candidate']:.4f} vs {comparison['baseline']:.4f}, {comparison['delta']:+.4f}, p = {comparison['p_value']:.4f}")
    return "\n".join(lines) + "\n"
