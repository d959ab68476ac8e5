"""How often duplicate collapsing (on by default since issue 16) changes what
the benchmark sets return, and what it does to their scores.

Per set: the corpus indexed BM25-only (collapsing looks at texts, not at
models) into a temporary Milvus Lite file, every test query searched through
Engine.search at k=10, depth 100, with collapse on and off; nDCG@10 and
recall@10 with the benchmarks' ranx metrics, the queries whose top 10 folded
something and the copies folded, and the collapse stage's time.

    python benchmarks/results/hits/collapse_effect.py [SET ...]    # default: nvidia_sec_10k scifact cranfield

(datasets from $HYBRID_SEARCH_DATASETS, default ../shared/datasets) writes collapse_effect.json and collapse_effect.md beside this file.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETS = ("nvidia_sec_10k", "scifact", "cranfield")
K = 10


def measure(name: str) -> dict:
    from benchmarks.beir import load_beir
    from benchmarks.metrics import evaluate
    from benchmarks.presets import dataset_path
    from benchmarks.runs import doc_of
    from hybrid_search import CollectionConfig, Engine, SearchOptions, StoreConfig

    dataset = load_beir(dataset_path(name)[1])
    queries, qrels = dataset.split("test")
    result: dict = {"queries": len(queries)}
    with tempfile.TemporaryDirectory() as folder, Engine(StoreConfig(uri=str(Path(folder) / "kb.db"))) as engine:
        engine.create_collection(CollectionConfig(name="c", dense=None, sparse=None))
        report = engine.index("c", dataset.chunks(), batch_size=256)
        result["chunks"] = report.chunks_written
        for collapse in (False, True):
            options = SearchOptions(k=K, depth=100, collapse=collapse)
            ranking, folded_queries, folded_copies, collapse_ms, total_ms = {}, 0, 0, [], []
            for qid, text in queries.items():
                found = engine.search("c", text, options)
                ranking[qid] = [doc_of(hit.chunk_id) for hit in found.hits]
                copies = sum(len(hit.folded) for hit in found.hits)
                folded_queries += copies > 0
                folded_copies += copies
                if collapse:
                    collapse_ms.append(found.timings_ms["collapse"])
                    total_ms.append(found.timings_ms["total"])
            means, _ = evaluate(qrels, ranking, metrics=("ndcg@10", "recall@10"))
            row = {metric: round(value, 4) for metric, value in means.items()}
            if collapse:
                row |= {
                    "queries_with_folding": folded_queries,
                    "copies_folded": folded_copies,
                    "collapse_ms_median": round(statistics.median(collapse_ms), 3),
                    "collapse_ms_max": round(max(collapse_ms), 3),
                    # the whole Engine.search, collapse included: the machine's load shows in both
                    "search_ms_median": round(statistics.median(total_ms), 3),
                }
            result["collapse" if collapse else "no_collapse"] = row
    return result


def main(names: list[str]) -> None:
    import hybrid_search

    # Sets measured earlier stay in the file: a slow machine can run one set per call.
    stored = HERE / "collapse_effect.json"
    results = json.loads(stored.read_text())["sets"] if stored.is_file() else {}
    for name in names:
        print(f"[collapse] {name}", file=sys.stderr, flush=True)
        results[name] = measure(name)
    out = {
        "command": "python benchmarks/results/hits/collapse_effect.py " + " ".join(results),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "hybrid_search": hybrid_search.__version__},
        "k": K,
        "depth": 100,
        "paths": ["bm25"],
        "sets": results,
    }
    (HERE / "collapse_effect.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Duplicate collapsing on the benchmark sets (BM25, k=10, depth 100)",
        "",
        f"`{out['command']}`",
        "",
        "| set | chunks | queries | nDCG@10 off | nDCG@10 on | recall@10 off | recall@10 on | queries folding | copies folded | collapse ms (median / max) | search ms (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        off, on = r["no_collapse"], r["collapse"]
        lines.append(
            f"| {name} | {r['chunks']} | {r['queries']} | {off['ndcg@10']} | {on['ndcg@10']} | {off['recall@10']} | {on['recall@10']} "
            f"| {on['queries_with_folding']} | {on['copies_folded']} | {on['collapse_ms_median']} / {on['collapse_ms_max']} "
            f"| {on['search_ms_median']} |"
        )
    (HERE / "collapse_effect.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:] or list(SETS))
