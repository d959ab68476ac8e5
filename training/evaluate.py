"""Before/after evaluation through the engine, on held-out queries.

Each system (a set of models: dense, sparse, reranker) gets its own collection
built by ``Engine.index`` and is searched with ``Engine.search``, exactly the
path users run: each retrieval path alone, hybrid (all paths fused), hybrid +
rerank and BM25 + rerank when the system has a reranker. Metrics come from
ranx. Engine order is what is scored (ranks, not raw scores), so ties and
fusion behave as served.

With ``tune_first_stage_weight`` the reranked rows are served with the
first-stage weight (``RerankConfig.first_stage_weight``) that scores best on
the dev queries: each dev query is reranked once and re-ordered for every
weight on a grid, with the engine's own ``order_reranked``; the test
queries are then searched with the chosen weight. Test never picks it.

The report ends with a decision: does the candidate beat the baseline on the
gate metric for the configuration that would be served? Promotion refuses a
candidate that does not, unless forced. Every row both systems have also gets
a paired randomization test on the per-query gate metric (the same queries,
before and after), so a gain can be told from noise; ``max_p_value`` makes
the gate require it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from hybrid_search.config import (
    AnalyzerConfig,
    CollectionConfig,
    DenseEncoderConfig,
    FusionConfig,
    RerankConfig,
    RuntimeConfig,
    SparseEncoderConfig,
    StoreConfig,
)
from hybrid_search.errors import ConfigError, InputError, SchemaVersionError
from hybrid_search.evaluation import evaluate as evaluate_rankings
from hybrid_search.evaluation import paired_comparison, require_ranx

from .data import EvalQuery, TrainingData
from .runs import Device, check_choice, plain, write_json

__all__ = [
    "EvalConfig",
    "EvaluationReport",
    "System",
    "evaluate_systems",
    "paired_comparison",
    "eval_collection_name",
    "per_query_metric",
    "rank_metrics",
    "read_report",
    "rankings_at",
    "render_markdown",
    "reranked_lists",
]

Scope = Literal["all", "test"]
GatePath = Literal["served", "hybrid", "hybrid+rerank", "dense", "sparse", "bm25"]
ROW_ORDER = ("bm25", "sparse", "dense", "hybrid", "bm25+rerank", "hybrid+rerank")
FIRST_STAGE_GRID = tuple(i / 10 for i in range(11))


@dataclass(frozen=True)
class System:
    """One retrieval system: what its collection is built with, and its reranker."""

    name: str
    dense: DenseEncoderConfig | None = None
    sparse: SparseEncoderConfig | None = None
    reranker: RerankConfig | None = None
    rows: tuple[str, ...] | None = None  # only these rows (controls skip what other systems measure)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"System.name must be letters, digits, '-' or '_'; got {self.name!r}")
        for row in self.rows or ():
            check_choice("System", "rows", row, ROW_ORDER)

    @property
    def served(self) -> str:
        return "hybrid+rerank" if self.reranker is not None else "hybrid"


@dataclass(frozen=True)
class EvalConfig:
    systems: tuple[System, ...]
    baseline: str
    candidate: str
    scope: Scope = "all"  # index every chunk (BEIR convention) or only the held-out documents' chunks
    queries: Literal["test", "dev"] = "test"
    metrics: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
    gate_metric: str = "ndcg@10"
    gate_path: GatePath = "served"
    min_gain: float = 0.0
    # When set, "better" also needs the gate row's paired randomization p-value <= this.
    max_p_value: float | None = None
    k: int = 100
    depth: int = 100
    rerank_top_n: int = 30
    fusion: FusionConfig | None = None
    language: Literal["en", "zh"] = "en"
    store_uri: str | None = None  # default: <out>/eval.db
    max_queries: int | None = None
    device: Device = "auto"
    batch_size: int = 32
    # Choose each reranked row's first-stage weight on the dev queries (needs scope "all":
    # the dev documents must be in the searched collection).
    tune_first_stage_weight: bool = False

    def __post_init__(self) -> None:
        check_choice("EvalConfig", "scope", self.scope, get_args(Scope))
        if self.tune_first_stage_weight and (self.scope != "all" or self.queries != "test"):
            raise ConfigError("EvalConfig.tune_first_stage_weight needs scope='all' and queries='test' (it tunes on the dev queries)")
        check_choice("EvalConfig", "queries", self.queries, ("test", "dev"))
        check_choice("EvalConfig", "gate_path", self.gate_path, get_args(GatePath))
        check_choice("EvalConfig", "language", self.language, ("en", "zh"))
        check_choice("EvalConfig", "device", self.device, get_args(Device))
        names = [s.name for s in self.systems]
        if len(set(names)) != len(names):
            raise ConfigError("EvalConfig.systems must have distinct names")
        for name in (self.baseline, self.candidate):
            if name not in names:
                raise ConfigError(f"EvalConfig: no system named {name!r}; systems are {', '.join(names)}")
        if self.gate_metric not in self.metrics:
            raise ConfigError("EvalConfig.gate_metric must be one of its metrics")
        for name in ("k", "depth", "rerank_top_n", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"EvalConfig.{name} must be >= 1")
        if self.max_queries is not None and self.max_queries < 1:
            raise ConfigError("EvalConfig.max_queries must be >= 1")
        if self.max_p_value is not None and not 0.0 < self.max_p_value <= 1.0:
            raise ConfigError(f"EvalConfig.max_p_value must lie in (0, 1]; got {self.max_p_value!r}")

    def system(self, name: str) -> System:
        return next(s for s in self.systems if s.name == name)


@dataclass
class EvaluationReport:
    config: dict[str, Any]
    queries: int
    corpus_chunks: int
    results: dict[str, dict[str, dict[str, float]]]  # system -> row -> metric -> value
    collections: dict[str, str]
    seconds: dict[str, float]
    decision: dict[str, Any] = field(default_factory=dict)
    # system -> reranked row -> {"chosen": w, "dev": {w: gate metric on dev}}
    first_stage_weights: dict[str, dict[str, Any]] = field(default_factory=dict)
    # row -> candidate vs baseline on the gate metric: means, delta, paired randomization p-value
    significance: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "queries": self.queries,
            "corpus_chunks": self.corpus_chunks,
            "results": self.results,
            "collections": self.collections,
            "seconds": self.seconds,
            "decision": self.decision,
            "first_stage_weights": self.first_stage_weights,
            "significance": self.significance,
        }

    @property
    def candidate_is_better(self) -> bool:
        return bool(self.decision.get("better"))


def read_report(path: Path) -> EvaluationReport:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return EvaluationReport(**data)


def eval_collection_name(system: System, scope: str, language: str, chunk_ids: Sequence[str]) -> str:
    """The evaluation's collection for a system over a corpus (reused across runs)."""
    material = json.dumps([plain(system.dense), plain(system.sparse), scope, language, len(chunk_ids)], sort_keys=True)
    return f"eval_{system.name.replace('-', '_')}_{hashlib.sha1(material.encode()).hexdigest()[:10]}"


