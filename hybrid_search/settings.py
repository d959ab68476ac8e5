"""Layered settings for every command (``index``, ``search``, ``serve``,
``train ...``): flags, then a TOML config file, then environment variables
(``HYBRID_SEARCH_*``), then built-in defaults.

Every setting is declared once below with its type; a value from the file or
the environment is parsed to that type (bool: true/false/1/0/yes/no/on/off;
int; float; a ``Literal`` choice) or refused with the file key or the
variable named, never passed on as a raw string.

The config file has one table per concern::

    [store]       uri, token, db_name, timeout_s
    [runtime]     device, batch_size, fp16, backend, quantize
    [collection]  name, dense_model, dense_kind, query_prompt, document_prompt,
                  sparse_model, sparse_kind, language, user_dict, no_dense, no_sparse
    [rerank]      model, kind, top_n, min_score, max_length, long_passages,
                  first_stage_weight, int8_calibration
    [search]      k, depth, paths, fusion
"""

from __future__ import annotations

import math
import os
import tomllib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from .config import (
    Backend,
    Quantize,
    DEFAULT_DENSE_MODEL,
    DEFAULT_STORE_URI,
    DenseKind,
    Device,
    FusionMethod,
    Language,
    LongPassages,
    RerankConfig,
    RerankKind,
    RuntimeConfig,
    SparseKind,
    StoreConfig,
)
from .errors import ConfigError, InputError
from .profiles import HUB_PROFILE, ModelChoice, load_model_profile

__all__ = ["ENV_PREFIX", "SETTINGS", "LayeredSettings", "Setting", "env_name", "parse_value", "parse_weights"]

ENV_PREFIX = "HYBRID_SEARCH_"
_UNSET: Any = object()


@dataclass(frozen=True)
class Setting:
    """One setting: where it lives in the file, its type and its default."""

    section: str
    key: str
    type: Any
    default: Any = None

    @property
    def env(self) -> str:
        return env_name(self.section, self.key)


def env_name(section: str, key: str) -> str:
    """[store] uri -> HYBRID_SEARCH_URI; [collection] name -> HYBRID_SEARCH_COLLECTION;
    [rerank] model -> HYBRID_SEARCH_RERANK_MODEL; [search] k -> HYBRID_SEARCH_SEARCH_K."""
    if section in ("store", "runtime"):
        return ENV_PREFIX + key.upper()
    if section == "collection":
        return ENV_PREFIX + ("COLLECTION" if key == "name" else key.upper())
    return ENV_PREFIX + f"{section}_{key}".upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("store", "uri", str, DEFAULT_STORE_URI),
    Setting("store", "token", str | None),
    Setting("store", "db_name", str | None),
    Setting("store", "timeout_s", float, 60.0),
    Setting("runtime", "device", Device, "auto"),
    Setting("runtime", "batch_size", int, 32),
    Setting("runtime", "fp16", bool | None),  # unset: fp16 on CUDA, fp32 on CPU
    Setting("runtime", "backend", Backend | None),  # unset: as each collection records
    Setting("runtime", "quantize", Quantize | None),
    Setting("collection", "name", str | None),
    Setting("collection", "dense_model", str, DEFAULT_DENSE_MODEL),
    Setting("collection", "dense_kind", DenseKind, "bge-m3"),
    Setting("collection", "query_prompt", str | None),
    Setting("collection", "document_prompt", str | None),
    Setting("collection", "sparse_model", str, DEFAULT_DENSE_MODEL),
    Setting("collection", "sparse_kind", SparseKind, "bge-m3"),
    Setting("collection", "language", Language, "en"),
    Setting("collection", "user_dict", str | None),
    Setting("collection", "no_dense", bool, False),
    Setting("collection", "no_sparse", bool, False),
    Setting("rerank", "model", str | None),
    Setting("rerank", "kind", RerankKind, "flag"),
    Setting("rerank", "top_n", int, 50),
    Setting("rerank", "min_score", float | None),
    Setting("rerank", "max_length", int, 512),
    Setting("rerank", "long_passages", LongPassages, "truncate"),
    Setting("rerank", "first_stage_weight", float, 0.0),
    Setting("rerank", "int8_calibration", str | None),
    Setting("search", "k", int, 10),
    Setting("search", "depth", int, 100),
    Setting("search", "paths", str | None),
    Setting("search", "fusion", FusionMethod | None),
)
_BY_NAME: dict[tuple[str, str], Setting] = {(s.section, s.key): s for s in SETTINGS}
_SECTIONS: dict[str, set[str]] = {}
for _setting in SETTINGS:
    _SECTIONS.setdefault(_setting.section, set()).add(_setting.key)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _base_type(kind: Any) -> Any:
    """``X | None`` -> X."""
    if get_origin(kind) in (Union, types.UnionType):
        others = [arg for arg in get_args(kind) if arg is not type(None)]
        if len(others) == 1:
            return others[0]
    return kind


