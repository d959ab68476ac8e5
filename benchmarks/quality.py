"""The `quality` command: every path and combination through the real engine
and Milvus, scored with ranx, written as JSON, Markdown and a recall@k plot.

Conditions (names used on the command line and in the reports):

- ``bm25``, ``sparse``, ``dense``: one path, no fusion;
- ``bm25+dense``, ``bm25+sparse+dense``, ...: those paths fused with the
  fusion given on the command line (default RRF, k = 60, equal weights);
- ``default``: ``Engine.search`` with no paths and no fusion named, on a
  collection serving the fusion a new collection gets (``FusionConfig()``):
  exactly what a user without labels is served; compared with the best single
  path and with equal-weight RRF over every path;
- ``tuned``: the fusion chosen by ``python -m benchmarks tune`` (read from
  ``tuning.json`` in the output folder); with k-fold tuning each query is
  searched with the setting tuned on the folds it is not in;
- any condition followed by ``>rerank``: the same, then reranked by the
  cross-encoder given with ``--reranker``.

Every figure says how it compares with the best single path, because fusion
that loses to its best single path is the common failure.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_search import SearchOptions
from hybrid_search.config import FusionConfig, RerankConfig, RuntimeConfig, to_plain
from hybrid_search.types import RETRIEVAL_PATHS

from .indexes import IndexSpec, open_index
from .metrics import CURVE_KS, evaluate, latency_summary, paired_randomization_test, recall_curve
from .report import environment, fmt, machine_line, markdown_table, write_json, write_text
from .runs import search_all, store_candidates
from .beir import split_queries
from .tuning import Setting, setting_from_plain

__all__ = ["Condition", "parse_conditions", "run_quality", "quality_markdown", "plot_recall"]


@dataclass
class Condition:
    name: str
    kind: str  # single | fused | tuned | default
    paths: tuple[str, ...]
    setting: Setting | None = None
    per_query: dict[str, Setting] | None = None
    rerank: bool = False
    description: str = ""

    def setting_for(self, qid: str) -> Setting:
        if self.per_query is not None:
            return self.per_query[qid]
        assert self.setting is not None
        return self.setting


def _combo_name(paths: Sequence[str]) -> str:
    return "+".join(p for p in RETRIEVAL_PATHS if p in paths)


def _load_tuned(tuning_file: Path | None) -> tuple[Setting | None, dict[str, Setting] | None, str]:
    if tuning_file is None or not tuning_file.is_file():
        return None, None, ""
    data = json.loads(tuning_file.read_text())
    if data.get("method") == "kfold":
        per_query = {}
        for fold in data["folds"]:
            setting = setting_from_plain(fold)
            for qid in fold["queries"]:
                per_query[qid] = setting
        return None, per_query, f"{data['folds_k']}-fold cross-validated settings from {tuning_file}"
    setting = setting_from_plain(data["selected"])
    return setting, None, f"{setting.describe()} (tuned on {data['dev_queries']} {data['tune_split']} dev queries; {tuning_file})"


def _describe_fusion(fusion: FusionConfig) -> str:
    if fusion.method == "rrf":
        return f"rrf k={fusion.rrf_k}"
    if fusion.method == "weighted":
        return f"weighted {fusion.normalization}"
    return fusion.method


def parse_conditions(
    spec: str,
    available: Sequence[str],
    fusion: FusionConfig,
    *,
    tuning_file: Path | None = None,
    reranker: bool = False,
) -> list[Condition]:
    """Conditions from ``all`` or a comma-separated list of names."""
    tuned, tuned_per_query, tuned_description = _load_tuned(tuning_file)
    names: list[str] = []
    if spec.strip() == "all":
        combos = [c for r in range(1, len(available) + 1) for c in itertools.combinations(available, r)]
        names = [_combo_name(c) for c in combos]
        if len(available) > 1:
            names.append("default")
        if tuned is not None or tuned_per_query is not None:
            names.append("tuned")
        if reranker:
            names += [f"{n}>rerank" for n in names if "+" in n or n in ("tuned", "default")]
    else:
        names = [n.strip() for n in spec.split(",") if n.strip()]
    conditions = []
    for name in names:
        base, _, suffix = name.partition(">")
        if suffix and suffix != "rerank":
            raise ValueError(f"condition {name!r}: only '>rerank' may follow a condition")
        rerank = bool(suffix)
        if rerank and not reranker:
            raise ValueError(f"condition {name!r} needs --reranker")
        if base == "default":
            conditions.append(
                Condition(
                    name,
                    "default",
                    tuple(available),
                    None,
                    rerank=rerank,
                    description=f"new-collection default: {_describe_fusion(FusionConfig())}, no paths or fusion named",
                )
            )
            continue
        if base == "tuned":
            if tuned is None and tuned_per_query is None:
                raise ValueError(
                    f"condition 'tuned' needs a tuning file (run `python -m benchmarks tune` first); looked at {tuning_file}"
                )
            paths = tuple(
                sorted({p for s in ([tuned] if tuned else tuned_per_query.values()) for p in s.paths}, key=RETRIEVAL_PATHS.index)
            )  # type: ignore[union-attr]
            conditions.append(Condition(name, "tuned", paths, tuned, tuned_per_query, rerank, tuned_description))
            continue
        paths = tuple(base.split("+"))
        unknown = [p for p in paths if p not in RETRIEVAL_PATHS]
        if unknown:
            raise ValueError(f"condition {name!r}: unknown path(s) {unknown}; paths are {', '.join(RETRIEVAL_PATHS)}")
        missing = [p for p in paths if p not in available]
        if missing:
            raise ValueError(f"condition {name!r}: this index has no {', '.join(missing)} path (it has {', '.join(available)})")
        paths = tuple(p for p in RETRIEVAL_PATHS if p in paths)
        if len(paths) == 1:
            conditions.append(
                Condition(
                    _combo_name(paths) + (">rerank" if rerank else ""),
                    "single",
                    paths,
                    Setting(paths, None),
                    rerank=rerank,
                    description=f"{paths[0]} only",
                )
            )
        else:
            weights = {p: (fusion.weights.get(p, 1.0) if p in paths else 0.0) for p in available}
            setting = Setting(
                paths, FusionConfig(method=fusion.method, rrf_k=fusion.rrf_k, normalization=fusion.normalization, weights=weights)
            )
            conditions.append(
                Condition(
                    _combo_name(paths) + (">rerank" if rerank else ""),
                    "fused",
                    paths,
                    setting,
                    rerank=rerank,
                    description=setting.describe(),
                )
            )
    return conditions


@contextmanager
def _serving_new_collection_default(opened: Any) -> Iterator[None]:
    """Serve ``FusionConfig()`` (what a new collection's manifest records) while
    the ``default`` condition runs: a cached index may have been built under an
    older default or hold a tuned default; what it served before is put back."""
    engine, collection = opened.engine, opened.collection
    previous = engine.open_collection(collection).fusion
    if previous == FusionConfig():
        yield
        return
    engine.set_fusion_defaults(collection, FusionConfig())
    try:
        yield
    finally:
        engine.set_fusion_defaults(collection, previous)


def score_conditions(
    opened: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    conditions: Sequence[Condition],
    *,
    k: int = 100,
    depth: int = 100,
    rerank_top_n: int | None = None,
    split: str = "test",
    cache: Path = Path("runs"),
    store: bool = True,
    highlight: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Search every query under every condition through Engine.search; score with ranx."""
    results: dict[str, Any] = {}
    per_query_ndcg: dict[str, dict[str, float]] = {}
    extra = {"log": log} if log else {}
    for condition in conditions:

        def options_for(qid: str, condition: Condition = condition) -> SearchOptions:
            if condition.kind == "default":
                # What a new collection serves: nothing named but k and depth.
                return SearchOptions(
                    k=k, depth=depth, rerank=condition.rerank, rerank_top_n=rerank_top_n, highlight=highlight
                )
            setting = condition.setting_for(qid)
            return SearchOptions(
                k=k,
                paths=setting.paths,
                depth=depth,
                fusion=setting.fusion,
                rerank=condition.rerank,
                rerank_top_n=rerank_top_n,
                highlight=highlight,
            )

        if condition.kind == "default":
            with _serving_new_collection_default(opened):
                run = search_all(opened, queries, options_for, label=condition.name, **extra)
        else:
            run = search_all(opened, queries, options_for, label=condition.name, **extra)
        # A single path's hits are no longer its raw candidates once duplicates are
        # collapsed (the default): only unfolded lists may fill the candidate cache.
        if store and condition.kind == "single" and not condition.rerank and not SearchOptions().collapse:
            store_candidates(opened, queries, condition.paths[0], run.results, split=split, depth=depth, cache=cache)
        ranking = run.ranking()
        means, per_query = evaluate(qrels, ranking)
        per_query_ndcg[condition.name] = per_query["ndcg@10"]
        results[condition.name] = {
            "kind": condition.kind,
            "paths": list(condition.paths),
            "setting": condition.description,
            "fusion": to_plain(FusionConfig())
            if condition.kind == "default"
            else (to_plain(condition.setting.fusion) if condition.setting and condition.setting.fusion else None),
            "rerank": condition.rerank,
            "metrics": means,
            "recall_curve": recall_curve(qrels, ranking),
            "latency_ms": latency_summary(run.timings),
        }
        if log:
            log(f"[quality] {opened.spec.dataset.name}/{condition.name}: nDCG@10 {means['ndcg@10']:.4f}")
    return results, per_query_ndcg


def _keep_earlier(
    path: Path,
    index_key: str,
    qrels: Mapping[str, Any],
    results: dict[str, Any],
    per_query_ndcg: dict[str, dict[str, float]],
) -> dict[str, Any] | None:
    """Add the conditions of an earlier run (same index, same queries) that this
    run did not re-run, so one condition can be added without re-searching the rest.
    Their earlier comparisons are dropped (recomputed over the merged set)."""
    if not path.is_file():
        raise ValueError(f"--keep-others: no earlier results at {path}")
    earlier = json.loads(path.read_text())
    if earlier["index"]["key"] != index_key:
        raise ValueError(f"--keep-others: {path} was measured on index {earlier['index']['key']}, this run on {index_key}")
    kept = [name for name in earlier["conditions"] if name not in results]
    for name in kept:
        if set(earlier["per_query_ndcg@10"][name]) != set(qrels):
            raise ValueError(f"--keep-others: {path} scored {name!r} on other queries than this run")
    merged = {}
    for name in [*earlier["conditions"], *results]:
        if name in results:
            merged[name] = results[name]
        else:
            entry = {k: v for k, v in earlier["conditions"][name].items() if k not in ("vs_best_single", "vs_rrf")}
            merged[name] = entry
            per_query_ndcg[name] = earlier["per_query_ndcg@10"][name]
    results.clear()
    results.update(merged)
    env = earlier.get("environment", {})
    return {"conditions": kept, "command": env.get("command"), "git_revision": env.get("git_revision"), "date": env.get("date")}


def run_quality(
    spec: IndexSpec,
    *,
    split: str = "test",
    conditions: str = "all",
    fusion: FusionConfig | None = None,
    reranker: RerankConfig | None = None,
    rerank_top_n: int | None = None,
    runtime: RuntimeConfig | None = None,
    cache: Path = Path("runs"),
    out_dir: Path,
    tuning_file: Path | None = None,
    k: int = 100,
    depth: int = 100,
    max_queries: int | None = None,
    sample: int | None = None,
    sample_seed: int = 13,
    store_uri: str | None = None,
    note: str = "",
    keep_others: bool = False,
    highlight: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    fusion = fusion or FusionConfig(method="rrf")
    opened = open_index(
        spec, cache=cache, runtime=runtime, reranker=reranker, store_uri=store_uri, **({"log": log} if log else {})
    )
    available = list(opened.engine.open_collection(opened.collection).paths)
    parsed = parse_conditions(conditions, available, fusion, tuning_file=tuning_file, reranker=reranker is not None)
    queries, qrels = spec.dataset.split(split)
    total_queries = len(queries)
    if sample is not None and sample < len(queries):
        keep, _ = split_queries(sorted(queries), sample / len(queries), seed=sample_seed)
        queries = {q: queries[q] for q in keep}
        qrels = {q: qrels[q] for q in keep}
    if max_queries is not None:
        keep = sorted(queries)[:max_queries]
        queries = {q: queries[q] for q in keep}
        qrels = {q: qrels[q] for q in keep}

    results, per_query_ndcg = score_conditions(
        opened,
        queries,
        qrels,
        parsed,
        k=k,
        depth=depth,
        rerank_top_n=rerank_top_n,
        split=split,
        cache=cache,
        store=max_queries is None,
        highlight=highlight,
        log=log,
    )
    stem = "quality" if split == "test" else f"quality-{split}"
    kept = _keep_earlier(Path(out_dir) / f"{stem}.json", spec.key(), qrels, results, per_query_ndcg) if keep_others else None
    singles = {n: r for n, r in results.items() if r["kind"] == "single" and not r["rerank"]}
    best_single = max(singles, key=lambda n: singles[n]["metrics"]["ndcg@10"]) if singles else None
    if best_single is not None:
        for name, r in results.items():
            if name == best_single:
                continue
            r["vs_best_single"] = {
                "condition": best_single,
                "delta_ndcg@10": r["metrics"]["ndcg@10"] - results[best_single]["metrics"]["ndcg@10"],
                "p_value": paired_randomization_test(
                    [per_query_ndcg[name][q] for q in qrels], [per_query_ndcg[best_single][q] for q in qrels]
                ),
            }
    rrf_name = _combo_name(available)
    rrf = results.get(rrf_name)
    if rrf is not None and (rrf.get("fusion") or {}).get("method") == "rrf":
        for name, r in results.items():
            if r["kind"] in ("default", "tuned") and not r["rerank"]:
                r["vs_rrf"] = {
                    "condition": rrf_name,
                    "delta_ndcg@10": r["metrics"]["ndcg@10"] - rrf["metrics"]["ndcg@10"],
                    "p_value": paired_randomization_test(
                        [per_query_ndcg[name][q] for q in qrels], [per_query_ndcg[rrf_name][q] for q in qrels]
                    ),
                }
    data = {
        "benchmark": "quality",
        "dataset": {
            "name": spec.dataset.name,
            "path": str(spec.dataset.root),
            "split": split,
            "queries": len(queries),
            "documents": len(spec.dataset.corpus),
            "skipped_empty_documents": spec.dataset.empty_documents,
            "max_queries": max_queries,
            "sample": {"queries": len(queries), "of": total_queries, "seed": sample_seed}
            if sample is not None and sample < total_queries
            else None,
            "blank_queries_left_out": spec.dataset.blank_queries(split),
        },
        "index": {
            "key": spec.key(),
            "uri": opened.uri,
            "reused": opened.reused,
            "spec": spec.describe(),
            "build": opened.meta.get("index_report"),
            "build_device": opened.meta.get("device"),
        },
        "models": {
            "dense": to_plain(spec.dense),
            "sparse": to_plain(spec.sparse),
            "analyzer": to_plain(spec.analyzer),
            "reranker": to_plain(reranker),
            "rerank_top_n": rerank_top_n or (reranker.top_n if reranker else None),
        },
        "search": {
            "k": k,
            "depth_per_path": depth,
            "default_fusion": to_plain(fusion),
            "highlight": highlight,
            "device": opened.engine.runtime.resolved_device(),
        },
        "metrics_definition": {
            "library": "ranx",
            "ndcg@10": "linear gains, as pytrec_eval/BEIR",
            "map": f"mean average precision over the top {k}",
            "latency": "Engine.search timings_ms per query, after 3 warm-up queries; p50/p95/mean in ms",
        },
        "best_single": {"condition": best_single, "ndcg@10": results[best_single]["metrics"]["ndcg@10"]} if best_single else None,
        "conditions": results,
        "kept_from_earlier_run": kept,
        "per_query_ndcg@10": per_query_ndcg,
        "note": note,
        "environment": environment(),
    }
    out_dir = Path(out_dir)
    write_json(out_dir / f"{stem}.json", data)
    write_text(out_dir / f"{stem}.md", quality_markdown(data))
    plot_recall(data, out_dir / f"{stem}-recall.png")
    return data


def quality_markdown(data: Mapping[str, Any]) -> str:
    d = data["dataset"]
    best = data.get("best_single")
    header = [
        "condition",
        "setting",
        "nDCG@10",
        "R@10",
        "R@100",
        "MRR@10",
        "MAP",
        "Δ nDCG@10 vs best single",
        "p",
        "p50 ms",
        "p95 ms",
    ]
    rows = []
    for name, r in data["conditions"].items():
        m = r["metrics"]
        vs = r.get("vs_best_single")
        total = r["latency_ms"].get("total", {})
        rows.append(
            [
                f"**{name}**" if best and name == best["condition"] else name,
                r["setting"],
                m["ndcg@10"],
                m["recall@10"],
                m["recall@100"],
                m["mrr@10"],
                m["map"],
                "best single" if best and name == best["condition"] else (f"{vs['delta_ndcg@10']:+.3f}" if vs else "n/a"),
                fmt(vs["p_value"], 3) if vs else "",
                fmt(total.get("p50"), 1),
                fmt(total.get("p95"), 1),
            ]
        )
    stage_rows = []
    for name, r in data["conditions"].items():
        lat = r["latency_ms"]
        stage_rows.append(
            [name]
            + [
                f"{fmt(lat[s]['p50'], 1)} / {fmt(lat[s]['p95'], 1)}" if s in lat else ""
                for s in ("encode", "bm25", "sparse", "dense", "fusion", "rerank", "assemble", "total")
            ]
        )
    models = data["models"]
    build = data["index"].get("build") or {}
    lines = [
        f"# Retrieval quality: {d['name']} ({d['split']}, {d['queries']} queries, {d['documents']} documents)",
        *(
            [
                "",
                f"A deterministic random sample of {d['sample']['queries']} of the {d['sample']['of']} {d['split']} queries "
                f"(seed {d['sample']['seed']}), to keep the run within hours on a 2-core machine.",
            ]
            if d.get("sample")
            else []
        ),
        "",
        f"Dense: `{(models['dense'] or {}).get('model', 'none')}`; sparse: `{(models['sparse'] or {}).get('model', 'none')}`; "
        f"BM25 analyzer: {models['analyzer']['language']}; reranker: `{(models['reranker'] or {}).get('model', 'none')}`. "
        f"Each path retrieves its top {data['search']['depth_per_path']}; metrics over the top {data['search']['k']}.",
        "",
        f"Best single path: **{best['condition']}** (nDCG@10 {fmt(best['ndcg@10'])})." if best else "",
        "",
        markdown_table(header, rows, ["l", "l"] + ["r"] * (len(header) - 2)),
        "",
        "p: two-sided paired randomization test on per-query nDCG@10 against the best single path (10,000 sign flips).",
        *_vs_rrf_lines(data),
        "",
        "Latency per stage, p50 / p95 ms (query encoding, each path's Milvus search, fusion, rerank, assembling the hits "
        "(reading rows, matched-term highlighting: total minus the timed stages), total), "
        f"on {data['search']['device']}:",
        "",
        markdown_table(
            ["condition", "encode", "bm25", "sparse", "dense", "fusion", "rerank", "assemble hits", "total"], stage_rows
        ),
        "",
        f"Index: {data['index']['key']}, built at {fmt(build.get('chunks_per_second'), 1)} chunks/s on {data['index'].get('build_device')} "
        f"({'reused' if data['index']['reused'] else 'built in this run'}).",
    ]
    kept = data.get("kept_from_earlier_run")
    if kept:
        lines.append(
            f"Conditions {', '.join(kept['conditions'])} are kept from an earlier run on the same index and queries "
            f"(git {kept['git_revision']}, `{kept['command']}`); the others were searched in this run."
        )
    if d.get("skipped_empty_documents"):
        lines.append(f"Documents with no text (not indexable, never retrievable): {', '.join(d['skipped_empty_documents'])}.")
    if data.get("note"):
        lines += ["", f"Note: {data['note']}."]
    env = data["environment"]
    lines += ["", f"Machine: {machine_line(env)}. Git: {env['git_revision']}.", "", f"Command: `{env['command']}`"]
    return "\n".join(line for line in lines)


def _vs_rrf_lines(data: Mapping[str, Any]) -> list[str]:
    lines = []
    for name, r in data["conditions"].items():
        vs = r.get("vs_rrf")
        if vs:
            lines.append(
                f"- **{name}** vs {vs['condition']} (equal-weight RRF, k = 60): Δ nDCG@10 {vs['delta_ndcg@10']:+.3f}, "
                f"p = {fmt(vs['p_value'], 3)}"
            )
    return ["", *lines] if lines else []


def plot_recall(data: Mapping[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in data["conditions"].items():
        curve = r["recall_curve"]
        ks = [int(k) for k in curve]
        style = "-" if r["kind"] == "single" else ("--" if r["kind"] == "fused" else "-.")
        ax.plot(ks, [curve[k] if k in curve else curve[str(k)] for k in curve], style, marker="o", markersize=3, label=name)
    ax.set_xscale("log")
    ax.set_xticks(list(CURVE_KS))
    ax.set_xticklabels([str(k) for k in CURVE_KS])
    ax.set_xlabel("k")
    ax.set_ylabel("Recall@k")
    d = data["dataset"]
    ax.set_title(f"{d['name']} ({d['split']}, {d['queries']} queries): recall@k per condition")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