def _qrels(queries: Sequence[EvalQuery]) -> dict[str, dict[str, int]]:
    require_ranx("train")  # a missing ranx names the extra training is installed with
    return {q.query_id: dict(q.relevant) for q in queries}


def rank_metrics(queries: Sequence[EvalQuery], rankings: dict[str, list[str]], metrics: Sequence[str]) -> dict[str, float]:
    """Mean of each metric over ``queries`` (``hybrid_search.evaluation``: the
    engine's own order is scored, ties included; no ranking scores 0)."""
    means, _ = evaluate_rankings(_qrels(queries), rankings, list(metrics))
    return {name: round(value, 4) for name, value in means.items()}


def per_query_metric(queries: Sequence[EvalQuery], rankings: dict[str, list[str]], metric: str) -> dict[str, float]:
    """One metric for every query (a query with no ranking scores 0), as
    ``rank_metrics`` averages it: the input of the paired significance test."""
    _, per_query = evaluate_rankings(_qrels(queries), rankings, [metric])
    return per_query[metric]


def _significance(
    config: EvalConfig, per_query: dict[str, dict[str, dict[str, float]]], rows: Sequence[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """Candidate vs baseline for each (baseline row, candidate row) pair (``paired_comparison``)."""
    out: dict[str, dict[str, Any]] = {}
    for base_row, cand_row in rows:
        before = per_query.get(config.baseline, {}).get(base_row)
        after = per_query.get(config.candidate, {}).get(cand_row)
        if before is None or after is None:
            continue
        label = base_row if base_row == cand_row else f"{base_row} -> {cand_row}"
        out[label] = {"metric": config.gate_metric, **paired_comparison(after, before)}
    return out


def _rows(system: System, paths: Sequence[str]) -> list[tuple[str, tuple[str, ...] | None, bool]]:
    """(row name, paths to search, rerank?) for every row the system has."""
    rows: list[tuple[str, tuple[str, ...] | None, bool]] = [(p, (p,), False) for p in paths]
    if len(paths) > 1:
        rows.append(("hybrid", None, False))
    if system.reranker is not None:
        rows.append(("bm25+rerank", ("bm25",), True))
        rows.append(("hybrid+rerank", None, True))
    if system.rows is not None:
        rows = [row for row in rows if row[0] in system.rows]
    return rows


RerankedList = tuple[str, list[tuple[str, float]], dict[str, float], list[str]]


def reranked_lists(engine: Any, name: str, queries: Sequence[EvalQuery], options: Any) -> list[RerankedList]:
    """Rerank every query once, first-stage order kept (w = 1, so the fused
    order is known): (query id, head as (chunk id, fused score), rerank score
    by chunk id, the unreranked tail)."""
    lists = []
    for query in queries:
        hits = engine.search(name, query.query, replace(options, rerank_first_stage_weight=1.0)).hits
        head = [(h.chunk_id, h.fused_score) for h in hits if h.rerank_score is not None]
        rerank = {h.chunk_id: float(h.rerank_score) for h in hits if h.rerank_score is not None}
        tail = [h.chunk_id for h in hits if h.rerank_score is None]
        lists.append((query.query_id, head, rerank, tail))
    return lists


def rankings_at(lists: Sequence[RerankedList], weight: float) -> dict[str, list[str]]:
    """Each list ordered as ``Engine.search`` orders it at first-stage weight ``weight``."""
    from hybrid_search.engine import order_reranked

    rankings = {}
    for query_id, head, rerank, tail in lists:
        ordered, _ = order_reranked(head, rerank, weight)
        rankings[query_id] = [cid for cid, _ in ordered] + tail
    return rankings


def _tune_first_stage_weight(engine: Any, name: str, dev: Sequence[EvalQuery], options: Any, metric: str) -> dict[str, Any]:
    """Rerank every dev query once, then re-order the head for each weight on
    the grid as ``Engine.search`` would. The best weight wins; ties go to the
    smaller one (the reranker is used as much as dev allows)."""
    lists = reranked_lists(engine, name, dev, options)
    table = {str(weight): rank_metrics(dev, rankings_at(lists, weight), (metric,))[metric] for weight in FIRST_STAGE_GRID}
    best = max(table.values())
    chosen = min(w for w in FIRST_STAGE_GRID if table[str(w)] == best)
    return {"chosen": chosen, "metric": metric, "dev_queries": len(dev), "dev": table}


def _evaluate_system(
    system: System,
    chunks: Sequence[Any],
    queries: Sequence[EvalQuery],
    config: EvalConfig,
    uri: str,
    *,
    progress: bool,
    dev: Sequence[EvalQuery] = (),
    tuned_weights: dict[str, Any] | None = None,
) -> tuple[str, dict[str, dict[str, float]], dict[str, dict[str, float]], dict[str, float]]:
    from tqdm.auto import tqdm

    from hybrid_search.engine import Engine, SearchOptions

    runtime = RuntimeConfig(device=config.device, batch_size=config.batch_size)
    reranker = system.reranker
    if reranker is not None and reranker.top_n != config.rerank_top_n:
        reranker = RerankConfig(**{**plain(reranker), "top_n": config.rerank_top_n})
    name = eval_collection_name(system, config.scope, config.language, [c.id for c in chunks])
    seconds: dict[str, float] = {}
    with Engine(StoreConfig(uri=uri), runtime=runtime, reranker=reranker) as engine:
        collection_config = CollectionConfig(
            name=name,
            dense=system.dense,
            sparse=system.sparse,
            analyzer=AnalyzerConfig(language=config.language),
            fusion=config.fusion or FusionConfig(method="rrf"),
            description=f"training evaluation: {system.name}",
        )
        try:
            engine.create_collection(collection_config, exist_ok=True)
        except SchemaVersionError:
            # An evaluation cache written by an older storage schema: rebuild it.
            engine.drop_collection(name)
            engine.create_collection(collection_config)
        if engine.store.count(name) != len(chunks):
            # Missing or partial (an interrupted run): index; ids are stable, so
            # writing again converges on one copy of each chunk.
            started = time.perf_counter()
            bar = tqdm(total=len(chunks), desc=f"index {system.name}", unit="chunk", disable=not progress)
            engine.index(name, chunks, batch_size=config.batch_size, progress=bar.update)
            bar.close()
            seconds["index"] = round(time.perf_counter() - started, 2)
        paths = engine.open_collection(name).paths
        results: dict[str, dict[str, float]] = {}
        per_query: dict[str, dict[str, float]] = {}
        for row, row_paths, rerank in _rows(system, paths):
            started = time.perf_counter()
            rankings: dict[str, list[str]] = {}
            options = SearchOptions(
                k=min(config.k, 1000),
                paths=row_paths,
                depth=config.depth,
                rerank=rerank,
                rerank_top_n=config.rerank_top_n if rerank else None,
            )
            if rerank and config.tune_first_stage_weight:
                tuning = _tune_first_stage_weight(engine, name, dev, options, config.gate_metric)
                options = replace(options, rerank_first_stage_weight=tuning["chosen"])
                if tuned_weights is not None:
                    tuned_weights[row] = tuning
            for query in tqdm(queries, desc=f"{system.name}: {row}", unit="query", disable=not progress, leave=False):
                hits = engine.search(name, query.query, options).hits
                rankings[query.query_id] = [hit.chunk_id for hit in hits]
            results[row] = rank_metrics(queries, rankings, config.metrics)
            per_query[row] = per_query_metric(queries, rankings, config.gate_metric)
            seconds[row] = round(time.perf_counter() - started, 2)
    return name, results, per_query, seconds


def _gate_rows(config: EvalConfig) -> tuple[str, str]:
    baseline, candidate = config.system(config.baseline), config.system(config.candidate)
    base_row = baseline.served if config.gate_path == "served" else config.gate_path
    cand_row = candidate.served if config.gate_path == "served" else config.gate_path
    return base_row, cand_row


def _decide(config: EvalConfig, results: dict[str, dict[str, dict[str, float]]], significance: dict[str, dict[str, Any]]) -> dict[str, Any]:
    base_row, cand_row = _gate_rows(config)
    if base_row not in results[config.baseline] or cand_row not in results[config.candidate]:
        raise InputError(f"the gate compares {base_row!r} with {cand_row!r}, which one of the systems does not have")
    before = results[config.baseline][base_row][config.gate_metric]
    after = results[config.candidate][cand_row][config.gate_metric]
    label = base_row if base_row == cand_row else f"{base_row} -> {cand_row}"
    p_value = significance[label]["p_value"]
    significant = config.max_p_value is None or p_value <= config.max_p_value
    return {
        "metric": config.gate_metric,
        "baseline": {"system": config.baseline, "row": base_row, "value": before},
        "candidate": {"system": config.candidate, "row": cand_row, "value": after},
        "gain": round(after - before, 4),
        "min_gain": config.min_gain,
        "p_value": p_value,
        "max_p_value": config.max_p_value,
        "better": after - before > config.min_gain and significant,
    }


def evaluate_systems(data: TrainingData, config: EvalConfig, out_dir: Path, *, progress: bool = True) -> EvaluationReport:
    """Evaluate every system on the held-out queries; writes ``evaluation.json``
    and ``evaluation.md`` into ``out_dir`` and returns the report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    queries = list(data.test if config.queries == "test" else data.dev)
    if config.max_queries is not None:
        queries = queries[: config.max_queries]
    if not queries:
        raise InputError(f"the data has no {config.queries} queries to evaluate with")
    chunks = data.corpus if config.scope == "all" else data.chunks(config.queries)
    uri = config.store_uri or str(out_dir / "eval.db")
    if config.tune_first_stage_weight and not data.dev:
        raise InputError("tuning the first-stage weight needs dev queries; the data has none (set a dev_fraction)")
    results: dict[str, dict[str, dict[str, float]]] = {}
    collections: dict[str, str] = {}
    seconds: dict[str, float] = {}
    first_stage_weights: dict[str, dict[str, Any]] = {}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    for system in config.systems:
        tuned_weights: dict[str, Any] = {}
        name, rows, per_query[system.name], timing = _evaluate_system(
            system, chunks, queries, config, uri, progress=progress, dev=data.dev, tuned_weights=tuned_weights
        )
        if tuned_weights:
            first_stage_weights[system.name] = tuned_weights
        results[system.name] = rows
        collections[system.name] = name
        seconds.update({f"{system.name}/{key}": value for key, value in timing.items()})
    # Each row against itself, and the gate's pair (e.g. base hybrid -> tuned hybrid+rerank).
    pairs = [(row, row) for row in ROW_ORDER] + [_gate_rows(config)]
    significance = _significance(config, per_query, list(dict.fromkeys(pairs)))
    report = EvaluationReport(
        config=plain(config),
        queries=len(queries),
        corpus_chunks=len(chunks),
        results=results,
        collections=collections,
        seconds=seconds,
        decision=_decide(config, results, significance),
        first_stage_weights=first_stage_weights,
        significance=significance,
    )
    write_json(out_dir / "evaluation.json", report.to_dict())
    (out_dir / "evaluation.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def render_markdown(report: EvaluationReport, *, title: str = "Before/after evaluation") -> str:
    config = report.config
    systems = list(report.results)
    metrics = list(config["metrics"])
    lines = [
        f"## {title}",
        "",
        f"{report.queries} {config['queries']} queries over {report.corpus_chunks} chunks (scope: {config['scope']}); "
        f"k={config['k']}, depth={config['depth']}, rerank top {config['rerank_top_n']}.",
        "",
    ]
    for metric in metrics:
        lines += [f"### {metric}", "", "| path | " + " | ".join(systems) + " |", "|---|" + "---:|" * len(systems)]
        for row in ROW_ORDER:
            if any(row in report.results[s] for s in systems):
                cells = [f"{report.results[s][row][metric]:.4f}" if row in report.results[s] else "" for s in systems]
                lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    if report.significance:
        first = next(iter(report.significance.values()))
        lines += [
            f"### {first['metric']}: {report.decision.get('candidate', {}).get('system', 'candidate')} vs "
            f"{report.decision.get('baseline', {}).get('system', 'baseline')}, paired randomization test "
            f"({first['queries']} queries, two-sided, 10,000 sign flips)",
            "",
            "| path | before | after | delta | p |",
            "|---|---:|---:|---:|---:|",
        ]
        for row, test in report.significance.items():
            lines.append(f"| {row} | {test['baseline']:.4f} | {test['candidate']:.4f} | {test['delta']:+.4f} | {test['p_value']:.4f} |")
        lines.append("")
    decision = report.decision
    if decision:
        verdict = "better" if decision["better"] else "NOT better"
        p_value = decision.get("p_value")
        required = decision.get("max_p_value")
        lines += [
            f"Gate: {decision['candidate']['system']} ({decision['candidate']['row']}) {decision['metric']} "
            f"{decision['candidate']['value']:.4f} vs {decision['baseline']['system']} ({decision['baseline']['row']}) "
            f"{decision['baseline']['value']:.4f}: gain {decision['gain']:+.4f}"
            + (f", p = {p_value:.4f}" if p_value is not None else "")
            + (f" (required <= {required})" if required is not None else "")
            + f", {verdict}.",
            "",
        ]
    for system_name, rows in report.first_stage_weights.items():
        for row, tuning in rows.items():
            lines.append(
                f"First-stage weight of `{system_name}` {row}: w = {tuning['chosen']} (best dev {tuning['metric']} "
                f"{max(tuning['dev'].values()):.4f} over w = 0, 0.1, ..., 1 on {tuning['dev_queries']} dev queries)."
            )
    if report.first_stage_weights:
        lines.append("")
    systems_config = {s["name"]: s for s in config["systems"]}
    lines += ["Systems:", ""]
    for name in systems:
        system = systems_config[name]
        parts = [f"{kind}={system[kind]['model']}" for kind in ("dense", "sparse", "reranker") if system.get(kind)]
        lines.append(f"- `{name}`: BM25" + (", " + ", ".join(parts) if parts else ""))
    return "\n".join(lines) + "\n"
