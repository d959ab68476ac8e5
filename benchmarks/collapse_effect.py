"""``python -m benchmarks collapse-effect``: how often duplicate collapsing (on
by default) changes what the benchmark sets return, and what it costs.

Per set: the corpus indexed BM25-only (collapsing looks at texts, not at
models) into a temporary Milvus Lite file, every test query searched through
Engine.search at k=10, depth 100, with collapse on and off; nDCG@10 and
recall@10 with the benchmarks' metrics, the queries whose top 10 folded
something and the copies folded, and the collapse stage's time.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .report import environment, markdown_table, write_json, write_text

__all__ = ["SETS", "collapse_effect_markdown", "run_collapse_effect"]

SETS = ("nvidia_sec_10k", "scifact", "cranfield")
K = 10
DEPTH = 100


def _measure(name: str) -> dict[str, Any]:
    from hybrid_search import CollectionConfig, Engine, SearchOptions, StoreConfig

    from .beir import load_beir
    from .metrics import evaluate
    from .presets import dataset_path
    from .runs import doc_of

    dataset = load_beir(dataset_path(name)[1])
    queries, qrels = dataset.split("test")
    result: dict[str, Any] = {"queries": len(queries)}
    with tempfile.TemporaryDirectory() as folder, Engine(StoreConfig(uri=str(Path(folder) / "kb.db"))) as engine:
        engine.create_collection(CollectionConfig(name="c", dense=None, sparse=None))
        report = engine.index("c", dataset.chunks(), batch_size=256)
        result["chunks"] = report.chunks_written
        for collapse in (False, True):
            options = SearchOptions(k=K, depth=DEPTH, collapse=collapse)
            ranking: dict[str, list[str]] = {}
            folded_queries = folded_copies = 0
            collapse_ms: list[float] = []
            total_ms: list[float] = []
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
            row: dict[str, Any] = {metric: round(value, 4) for metric, value in means.items()}
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


def run_collapse_effect(names: Sequence[str], out_dir: Path, *, progress=print) -> dict[str, Any]:
    """Measure each set and write collapse_effect.{json,md} into ``out_dir``.
    Sets measured earlier stay in the file, so a slow machine can run one set per call."""
    import json

    stored = out_dir / "collapse_effect.json"
    sets = json.loads(stored.read_text())["sets"] if stored.is_file() else {}
    for name in names:
        progress(f"[collapse-effect] {name}")
        sets[name] = _measure(name)
    result = {"environment": environment(), "k": K, "depth": DEPTH, "paths": ["bm25"], "sets": sets}
    write_json(stored, result)
    write_text(out_dir / "collapse_effect.md", collapse_effect_markdown(result))
    return result


def collapse_effect_markdown(result: dict[str, Any]) -> str:
    rows = []
    for name, r in result["sets"].items():
        off, on = r["no_collapse"], r["collapse"]
        rows.append([
            name, r["chunks"], r["queries"], off["ndcg@10"], on["ndcg@10"], off["recall@10"], on["recall@10"],
            on["queries_with_folding"], on["copies_folded"], f"{on['collapse_ms_median']} / {on['collapse_ms_max']}",
            on["search_ms_median"],
        ])
    header = [
        "set", "chunks", "queries", "nDCG@10 off", "nDCG@10 on", "recall@10 off", "recall@10 on",
        "queries folding", "copies folded", "collapse ms (median / max)", "search ms (median)",
    ]
    return "\n".join([
        f"# Duplicate collapsing on the benchmark sets (BM25, k={result['k']}, depth {result['depth']})",
        "",
        f"`{result['environment']['command']}`",
        "",
        markdown_table(header, rows),
    ])
