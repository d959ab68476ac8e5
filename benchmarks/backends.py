"""``python -m benchmarks backends``: inference backends (torch fp32, ONNX
Runtime, OpenVINO, int8) for the query encoders and the cross-encoder.

Every variant is measured in the same run, interleaved query by query, so the
ratios to torch fp32 share the machine's load:

- query encoding: one query per call (what a search does), dense alone and
  sparse alone, through each variant's loaded encoders (no micro-batching),
  in a seeded shuffled order per query;
- quality: each variant indexes the corpus with its own encoders (a collection
  built by that backend, as a user would serve it) and the test queries are
  searched on the dense path alone and the sparse path alone: nDCG@10;
- cross-encoder: the top 100 hybrid candidates of the first test queries
  scored by each variant (``max_length`` 256 tokens): latency per query, and
  the scores' agreement with torch fp32. nDCG@10 of the reranked top 100 only
  with a trained reranker (``--reranker``); without one, a stand-in with the
  same architecture (all-MiniLM-L6-v2 with a seeded, untrained head) gives the
  latency and agreement, and no quality figure is made up.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hybrid_search.config import RerankConfig, RuntimeConfig
from hybrid_search.plan import SearchOptions

from .beir import load_beir
from .indexes import IndexSpec, open_index
from .presets import (
    analyzer_config,
    dataset_path,
    dense_config,
    models_dir,
    sparse_config,
)
from .report import (
    environment,
    package_version,
    fmt,
    machine_line,
    markdown_table,
    write_json,
    write_text,
)
from .runs import search_all

__all__ = ["Variant", "parse_variants", "run_backends"]


@dataclass(frozen=True)
class Variant:
    backend: str
    quantize: str = "none"

    @property
    def label(self) -> str:
        return self.backend if self.quantize == "none" else f"{self.backend}-{self.quantize}"


def parse_variants(text: str) -> list[Variant]:
    """'torch,onnx,onnx-int8' -> variants; torch fp32 always first (the reference)."""
    found = [Variant("torch")]
    for item in (part.strip() for part in text.split(",")):
        if not item or item == "torch":
            continue
        backend, _, quantize = item.partition("-")
        variant = Variant(backend, quantize or "none")
        if variant not in found:
            found.append(variant)
    return found


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "mean": statistics.fmean(ordered),
        "n": len(ordered),
    }


def _stand_in_reranker(cache: Path) -> Path:
    """all-MiniLM-L6-v2 as a cross-encoder with a seeded new head, saved once
    (every variant must load the same head)."""
    folder = cache / "backends" / "stand-in-cross-encoder"
    if (folder / "config.json").is_file():
        return folder
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    CrossEncoder(os.path.expanduser(f"{models_dir().rstrip('/')}/all-MiniLM-L6-v2"), num_labels=1).save(str(folder))
    return folder


def run_backends(
    dataset: str,
    *,
    variants: list[Variant],
    reranker: str | None,
    rerank_queries: int,
    rerank_max_length: int,
    cache: Path,
    out: Path,
) -> dict[str, Any]:
    import numpy as np

    name, folder = dataset_path(dataset)
    data = load_beir(folder, name)
    queries, qrels = data.split("test")
    started_load = _load_average()
    runtime = RuntimeConfig(device="cpu", query_batch_size=1)
    dense0, sparse0 = dense_config("minilm"), sparse_config("splade-tiny")
    assert dense0 is not None and sparse0 is not None
    opened = {}
    quality: dict[str, dict[str, float]] = {}
    from hybrid_search.evaluation import evaluate

    for variant in variants:
        spec = IndexSpec(
            dataset=data,
            dense=replace(dense0, backend=variant.backend, quantize=variant.quantize),  # type: ignore[arg-type]
            sparse=replace(sparse0, backend=variant.backend, quantize=variant.quantize),  # type: ignore[arg-type]
            analyzer=analyzer_config("en"),
        )
        index = opened[variant.label] = open_index(spec, cache=cache, runtime=runtime)
        quality[variant.label] = {}
        for path in ("dense", "sparse"):
            run = search_all(index, queries, lambda _qid, p=path: SearchOptions(k=10, paths=(p,)), label=f"{variant.label} {path}")
            means, _ = evaluate(qrels, run.ranking(), ["ndcg@10"])
            quality[variant.label][path] = means["ndcg@10"]

    # Query encoding, interleaved: every query through every variant in turn.
    encoders = {label: index.engine.encoders(index.collection) for label, index in opened.items()}
    encode_ms: dict[str, dict[str, list[float]]] = {label: {"dense": [], "sparse": []} for label in encoders}
    texts = list(queries.values())
    for text in texts[:5]:  # warm-up
        for enc in encoders.values():
            enc.encode_queries([text], dense=True, sparse=False)
            enc.encode_queries([text], dense=False, sparse=True)
    # A fixed order favours some variants: on 2 shared cores a call placed right
    # after another runtime's (torch's idle OpenMP threads spin) ran up to twice
    # as slow as the same call placed later. A seeded shuffle per query spreads
    # that over all variants.
    order = random.Random(0)
    calls = [(label, path) for label in encoders for path in ("dense", "sparse")]
    for text in texts:
        order.shuffle(calls)
        for label, path in calls:
            begin = time.perf_counter()
            encoders[label].encode_queries([text], dense=path == "dense", sparse=path == "sparse")
            encode_ms[label][path].append((time.perf_counter() - begin) * 1000)
    encoding = {label: {path: _ms(values) for path, values in paths.items()} for label, paths in encode_ms.items()}
    reference = variants[0].label
    for label in encoding:
        for path in ("dense", "sparse"):
            encoding[label][path]["speedup_vs_torch"] = encoding[reference][path]["mean"] / encoding[label][path]["mean"]

    # Cross-encoder over the top 100 hybrid candidates.
    trained = reranker is not None
    model = reranker or str(_stand_in_reranker(cache))
    from hybrid_search.rerank import load_reranker

    torch_index = opened[reference]
    rerank_qids = list(queries)[: len(queries) if trained else rerank_queries]
    candidates = {}
    for qid in rerank_qids:
        result = torch_index.engine.search(torch_index.collection, queries[qid], SearchOptions(k=100, depth=100))
        candidates[qid] = [(hit.chunk_id, hit.text) for hit in result.hits]
    rerankers = {
        v.label: load_reranker(
            RerankConfig(model=model, kind="cross-encoder", top_n=100, max_length=rerank_max_length, backend=v.backend, quantize=v.quantize),  # type: ignore[arg-type]
            runtime,
        )
        for v in variants
    }
    first = rerank_qids[0]
    for scorer in rerankers.values():  # warm-up
        scorer.score(queries[first], [text for _, text in candidates[first]][:8])
    rerank_ms: dict[str, list[float]] = {label: [] for label in rerankers}
    scores: dict[str, dict[str, list[float]]] = {label: {} for label in rerankers}
    for qid in rerank_qids:
        passages = [text for _, text in candidates[qid]]
        for label, scorer in rerankers.items():
            begin = time.perf_counter()
            scores[label][qid] = scorer.score(queries[qid], passages)
            rerank_ms[label].append((time.perf_counter() - begin) * 1000)
    rerank: dict[str, dict[str, Any]] = {}
    for label in rerankers:
        diffs = [abs(a - b) for qid in rerank_qids for a, b in zip(scores[label][qid], scores[reference][qid], strict=True)]
        top10 = [
            len(set(np.argsort(scores[label][qid])[::-1][:10]) & set(np.argsort(scores[reference][qid])[::-1][:10])) / 10
            for qid in rerank_qids
        ]
        entry: dict[str, Any] = {
            "latency_ms": _ms(rerank_ms[label]),
            "max_abs_score_diff_vs_torch": max(diffs),
            "top10_overlap_vs_torch": statistics.fmean(top10),
        }
        entry["speedup_vs_torch"] = statistics.fmean(rerank_ms[reference]) / entry["latency_ms"]["mean"]
        if trained:
            run = {
                qid: [cid.rsplit("#", 1)[0] for (cid, _), _s in sorted(zip(candidates[qid], scores[label][qid]), key=lambda p: -p[1])]
                for qid in rerank_qids
            }
            entry["ndcg@10"] = evaluate(qrels, run, ["ndcg@10"])[0]["ndcg@10"]
        rerank[label] = entry

    result = {
        "environment": environment(),
        # The runtimes' versions, and how idle OpenMP threads wait (the server
        # sets PASSIVE; torch's spinning default is far slower on a shared machine).
        "runtimes": {name: package_version(name) for name in ("onnxruntime", "openvino")},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_1_5_15": {"start": started_load, "end": _load_average()},
        "dataset": name,
        "split": "test",
        "queries": len(queries),
        "models": {"dense": dense0.model, "sparse": sparse0.model, "reranker": model, "reranker_trained": trained},
        "variants": [v.label for v in variants],
        "quality_ndcg@10": quality,
        "query_encoding_ms": encoding,
        "rerank": {"queries": len(rerank_qids), "candidates": 100, "max_length": rerank_max_length, "by_variant": rerank},
    }
    write_json(out / f"{name}.json", result)
    write_text(out / f"{name}.md", _markdown(result))
    return result


def _markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    variants = result["variants"]
    quality, encoding, rerank = result["quality_ndcg@10"], result["query_encoding_ms"], result["rerank"]
    lines = [
        f"# Inference backends on {result['dataset']} ({result['split']}, {result['queries']} queries)",
        "",
        f"Command: `{env['command']}`  ",
        f"Machine: {machine_line(env)}; torch threads {env['machine'].get('torch_threads')}; "
        f"load average {result['load_average_1_5_15']['start']} at start, {result['load_average_1_5_15']['end']} at end.  ",
        f"Packages: {', '.join(f'{k} {v}' for k, v in {**env['packages'], **result.get('runtimes', {})}.items() if v)}; "
        f"OMP_WAIT_POLICY {result.get('omp_wait_policy') or 'unset'}",
        "",
        "## Query encoding (one query per call) and nDCG@10 of the single path",
        "",
        (
            "Each variant indexed the corpus with its own encoders; ratios are torch fp32's mean time over the variant's, measured interleaved in this run "
            "(every query through every variant and path, in a seeded shuffled order per query)."
        ),
        "",
    ]
    rows = []
    for label in variants:
        for path in ("dense", "sparse"):
            cell = encoding[label][path]
            rows.append(
                [
                    label,
                    path,
                    cell["p50"],
                    cell["mean"],
                    f"{cell['speedup_vs_torch']:.2f}x",
                    f"{quality[label][path]:.4f}",
                    f"{quality[label][path] - quality[variants[0]][path]:+.4f}",
                ]
            )
    lines.append(markdown_table(["variant", "path", "p50 ms", "mean ms", "speed-up", "nDCG@10", "vs torch"], rows))
    trained = result["models"]["reranker_trained"]
    lines += [
        "",
        f"## Cross-encoder, top {rerank['candidates']} candidates of {rerank['queries']} queries ({rerank['max_length']} tokens)",
        "",
        (
            f"Reranker: `{result['models']['reranker']}` (trained)."
            if trained
            else "No trained reranker was available on this machine: the model is a stand-in with the same architecture "
            "(all-MiniLM-L6-v2 with a seeded, untrained classification head). Its latency is the real cost of a "
            "MiniLM-L6 cross-encoder; it has no meaningful nDCG, so none is reported: agreement with torch fp32 is."
        ),
        "",
    ]
    rows = []
    for label in variants:
        cell = rerank["by_variant"][label]
        row = [
            label,
            cell["latency_ms"]["p50"],
            cell["latency_ms"]["mean"],
            f"{cell['speedup_vs_torch']:.2f}x",
            f"{cell['max_abs_score_diff_vs_torch']:.4f}",
            fmt(cell["top10_overlap_vs_torch"]),
        ]
        if trained:
            row.append(f"{cell['ndcg@10']:.4f}")
        rows.append(row)
    header = ["variant", "p50 ms", "mean ms", "speed-up", "max abs score diff", "top-10 overlap"] + (["nDCG@10"] if trained else [])
    lines.append(markdown_table(header, rows))
    return "\n".join(lines)
