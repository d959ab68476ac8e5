"""The `summary` command: one page over every result file under
``benchmarks/results/``: per set, the best single path next to every fused
condition and the tuned fusion; the BM25 implementation ratios; speed; scale."""

from __future__ import annotations

import json

from pathlib import Path
from typing import Any

from .report import fmt, markdown_table, write_text

__all__ = ["build_summary"]


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _quality_section(results: Path) -> list[str]:
    rows = []
    commands = []
    for file in sorted(results.glob("*/quality.json")):
        q = _load(file)
        if not q or not q.get("best_single"):
            continue
        best = q["best_single"]
        conds = q["conditions"]
        fused = {n: r for n, r in conds.items() if r["kind"] == "fused" and not r["rerank"]}
        tuned = conds.get("tuned")
        all_paths = max(fused, key=lambda n: len(conds[n]["paths"])) if fused else None
        best_fused = max(fused, key=lambda n: conds[n]["metrics"]["ndcg@10"]) if fused else None
        singles = ", ".join(f"{n} {conds[n]['metrics']['ndcg@10']:.3f}" for n, r in conds.items() if r["kind"] == "single" and not r["rerank"])
        rows.append(
            [
                q["dataset"]["name"],
                q["dataset"]["queries"],
                singles,
                f"{best['condition']} {best['ndcg@10']:.3f}",
                f"{conds[all_paths]['metrics']['ndcg@10']:.3f} ({conds[all_paths]['vs_best_single']['delta_ndcg@10']:+.3f})" if all_paths else "n/a",
                f"{best_fused} {conds[best_fused]['metrics']['ndcg@10']:.3f} ({conds[best_fused]['vs_best_single']['delta_ndcg@10']:+.3f})" if best_fused else "n/a",
                f"{tuned['metrics']['ndcg@10']:.3f} ({tuned['vs_best_single']['delta_ndcg@10']:+.3f}, p={tuned['vs_best_single']['p_value']:.3f})" if tuned else "not run",
                tuned["setting"].split(" (")[0] if tuned else "",
            ]
        )
        commands.append(f"- {q['dataset']['name']}: `{q['environment']['command']}`")
        tuning = _load(file.parent / "tuning.json")
        if tuning:
            commands.append(f"  (tuned with `{tuning['environment']['command']}`)")
    if not rows:
        return []
    return [
        "## Quality (nDCG@10 on test)",
        "",
        "RRF fusion is k=60 with equal weights; 'tuned' is the fusion chosen on a dev split of train queries "
        "(k-fold cross-validation over test queries where a set has no train split); in brackets the difference "
        "from the best single path and, for tuned, the paired randomization-test p-value.",
        "",
        markdown_table(
            ["set", "queries", "single paths", "best single", "RRF of all paths", "best RRF combination", "tuned fusion", "tuned setting"],
            rows,
            ["l", "r", "l", "l", "r", "l", "r", "l"],
        ),
        "",
        "Made by:",
        "",
        *commands,
        "",
    ]


def _bm25_section(results: Path) -> list[str]:
    rows = []
    for file in sorted(results.glob("*/bm25-*.json")):
        b = _load(file)
        if not b:
            continue
        e = b["results"]["hybrid-search (Milvus BM25)"]
        for impl, r in b["results"].items():
            ratio = b["ratios"].get(impl, {})
            rows.append(
                [
                    b["dataset"]["name"],
                    impl,
                    r["index_docs_per_s"],
                    r["queries_per_s"],
                    r.get("ndcg@10"),
                    fmt(ratio.get("engine_index_docs_per_s_ratio"), 2) if ratio else "",
                    fmt(ratio.get("engine_queries_per_s_ratio"), 3) if ratio else "",
                    fmt(e.get("milvus_search_ms_p50"), 1) if impl.startswith("hybrid") else "",
                ]
            )
    if not rows:
        return []
    return [
        "## BM25: the engine's Milvus path vs rank-bm25 vs bm25s (same tokens, same k1/b, top 100)",
        "",
        markdown_table(
            ["set", "implementation", "index docs/s", "queries/s", "nDCG@10", "engine/other index ratio", "engine/other query ratio", "Milvus search p50 ms"],
            rows,
            ["l", "l", "r", "r", "r", "r", "r", "r"],
        ),
        "",
    ]


def _speed_section(results: Path) -> list[str]:
    lines: list[str] = []
    enc_rows, pipe_rows, stage_rows = [], [], []
    for file in sorted((results / "speed").glob("speed-*.json")):
        s = _load(file)
        if not s:
            continue
        for e in s["encoders"]:
            enc_rows.append([Path(e["model"]).name, e["device"], e["fp16"], e["query_encode_ms"]["p50"], e["query_encode_ms"]["p95"], e["doc_encode_docs_per_s"]])
        for device, p in s["pipeline_vs_bare"].items():
            pipe_rows.append([s["dataset"]["name"], device, p["chunks"], p["bare_encoder_docs_per_s"], p["pipeline_docs_per_s"], p["ratio_pipeline_to_bare"]])
        for device, st in s["stage_latency"].items():
            for cond, lat in st["conditions"].items():
                stage_rows.append(
                    [s["dataset"]["name"], device, cond]
                    + [f"{lat[x]['p50']:.1f} / {lat[x]['p95']:.1f}" if x in lat else "" for x in ("encode", "bm25", "sparse", "dense", "fusion", "rerank", "assemble", "total")]
                )
    if enc_rows:
        lines += [
            "## Speed",
            "",
            "Encoders (query encoding one at a time, p50 / p95 ms; documents batched):",
            "",
            markdown_table(["model", "device", "fp16", "query p50 ms", "query p95 ms", "docs/s"], enc_rows),
            "",
        ]
    if pipe_rows:
        lines += [
            "Indexing: the whole pipeline (`Engine.index`) against the bare encoders on the same chunks, one run:",
            "",
            markdown_table(["set", "device", "chunks", "bare encoders docs/s", "pipeline docs/s", "pipeline / bare"], pipe_rows),
            "",
        ]
    if stage_rows:
        lines += [
            "Query latency per stage (p50 / p95 ms, top 10, depth 100 per path):",
            "",
            markdown_table(["set", "device", "condition", "encode", "bm25", "sparse", "dense", "fusion", "rerank", "assemble hits", "total"], stage_rows),
            "",
        ]
    return lines


def _scale_section(results: Path) -> list[str]:
    s = _load(results / "scale" / "scale.json")
    if not s:
        return []
    text = (results / "scale" / "scale.md").read_text() if (results / "scale" / "scale.md").is_file() else ""
    table = [line for line in text.splitlines() if line.startswith("|")]
    return ["## Scale (synthetic corpora)", "", *table, "", f"Made by `{s['environment']['command']}`; plot: `scale/scale.png`.", ""]


def build_summary(results: Path = Path("benchmarks/results"), out: Path | None = None) -> str:
    results = Path(results)
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks summary` from the JSON files in this folder; each JSON holds the exact "
        "command, git revision, machine and package versions. Figures measured on a shared 2-core CPU machine "
        "(other work running) unless a row says cuda: latencies there are pessimistic and noisy.",
        "",
        *_quality_section(results),
        *_bm25_section(results),
        *_speed_section(results),
        *_scale_section(results),
    ]
    text = "\n".join(lines)
    write_text(out or results / "README.md", text)
    return text


