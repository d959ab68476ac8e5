"""Layered settings for the command line: flags, then a TOML config file, then
environment variables (``HYBRID_SEARCH_*``), then built-in defaults.

The config file has one table per concern::

    [store]       uri, token, db_name, timeout_s
    [runtime]     device, batch_size, fp16
    [collection]  name, dense_model, dense_kind, query_prompt, document_prompt,
                  sparse_model, sparse_kind, language, user_dict, no_dense, no_sparse
    [rerank]      model, kind, top_n, min_score, max_length, long_passages,
                  first_stage_weight
    [search]      k, depth, paths, fusion
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["LayeredSettings", "ENV_PREFIX"]

ENV_PREFIX = "HYBRID_SEARCH_"
_KNOWN: dict[str, set[str]] = {
    "store": {"uri", "token", "db_name", "timeout_s"},
    "runtime": {"device", "batch_size", "fp16"},
    "collection": {
        "name", "dense_model", "dense_kind", "query_prompt", "document_prompt", "sparse_model",
        "sparse_kind", "language", "user_dict", "no_dense", "no_sparse",
    },
    "rerank": {"model", "kind", "top_n", "min_score", "max_length", "long_passages", "first_stage_weight"},
    "search": {"k", "depth", "paths", "fusion"},
}


def _env_name(section: str, key: str) -> str:
    # [store] uri -> HYBRID_SEARCH_URI; [collection] name -> HYBRID_SEARCH_COLLECTION;
    # [rerank] model -> HYBRID_SEARCH_RERANK_MODEL; others SECTION_KEY.
    if section in ("store", "runtime"):
        return ENV_PREFIX + key.upper()
    if section == "collection" and key == "name":
        return ENV_PREFIX + "COLLECTION"
    if section == "collection":
        return ENV_PREFIX + key.upper()
    return ENV_PREFIX + f"{section}_{key}".upper()


def _coerce(raw: str, like: Any) -> Any:
    if isinstance(like, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected a boolean, got {raw!r}")
    if isinstance(like, int):
        try:
            return int(raw)
        except ValueError as error:
            raise ConfigError(f"expected an integer, got {raw!r}") from error
    if isinstance(like, float):
        try:
            return float(raw)
        except ValueError as error:
            raise ConfigError(f"expected a number, got {raw!r}") from error
    return raw


@dataclass
class LayeredSettings:
    file_values: dict[str, dict[str, Any]]
    source: Path | None

    @classmethod
    def load(cls, path: Path | None) -> LayeredSettings:
        if path is None:
            env_path = os.environ.get(ENV_PREFIX + "CONFIG")
            path = Path(env_path) if env_path else None
        if path is None:
            return cls({}, None)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}") from error
        for section, values in data.items():
            if section not in _KNOWN or not isinstance(values, dict):
                raise ConfigError(f"config file {str(path)!r}: unknown table [{section}]; tables are {', '.join(_KNOWN)}")
            unknown = set(values) - _KNOWN[section]
            if unknown:
                raise ConfigError(f"config file {str(path)!r}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
        # Relative paths in the file are relative to the file, not the working directory.
        base = path.resolve().parent
        for section, key in (("store", "uri"), ("collection", "user_dict")):
            value = data.get(section, {}).get(key)
            if isinstance(value, str) and "://" not in value and not os.path.isabs(os.path.expanduser(value)):
                data[section][key] = str(base / value)
        for key in ("dense_model", "sparse_model"):
            value = data.get("collection", {}).get(key)
            if isinstance(value, str) and value.startswith("."):
                data["collection"][key] = str(base / value)
        value = data.get("rerank", {}).get("model")
        if isinstance(value, str) and value.startswith("."):
            data["rerank"]["model"] = str(base / value)
        return cls(data, path)

    def get(self, section: str, key: str, flag: Any, default: Any) -> Any:
        """flag > config file > environment > default."""
        if flag is not None:
            return flag
        if key in self.file_values.get(section, {}):
            return self.file_values[section][key]
        raw = os.environ.get(_env_name(section, key))
        if raw is not None and raw != "":
            try:
                return _coerce(raw, default) if default is not None else raw
            except ConfigError as error:
                raise ConfigError(f"environment variable {_env_name(section, key)}: {error}") from error
        return default
