"""The whole flow in one call: data -> negatives -> dense -> sparse -> reranker
-> evaluate (-> promote), each stage in its own folder under ``out``.

Every stage is skipped when its folder already holds a finished run of the
same config and data, and resumes from its last checkpoint when it was
interrupted, so re-running the same command after a crash picks up where it
stopped. The config is one TOML (or JSON) file; ``load_pipeline_config``
validates all of it before anything runs.
"""

from __future__ import annotations

import json
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from hybrid_search.config import (
    DenseEncoderConfig,
    FusionConfig,
    RerankConfig,
    SparseEncoderConfig,
)
from hybrid_search.errors import ConfigError, InputError

from .data import DataConfig, TrainingData, build_training_data, load_training_data
from .embedder import DenseTrainConfig, train_dense
from .evaluate import EvalConfig, EvaluationReport, System, evaluate_systems
from .negatives import MiningConfig, mine_negatives
from .promote import PromotionResult, promote
from .reranker import RerankerTrainConfig, train_reranker
from .runs import Device, config_from_plain, plain, write_json
from .sparse import SparseTrainConfig, train_sparse

__all__ = ["BaseModels", "EvalSettings", "PipelineConfig", "PromoteSettings", "load_pipeline_config", "run_pipeline", "systems_for"]


@dataclass(frozen=True)
class BaseModels:
    """The models in service before training: the baseline, and the miners."""

    dense: DenseEncoderConfig | None = None
    sparse: SparseEncoderConfig | None = None


@dataclass(frozen=True)
class EvalSettings:
    scope: Literal["all", "test"] = "all"
    metrics: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
    gate_metric: str = "ndcg@10"
    gate_path: Literal["served", "hybrid", "hybrid+rerank", "dense", "sparse", "bm25"] = "served"
    min_gain: float = 0.0
    max_p_value: float | None = None  # the gate also needs the paired test's p-value <= this
    k: int = 100
    depth: int = 100
    rerank_top_n: int = 30
    # Served order of the reranked head: (1 - w) rerank + w first stage (RerankConfig.first_stage_weight).
    rerank_first_stage_weight: float = 0.0
    tune_first_stage_weight: bool = False  # choose the weight on the dev queries instead
    fusion: FusionConfig | None = None
    language: Literal["en", "zh"] = "en"
    max_queries: int | None = None
    device: Device = "auto"
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not 0.0 <= self.rerank_first_stage_weight <= 1.0:
            raise ConfigError(f"EvalSettings.rerank_first_stage_weight must lie in [0, 1]; got {self.rerank_first_stage_weight!r}")
        if self.tune_first_stage_weight and self.rerank_first_stage_weight != 0.0:
            raise ConfigError("EvalSettings: set rerank_first_stage_weight or tune_first_stage_weight, not both")


@dataclass(frozen=True)
class PromoteSettings:
    """Where to promote: ``store_uri``/``token`` unset take what every command
    takes (HYBRID_SEARCH_URI / HYBRID_SEARCH_TOKEN, the [store] table of
    HYBRID_SEARCH_CONFIG, then the default file)."""

    alias: str
    store_uri: str | None = None
    token: str | None = None
    source: str | None = None
    force: bool = False


@dataclass(frozen=True)
class PipelineConfig:
    out: str
    data: DataConfig
    base: BaseModels
    negatives: MiningConfig | None = None
    dense: DenseTrainConfig | None = None
    sparse: SparseTrainConfig | None = None
    reranker: RerankerTrainConfig | None = None
    evaluation: EvalSettings = EvalSettings()
    promote: PromoteSettings | None = None

    def __post_init__(self) -> None:
        if self.dense is None and self.sparse is None and self.reranker is None:
            raise ConfigError("PipelineConfig trains nothing: configure dense, sparse and/or reranker")
        if self.base.dense is None and self.base.sparse is None and self.negatives is None:
            raise ConfigError("PipelineConfig.base names no model to mine negatives with (BM25 alone needs [negatives])")


