"""Run folders: every training stage writes into one folder with a manifest.

A run folder is plain files::

    <run>/run.json      what ran: stage, resolved config, sha256 of the data,
                        seed, git revision, package versions, status, metrics
    <run>/checkpoints/  the trainer's checkpoints (what a resumed run starts from)
    <run>/model/        the finished model, loadable by the engine

Re-running a stage into the same folder with the same config and data is a
no-op once it finished, and resumes from the last checkpoint if it did not;
with a different config or data it is refused, so a folder never holds a model
that its manifest does not describe.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from hybrid_search.config import to_plain
from hybrid_search.errors import ConfigError

__all__ = [
    "RUN_MANIFEST",
    "RunManifest",
    "RunState",
    "begin_run",
    "finish_run",
    "fail_run",
    "read_manifest",
    "last_checkpoint",
    "sha256_files",
    "git_revision",
    "package_versions",
    "resolve_device",
    "plain",
    "write_json",
    "Device",
    "Precision",
    "check_choice",
    "config_from_plain",
    "model_path",
]

RUN_MANIFEST = "run.json"
Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]
RunState = Literal["running", "finished", "failed"]

# The packages whose versions decide what a run produces.
_PACKAGES = (
    "hybrid-search",
    "torch",
    "transformers",
    "sentence-transformers",
    "FlagEmbedding",
    "accelerate",
    "datasets",
    "pymilvus",
    "milvus-lite",
)


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ConfigError naming the allowed values (used by every config here)."""
    allowed = tuple(choices)
    if value not in allowed:
        raise ConfigError(f"{owner}.{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def plain(obj: Any) -> Any:
    """A config (nested dataclasses, paths, tuples) as JSON-able data."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {key: plain(value) for key, value in to_plain(obj).items()}
    if isinstance(obj, Mapping):
        return {str(key): plain(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(value) for value in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_from_plain(cls: type, data: Any, *, where: str = "") -> Any:
    """Build a (nested) config dataclass from plain data (a TOML or JSON file),
    refusing unknown keys; each dataclass validates its own values."""
    where = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table of settings; got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except TypeError as error:  # a required setting is missing
        raise ConfigError(f"{where}: {error}") from error


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, where) if len(options) == 1 else value
    if is_dataclass(hint) and isinstance(hint, type):
        return config_from_plain(hint, value, where=where)
    if origin is tuple and isinstance(value, (list, tuple)):
        item = typing.get_args(hint)[0] if typing.get_args(hint) else Any
        return tuple(_convert(item, v, where) for v in value)
    if origin is dict and isinstance(value, Mapping):
        return dict(value)
    return value


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader never sees half a manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def sha256_files(paths: Iterable[Path]) -> str:
    """One digest over the files' names and contents, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def git_revision(cwd: Path | None = None) -> str | None:
    """The commit the code ran from, with ``-dirty`` when files were changed."""
    where = str(cwd or Path(__file__).resolve().parent)
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{revision}-dirty" if dirty else revision


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def model_path(model: str) -> str:
    """A local folder (``~`` expanded) when there is one, else the name as given
    (a hub id): the same rule the engine's loaders follow."""
    expanded = os.path.expanduser(model)
    return expanded if os.path.exists(expanded) else model


def resolve_device(device: Device) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


@dataclass
class RunManifest:
    stage: str
    config: dict[str, Any]
    data_sha256: str
    seed: int
    status: RunState = "running"
    git_revision: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)
    device: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    resumed_from: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_manifest(run_dir: Path) -> RunManifest | None:
    path = Path(run_dir) / RUN_MANIFEST
    if not path.is_file():
        return None
    return RunManifest(**json.loads(path.read_text(encoding="utf-8")))


def last_checkpoint(run_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` folder the trainer left, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    return get_last_checkpoint(str(folder))


def begin_run(
    run_dir: Path,
    *,
    stage: str,
    config: Any,
    data_files: Iterable[Path],
    seed: int,
    device: str | None = None,
) -> tuple[RunManifest, bool]:
    """Open a run folder. Returns (manifest, done): ``done`` is True when an
    identical run already finished there, so the caller can skip the work."""
    run_dir = Path(run_dir)
    resolved = plain(config)
    data_sha = sha256_files(data_files)
    previous = read_manifest(run_dir)
    if previous is not None:
        if previous.stage != stage or previous.config != resolved or previous.data_sha256 != data_sha:
            what = "stage" if previous.stage != stage else "config" if previous.config != resolved else "training data"
            raise ConfigError(
                f"{run_dir} holds a {previous.stage} run with a different {what}; use a new folder for a new run "
                "(or delete this one) so a model never sits beside a manifest that does not describe it"
            )
        if previous.status == "finished" and (run_dir / "model").is_dir():
            return previous, True
    manifest = RunManifest(
        stage=stage,
        config=resolved,
        data_sha256=data_sha,
        seed=seed,
        git_revision=git_revision(),
        packages=package_versions(),
        device=device,
        resumed_from=last_checkpoint(run_dir),
    )
    write_json(run_dir / RUN_MANIFEST, manifest.to_dict())
    return manifest, False


def finish_run(run_dir: Path, manifest: RunManifest, metrics: Mapping[str, Any]) -> RunManifest:
    manifest.status = "finished"
    manifest.finished_at = time.time()
    manifest.metrics = plain(dict(metrics))
    write_json(Path(run_dir) / RUN_MANIFEST, manifest.to_dict())
    return manifest


def fail_run(run_dir: Path, manifest: RunManifest, error: BaseException) -> None:
    manifest.status = "failed"
    manifest.finished_at = time.time()
    manifest.error = f"{type(error).__name__}: {error}"
    write_json(Path(run_dir) / RUN_MANIFEST, manifest.to_dict())
