"""Writing results: JSON with everything needed to reproduce a number, a
Markdown table for people, and PNG plots.

Every JSON carries the exact command line, the git revision (``uncommitted``
when the tree has no commit yet; ``+dirty`` when it has local changes), the
machine (CPU model and count, RAM, GPU, platform) and the versions of the
packages that decide the numbers.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["command_line", "environment", "fmt", "git_revision", "markdown_table", "write_json", "write_text"]

PACKAGES = (
    "hybrid-search",
    "torch",
    "transformers",
    "sentence-transformers",
    "FlagEmbedding",
    "pymilvus",
    "milvus-lite",
    "numpy",
    "ranx",
    "bm25s",
    "rank-bm25",
    "jieba",
)


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_revision(root: Path | None = None) -> str:
    root = root or Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "uncommitted"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> str | None:
    if "torch" not in sys.modules:
        return None
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return None


@lru_cache(maxsize=1)
def _static_machine() -> dict[str, Any]:
    memory = None
    try:
        import psutil

        memory = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    cpus = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    return {
        "cpu": _cpu_model(),
        "cpu_count": cpus,
        "cpu_usable": usable,
        "ram_gib": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["python", "-m", "benchmarks", *sys.argv[1:]]) if sys.argv else ""


def environment() -> dict[str, Any]:
    machine = dict(_static_machine())
    machine["gpu"] = _gpu()
    try:
        machine["torch_threads"] = __import__("torch").get_num_threads() if "torch" in sys.modules else None
    except Exception:  # noqa: BLE001
        machine["torch_threads"] = None
    return {
        "command": command_line(),
        "git_revision": git_revision(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "packages": {name: package_version(name) for name in PACKAGES},
    }


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=_default) + "\n", encoding="utf-8")
    return path


def write_text(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c) for c in row) + " |")
    return "\n".join(lines)


def machine_line(env: Mapping[str, Any]) -> str:
    m = env["machine"]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    return f"{m['cpu']} ({m['cpu_usable']} usable CPUs, {m['ram_gib']} GiB RAM{gpu}), {m['platform']}, Python {m['python']}"
