"""What the training-results commands read, declared by one file: a training
pipeline config (the TOML ``hybrid-search train all --config`` runs).

The config names the run folder (``out``, where ``train all`` wrote the data,
the models and the evaluation collections), the base models, the evaluation
settings (fusion, depth, k, rerank top n, metrics) and the reranker's input
settings (length, windows). The results of a run live beside its config:
``benchmarks/results/training/NAME.toml`` -> ``.../NAME/``. So every command
takes the config and nothing else is hard-coded: no run folder, model path or
fusion setting lives in the code.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_search.errors import ConfigError, InputError

__all__ = ["TrainingRun", "load_training_run"]


@dataclass(frozen=True)
class TrainingRun:
    """A training run's declared inputs (typed, validated sections of its config)."""

    config_file: Path
    out: Path  # the run folder `train all` wrote
    results: Path  # where the commands write what they measure
    base: Any  # training.pipeline.BaseModels
    evaluation: Any  # training.pipeline.EvalSettings
    reranker: Any | None  # training.reranker.RerankerTrainConfig

    @property
    def data_dir(self) -> Path:
        return self.out / "data"

    @property
    def store_uri(self) -> str:
        return str(self.out / "evaluation" / "eval.db")

    def require(self, path: Path, what: str) -> Path:
        if not path.exists():
            raise InputError(
                f"{what} is missing: no {path} (run `hybrid-search train all --config {self.config_file}` first, "
                f"or a `python -m benchmarks training-run` plan that does)"
            )
        return path

    def load_data(self):
        from training.data import load_training_data

        return load_training_data(self.require(self.data_dir / "manifest.json", "the run's training data").parent)

    def collection(self, system: str, corpus_ids: list[str]) -> str:
        """The evaluation collection of ``system``: as the run's evaluation recorded it, else as
        ``train evaluate`` names the base system's (the tuned ones need their trained models)."""
        recorded = self.out / "evaluation" / "evaluation.json"
        if recorded.is_file():
            collections = json.loads(recorded.read_text(encoding="utf-8")).get("collections", {})
            if system in collections:
                return collections[system]
        if system != "base":
            raise InputError(f"{recorded} records no {system!r} collection: run the pipeline's evaluation first")
        from training.evaluate import System, eval_collection_name

        base = System("base", dense=self.base.dense, sparse=self.base.sparse)
        return eval_collection_name(base, self.evaluation.scope, self.evaluation.language, corpus_ids)

    def rerank_settings(self) -> dict[str, Any]:
        """How the engine scores this run's reranker: as it was trained (length, windows), on the evaluation's top n."""
        if self.reranker is None:
            raise ConfigError(f"{self.config_file} trains no reranker ([reranker] section)")
        return {
            "max_length": self.reranker.max_length,
            "long_passages": self.reranker.long_passages,
            "window_overlap": self.reranker.window_overlap,
            "top_n": self.evaluation.rerank_top_n,
        }

    @property
    def reranker_model(self) -> Path:
        return self.out / "reranker" / "model"


def load_training_run(config_file: Path, *, results: Path | None = None) -> TrainingRun:
    """Read the sections of a pipeline config the commands use (the ``[data]``
    path is not needed: they read the data the run wrote). A relative ``out`` is
    relative to the working directory, as for ``train all``."""
    from training.pipeline import BaseModels, EvalSettings
    from training.reranker import RerankerTrainConfig
    from training.runs import config_from_plain

    config_file = Path(config_file)
    if not config_file.is_file():
        raise InputError(f"no training pipeline config at {config_file}")
    try:
        raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{config_file} is not valid TOML: {error}") from error
    if not isinstance(raw.get("out"), str) or not raw["out"]:
        raise ConfigError(f"{config_file.name}: `out` (the run folder) is missing")
    where = config_file.name
    return TrainingRun(
        config_file=config_file,
        out=Path(raw["out"]).expanduser(),
        results=results if results is not None else config_file.with_suffix(""),
        base=config_from_plain(BaseModels, raw.get("base", {}), where=f"{where} [base]"),
        evaluation=config_from_plain(EvalSettings, raw.get("evaluation", {}), where=f"{where} [evaluation]"),
        reranker=config_from_plain(RerankerTrainConfig, raw["reranker"], where=f"{where} [reranker]") if "reranker" in raw else None,
    )
