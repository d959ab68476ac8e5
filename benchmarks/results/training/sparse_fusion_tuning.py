"""Fusion tuned on dev for BM25 + the sparse-only M3 head + all-MiniLM-L6-v2
on nvidia_sec_10k, reported on test.

    python benchmarks/results/training/sparse_fusion_tuning.py

The collection is the `tuned` one that `train all --config
nvidia_sec_10k_sparse.toml` built for its evaluation (every chunk; BM25, the
trained sparse head, base dense). Per-path lists come from ``Engine.search``
(depth 100) and are fused offline with ``benchmarks.tuning`` over its usual
grid (RRF k and weighted min-max / z-score, per-path weights 0-2, a weight of
0 dropping the path), selected on the 20 dev queries of the training data
(10% of the train documents, held out of training), ties to fewer paths.
The test queries never choose anything. The same is done for BM25 + dense
alone, so the sparse head's share of the gain shows.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
RUN = Path("runs/training/nvidia_sec_10k_sparse")
OUT = HERE / "nvidia_sec_10k_sparse"


def main() -> None:
    from benchmarks.metrics import paired_randomization_test
    from benchmarks.runs import doc_of
    from benchmarks.tuning import grid, score_matrix, select
    from hybrid_search.config import RuntimeConfig, StoreConfig
    from hybrid_search.engine import Engine, SearchOptions
    from training.data import load_training_data

    data = load_training_data(RUN / "data")
    name = json.loads((RUN / "evaluation" / "evaluation.json").read_text())["collections"]["tuned"]
    queries = {"dev": data.dev, "test": data.test}
    candidates: dict[str, dict[str, list[tuple[str, float]]]] = {}
    with Engine(StoreConfig(uri=str(RUN / "evaluation" / "eval.db")), runtime=RuntimeConfig(device="cpu")) as engine:
        assert engine.store.count(name) == len(data.corpus)
        for path in ("bm25", "sparse", "dense"):
            options = SearchOptions(k=100, paths=(path,), depth=100, rerank=False, highlight=False)
            candidates[path] = {
                q.query_id: [(h.chunk_id, h.fused_score) for h in engine.search(name, q.query, options).hits]
                for split in queries.values()
                for q in split
            }
    qrels = {q.query_id: {doc_of(cid): grade for cid, grade in q.relevant.items()} for split in queries.values() for q in split}
    dev_ids = [q.query_id for q in data.dev]
    test_ids = [q.query_id for q in data.test]

    result: dict[str, object] = {"collection": name, "dev_queries": len(dev_ids), "test_queries": len(test_ids)}
    bm25_test = score_matrix(candidates, qrels, test_ids, grid(("bm25",)))[0]
    for label, paths in (("bm25+dense", ("bm25", "dense")), ("bm25+sparse+dense", ("bm25", "sparse", "dense"))):
        settings = grid(paths)
        best, dev_means = select(settings, score_matrix(candidates, qrels, dev_ids, settings))
        test_row = score_matrix(candidates, qrels, test_ids, [settings[best]])[0]
        result[label] = {
            "settings_in_grid": len(settings),
            "chosen": settings[best].describe(),
            "dev_ndcg@10": round(float(dev_means[best]), 4),
            "test_ndcg@10": round(float(test_row.mean()), 4),
            "test_vs_bm25_delta": round(float(test_row.mean() - bm25_test.mean()), 4),
            "test_vs_bm25_p": round(paired_randomization_test(list(test_row), list(bm25_test)), 4),
        }
    for path in ("bm25", "sparse", "dense"):
        result[f"{path}_test_ndcg@10"] = round(float(score_matrix(candidates, qrels, test_ids, grid((path,)))[0].mean()), 4)
    (OUT / "fusion_tuning.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
