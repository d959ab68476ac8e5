"""The `fusion-study` command: label-free fusion methods compared offline on
cached per-path candidate lists (``runs.path_candidates``: each path's top 100
per query, exactly as ``Engine.search`` ranks them).

Every method sees only the candidate lists of the query (ids and raw scores):
no labels, nothing learnt. The family studied (``fused(d) = sum_p w_p(q) *
norm_p(score_p(d))``, a document a path did not return counting 0 there):

- normalisation: min-max over the path's candidates, or DBSF (mean +- c
  standard deviations mapped to [0, 1], clipped; c = 2 or 3);
- per-query weights ``w_p(q)`` proportional to ``confidence_p(q) ** power``:
  ``equal``; ``z1`` (top score's z-score); ``gap`` (top-1 minus top-2, over the
  standard deviation); ``gap5`` (top-1 minus top-5); ``z10`` (mean of the top
  10 as a z-score); ``entropy`` (1 - normalised entropy of the softmax of the
  z-scored scores); ``agree`` (share of the path's top 10 that the other paths'
  top 10 also hold); power in {0.5, 1, 2, 3, 4};
- equal-weight RRF (k = 60), the previous default, for reference.

Selection rule, fixed before looking at any result: the method with the best
mean nDCG@10 on the DEV split (nvidia_sec_10k's train queries, whose chunks
are disjoint from its test chunks). The other sets' numbers, and every test
split, only show whether the choice carries over; nothing is chosen on them.
The chosen variant must equal the engine's ``adaptive`` fusion (checked here).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_search.config import FusionConfig
from hybrid_search.fusion import fuse

from .metrics import fast_ndcg, paired_randomization_test
from .runs import cached_candidates, doc_of, path_candidates

__all__ = ["DEV", "STUDY_SETS", "Variant", "fusion_study_markdown", "run_fusion_study", "variants"]

#: (set, splits the study reads); cmrc2018's test split is the 500-query sample the quality run scores.
STUDY_SETS: dict[str, tuple[str, ...]] = {
    "nvidia_sec_10k": ("train", "test"),
    "scifact": ("test",),
    "cranfield": ("test",),
    "cmrc2018": ("test",),
}
DEV = ("nvidia_sec_10k", "train")
SAMPLES = {("cmrc2018", "test"): 500}
CONFIDENCES = ("equal", "z1", "gap", "gap5", "z10", "entropy", "agree")
NORMS = ("min-max", "dbsf2", "dbsf3")
POWERS = (0.5, 1.0, 2.0, 3.0, 4.0)
#: The engine's adaptive fusion, as a study variant.
ENGINE_VARIANT = ("min-max", "entropy", 2.0)

Ranked = Mapping[str, Sequence[tuple[str, float]]]


def _moments(scores: Sequence[float]) -> tuple[float, float]:
    mean = sum(scores) / len(scores)
    return mean, math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))


def _normalise(scores: Sequence[float], norm: str) -> list[float] | None:
    if norm == "min-max":
        low, high = min(scores), max(scores)
        return None if high == low else [(s - low) / (high - low) for s in scores]
    width = 2.0 if norm == "dbsf2" else 3.0
    mean, std = _moments(scores)
    if std == 0:
        return None
    low = mean - width * std
    return [min(1.0, max(0.0, (s - low) / (2 * width * std))) for s in scores]


def _confidence(kind: str, scores: Sequence[float], ids: Sequence[str], others: Sequence[set[str]]) -> float:
    if len(scores) < 2:
        return 0.0
    mean, std = _moments(scores)
    if std == 0:
        return 0.0
    if kind == "equal":
        return 1.0
    if kind == "z1":
        return max(0.0, (scores[0] - mean) / std)
    if kind == "gap":
        return (scores[0] - scores[1]) / std
    if kind == "gap5":
        return (scores[0] - scores[min(4, len(scores) - 1)]) / std
    if kind == "z10":
        top = scores[:10]
        return max(0.0, (sum(top) / len(top) - mean) / std)
    if kind == "entropy":
        z = [(s - mean) / std for s in scores]
        peak = max(z)
        exps = [math.exp(v - peak) for v in z]
        total = sum(exps)
        entropy = -sum(e / total * math.log(e / total) for e in exps if e > 0)
        return max(0.0, 1.0 - entropy / math.log(len(scores)))
    if kind == "agree":
        mine = set(ids[:10])
        return sum(len(mine & other) for other in others) / (10 * max(1, len(others)))
    raise ValueError(f"unknown confidence {kind!r}")


@dataclass(frozen=True)
class Variant:
    norm: str
    confidence: str
    power: float

    @property
    def name(self) -> str:
        if self.confidence == "equal":
            return f"{self.norm}, equal weights"
        return f"{self.norm}, {self.confidence}^{self.power:g}"

    def fuse(self, ranked: Ranked) -> list[tuple[str, float]]:
        paths = [p for p in ranked if ranked[p]]
        normalised: dict[str, dict[str, float]] = {}
        raw: dict[str, float] = {}
        for path in paths:
            ids = [cid for cid, _ in ranked[path]]
            scores = [s for _, s in ranked[path]]
            values = _normalise(scores, self.norm)
            others = [{cid for cid, _ in ranked[o][:10]} for o in paths if o != path]
            normalised[path] = dict(zip(ids, values)) if values is not None else {}
            raw[path] = _confidence(self.confidence, scores, ids, others) ** self.power if values is not None else 0.0
        total = sum(raw.values())
        weights = {p: (raw[p] / total if total > 0 else 1.0 / len(paths)) for p in paths}
        fused: dict[str, float] = {}
        for path in paths:
            for cid, value in normalised[path].items():
                fused[cid] = fused.get(cid, 0.0) + weights[path] * value
        return sorted(fused.items(), key=lambda item: -item[1])


def variants() -> list[Variant]:
    out = [Variant(norm, "equal", 1.0) for norm in NORMS]
    out += [Variant(norm, conf, power) for norm in NORMS for conf in CONFIDENCES if conf != "equal" for power in POWERS]
    return out


def _rrf(ranked: Ranked) -> list[tuple[str, float]]:
    return fuse(ranked, FusionConfig(method="rrf", rrf_k=60))


def _adaptive(ranked: Ranked) -> list[tuple[str, float]]:
    return fuse(ranked, FusionConfig())


def _per_query(
    lists: Mapping[str, Mapping[str, Sequence[tuple[str, float]]]],
    qrels: Mapping[str, Mapping[str, int]],
    method: Callable[[Ranked], Sequence[tuple[str, float]]],
) -> dict[str, float]:
    out = {}
    for qid in qrels:
        ranked = {p: lists[p][qid] for p in lists}
        out[qid] = fast_ndcg(qrels[qid], [doc_of(cid) for cid, _ in method(ranked)[:10]], 10)
    return out


def _mean(values: Mapping[str, float]) -> float:
    return float(statistics.fmean(values.values()))


def _fusion_latency(lists: Mapping[str, Mapping[str, Sequence[tuple[str, float]]]], qids: Sequence[str]) -> dict[str, float]:
    """Engine fusion (``fuse`` with ``FusionConfig()``) per query, ms: p50 / p95 over 3 passes."""
    samples, cpu = [], []
    for _ in range(3):
        for qid in qids:
            ranked = {p: lists[p][qid] for p in lists}
            started, started_cpu = time.perf_counter(), time.process_time()
            fuse(ranked, FusionConfig())
            samples.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
    samples.sort()
    cpu.sort()
    return {
        "p50": samples[len(samples) // 2],
        "p95": samples[min(len(samples) - 1, int(len(samples) * 0.95))],
        # CPU time of this process: what the fusion costs when the machine is not shared
        "cpu_p50": cpu[len(cpu) // 2],
        "n": len(samples),
        "depth_per_path": max(len(v) for path in lists.values() for v in path.values()),
    }


def run_fusion_study(
    sets: Sequence[str],
    *,
    spec_for: Callable[[str], Any],
    open_index_for: Callable[[Any], Any],
    cache: Path,
    out_dir: Path,
    depth: int = 100,
    only_splits: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    from .beir import split_queries
    from .report import environment, write_json, write_text

    study_variants = variants()
    splits: dict[str, dict[str, Any]] = {}
    for name in sets:
        spec = spec_for(name)
        available = list(spec.collection_config().paths)
        opened = None
        for split in STUDY_SETS.get(name, ("test",)):
            if split not in spec.dataset.splits or (only_splits and split not in only_splits):
                continue
            queries, qrels = spec.dataset.split(split)
            sample = SAMPLES.get((name, split))
            if sample is not None and sample < len(queries):
                keep, _ = split_queries(sorted(queries), sample / len(queries), seed=13)
                queries, qrels = {q: queries[q] for q in keep}, {q: qrels[q] for q in keep}
            lists = {}
            for p in available:
                cached = cached_candidates(spec, queries, p, split=split, depth=depth, cache=cache)
                if cached is None:
                    # Only now is the index needed (built first if it is not cached).
                    opened = opened or open_index_for(spec)
                    cached = path_candidates(opened, queries, p, split=split, depth=depth, cache=cache, log=log)
                lists[p] = cached
            log(f"[fusion-study] {name}/{split}: {len(qrels)} queries, paths {', '.join(available)}")
            per_query = {f"{p} only": _per_query(lists, qrels, lambda r, p=p: r[p]) for p in available}
            per_query["rrf k=60 (previous default)"] = _per_query(lists, qrels, _rrf)
            per_query["adaptive (engine default)"] = _per_query(lists, qrels, _adaptive)
            for variant in study_variants:
                per_query[variant.name] = _per_query(lists, qrels, variant.fuse)
            singles = {p: _mean(per_query[f"{p} only"]) for p in available}
            best = max(singles, key=singles.__getitem__)
            adaptive = per_query["adaptive (engine default)"]
            rrf = per_query["rrf k=60 (previous default)"]
            splits[f"{name}/{split}"] = {
                "set": name,
                "split": split,
                "role": "dev (chooses)" if (name, split) == DEV else "check (chooses nothing)",
                "queries": len(qrels),
                "sample": sample,
                "paths": available,
                "ndcg@10": {method: _mean(values) for method, values in per_query.items()},
                "best_single": {"path": best, "ndcg@10": singles[best]},
                "adaptive_vs_best_single": {
                    "delta": _mean(adaptive) - singles[best],
                    "p_value": paired_randomization_test(
                        [adaptive[q] for q in qrels], [per_query[f"{best} only"][q] for q in qrels]
                    ),
                },
                "adaptive_vs_rrf": {
                    "delta": _mean(adaptive) - _mean(rrf),
                    "p_value": paired_randomization_test([adaptive[q] for q in qrels], [rrf[q] for q in qrels]),
                },
                "fusion_latency_ms": _fusion_latency(lists, list(qrels)) if len(available) > 1 else None,
            }
        if opened is not None:
            opened.engine.close()
    dev_key = f"{DEV[0]}/{DEV[1]}"
    chosen = None
    if dev_key in splits:
        dev = splits[dev_key]["ndcg@10"]
        chosen = max(study_variants, key=lambda v: dev[v.name])
        engine_variant = Variant(*ENGINE_VARIANT)
        if (chosen.norm, chosen.confidence, chosen.power) != ENGINE_VARIANT:
            log(f"[fusion-study] WARNING: dev chooses {chosen.name}, the engine's adaptive fusion is {engine_variant.name}")
        for entry in splits.values():
            scores = entry["ndcg@10"]
            if abs(scores[engine_variant.name] - scores["adaptive (engine default)"]) > 1e-9:
                raise AssertionError(f"{entry['set']}/{entry['split']}: engine adaptive != study variant {engine_variant.name}")
    data = {
        "benchmark": "fusion-study",
        "dev_split": dev_key,
        "selection_rule": "best mean nDCG@10 on the dev split over every variant; test splits and other sets choose nothing",
        "chosen": {"variant": chosen.name, "dev_ndcg@10": splits[dev_key]["ndcg@10"][chosen.name]} if chosen else None,
        "engine_adaptive": Variant(*ENGINE_VARIANT).name,
        "grid": {"norms": list(NORMS), "confidences": list(CONFIDENCES), "powers": list(POWERS), "variants": len(study_variants)},
        "depth_per_path": depth,
        "splits": splits,
        "environment": environment(),
    }
    out_dir = Path(out_dir)
    write_json(out_dir / "fusion_study.json", data)
    write_text(out_dir / "fusion_study.md", fusion_study_markdown(data))
    return data


def fusion_study_markdown(data: Mapping[str, Any]) -> str:
    from .report import fmt, markdown_table

    splits = data["splits"]
    keys = list(splits)
    lines = [
        "# Label-free fusion study",
        "",
        f"Per-path top-{data['depth_per_path']} candidate lists (cached, exactly as `Engine.search` ranks each path) fused "
        f"offline; nDCG@10. {data['grid']['variants']} variants (see `benchmarks/fusion_study.py`).",
        "",
        f"**Selection rule**: {data['selection_rule']}. Dev split: `{data['dev_split']}`.",
        "",
    ]
    if data.get("chosen"):
        lines += [
            f"**Chosen on dev**: {data['chosen']['variant']} (dev nDCG@10 {fmt(data['chosen']['dev_ndcg@10'])}); "
            f"the engine's `adaptive` fusion is {data['engine_adaptive']}.",
            "",
        ]
    summary_rows = []
    for key in keys:
        e = splits[key]
        lat = e.get("fusion_latency_ms") or {}
        summary_rows.append(
            [
                key,
                e["role"],
                e["queries"],
                f"{e['best_single']['path']} {fmt(e['best_single']['ndcg@10'])}",
                e["ndcg@10"]["rrf k=60 (previous default)"],
                e["ndcg@10"]["adaptive (engine default)"],
                f"{e['adaptive_vs_best_single']['delta']:+.3f} (p {fmt(e['adaptive_vs_best_single']['p_value'], 3)})",
                f"{e['adaptive_vs_rrf']['delta']:+.3f} (p {fmt(e['adaptive_vs_rrf']['p_value'], 3)})",
                f"{fmt(lat.get('p50'), 2)} / {fmt(lat.get('p95'), 2)} ({fmt(lat.get('cpu_p50'), 2)})" if lat else "",
            ]
        )
    lines += [
        markdown_table(
            ["split", "role", "queries", "best single", "RRF", "adaptive", "adaptive - best single", "adaptive - RRF", "fusion ms p50 / p95 (CPU p50)"],
            summary_rows,
        ),
        "",
        "p: two-sided paired randomization test on per-query nDCG@10 (10,000 sign flips).",
        "",
        "Every variant (ordered by the dev split):",
        "",
    ]
    dev_key = data["dev_split"]
    methods = list(splits[keys[0]]["ndcg@10"])
    if dev_key in splits:
        methods.sort(key=lambda m: -splits[dev_key]["ndcg@10"][m])
    rows = [[m] + [splits[k]["ndcg@10"].get(m) for k in keys] for m in methods]
    lines += [markdown_table(["method", *keys], rows, ["l"] + ["r"] * len(keys)), ""]
    env = data["environment"]
    lines += [f"Git: {env['git_revision']}.", "", f"Command: `{env['command']}`"]
    return "\n".join(lines)