def load_pipeline_config(path: Path, *, out: str | None = None, data_path: Path | None = None) -> PipelineConfig:
    """Read and validate a TOML or JSON pipeline config; ``out`` overrides its
    folder, ``data_path`` its ``[data] path``. A relative ``[data] path`` is
    relative to the config file, so a config and its data travel together."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no pipeline config at {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {error}") from error
    if out is not None:
        data["out"] = out
    section = data.get("data")
    if isinstance(section, dict) and section.get("source") in ("beir", "jsonl"):
        if data_path is not None:
            section["path"] = str(data_path)
        elif not section.get("path"):
            raise ConfigError(f"{path.name} names no training data: pass --data-path PATH (the {section['source']} input)")
        else:
            given = Path(section["path"]).expanduser()
            section["path"] = str(given if given.is_absolute() else (path.parent / given).resolve())
        if not Path(section["path"]).exists():
            raise InputError(f"no training data at {section['path']} ({'--data-path' if data_path is not None else path.name}): pass --data-path PATH")
    return config_from_plain(PipelineConfig, data, where=path.name)


def systems_for(config: PipelineConfig, trained: dict[str, Path]) -> tuple[System, ...]:
    """Baseline (the base models), candidate (base with every trained part
    swapped in), and the controls that tell the parts' contributions apart."""
    base = config.base
    dense = base.dense
    if "dense" in trained:
        # Keep the base's prompts and max length: the tuned model was trained with them.
        dense = replace(base.dense or DenseEncoderConfig(), model=str(trained["dense"]), kind="sentence-transformers")
    sparse = base.sparse
    if "sparse" in trained:
        # Served with the passage length it was trained with.
        length = config.sparse.passage_max_len if config.sparse is not None else None
        sparse = SparseEncoderConfig(model=str(trained["sparse"]), kind="bge-m3", max_length=length)
    reranker = None
    if "reranker" in trained:
        # Scored at query time the way it was trained: same length, same windows.
        trained_as = config.reranker
        as_trained = (
            {}
            if trained_as is None
            else {"max_length": trained_as.max_length, "long_passages": trained_as.long_passages, "window_overlap": trained_as.window_overlap}
        )
        reranker = RerankConfig(
            model=str(trained["reranker"]),
            kind="cross-encoder",
            top_n=config.evaluation.rerank_top_n,
            first_stage_weight=config.evaluation.rerank_first_stage_weight,
            **as_trained,
        )
    # Controls measure only what tells the parts apart: the tuned reranker over
    # the base retrieval, and the M3 head before training.
    retrieval_trained = "dense" in trained or "sparse" in trained
    # With only a reranker trained, the tuned retrieval is the base's: measured once.
    tuned_rows = ("bm25", "sparse", "dense", "hybrid", "hybrid+rerank") if retrieval_trained else ("hybrid+rerank",)
    systems = [System("base", dense=base.dense, sparse=base.sparse), System("tuned", dense=dense, sparse=sparse, reranker=reranker, rows=tuned_rows)]
    if reranker is not None:
        control_rows = ("bm25+rerank", "hybrid+rerank") if retrieval_trained else ("bm25+rerank",)
        systems.append(System("base-reranked", dense=base.dense, sparse=base.sparse, reranker=reranker, rows=control_rows))
    if "sparse-start" in trained:
        # The same M3 head before training: what the sparse training itself bought.
        untrained = SparseEncoderConfig(model=str(trained["sparse-start"]), kind="bge-m3", max_length=sparse.max_length if sparse else None)
        systems.append(System("sparse-untrained", sparse=untrained, rows=("sparse",)))
    return tuple(systems)


class _Stage:
    """Prints a stage banner and records how long the stage took."""

    def __init__(self, summary: dict[str, Any], name: str) -> None:
        self.summary, self.name = summary, name

    def __enter__(self) -> None:
        print(f"\n=== train {self.name} ===", flush=True)
        self.started = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self.summary.setdefault("seconds", {})[self.name] = round(time.perf_counter() - self.started, 1)


