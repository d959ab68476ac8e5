"""Model profiles: which models a new collection and the reranker use when no
flag, config file or environment variable names one.

Two profiles exist. ``hub`` is built in: BGE-M3 (dense and sparse) and
bge-reranker-v2-m3, fetched from the Hugging Face hub. ``local`` is a small
TOML file that ``scripts/setup.sh`` writes after assembling the offline models
(``hybrid-search profile write-local``)::

    # ~/.config/hybrid-search/models.toml
    [dense]
    model = "/home/me/.cache/hybrid-search-models/multilingual-e5-small"
    kind = "sentence-transformers"
    [sparse]
    model = "/home/me/.cache/hybrid-search-models/splade-tiny"
    kind = "splade"
    # [rerank] model, kind: when a local cross-encoder exists

A table the file leaves out keeps the hub's choice. Which profile applies:
``HYBRID_SEARCH_MODEL_PROFILE`` (``hub``, or the path of a profile file), else
the file at ``$XDG_CONFIG_HOME/hybrid-search/models.toml`` (``~/.config/...``)
when it exists, else ``hub``. The profile sits below every other layer: a model
named by a flag, the config file or the environment wins, and then that
model's kind defaults to the hub's kind, never to the profile's.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .config import (
    DEFAULT_DENSE_MODEL,
    DEFAULT_RERANK_MODEL,
    DenseEncoderConfig,
    RerankConfig,
    SparseEncoderConfig,
)
from .errors import ConfigError

__all__ = [
    "HUB_PROFILE",
    "PROFILE_ENV",
    "ModelChoice",
    "ModelProfile",
    "default_profile_path",
    "load_model_profile",
    "local_profile_choices",
    "write_profile",
]

PROFILE_ENV = "HYBRID_SEARCH_MODEL_PROFILE"
_TABLES = ("dense", "sparse", "rerank")
_KEYS = {
    "dense": {"model", "kind", "query_prompt", "document_prompt"},
    "sparse": {"model", "kind"},
    "rerank": {"model", "kind"},
}


@dataclass(frozen=True)
class ModelChoice:
    """A model and its kind (and, for dense models, optional prompts)."""

    model: str
    kind: str
    query_prompt: str | None = None
    document_prompt: str | None = None


@dataclass(frozen=True)
class ModelProfile:
    name: str
    dense: ModelChoice
    sparse: ModelChoice
    rerank: ModelChoice
    source: Path | None = None

    def choice(self, table: str) -> ModelChoice:
        return {"dense": self.dense, "sparse": self.sparse, "rerank": self.rerank}[table]


HUB_PROFILE = ModelProfile(
    name="hub",
    dense=ModelChoice(DEFAULT_DENSE_MODEL, "bge-m3"),
    sparse=ModelChoice(DEFAULT_DENSE_MODEL, "bge-m3"),
    rerank=ModelChoice(DEFAULT_RERANK_MODEL, "flag"),
)


def default_profile_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config_home) / "hybrid-search" / "models.toml"


def load_model_profile() -> ModelProfile:
    """The profile that supplies model defaults now (see the module docstring)."""
    chosen = os.environ.get(PROFILE_ENV, "").strip()
    if chosen == "hub":
        return HUB_PROFILE
    if chosen:
        path = Path(os.path.expanduser(chosen))
        if not path.is_file():
            raise ConfigError(f"{PROFILE_ENV}={chosen!r}: no such profile file (use 'hub' or the path of a models.toml)")
        return _read_profile(path)
    path = default_profile_path()
    return _read_profile(path) if path.is_file() else HUB_PROFILE


def _read_profile(path: Path) -> ModelProfile:
    where = f"model profile {str(path)!r}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{where} cannot be read: {error} (fix or delete it, or set {PROFILE_ENV}=hub)") from error
    choices: dict[str, ModelChoice] = {}
    for table, values in data.items():
        if table not in _TABLES or not isinstance(values, dict):
            raise ConfigError(f"{where}: unknown table [{table}]; tables are {', '.join(_TABLES)}")
        unknown = set(values) - _KEYS[table]
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) in [{table}]: {', '.join(sorted(unknown))}")
        if not isinstance(values.get("model"), str) or not isinstance(values.get("kind"), str):
            raise ConfigError(f"{where}: [{table}] needs model and kind as text")
        model = _resolve_model(values["model"], path.parent, where, table)
        choices[table] = ModelChoice(model, values["kind"], values.get("query_prompt"), values.get("document_prompt"))
    profile = replace(HUB_PROFILE, name="local", source=path, **choices)
    _check_kinds(profile, where)
    return profile


def _resolve_model(model: str, base: Path, where: str, table: str) -> str:
    """A hub name stays as written; a path (absolute, ``~`` or ``./``) is made
    absolute and must exist, so a moved model folder fails here, named."""
    expanded = os.path.expanduser(model)
    if not (os.path.isabs(expanded) or model.startswith((".", "~"))):
        return model
    folder = Path(expanded) if os.path.isabs(expanded) else (base / expanded).resolve()
    if not folder.is_dir():
        raise ConfigError(
            f"{where}: [{table}] model folder {str(folder)!r} does not exist (run scripts/setup.sh again, "
            f"edit or delete the profile, or set {PROFILE_ENV}=hub)"
        )
    return str(folder)


def _check_kinds(profile: ModelProfile, where: str) -> None:
    try:
        DenseEncoderConfig(model=profile.dense.model, kind=profile.dense.kind)  # type: ignore[arg-type]
        SparseEncoderConfig(model=profile.sparse.model, kind=profile.sparse.kind)  # type: ignore[arg-type]
        RerankConfig(model=profile.rerank.model, kind=profile.rerank.kind)  # type: ignore[arg-type]
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from error


def write_profile(path: Path, choices: dict[str, ModelChoice], *, note: str) -> None:
    """Write a profile file holding ``choices`` (tables dense / sparse / rerank)."""
    lines = [f"# {line}" for line in note.splitlines()]
    for table in _TABLES:
        choice = choices.get(table)
        if choice is None:
            continue
        lines.append(f"[{table}]")
        for key, value in (("model", choice.model), ("kind", choice.kind), ("query_prompt", choice.query_prompt), ("document_prompt", choice.document_prompt)):
            if value is not None:
                lines.append(f"{key} = {_toml_string(value)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _read_profile(path)  # what was written must load


def _toml_string(value: Any) -> str:
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


# The folders scripts/get-models.sh assembles, best first per table.
_LOCAL_DENSE = (("multilingual-e5-small", "sentence-transformers"), ("all-MiniLM-L6-v2", "sentence-transformers"))
_LOCAL_SPARSE = (("splade-tiny", "splade"),)


def local_profile_choices(models_dir: Path) -> dict[str, ModelChoice]:
    """The dense and sparse models found in a folder filled by get-models.sh;
    a ConfigError names what is missing. (No reranker travels offline, so
    ``--rerank`` still needs ``--rerank-model`` or a [rerank] table.)"""
    choices: dict[str, ModelChoice] = {}
    for table, candidates in (("dense", _LOCAL_DENSE), ("sparse", _LOCAL_SPARSE)):
        for folder, kind in candidates:
            if (models_dir / folder / "config.json").is_file():
                choices[table] = ModelChoice(str((models_dir / folder).resolve()), kind)
                break
        else:
            names = " or ".join(folder for folder, _ in candidates)
            raise ConfigError(f"no {table} model in {str(models_dir)!r} (looked for {names}); run scripts/get-models.sh {models_dir}")
    return choices
