"""Named datasets and models, so commands stay short and runs stay comparable.

Datasets are looked up in ``$HYBRID_SEARCH_DATASETS`` (default: ``../shared/datasets``
beside the repository); any other BEIR folder can be given by path. Model aliases
resolve to folders in ``$HYBRID_SEARCH_MODELS`` (default
``~/.cache/hybrid-search-models``, as assembled by ``shared/models/get-models.sh``);
anything else is passed through as a hub name or folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hybrid_search.config import AnalyzerConfig, DenseEncoderConfig, SparseEncoderConfig
from hybrid_search.errors import ModelLoadError

__all__ = [
    "DatasetPreset",
    "DATASETS",
    "MODEL_ALIASES",
    "REPO_ROOT",
    "datasets_dir",
    "models_dir",
    "require_model_folder",
    "dataset_path",
    "dense_config",
    "sparse_config",
    "preset_for",
    "analyzer_config",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


def datasets_dir() -> Path:
    return Path(os.environ.get("HYBRID_SEARCH_DATASETS", REPO_ROOT.parent / "shared" / "datasets")).expanduser()


def models_dir() -> str:
    # Kept unexpanded ("~/...") so collection manifests stay portable across users.
    return os.environ.get("HYBRID_SEARCH_MODELS", "~/.cache/hybrid-search-models")


@dataclass(frozen=True)
class ModelAlias:
    folder: str
    kind: str
    query_prompt: str | None = None
    document_prompt: str | None = None


MODEL_ALIASES: dict[str, ModelAlias] = {
    "minilm": ModelAlias("all-MiniLM-L6-v2", "sentence-transformers"),
    "mpnet": ModelAlias("all-mpnet-base-v2", "sentence-transformers"),
    "e5-small": ModelAlias("multilingual-e5-small", "sentence-transformers", "query: ", "passage: "),
    "splade-tiny": ModelAlias("splade-tiny", "splade"),
}


@dataclass(frozen=True)
class DatasetPreset:
    """Defaults for one open set: language, models, and how fusion is tuned."""

    language: str = "en"
    dense: str | None = "minilm"
    sparse: str | None = "splade-tiny"
    tune_split: str | None = "train"  # None: k-fold cross-validation over the test queries
    note: str = ""


DATASETS: dict[str, DatasetPreset] = {
    "nvidia_sec_10k": DatasetPreset(note="LLM-written questions, one positive each; train chunks disjoint from test"),
    "scifact": DatasetPreset(
        note="train claims share 181 relevant documents with test: fusion weights tuned on train queries "
        "see some test documents (no model is trained on them)"
    ),
    "cranfield": DatasetPreset(tune_split=None, note="no train split: fusion tuned by 5-fold cross-validation over test queries"),
    "cmrc2018": DatasetPreset(
        language="zh",
        dense="e5-small",
        sparse=None,
        note="Chinese: jieba analyzer; no sparse path (splade-tiny is an English WordPiece model)",
    ),
}


def preset_for(name: str) -> DatasetPreset:
    return DATASETS.get(name, DatasetPreset())


def dataset_path(name_or_path: str) -> tuple[str, Path]:
    """(dataset name, folder) for a preset name or a BEIR folder path."""
    candidate = Path(name_or_path).expanduser()
    if (candidate / "corpus.jsonl").is_file():
        return candidate.resolve().name, candidate.resolve()
    folder = datasets_dir() / name_or_path
    if (folder / "corpus.jsonl").is_file():
        return name_or_path, folder
    raise FileNotFoundError(
        f"no BEIR folder {name_or_path!r} (looked at {candidate} and {folder}); give a path, or set HYBRID_SEARCH_DATASETS"
    )


def require_model_folder(model: str | None, option: str) -> None:
    """Fail before any indexing when a model written as a path (or an alias's
    folder) is missing; hub ids are left to the loader."""
    if model in MODEL_ALIASES:
        model = _model(model)[0]
    if model and model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
        raise ModelLoadError(
            f"{option}: no model folder at {str(Path(model).expanduser())!r} (scripts/get-models.sh assembles the offline "
            "models; HYBRID_SEARCH_MODELS says where they are)"
        )


def _model(alias_or_path: str) -> tuple[str, ModelAlias | None]:
    alias = MODEL_ALIASES.get(alias_or_path)
    if alias is None:
        return alias_or_path, None
    return f"{models_dir().rstrip('/')}/{alias.folder}", alias


def dense_config(
    spec: str | None, kind: str | None = None, query_prompt: str | None = None, document_prompt: str | None = None
) -> DenseEncoderConfig | None:
    if not spec or spec.lower() == "none":
        return None
    model, alias = _model(spec)
    return DenseEncoderConfig(
        model=model,
        kind=kind or (alias.kind if alias else "sentence-transformers"),  # type: ignore[arg-type]
        query_prompt=query_prompt if query_prompt is not None else (alias.query_prompt if alias else None),
        document_prompt=document_prompt if document_prompt is not None else (alias.document_prompt if alias else None),
    )


def sparse_config(spec: str | None, kind: str | None = None) -> SparseEncoderConfig | None:
    if not spec or spec.lower() == "none":
        return None
    model, alias = _model(spec)
    return SparseEncoderConfig(model=model, kind=kind or (alias.kind if alias else "splade"))  # type: ignore[arg-type]


def analyzer_config(language: str) -> AnalyzerConfig:
    return AnalyzerConfig(language=language)  # type: ignore[arg-type]
