"""Rerank score interpolation for the windowed nvidia reranker: the first-stage
weight ``w`` of ``RerankConfig.first_stage_weight`` chosen on dev queries,
then reported on test.

    python benchmarks/results/training/rerank_interpolation.py RERANKER_DIR

Lists: the engine's hybrid lists (served fusion: weighted min-max, bm25 0.8 /
dense 0.2, top 20) from the reranker run's evaluation collection, for the dev
queries (10% of the train documents, held out of training) and the test
queries, with their fused scores. Rerank scores: dev scored here on the CPU by
``hybrid_search.rerank.load_reranker`` (max-window, 256 tokens, as trained);
test read from ``nvidia_sec_10k_reranker/scores.json`` (scored on the GPU by
``rerank_offload.py`` over the same lists; the unreranked metrics are
re-checked to prove the lists are the same). Each list is ordered by
``hybrid_search.engine.order_reranked``, the function ``Engine.search``
orders by (combined score, fused position breaking ties).

Choice rule, fixed before any test number was seen: the w in 0, 0.1, ..., 1
with the best dev nDCG@10; ties go to the smaller w (use the reranker as much
as dev allows). Test values at every w are printed for the record, not used.
The chosen row is compared with BM25 and with the hybrid without rerank by a
paired randomization test on per-query test nDCG@10.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# The run, lists and reranker settings the GPU scores were made with: one definition.
from rerank_offload import BASE_DENSE, FUSION, RERANK, RUN, K

HERE = Path(__file__).parent
OUT = HERE / "nvidia_sec_10k_reranker"
METRICS = ("ndcg@10", "recall@10", "mrr@10")


def main(model: str) -> None:
    from hybrid_search.config import (
        DenseEncoderConfig,
        FusionConfig,
        RerankConfig,
        RuntimeConfig,
        StoreConfig,
    )
    from hybrid_search.engine import Engine, SearchOptions, order_reranked
    from hybrid_search.rerank import load_reranker
    from training.data import load_training_data
    from training.evaluate import FIRST_STAGE_GRID as GRID
    from benchmarks.metrics import paired_randomization_test
    from training.evaluate import System, eval_collection_name, per_query_metric, rank_metrics

    data = load_training_data(RUN / "data")
    system = System("base", dense=DenseEncoderConfig(model=BASE_DENSE, kind="sentence-transformers"), sparse=None)
    name = eval_collection_name(system, "all", "en", [c.id for c in data.corpus])
    options = SearchOptions(k=K, depth=100, rerank=False, highlight=False, fusion=FusionConfig(**FUSION))
    lists: dict[str, dict[str, list[tuple[str, float, str]]]] = {"dev": {}, "test": {}}
    bm25_test: dict[str, list[str]] = {}
    with Engine(StoreConfig(uri=str(RUN / "evaluation" / "eval.db")), runtime=RuntimeConfig(device="cpu")) as engine:
        assert engine.store.count(name) == len(data.corpus), "the evaluation collection is incomplete"
        for split, queries in (("dev", data.dev), ("test", data.test)):
            for query in queries:
                hits = engine.search(name, query.query, options).hits
                lists[split][query.query_id] = [(h.chunk_id, h.fused_score, h.text) for h in hits]
        bm25_options = SearchOptions(k=K, depth=100, rerank=False, highlight=False, paths=("bm25",))
        for query in data.test:
            bm25_test[query.query_id] = [h.chunk_id for h in engine.search(name, query.query, bm25_options).hits]
    queries = {"dev": data.dev, "test": data.test}

    # The test lists must be the ones scored on the GPU.
    recorded = json.loads((OUT / "unreranked.json").read_text())["hybrid"]
    again = rank_metrics(data.test, {q: [c for c, _, _ in hits] for q, hits in lists["test"].items()}, ("ndcg@10", "recall@10", "mrr@10"))
    assert all(abs(again[m] - recorded[m]) < 1e-4 for m in again), (again, recorded)
    test_scores = json.loads((OUT / "scores.json").read_text())
    assert test_scores["rerank"] == RERANK
    scores = {"test": test_scores["scores"]["hybrid"]}

    reranker = load_reranker(RerankConfig(model=model, kind="cross-encoder", batch_size=32, **RERANK), RuntimeConfig(device="cpu", fp16=False))
    started = time.perf_counter()
    text_of = {q.query_id: q.query for q in data.dev}
    scores["dev"] = {qid: reranker.score(text_of[qid], [text for _, _, text in hits]) for qid, hits in lists["dev"].items()}
    dev_seconds = time.perf_counter() - started

    def ranked(split: str, weight: float) -> dict[str, list[str]]:
        out = {}
        for qid, hits in lists[split].items():
            head = [(cid, fused) for cid, fused, _ in hits]
            ordered, _ = order_reranked(head, {cid: s for (cid, _), s in zip(head, scores[split][qid], strict=True)}, weight)
            out[qid] = [cid for cid, _ in ordered]
        return out

    table = {split: {str(w): rank_metrics(queries[split], ranked(split, w), METRICS) for w in GRID} for split in ("dev", "test")}
    best_dev = max(table["dev"][str(w)]["ndcg@10"] for w in GRID)
    chosen = min(w for w in GRID if table["dev"][str(w)]["ndcg@10"] == best_dev)
    unreranked = {split: rank_metrics(queries[split], {q: [c for c, _, _ in h] for q, h in lists[split].items()}, METRICS) for split in ("dev", "test")}
    chosen_test = per_query_metric(data.test, ranked("test", chosen), "ndcg@10")
    significance = {}
    for label, rankings in (("bm25", bm25_test), ("hybrid, no rerank", {q: [c for c, _, _ in h] for q, h in lists["test"].items()})):
        other = per_query_metric(data.test, rankings, "ndcg@10")
        ids = sorted(other)
        significance[label] = {
            "ndcg@10": round(sum(other.values()) / len(ids), 4),
            "delta": round(sum(chosen_test[q] - other[q] for q in ids) / len(ids), 4),
            "p_value": round(paired_randomization_test([chosen_test[q] for q in ids], [other[q] for q in ids]), 4),
        }
    result = {
        "model": model,
        "rerank": RERANK,
        "fusion": FUSION,
        "queries": {split: len(queries[split]) for split in queries},
        "dev_scoring_seconds_cpu": round(dev_seconds, 1),
        "rule": "best dev ndcg@10 over w in 0..1 step 0.1; ties to the smaller w",
        "chosen_first_stage_weight": chosen,
        "unreranked": unreranked,
        "by_weight": table,
        "chosen_vs": significance,
    }
    (OUT / "interpolation.json").write_text(json.dumps(result, indent=1))
    lines = [
        f"First-stage weight chosen on {len(data.dev)} dev queries: **w = {chosen}** (dev nDCG@10 {best_dev:.4f}).",
        "",
        "| w | dev nDCG@10 | test nDCG@10 | test recall@10 | test MRR@10 |",
        "|---:|---:|---:|---:|---:|",
        f"| hybrid, no rerank | {unreranked['dev']['ndcg@10']:.4f} | {unreranked['test']['ndcg@10']:.4f} | {unreranked['test']['recall@10']:.4f} | {unreranked['test']['mrr@10']:.4f} |",
    ]
    for w in GRID:
        d, t = table["dev"][str(w)], table["test"][str(w)]
        mark = " (chosen)" if w == chosen else ""
        lines.append(f"| {w}{mark} | {d['ndcg@10']:.4f} | {t['ndcg@10']:.4f} | {t['recall@10']:.4f} | {t['mrr@10']:.4f} |")
    lines.append("")
    for label, test in significance.items():
        lines.append(
            f"Test nDCG@10 at w = {chosen} vs {label} ({test['ndcg@10']:.4f}): {test['delta']:+.4f}, "
            f"paired randomization p = {test['p_value']:.4f}."
        )
    (OUT / "interpolation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(str(Path(sys.argv[1]).expanduser()))
