"""Score the reranked rows of an evaluation on a GPU that has no Milvus.

The CPU here scores a windowed MiniLM reranker at ~20 s per query (20
candidates x ~3.5 windows), and the lent GPU machine could not carry Milvus
Lite and the two models in one transfer. So the evaluation is split where
no result can change:

  candidates (CPU, here): the engine's own ranked lists for every test query,
      from the evaluation collection (bm25, and hybrid with the served
      fusion), with their texts; metrics of these unreranked rows.
  score (GPU): hybrid_search.rerank.load_reranker scores every list, exactly
      the call Engine.search makes (max-window, same max_length).
  report (CPU, here): each list reordered as Engine.search orders it (rerank
      score descending, fused position breaking ties) and scored with the same
      ranx metrics as `train evaluate`.

    python benchmarks/results/training/rerank_offload.py candidates OUT_DIR
    python benchmarks/results/training/rerank_offload.py score OUT_DIR RERANKER_DIR
    python benchmarks/results/training/rerank_offload.py report OUT_DIR
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

RUN = Path("runs/training/nvidia_sec_10k_reranker")
BASE_DENSE = "~/.cache/hybrid-search-models/all-MiniLM-L6-v2"
FUSION = {"method": "weighted", "normalization": "min-max", "weights": {"bm25": 0.8, "dense": 0.2}}
K = 20
METRICS = ("ndcg@10", "recall@10", "recall@20", "mrr@10")
RERANK = {"max_length": 256, "long_passages": "max-window", "window_overlap": 64, "top_n": K}


def candidates(out: Path) -> None:
    from hybrid_search.config import DenseEncoderConfig, FusionConfig, RuntimeConfig, StoreConfig
    from hybrid_search.engine import Engine, SearchOptions
    from training.data import load_training_data
    from training.evaluate import System, eval_collection_name, rank_metrics

    data = load_training_data(RUN / "data")
    system = System("base", dense=DenseEncoderConfig(model=BASE_DENSE, kind="sentence-transformers"), sparse=None)
    name = eval_collection_name(system, "all", "en", [c.id for c in data.corpus])
    lists: dict[str, dict[str, list[list[str]]]] = {"bm25": {}, "hybrid": {}}
    with Engine(StoreConfig(uri=str(RUN / "evaluation" / "eval.db")), runtime=RuntimeConfig(device="cpu")) as engine:
        assert engine.store.count(name) == len(data.corpus), "the evaluation collection is incomplete: run `train evaluate` first"
        for row, options in (
            ("bm25", SearchOptions(k=K, paths=("bm25",), depth=100, rerank=False, highlight=False)),
            ("hybrid", SearchOptions(k=K, depth=100, rerank=False, highlight=False, fusion=FusionConfig(**FUSION))),
        ):
            for query in data.test:
                hits = engine.search(name, query.query, options).hits
                lists[row][query.query_id] = [[hit.chunk_id, hit.text] for hit in hits]
    queries = [{"id": q.query_id, "query": q.query} for q in data.test]
    metrics = {row: rank_metrics(data.test, {qid: [cid for cid, _ in hits] for qid, hits in by_query.items()}, METRICS) for row, by_query in lists.items()}
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "candidates.json.gz", "wt", encoding="utf-8") as handle:
        json.dump({"collection": name, "fusion": FUSION, "k": K, "queries": queries, "lists": lists}, handle)
    (out / "unreranked.json").write_text(json.dumps(metrics, indent=1))
    print(json.dumps(metrics, indent=1))


def score(out: Path, model: str) -> None:
    import time

    from hybrid_search.config import RerankConfig, RuntimeConfig
    from hybrid_search.rerank import load_reranker

    with gzip.open(out / "candidates.json.gz", "rt", encoding="utf-8") as handle:
        material = json.load(handle)
    if os.environ.get("LIMIT"):  # a smoke run of the plumbing
        material["queries"] = material["queries"][: int(os.environ["LIMIT"])]
    # fp32 on any device, as a CPU deployment scores it.
    reranker = load_reranker(RerankConfig(model=model, kind="cross-encoder", batch_size=64, **RERANK), RuntimeConfig(device="auto", fp16=False))
    started = time.perf_counter()
    scores = {
        row: {q["id"]: reranker.score(q["query"], [text for _, text in by_query[q["id"]]]) for q in material["queries"]}
        for row, by_query in material["lists"].items()
    }
    seconds = time.perf_counter() - started
    (out / "scores.json").write_text(json.dumps({"rerank": RERANK, "model": model, "seconds": seconds, "scores": scores}))
    print(f"scored {sum(len(v) for v in scores.values())} lists in {seconds:.1f} s")


def report(out: Path) -> None:
    from training.data import load_training_data
    from training.evaluate import rank_metrics

    data = load_training_data(RUN / "data")
    with gzip.open(out / "candidates.json.gz", "rt", encoding="utf-8") as handle:
        material = json.load(handle)
    scored = json.loads((out / "scores.json").read_text())
    metrics = json.loads((out / "unreranked.json").read_text())
    for row, by_query in material["lists"].items():
        rankings = {}
        for qid, hits in by_query.items():
            values = scored["scores"][row][qid]
            # Engine.search: the head sorted by rerank score, fused position breaking ties.
            order = sorted(range(len(hits)), key=lambda i: (-values[i], i))
            rankings[qid] = [hits[i][0] for i in order]
        metrics[f"{row}+rerank"] = rank_metrics(data.test, rankings, METRICS)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    lines = ["| row | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for row in ("bm25", "hybrid", "bm25+rerank", "hybrid+rerank"):
        lines.append(f"| {row} | " + " | ".join(f"{metrics[row][m]:.4f}" for m in METRICS) + " |")
    (out / "metrics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    command, folder = sys.argv[1], Path(sys.argv[2])
    if command == "candidates":
        candidates(folder)
    elif command == "score":
        score(folder, os.path.expanduser(sys.argv[3]))
    else:
        report(folder)