def run_pipeline(config: PipelineConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run every configured stage; returns (and saves as ``pipeline.json``) a summary."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"config": plain(config), "stages": {}, "started_at": time.time()}
    data_dir = out / "data"

    with _Stage(summary, "data"):
        previous = data_dir / "manifest.json"
        if previous.is_file() and json.loads(previous.read_text(encoding="utf-8")).get("config") == plain(config.data):
            data: TrainingData = load_training_data(data_dir)  # same config: keep it (later stages hash it)
        else:
            data = build_training_data(config.data, data_dir, progress=progress)
        summary["stages"]["data"] = data.manifest["stats"]
        print(json.dumps(data.manifest["stats"], indent=2))

    mining = config.negatives or MiningConfig()
    mining = replace(mining, dense=mining.dense or config.base.dense, sparse=mining.sparse or config.base.sparse)
    with _Stage(summary, "negatives"):
        stats = mine_negatives(data, mining, progress=progress)
        print(stats.summary())
        summary["stages"]["negatives"] = stats.to_dict()

    trained: dict[str, Path] = {}
    if config.dense is not None:
        with _Stage(summary, "dense"):
            summary["stages"]["dense"] = train_dense(data, config.dense, out / "dense", progress=progress)
            trained["dense"] = out / "dense" / "model"
    if config.sparse is not None:
        with _Stage(summary, "sparse"):
            metrics = train_sparse(data, config.sparse, out / "sparse", progress=progress)
            summary["stages"]["sparse"] = metrics
            trained["sparse"] = out / "sparse" / "model"
            start = Path(metrics.get("start_folder", ""))
            if start.resolve() == (out / "sparse" / "start").resolve():
                trained["sparse-start"] = start
    if config.reranker is not None:
        with _Stage(summary, "reranker"):
            summary["stages"]["reranker"] = train_reranker(data, config.reranker, out / "reranker", progress=progress)
            trained["reranker"] = out / "reranker" / "model"

    settings = config.evaluation
    evaluation = EvalConfig(
        systems=systems_for(config, trained),
        baseline="base",
        candidate="tuned",
        scope=settings.scope,
        metrics=settings.metrics,
        gate_metric=settings.gate_metric,
        gate_path=settings.gate_path,
        min_gain=settings.min_gain,
        max_p_value=settings.max_p_value,
        k=settings.k,
        depth=settings.depth,
        rerank_top_n=settings.rerank_top_n,
        fusion=settings.fusion,
        language=settings.language,
        max_queries=settings.max_queries,
        device=settings.device,
        batch_size=settings.batch_size,
        tune_first_stage_weight=settings.tune_first_stage_weight,
    )
    with _Stage(summary, "evaluate"):
        report: EvaluationReport = evaluate_systems(data, evaluation, out / "evaluation", progress=progress)
        print((out / "evaluation" / "evaluation.md").read_text(encoding="utf-8"))
        summary["stages"]["evaluate"] = {
            "results": report.results,
            "decision": report.decision,
            "seconds": report.seconds,
            "first_stage_weights": report.first_stage_weights,
            "significance": report.significance,
        }

    if config.promote is not None:
        from hybrid_search.engine import Engine
        from hybrid_search.settings import LayeredSettings

        tuned = evaluation.system("tuned")
        with _Stage(summary, "promote"), Engine(
            LayeredSettings.load(None).store_config(config.promote.store_uri, config.promote.token)
        ) as engine:
            result: PromotionResult = promote(
                engine,
                config.promote.alias,
                dense=tuned.dense if "dense" in trained else None,
                sparse=tuned.sparse if "sparse" in trained else None,
                evaluation=report,
                source=config.promote.source,
                force=config.promote.force,
                progress=progress,
            )
            summary["stages"]["promote"] = result.to_dict()
            print(json.dumps(result.to_dict(), indent=2))
    summary["finished_at"] = time.time()
    write_json(out / "pipeline.json", summary)
    print(f"stage seconds: {summary['seconds']}")
    return summary
