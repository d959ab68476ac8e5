"""The `bm25` command: the engine's BM25 path (Milvus, over the engine's own
analyzer tokens) against rank-bm25 and bm25s on the same corpus, the same
queries and the same tokens, in one run.

Every implementation gets exactly the terms ``hybrid_search.analyzers.Analyzer``
produces (the engine tokenizes on the client and Milvus BM25 reads those
tokens), with the same k1 and b. Indexing docs/s counts tokenization plus index
building for all three (the engine's figure is ``Engine.index`` on a BM25-only
collection: analysis and the Milvus write). Queries/s is one query at a time,
top 100, as a search service answers them; bm25s is also timed on the whole
batch at once (its preferred mode). nDCG@10 and top-10 overlap with the engine
show whether they rank alike (rank-bm25's BM25Okapi uses a different IDF).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_search import Engine, SearchOptions
from hybrid_search.analyzers import Analyzer
from hybrid_search.config import CollectionConfig, StoreConfig, to_plain

from .beir import BeirDataset
from .metrics import evaluate
from .report import environment, machine_line, markdown_table, write_json, write_text
from .runs import doc_of

__all__ = ["run_bm25_compare", "bm25_markdown"]


def _overlap(a: Mapping[str, list[str]], b: Mapping[str, list[str]], k: int = 10) -> float:
    values = [len(set(a[q][:k]) & set(b[q][:k])) / max(1, min(k, len(a[q][:k]) or 1)) for q in a if q in b]
    return float(np.mean(values)) if values else 0.0


def run_bm25_compare(
    dataset: BeirDataset,
    *,
    language: str = "en",
    split: str = "test",
    k1: float = 1.2,
    b: float = 0.75,
    top_k: int = 100,
    max_queries: int | None = None,
    out_dir: Path,
    store_uri: str | None = None,
) -> dict[str, Any]:
    from hybrid_search.config import AnalyzerConfig

    analyzer_config = AnalyzerConfig(language=language)  # type: ignore[arg-type]
    chunks = list(dataset.chunks())
    doc_ids = [c.doc_id for c in chunks]
    queries, qrels = dataset.split(split)
    qids = sorted(queries)[:max_queries] if max_queries else sorted(queries)
    qrels = {q: qrels[q] for q in qids}
    k = min(top_k, len(chunks))
    results: dict[str, Any] = {}
    rankings: dict[str, dict[str, list[str]]] = {}

    # Shared tokenization (timed once; every implementation below includes it).
    analyzer = Analyzer(analyzer_config)
    t0 = time.perf_counter()
    doc_tokens = [analyzer.tokenize(c.text) for c in chunks]
    tokenize_s = time.perf_counter() - t0
    query_tokens = {q: analyzer.tokenize(queries[q]) for q in qids}

    # 1. The engine: Engine.index on a BM25-only collection, Engine.search on the bm25 path.
    with tempfile.TemporaryDirectory(prefix="bm25-bench-") as tmp:
        uri = store_uri or str(Path(tmp) / "bm25.db")
        engine = Engine(StoreConfig(uri=uri))
        name = "bm25_bench"
        if engine.store.has_collection(name):
            engine.drop_collection(name)
        engine.create_collection(
            CollectionConfig(name=name, dense=None, sparse=None, analyzer=analyzer_config, bm25_k1=k1, bm25_b=b)
        )
        t0 = time.perf_counter()
        engine.index(name, chunks, batch_size=256)
        index_s = time.perf_counter() - t0
        # The libraries compared return ids and scores only: no highlighting here
        # either, and every candidate, duplicates included, as they rank them.
        options = SearchOptions(k=k, paths=("bm25",), depth=k, highlight=False, collapse=False)
        for q in qids[:3]:
            engine.search(name, queries[q], options)
        ranking: dict[str, list[str]] = {}
        t0 = time.perf_counter()
        latencies, store_ms = [], []
        for q in qids:
            s = time.perf_counter()
            result = engine.search(name, queries[q], options)
            latencies.append(time.perf_counter() - s)
            store_ms.append(result.timings_ms.get("bm25", 0.0))
            ranking[q] = [doc_of(h.chunk_id) for h in result.hits]
        query_s = time.perf_counter() - t0
        engine.drop_collection(name)
        engine.close()
    rankings["hybrid-search (Milvus BM25)"] = ranking
    results["hybrid-search (Milvus BM25)"] = {
        "index_seconds": index_s,
        "index_docs_per_s": len(chunks) / index_s,
        "includes": "Engine.index: analyzer tokenization + Milvus upsert + BM25 function/index",
        "query_seconds": query_s,
        "queries_per_s": len(qids) / query_s,
        "latency_ms_p50": float(np.percentile(latencies, 50) * 1000),
        "latency_ms_p95": float(np.percentile(latencies, 95) * 1000),
        "store": "server" if store_uri else "milvus-lite (embedded)",
        "milvus_search_ms_p50": float(np.percentile(store_ms, 50)),
        "milvus_search_ms_p95": float(np.percentile(store_ms, 95)),
        "milvus_search_queries_per_s": 1000.0 / float(np.mean(store_ms)) if np.mean(store_ms) > 0 else None,
        "query_includes": "Engine.search: query analysis, the Milvus BM25 search, reading the hits' rows and matched-term highlighting",
    }

    # 2. rank-bm25 (BM25Okapi: its own IDF with an epsilon floor).
    from rank_bm25 import BM25Okapi

    t0 = time.perf_counter()
    okapi = BM25Okapi(doc_tokens, k1=k1, b=b)
    build_s = time.perf_counter() - t0
    ranking = {}
    latencies = []
    t0 = time.perf_counter()
    for q in qids:
        s = time.perf_counter()
        scores = okapi.get_scores(query_tokens[q])
        top = np.argsort(-scores, kind="stable")[:k]
        ranking[q] = [doc_ids[i] for i in top if scores[i] > 0]
        latencies.append(time.perf_counter() - s)
    query_s = time.perf_counter() - t0
    rankings["rank-bm25 (BM25Okapi)"] = ranking
    results["rank-bm25 (BM25Okapi)"] = {
        "index_seconds": tokenize_s + build_s,
        "index_docs_per_s": len(chunks) / (tokenize_s + build_s),
        "includes": "same analyzer tokenization + BM25Okapi build",
        "query_seconds": query_s,
        "queries_per_s": len(qids) / query_s,
        "latency_ms_p50": float(np.percentile(latencies, 50) * 1000),
        "latency_ms_p95": float(np.percentile(latencies, 95) * 1000),
    }

    # 3. bm25s (method "lucene": the same IDF as Milvus).
    import bm25s

    t0 = time.perf_counter()
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index(doc_tokens, show_progress=False)
    build_s = time.perf_counter() - t0
    vocab = retriever.vocab_dict

    def _known(tokens: list[str]) -> list[str]:
        kept = [t for t in tokens if t in vocab]
        return kept or [""]  # bm25s's empty token: scores every document 0

    ranking = {}
    latencies = []
    t0 = time.perf_counter()
    for q in qids:
        s = time.perf_counter()
        docs, scores = retriever.retrieve([_known(query_tokens[q])], k=k, show_progress=False, n_threads=1)
        ranking[q] = [doc_ids[int(i)] for i, sc in zip(docs[0], scores[0]) if sc > 0]
        latencies.append(time.perf_counter() - s)
    query_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    retriever.retrieve([_known(query_tokens[q]) for q in qids], k=k, show_progress=False, n_threads=1)
    batch_s = time.perf_counter() - t0
    rankings["bm25s (lucene)"] = ranking
    results["bm25s (lucene)"] = {
        "index_seconds": tokenize_s + build_s,
        "index_docs_per_s": len(chunks) / (tokenize_s + build_s),
        "includes": "same analyzer tokenization + bm25s index",
        "query_seconds": query_s,
        "queries_per_s": len(qids) / query_s,
        "batch_queries_per_s": len(qids) / batch_s,
        "latency_ms_p50": float(np.percentile(latencies, 50) * 1000),
        "latency_ms_p95": float(np.percentile(latencies, 95) * 1000),
    }

    engine_name = "hybrid-search (Milvus BM25)"
    for impl, ranking in rankings.items():
        means, _ = evaluate(qrels, ranking, ["ndcg@10", "recall@100"])
        results[impl]["ndcg@10"] = means["ndcg@10"]
        results[impl]["recall@100"] = means["recall@100"]
        results[impl]["top10_overlap_with_engine"] = _overlap(rankings[engine_name], ranking)
    base = results[engine_name]
    ratios = {
        impl: {
            "engine_index_docs_per_s_ratio": base["index_docs_per_s"] / r["index_docs_per_s"],
            "engine_queries_per_s_ratio": base["queries_per_s"] / r["queries_per_s"],
        }
        for impl, r in results.items()
        if impl != engine_name
    }
    data = {
        "benchmark": "bm25",
        "dataset": {
            "name": dataset.name,
            "path": str(dataset.root),
            "split": split,
            "documents": len(chunks),
            "queries": len(qids),
            "max_queries": max_queries,
        },
        "analyzer": to_plain(analyzer_config),
        "bm25": {"k1": k1, "b": b, "top_k": k},
        "tokenize_seconds": tokenize_s,
        "mean_doc_tokens": float(np.mean([len(t) for t in doc_tokens])),
        "results": results,
        "ratios": ratios,
        "environment": environment(),
    }
    stem = f"bm25-{dataset.name}"
    write_json(Path(out_dir) / f"{stem}.json", data)
    write_text(Path(out_dir) / f"{stem}.md", bm25_markdown(data))
    return data


def bm25_markdown(data: Mapping[str, Any]) -> str:
    d = data["dataset"]
    rows = [
        [
            impl,
            r["index_docs_per_s"],
            r["queries_per_s"],
            r.get("batch_queries_per_s"),
            r["latency_ms_p50"],
            r["latency_ms_p95"],
            r["ndcg@10"],
            r["recall@100"],
            r["top10_overlap_with_engine"],
        ]
        for impl, r in data["results"].items()
    ]
    ratio_rows = [
        [impl, r["engine_index_docs_per_s_ratio"], r["engine_queries_per_s_ratio"]] for impl, r in data["ratios"].items()
    ]
    engine = data["results"].get("hybrid-search (Milvus BM25)", {})
    milvus_line = (
        f"Of the engine's query time, the Milvus BM25 search itself took p50 {engine['milvus_search_ms_p50']:.1f} ms / "
        f"p95 {engine['milvus_search_ms_p95']:.1f} ms ({engine['milvus_search_queries_per_s']:.0f} queries/s if that were all); "
        "the rest is query analysis and turning the top-k rows into hits (matched-term highlighting off, as the libraries have none)."
        if engine.get("milvus_search_ms_p50") is not None
        else ""
    )
    env = data["environment"]
    return "\n".join(
        [
            f"# BM25: the engine's Milvus path vs rank-bm25 vs bm25s ({d['name']}, {d['documents']} documents, {d['queries']} {d['split']} queries)",
            "",
            (f"The first {d['queries']} {d['split']} queries by id (--max-queries). " if d.get("max_queries") else "")
            + f"Same analyzer tokens for all three (mean {data['mean_doc_tokens']:.0f} terms per document), k1={data['bm25']['k1']}, b={data['bm25']['b']}, top {data['bm25']['top_k']}. "
            "Indexing includes tokenization for all; queries one at a time (bm25s also as one batch).",
            "",
            markdown_table(
                [
                    "implementation",
                    "index docs/s",
                    "queries/s",
                    "batch queries/s",
                    "p50 ms",
                    "p95 ms",
                    "nDCG@10",
                    "R@100",
                    "top-10 overlap with engine",
                ],
                rows,
            ),
            "",
            "Ratios (engine / other; above 1 means the engine is faster):",
            "",
            markdown_table(["vs", "indexing docs/s ratio", "queries/s ratio"], ratio_rows),
            "",
            milvus_line,
            "",
            f"Machine: {machine_line(env)}. Git: {env['git_revision']}.",
            "",
            f"Command: `{env['command']}`",
        ]
    )
