"""Fusion tuned on dev for a training run's evaluation collections, reported on
test with a paired significance test against BM25.

    python benchmarks/results/training/fusion_tuning.py RUN_DIR OUT_DIR

For each system the run evaluated (``base``: the models before training;
``tuned``: with the trained parts swapped in; controls skipped), the per-path
lists come from ``Engine.search`` on its evaluation collection (depth 100) and
are fused offline with ``benchmarks.tuning`` over its usual grid (RRF k and
weighted min-max / z-score, per-path weights 0-2, a weight of 0 dropping the
path), selected on the run's dev queries (held out of training), ties to
fewer paths. The test queries never choose anything. BM25 + dense is tuned
alone, and with the sparse path when the collection has one, so each path's
share of the gain shows.

Runs it was used for (results in OUT_DIR/fusion_tuning.json):
- runs/training/nvidia_sec_10k_sparse -> nvidia_sec_10k_sparse/ (trained M3 head)
- runs/training/scifact_label_free_sparse -> scifact_label_free_sparse/ (dev =
  pseudo-queries of held-out documents: label-free, like its training)
- runs/training/nvidia_sec_10k_dense512 -> nvidia_sec_10k_dense512/ (dense at 512 tokens)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SYSTEMS = ("base", "tuned")


def main(run: Path, out: Path) -> None:
    from benchmarks.metrics import paired_randomization_test
    from benchmarks.runs import doc_of
    from benchmarks.tuning import grid, score_matrix, select
    from hybrid_search.config import RuntimeConfig, StoreConfig
    from hybrid_search.engine import Engine, SearchOptions
    from training.data import load_training_data

    data = load_training_data(run / "data")
    collections = json.loads((run / "evaluation" / "evaluation.json").read_text())["collections"]
    queries = [q for split in (data.dev, data.test) for q in split]
    qrels = {q.query_id: {doc_of(cid): grade for cid, grade in q.relevant.items()} for q in queries}
    dev_ids = [q.query_id for q in data.dev]
    test_ids = [q.query_id for q in data.test]
    result: dict[str, object] = {"run": str(run), "dev_queries": len(dev_ids), "test_queries": len(test_ids), "systems": {}}
    # A long timeout: Milvus Lite may start slowly on a busy machine.
    with Engine(StoreConfig(uri=str(run / "evaluation" / "eval.db"), timeout_s=600), runtime=RuntimeConfig(device="cpu")) as engine:
        for system in SYSTEMS:
            name = collections[system]
            assert engine.store.count(name) == len(data.corpus), f"{name} is incomplete"
            paths = engine.open_collection(name).paths
            candidates: dict[str, dict[str, list[tuple[str, float]]]] = {}
            for path in paths:
                options = SearchOptions(k=100, paths=(path,), depth=100, rerank=False, highlight=False)
                candidates[path] = {q.query_id: [(h.chunk_id, h.fused_score) for h in engine.search(name, q.query, options).hits] for q in queries}
            bm25_test = score_matrix(candidates, qrels, test_ids, grid(("bm25",)))[0]
            rows: dict[str, object] = {"collection": name, "paths": list(paths)}
            for path in paths:
                rows[f"{path}_test_ndcg@10"] = round(float(score_matrix(candidates, qrels, test_ids, grid((path,)))[0].mean()), 4)
            combos = [("bm25", "dense")] + ([("bm25", "sparse", "dense")] if "sparse" in paths else [])
            for combo in combos:
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
            result["systems"][system] = rows  # type: ignore[index]
    out.mkdir(parents=True, exist_ok=True)
    (out / "fusion_tuning.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
