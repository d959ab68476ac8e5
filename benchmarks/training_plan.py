"""Training run plans (``python -m benchmarks training-run PLAN``): a sequence
of the project's own commands, declared as data, run in order, recorded with
the results they write.

A plan is a TOML file (``benchmarks/training_plans/``)::

    description = "what the run measures"
    results = "benchmarks/results/training/NAME"   # where the record goes
    record = "training_run.json"                   # optional: the record's file name there
    env = { HF_HUB_OFFLINE = "1" }                 # optional, for every step

    [[step]]
    run = ["hybrid-search", "train", "all", "--config", "...", "--data-path", "{datasets}/nvidia_sec_10k"]

    [[step]]
    run = ["benchmarks", "rerank-offload", "score", "...", "--device", "{device}"]

    [[step]]
    collect = { from = "runs/training/NAME", files = { "reranker/run.json" = "run.json" } }

A ``run`` step is ``hybrid-search ...`` or ``benchmarks ...`` (``python -m
benchmarks``) and nothing else, run with this interpreter; ``{device}``,
``{datasets}`` and ``{models}`` are filled in (``--device``, the benchmarks'
dataset and model folders). A ``collect`` step copies files a run wrote into
the results folder (a list keeps their relative paths, a
table ``{SOURCE = TARGET}`` renames them). Paths are relative to the repository root.
The record (``RESULTS/training_run.json``, or the plan's ``record``) names the command, the plan and its
sha256, the environment, and every step's command line, exit status and
seconds; each step's output goes to ``runs/plans/PLAN/step-N.log``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_search.errors import ConfigError, InputError

__all__ = ["PROGRAMS", "PlanStep", "RunPlan", "load_plan", "plan_file", "run_plan"]

# The commands a step may run: the project's own two CLIs, with this interpreter.
PROGRAMS = {"hybrid-search": "hybrid_search.cli", "benchmarks": "benchmarks"}
PLACEHOLDERS = ("device", "datasets", "models")
PLANS_DIR = Path(__file__).resolve().parent / "training_plans"


@dataclass(frozen=True)
class PlanStep:
    """One step: a command (``run``) or files to copy into the results (``collect``)."""

    run: tuple[str, ...] = ()
    collect_from: str | None = None
    collect_files: tuple[tuple[str, str], ...] = ()  # (file in the run folder, where it goes in the results)

    def __post_init__(self) -> None:
        if bool(self.run) == (self.collect_from is not None):
            raise ConfigError("a plan step is either `run = [...]` or `collect = {from, files}`")
        if self.run and self.run[0] not in PROGRAMS:
            raise ConfigError(f"a plan step runs {' or '.join(PROGRAMS)}; got {self.run[0]!r}")
        if self.collect_from is not None and not self.collect_files:
            raise ConfigError("a collect step names no files")
        for name in (name for pair in self.collect_files for name in pair):
            if not name or Path(name).is_absolute() or ".." in Path(name).parts:
                raise ConfigError(f"a collect step names files inside its folders; got {name!r}")
        targets = [target for _, target in self.collect_files]
        if len(set(targets)) != len(targets):
            raise ConfigError(f"a collect step copies two files to one place: {sorted(targets)}")
        if self.run:
            self.argv(dict.fromkeys(PLACEHOLDERS, ""))  # an unknown placeholder fails here, before anything runs

    def argv(self, values: Mapping[str, str]) -> list[str]:
        """The command line, placeholders filled, with this interpreter."""
        try:
            args = [arg.format(**values) for arg in self.run[1:]]
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(f"plan step {' '.join(self.run)}: unknown placeholder ({error}); known: {', '.join(PLACEHOLDERS)}") from error
        return [sys.executable, "-m", PROGRAMS[self.run[0]], *args]

    def describe(self) -> str:
        if self.run:
            return " ".join(self.run)
        return f"collect {', '.join(source for source, _ in self.collect_files)} from {self.collect_from}"


@dataclass(frozen=True)
class RunPlan:
    name: str
    path: Path
    sha256: str
    description: str
    results: Path
    steps: tuple[PlanStep, ...]
    env: Mapping[str, str]
    record: str = "training_run.json"


def plan_file(name_or_path: str) -> Path:
    """A plan by file path, or by name in ``benchmarks/training_plans/``."""
    given = Path(name_or_path)
    if given.is_file():
        return given
    named = PLANS_DIR / f"{name_or_path}.toml"
    if named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in PLANS_DIR.glob("*.toml")))
    raise InputError(f"no training run plan {name_or_path!r} (a TOML file, or one of: {known})")


def _step(raw: Any, where: str) -> PlanStep:
    if not isinstance(raw, Mapping) or set(raw) - {"run", "collect"}:
        raise ConfigError(f"{where}: a step has `run` or `collect`; got {raw!r}")
    run = raw.get("run", [])
    if not isinstance(run, list) or not all(isinstance(a, str) for a in run):
        raise ConfigError(f"{where}: `run` must be a list of strings")
    collect = raw.get("collect")
    if collect is not None and (not isinstance(collect, Mapping) or set(collect) != {"from", "files"}):
        raise ConfigError(f"{where}: `collect` must be {{from = FOLDER, files = [...] or {{SOURCE = TARGET}}}}")
    files = collect["files"] if collect else []
    # A list keeps each file's relative path; a table renames (SOURCE = TARGET).
    pairs = [(str(k), str(v)) for k, v in files.items()] if isinstance(files, Mapping) else [(str(f), str(f)) for f in files]
    try:
        return PlanStep(run=tuple(run), collect_from=str(collect["from"]) if collect else None, collect_files=tuple(pairs))
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from error


def load_plan(path: Path) -> RunPlan:
    """Read and check a plan: every step, before anything runs."""
    path = Path(path)
    text = path.read_bytes()
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not valid TOML: {error}") from error
    known = ("description", "results", "record", "env", "step")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{path.name}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    record = raw.get("record", "training_run.json")
    if not isinstance(record, str) or Path(record).name != record or not record.endswith(".json"):
        raise ConfigError(f"{path.name}: `record` must be a file name ending in .json; got {record!r}")
    if not isinstance(raw.get("results"), str) or not raw["results"]:
        raise ConfigError(f"{path.name}: `results` (the folder the record goes to) is missing")
    steps = raw.get("step", [])
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"{path.name}: no [[step]]")
    env = raw.get("env", {})
    if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
        raise ConfigError(f"{path.name}: `env` must be a table of strings")
    return RunPlan(
        name=path.stem,
        path=path,
        sha256=hashlib.sha256(text).hexdigest(),
        description=str(raw.get("description", "")),
        results=Path(raw["results"]),
        steps=tuple(_step(s, f"{path.name} step {i}") for i, s in enumerate(steps, 1)),
        env=dict(env),
        record=record,
    )


def _collect(step: PlanStep, results: Path) -> list[str]:
    source = Path(step.collect_from or "")
    missing = [name for name, _ in step.collect_files if not (source / name).is_file()]
    if missing:
        raise InputError(f"collect: {', '.join(missing)} missing under {source}")
    for name, target in step.collect_files:
        (results / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, results / target)
    return [str(results / target) for _, target in step.collect_files]


def run_plan(
    plan: RunPlan, *, device: str = "auto", dry_run: bool = False, logs: Path = Path("runs/plans"), log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run every step in order, stopping at the first that fails; the record is written either way
    (not for a dry run, which only prints the command lines)."""
    from .presets import datasets_dir, models_dir
    from .report import environment, write_json

    values = {"device": device, "datasets": str(datasets_dir()), "models": str(Path(models_dir()).expanduser())}
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **plan.env}
    record: dict[str, Any] = {
        "plan": str(plan.path),
        "plan_sha256": plan.sha256,
        "description": plan.description,
        "device": device,
        "placeholders": values,
        "environment": environment(),
        "steps": [],
    }
    failed = False
    for number, step in enumerate(plan.steps, 1):
        entry: dict[str, Any] = {"step": step.describe()}
        record["steps"].append(entry)
        if failed:
            entry["status"] = "not run"
            continue
        if step.run:
            argv = step.argv(values)
            entry["argv"] = argv[1:]
            log(f"[{number}/{len(plan.steps)}] {' '.join(argv)}")
            if dry_run:
                continue
            output = logs / plan.name / f"step-{number}.log"
            output.parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            with output.open("w", encoding="utf-8") as handle:
                status = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False).returncode
            entry.update(returncode=status, seconds=round(time.perf_counter() - started, 1), log=str(output))
            failed = status != 0
            if failed:
                log(f"step {number} failed (exit {status}); its output: {output}")
        else:
            log(f"[{number}/{len(plan.steps)}] {step.describe()}")
            if not dry_run:
                try:
                    entry["copied"] = _collect(step, plan.results)
                except InputError as error:
                    entry["error"] = str(error)
                    failed = True
                    log(f"step {number} failed: {error}")
    record["ok"] = not failed
    if not dry_run:
        write_json(plan.results / plan.record, record)
    return record
