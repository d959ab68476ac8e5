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
  scored by each variant (``max_length`` 256 tokens), in a seeded shuffled
  order per query: latency per query, and the scores' agreement with torch
  fp32. nDCG@10 of the reranked top 100 only with a trained reranker
  (``--reranker``); without one, a stand-in with the same architecture
  (all-MiniLM-L6-v2 with a seeded, untrained head) gives the latency and
  agreement, and no quality figure is made up.

``openvino-int8-static`` is the cross-encoder's static int8
(``RerankConfig.int8_calibration``), calibrated on the top 100 candidates of
the first ``--calibration-queries`` *train*-split queries (every 10th rank),
never on the test queries it is measured on; it has no encoder counterpart,
so it needs ``--parts rerank`` (the encoders' part skipped; the torch
encoders still index the corpus to retrieve the candidates).
"""

from __future__ import annotations

import json
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
    package_version,
    write_json,
    write_text,
)
from .runs import search_all

__all__ = ["Variant", "parse_variants", "run_backends"]


STATIC_INT8 = "int8-static"
PARTS = ("all", "rerank")


@dataclass(frozen=True)
class Variant:
    backend: str
    quantize: str = "none"

    @property
    def label(self) -> str:
        return self.backend if self.quantize == "none" else f"{self.backend}-{self.quantize}"

    def rerank_config(self, model: str, max_length: int, calibration: Path | None) -> RerankConfig:
        static = self.quantize == STATIC_INT8
        return RerankConfig(
            model=model,
            kind="cross-encoder",
            top_n=100,
            max_length=max_length,
            backend=self.backend,  # type: ignore[arg-type]
            quantize="int8" if static else self.quantize,  # type: ignore[arg-type]
            int8_calibration=str(calibration) if static and calibration is not None else None,
        )


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
        # The least contended call: on shared cores, the closest to what the CPU does alone.
        "min": ordered[0],
        "n": len(ordered),
    }


def _calibration_pairs(index: Any, data: Any, queries: int, folder: Path) -> tuple[Path, dict[str, Any]]:
    """Calibration pairs for static int8: every 10th of the top 100 hybrid
    candidates of the first ``queries`` train-split queries, written as JSONL."""
    train, _ = data.split("train")
    pairs = []
    for qid in list(train)[:queries]:
        result = index.engine.search(index.collection, train[qid], SearchOptions(k=100, depth=100))
        pairs += [{"query": train[qid], "text": hit.text} for hit in result.hits[::10]]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"calibration-{data.name}-train-{queries}.jsonl"
    path.write_text("".join(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs), encoding="utf-8")
    return path, {"split": "train", "queries": min(queries, len(train)), "pairs": len(pairs), "ranks": "every 10th of the top 100"}


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
    parts: str = "all",
    calibration_queries: int = 30,
) -> dict[str, Any]:
    import numpy as np

    if parts not in PARTS:
        raise ValueError(f"--parts must be one of {', '.join(PARTS)}; got {parts!r}")
    static = [v.label for v in variants if v.quantize == STATIC_INT8]
    if static and parts != "rerank":
        raise ValueError(f"{', '.join(static)}: static int8 is the cross-encoder's only (no encoder counterpart); add --parts rerank")
    if any(v.quantize == STATIC_INT8 and v.backend != "openvino" for v in variants):
        raise ValueError("int8-static runs on OpenVINO only: openvino-int8-static")
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

    # With --parts rerank only torch fp32's index is built: it retrieves the candidates.
    for variant in variants if parts == "all" else variants[:1]:
        spec = IndexSpec(
            dataset=data,
            dense=replace(dense0, backend=variant.backend, quantize=variant.quantize),  # type: ignore[arg-type]
            sparse=replace(sparse0, backend=variant.backend, quantize=variant.quantize),  # type: ignore[arg-type]
            analyzer=analyzer_config("en"),
        )
        index = opened[variant.label] = open_index(spec, cache=cache, runtime=runtime)
        if parts != "all":
            continue
        quality[variant.label] = {}
        for path in ("dense", "sparse"):
            run = search_all(index, queries, lambda _qid, p=path: SearchOptions(k=10, paths=(p,)), label=f"{variant.label} {path}")
            means, _ = evaluate(qrels, run.ranking(), ["ndcg@10"])
            quality[variant.label][path] = means["ndcg@10"]

    encoding = _encoding(opened, queries, variants[0].label) if parts == "all" else {}

    # Cross-encoder over the top 100 hybrid candidates.
    trained = reranker is not None
    model = reranker or str(_stand_in_reranker(cache))
    from hybrid_search.rerank import load_reranker

    reference = variants[0].label
    torch_index = opened[reference]
    calibration, calibration_info = (None, None)
    if static:
        calibration, calibration_info = _calibration_pairs(torch_index, data, calibration_queries, cache / "backends")
    rerank_qids = list(queries)[: len(queries) if trained else rerank_queries]
    candidates = {}
    for qid in rerank_qids:
        result = torch_index.engine.search(torch_index.collection, queries[qid], SearchOptions(k=100, depth=100))
        candidates[qid] = [(hit.chunk_id, hit.text) for hit in result.hits]
    rerankers = {v.label: load_reranker(v.rerank_config(model, rerank_max_length, calibration), runtime) for v in variants}
    first = rerank_qids[0]
    for scorer in rerankers.values():  # warm-up
        scorer.score(queries[first], [text for _, text in candidates[first]][:8])
    rerank_ms: dict[str, list[float]] = {label: [] for label in rerankers}
    scores: dict[str, dict[str, list[float]]] = {label: {} for label in rerankers}
    order = random.Random(0)
    labels = list(rerankers)
    for qid in rerank_qids:
        passages = [text for _, text in candidates[qid]]
        order.shuffle(labels)
        for label in labels:
            begin = time.perf_counter()
            scores[label][qid] = rerankers[label].score(queries[qid], passages)
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
        "runtimes": {name: package_version(name) for name in ("onnxruntime", "openvino", "nncf")},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu_features": _cpu_features(),
        "load_average_1_5_15": {"start": started_load, "end": _load_average()},
        "dataset": name,
        "split": "test",
        "queries": len(queries),
        "parts": parts,
        "models": {"dense": dense0.model, "sparse": sparse0.model, "reranker": model, "reranker_trained": trained},
        "variants": [v.label for v in variants],
        "quality_ndcg@10": quality,
        "query_encoding_ms": encoding,
        "rerank": {
            "queries": len(rerank_qids),
            "candidates": 100,
            "max_length": rerank_max_length,
            "calibration": calibration_info,
            "by_variant": rerank,
        },
    }
    write_json(out / f"{name}.json", result)
    write_text(out / f"{name}.md", _markdown(result))
    return result


def _cpu_features() -> list[str]:
    """The CPU's flags that decide the int8/bf16 kernels (VNNI, AVX-512 BF16, AMX)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(flag for flag in flags if flag.startswith(("amx", "avx512_bf16", "avx512_vnni", "avx_vnni")))