def parse_value(raw: Any, kind: Any, where: str) -> Any:
    """``raw`` (text from the environment, or a TOML value) as ``kind``, or a
    ConfigError naming ``where`` (the variable or the file key)."""
    kind = _base_type(kind)
    text = raw.strip() if isinstance(raw, str) else None
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if text is not None and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ConfigError(f"{where} must be true or false (also 1/0, yes/no, on/off); got {raw!r}")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        try:
            return int(text or "")
        except ValueError:
            raise ConfigError(f"{where} must be an integer; got {raw!r}") from None
    if kind is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = float(raw)
        else:
            try:
                value = float(text or "")
            except ValueError:
                raise ConfigError(f"{where} must be a number; got {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number; got {raw!r}")
        return value
    if get_origin(kind) is Literal:
        choices = get_args(kind)
        value = text if text is not None else raw
        if value not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, choices))}; got {raw!r}")
        return value
    if kind is str:
        if text is None:
            raise ConfigError(f"{where} must be text; got {raw!r}")
        return raw
    raise TypeError(f"no parser for settings type {kind!r}")  # a programming error in SETTINGS


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``bm25=1,dense=0.5`` as {path: weight} (None for no text)."""
    if not text:
        return None
    weights: dict[str, float] = {}
    for part in text.split(","):
        path, _, value = part.partition("=")
        try:
            weights[path.strip()] = float(value)
        except ValueError as error:
            raise InputError(f"--weights: write PATH=NUMBER pairs like bm25=1,dense=0.5; got {part!r}") from error
    return weights


@dataclass
class LayeredSettings:
    """The file's values plus the flags given once for the whole command line
    (``hybrid-search --uri ... --token ... --device ...``)."""

    file_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: Path | None = None
    global_flags: dict[tuple[str, str], Any] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        *,
        uri: str | None = None,
        token: str | None = None,
        device: str | None = None,
        backend: str | None = None,
        quantize: str | None = None,
    ) -> LayeredSettings:
        """Read ``path`` (or the file ``HYBRID_SEARCH_CONFIG`` names), checking
        every table, key and value type."""
        given = ((("store", "uri"), uri), (("store", "token"), token), (("runtime", "device"), device), (("runtime", "backend"), backend), (("runtime", "quantize"), quantize))
        flags = {key: value for key, value in given if value is not None}
        if path is None:
            env_path = os.environ.get(ENV_PREFIX + "CONFIG")
            path = Path(env_path) if env_path else None
        if path is None:
            return cls({}, None, flags)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}") from error
        for section, values in data.items():
            if section not in _SECTIONS or not isinstance(values, dict):
                raise ConfigError(f"config file {str(path)!r}: unknown table [{section}]; tables are {', '.join(_SECTIONS)}")
            unknown = set(values) - _SECTIONS[section]
            if unknown:
                raise ConfigError(f"config file {str(path)!r}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
            for key, value in values.items():
                values[key] = parse_value(value, _BY_NAME[section, key].type, f"config file {str(path)!r}: [{section}] {key}")
        # Relative paths in the file are relative to the file, not the working directory.
        base = path.resolve().parent
        for section, key in (("store", "uri"), ("collection", "user_dict")):
            value = data.get(section, {}).get(key)
            if isinstance(value, str) and "://" not in value and not os.path.isabs(os.path.expanduser(value)):
                data[section][key] = str(base / value)
        for section, key in (("collection", "dense_model"), ("collection", "sparse_model"), ("rerank", "model")):
            value = data.get(section, {}).get(key)
            if isinstance(value, str) and value.startswith("."):
                data[section][key] = str(base / value)
        return cls(data, path, flags)

    def get(self, section: str, key: str, flag: Any = None, default: Any = _UNSET) -> Any:
        """flag > global flag > config file > environment > default (the
        declared one unless ``default`` is given), parsed to the declared type."""
        setting = _BY_NAME.get((section, key))
        if setting is None:
            raise KeyError(f"no setting [{section}] {key}")
        if flag is not None:
            return flag
        if (section, key) in self.global_flags:
            return self.global_flags[section, key]
        if key in self.file_values.get(section, {}):
            return self.file_values[section][key]
        raw = os.environ.get(setting.env)
        if raw is not None and raw.strip() != "":
            return parse_value(raw, setting.type, f"environment variable {setting.env}")
        return setting.default if default is _UNSET else default

    def above_environment(self, section: str, key: str) -> Any:
        """The global flag's or the file's value (None if neither sets it), for
        shells that read the environment themselves (``serve``'s ApiSettings)."""
        if (section, key) in self.global_flags:
            return self.global_flags[section, key]
        return self.file_values.get(section, {}).get(key)

    @classmethod
    def of(cls, ctx: Any) -> LayeredSettings:
        """The settings the ``hybrid-search`` callback put on a Typer context, or
        (a command run on its own) the config file and environment alone."""
        root = ctx.find_root() if ctx is not None else None
        if root is not None and isinstance(root.obj, LayeredSettings):
            return root.obj
        return cls.load(None)

    # --- the typed configs every command builds ------------------------------------

    def model_choice(self, table: str, flag: str | None = None) -> ModelChoice:
        """The dense, sparse or rerank model: one named by a flag, the file or
        the environment (its kind defaulting to the hub's), else the model
        profile's (hybrid_search.profiles: setup's local models, or the hub's)."""
        section, key = ("rerank", "model") if table == "rerank" else ("collection", f"{table}_model")
        named = self.get(section, key, flag, None)
        if named:
            return ModelChoice(named, HUB_PROFILE.choice(table).kind)
        return load_model_profile().choice(table)

    def store_config(self, uri: str | None = None, token: str | None = None) -> StoreConfig:
        return StoreConfig(
            uri=self.get("store", "uri", uri),
            token=self.get("store", "token", token),
            db_name=self.get("store", "db_name"),
            timeout_s=self.get("store", "timeout_s"),
        )

    def runtime_config(self, device: str | None = None, batch_size: int | None = None) -> RuntimeConfig:
        return RuntimeConfig(
            device=self.get("runtime", "device", device),
            batch_size=self.get("runtime", "batch_size", batch_size),
            fp16=self.get("runtime", "fp16"),
            backend=self.get("runtime", "backend"),
            quantize=self.get("runtime", "quantize"),
        )

    def rerank_config(
        self,
        model: str | None = None,
        kind: str | None = None,
        top_n: int | None = None,
        min_score: float | None = None,
        first_stage_weight: float | None = None,
    ) -> RerankConfig:
        choice = self.model_choice("rerank", model)
        return RerankConfig(
            model=choice.model,
            kind=self.get("rerank", "kind", kind, choice.kind),
            top_n=self.get("rerank", "top_n", top_n),
            min_score=self.get("rerank", "min_score", min_score),
            max_length=self.get("rerank", "max_length"),
            long_passages=self.get("rerank", "long_passages"),
            first_stage_weight=self.get("rerank", "first_stage_weight", first_stage_weight),
            int8_calibration=self.get("rerank", "int8_calibration"),
        )
