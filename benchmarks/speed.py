"""The `speed` command: where the time goes.

1. Per model and device: query-encoding latency (one query at a time, p50/p95)
   and bare document-encoding throughput (the encoder alone, batched).
2. Indexing throughput of the whole pipeline (``Engine.index``: encode, analyse,
   write to Milvus) against the bare encoders on the same chunks, with the same
   encoder objects and batch size, in one run: the ratio says what the engine
   adds on top of encoding.
3. Query latency per stage (query encoding, each path's Milvus search, fusion,
   rerank, total) at p50 and p95 through ``Engine.search``, on the set's cached
   full index (built by ``index``/``quality``) when there is one.

``--encoders-only`` runs part 1 alone (no Milvus needed: for a GPU machine).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_search import Engine, SearchOptions
from hybrid_search.config import CollectionConfig, FusionConfig, RerankConfig, RuntimeConfig, StoreConfig, to_plain
from hybrid_search.encoders import load_encoders

from .beir import BeirDataset
from .indexes import IndexSpec, open_index
from .metrics import latency_summary
from .presets import MODEL_ALIASES, dense_config, sparse_config
from .report import environment, fmt, machine_line, markdown_table, write_json, write_text
from .runs import search_all

__all__ = ["run_speed", "speed_markdown"]


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _log_default(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def encoder_speed(
    model: str, runtime: RuntimeConfig, queries: Sequence[str], docs: Sequence[str], *, batch_size: int
) -> dict[str, Any]:
    alias = MODEL_ALIASES.get(model)
    is_sparse = (alias.kind if alias else "") == "splade"
    dense = None if is_sparse else dense_config(model)
    sparse = sparse_config(model) if is_sparse else None
    device = runtime.resolved_device()
    t0 = time.perf_counter()
    encoders = load_encoders(dense, sparse, runtime)
    load_s = time.perf_counter() - t0
    for q in queries[:5]:
        encoders.encode_queries([q])
    _sync(device)
    latencies = []
    for q in queries:
        t0 = time.perf_counter()
        encoders.encode_queries([q])
        _sync(device)
        latencies.append((time.perf_counter() - t0) * 1000)
    encoders.encode_documents(list(docs[:batch_size]))
    _sync(device)
    t0 = time.perf_counter()
    for start in range(0, len(docs), batch_size):
        encoders.encode_documents(list(docs[start : start + batch_size]))
    _sync(device)
    doc_s = time.perf_counter() - t0
    return {
        "model": (dense or sparse).model,  # type: ignore[union-attr]
        "kind": "sparse" if is_sparse else "dense",
        "device": device,
        "fp16": runtime.use_fp16(),
        "load_seconds": load_s,
        "query_encode_ms": latency_summary({"q": latencies})["q"],
        "doc_encode_docs_per_s": len(docs) / doc_s,
        "docs": len(docs),
        "batch_size": batch_size,
    }


def single_path_encode(engine: Engine, collection: str, queries: Sequence[str], device: str) -> dict[str, Any]:
    """Per encoded path: query encoding inside ``Engine.search`` with that path
    alone (its ``encode`` stage) against the path's encoder called directly on
    the same query, alternating query by query, same encoder objects. A ratio
    near 1 says a single-path query runs only its own encoder."""
    encoders = engine.encoders(collection)
    out: dict[str, Any] = {}
    for path, encoder in (("dense", encoders.dense), ("sparse", encoders.sparse)):
        if encoder is None:
            continue
        options = SearchOptions(k=10, paths=(path,), rerank=False, highlight=False, collapse=False)
        for q in queries[:5]:  # warm-up
            engine.search(collection, q, options)
            encoder.encode_queries([q])
        in_engine, alone = [], []
        for q in queries:
            in_engine.append(engine.search(collection, q, options).timings_ms["encode"])
            _sync(device)
            t0 = time.perf_counter()
            encoder.encode_queries([q])
            _sync(device)
            alone.append((time.perf_counter() - t0) * 1000)
        summary = latency_summary({"engine": in_engine, "encoder": alone})
        out[path] = {
            "engine_encode_ms": summary["engine"],
            "encoder_alone_ms": summary["encoder"],
            "ratio_p50": summary["engine"]["p50"] / summary["encoder"]["p50"],
        }
    return out


def pipeline_vs_bare(
    spec: IndexSpec, runtime: RuntimeConfig, chunks: Sequence[Any], *, batch_size: int, queries: Sequence[str] = ()
) -> dict[str, Any]:
    """Engine.index against the bare encoders on the same chunks, same encoder
    objects; with ``queries``, single-path query encoding on the same index."""
    with tempfile.TemporaryDirectory(prefix="speed-") as tmp:
        engine = Engine(StoreConfig(uri=str(Path(tmp) / "speed.db")), runtime=runtime)
        config: CollectionConfig = spec.collection_config("speed")
        engine.create_collection(config)
        encoders = engine.encoders("speed")
        texts = [c.text_for_encoding for c in chunks]
        encoders.encode_documents(texts[: min(8, len(texts))])  # warm-up
        _sync(runtime.resolved_device())
        t0 = time.perf_counter()
        for start in range(0, len(texts), batch_size):
            encoders.encode_documents(texts[start : start + batch_size])
        _sync(runtime.resolved_device())
        bare_s = time.perf_counter() - t0
        report = engine.index("speed", chunks, batch_size=batch_size)
        encode = single_path_encode(engine, "speed", queries, runtime.resolved_device()) if queries else {}
        engine.close()
    return {
        "single_path_encode": encode,
        "chunks": len(chunks),
        "batch_size": batch_size,
        "paths": list(config.paths),
        "bare_encoder_docs_per_s": len(chunks) / bare_s,
        "pipeline_docs_per_s": report.chunks_per_second,
        "pipeline_seconds": report.seconds,
        "pipeline_encode_seconds": report.encode_seconds,
        "pipeline_write_seconds": report.write_seconds,
        "ratio_pipeline_to_bare": report.chunks_per_second / (len(chunks) / bare_s),
        "note": "pipeline = Engine.index (encode + analyse + Milvus Lite upsert); bare = EncoderSet.encode_documents on the same texts",
    }


def stage_latency(
    spec: IndexSpec,
    runtime: RuntimeConfig,
    queries: Mapping[str, str],
    *,
    cache: Path,
    reranker: RerankConfig | None,
    rerank_top_n: int,
    store_uri: str | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    opened = open_index(spec, cache=cache, runtime=runtime, reranker=reranker, store_uri=store_uri, log=log)
    available = list(opened.engine.open_collection(opened.collection).paths)
    conditions: list[tuple[str, SearchOptions]] = [(p, SearchOptions(k=10, paths=(p,), depth=100)) for p in available]
    if len(available) > 1:
        conditions.append(("+".join(available), SearchOptions(k=10, paths=tuple(available), depth=100, fusion=FusionConfig())))
    if reranker is not None:
        conditions.append(
            (
                "+".join(available) + ">rerank",
                SearchOptions(
                    k=10, paths=tuple(available), depth=100, fusion=FusionConfig(), rerank=True, rerank_top_n=rerank_top_n
                ),
            )
        )
    out = {}
    for name, options in conditions:
        run = search_all(opened, queries, lambda _q, o=options: o, label=f"speed/{name}", log=log)
        out[name] = latency_summary(run.timings)
    return {"index": opened.uri, "index_chunks": opened.meta.get("chunks"), "k": 10, "depth": 100, "conditions": out}


def run_speed(
    dataset: BeirDataset,
    spec: IndexSpec | None,
    *,
    models: Sequence[str],
    devices: Sequence[str],
    queries: int = 200,
    docs: int = 256,
    batch_size: int = 32,
    fp16: bool | None = None,
    encoders_only: bool = False,
    reranker: RerankConfig | None = None,
    rerank_top_n: int = 50,
    cache: Path = Path("runs"),
    store_uri: str | None = None,
    out_dir: Path,
    stem: str = "speed",
    log: Callable[[str], None] = _log_default,
) -> dict[str, Any]:
    test_queries, _ = dataset.split("test") if "test" in dataset.splits else dataset.split(dataset.splits[0])
    qids = sorted(test_queries)[:queries]
    query_texts = [test_queries[q] for q in qids]
    chunks = list(dataset.chunks())[:docs]
    doc_texts = [c.text_for_encoding for c in chunks]
    data: dict[str, Any] = {
        "benchmark": "speed",
        "dataset": {
            "name": dataset.name,
            "queries": len(qids),
            "docs": len(chunks),
            "mean_doc_chars": float(np.mean([len(t) for t in doc_texts])),
        },
        "encoders": [],
        "pipeline_vs_bare": {},
        "stage_latency": {},
    }
    for device in devices:
        runtime = RuntimeConfig(device=device, batch_size=batch_size, fp16=fp16)  # type: ignore[arg-type]
        for model in models:
            log(f"[speed] encoder {model} on {device}")
            data["encoders"].append(encoder_speed(model, runtime, query_texts, doc_texts, batch_size=batch_size))
        if encoders_only or spec is None:
            continue
        log(f"[speed] pipeline vs bare encoders on {device}")
        data["pipeline_vs_bare"][device] = pipeline_vs_bare(spec, runtime, chunks, batch_size=batch_size, queries=query_texts)
        log(f"[speed] per-stage latency on {device}")
        data["stage_latency"][device] = stage_latency(
            spec,
            runtime,
            {q: test_queries[q] for q in qids},
            cache=cache,
            reranker=reranker,
            rerank_top_n=rerank_top_n,
            store_uri=store_uri,
            log=log,
        )
    if spec is not None:
        data["models"] = {
            "dense": to_plain(spec.dense),
            "sparse": to_plain(spec.sparse),
            "analyzer": to_plain(spec.analyzer),
            "reranker": to_plain(reranker),
        }
    data["environment"] = environment()
    write_json(Path(out_dir) / f"{stem}.json", data)
    write_text(Path(out_dir) / f"{stem}.md", speed_markdown(data))
    return data


def speed_markdown(data: Mapping[str, Any]) -> str:
    d = data["dataset"]
    env = data["environment"]
    lines = [
        f"# Speed ({d['name']}: {d['queries']} queries, {d['docs']} documents of {d['mean_doc_chars']:.0f} characters on average)",
        "",
        "## Encoders (query encoding one at a time; documents batched)",
        "",
        markdown_table(
            ["model", "kind", "device", "fp16", "query encode p50 ms", "p95 ms", "docs/s (bare encoder)"],
            [
                [
                    e["model"],
                    e["kind"],
                    e["device"],
                    e["fp16"],
                    e["query_encode_ms"]["p50"],
                    e["query_encode_ms"]["p95"],
                    e["doc_encode_docs_per_s"],
                ]
                for e in data["encoders"]
            ],
        ),
    ]
    if data["pipeline_vs_bare"]:
        lines += [
            "",
            "## Indexing: whole pipeline vs bare encoders (same chunks, same encoder objects, one run)",
            "",
            markdown_table(
                ["device", "chunks", "paths", "bare encoders docs/s", "Engine.index docs/s", "pipeline / bare"],
                [
                    [
                        dev,
                        p["chunks"],
                        "+".join(p["paths"]),
                        p["bare_encoder_docs_per_s"],
                        p["pipeline_docs_per_s"],
                        p["ratio_pipeline_to_bare"],
                    ]
                    for dev, p in data["pipeline_vs_bare"].items()
                ],
            ),
        ]
    encode_rows = [
        [dev, path, e["engine_encode_ms"]["p50"], e["encoder_alone_ms"]["p50"], e["ratio_p50"], e["engine_encode_ms"]["n"]]
        for dev, p in data["pipeline_vs_bare"].items()
        for path, e in p.get("single_path_encode", {}).items()
    ]
    if encode_rows:
        lines += [
            "",
            "## Single-path query encoding: Engine.search with one path vs that encoder alone (same queries, alternating, one run)",
            "",
            markdown_table(["device", "path", "Engine.search encode p50 ms", "encoder alone p50 ms", "engine / alone", "queries"], encode_rows),
        ]
    for device, s in data["stage_latency"].items():
        rows = []
        for name, lat in s["conditions"].items():
            rows.append(
                [name]
                + [
                    f"{fmt(lat[st]['p50'], 1)} / {fmt(lat[st]['p95'], 1)}" if st in lat else ""
                    for st in ("encode", "bm25", "sparse", "dense", "fusion", "rerank", "assemble", "total")
                ]
            )
        lines += [
            "",
            f"## Query latency per stage on {device} (p50 / p95 ms; index of {s['index_chunks']} chunks, top {s['k']}, depth {s['depth']} per path)",
            "",
            markdown_table(
                ["condition", "encode", "bm25", "sparse", "dense", "fusion", "rerank", "assemble hits", "total"], rows
            ),
        ]
    lines += ["", f"Machine: {machine_line(env)}. Git: {env['git_revision']}.", "", f"Command: `{env['command']}`"]
    return "\n".join(lines)