def _encoding(opened: dict[str, Any], queries: dict[str, str], reference: str) -> dict[str, dict[str, dict[str, float]]]:
    """Query encoding, interleaved: every query through every variant in turn."""
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
    for label in encoding:
        for path in ("dense", "sparse"):
            encoding[label][path]["speedup_vs_torch"] = encoding[reference][path]["mean"] / encoding[label][path]["mean"]
    return encoding


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
        f"OMP_WAIT_POLICY {result.get('omp_wait_policy') or 'unset'}  ",
        f"CPU features: {', '.join(result.get('cpu_features') or ['none of amx, avx512_bf16, avx512_vnni, avx_vnni'])}",
        "",
    ]
    if encoding:
        lines += _encoding_markdown(variants, quality, encoding)
    else:
        lines += ["Encoders not measured in this run (`--parts rerank`): torch fp32's index only retrieves the candidates."]
    trained = result["models"]["reranker_trained"]
    calibration = rerank.get("calibration")
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
        "Variants ran in a seeded shuffled order per query.",
    ]
    if calibration:
        lines.append(
            f"int8-static calibrated on {calibration['pairs']} pairs: {calibration['ranks']} candidates of "
            f"{calibration['queries']} {calibration['split']}-split queries (none of the test queries)."
        )
    lines.append("")
    rows = []
    for label in variants:
        cell = rerank["by_variant"][label]
        row = [
            label,
            cell["latency_ms"]["min"],
            cell["latency_ms"]["p50"],
            cell["latency_ms"]["mean"],
            f"{cell['speedup_vs_torch']:.2f}x",
            f"{cell['max_abs_score_diff_vs_torch']:.4f}",
            fmt(cell["top10_overlap_vs_torch"]),
        ]
        if trained:
            row.append(f"{cell['ndcg@10']:.4f}")
        rows.append(row)
    header = ["variant", "min ms", "p50 ms", "mean ms", "speed-up", "max abs score diff", "top-10 overlap"] + (["nDCG@10"] if trained else [])
    lines.append(markdown_table(header, rows))
    return "\n".join(lines)


def _encoding_markdown(variants: list[str], quality: dict[str, Any], encoding: dict[str, Any]) -> list[str]:
    lines = [
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
    return lines
