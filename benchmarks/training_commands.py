"""The ``python -m benchmarks`` commands that measure training runs:
``training-run`` (a run plan), ``training-fusion``, ``rerank-offload``,
``rerank-weights``. Each reads what it measures from a training pipeline
config (``training_inputs``) and writes into the results folder beside it.
Heavy imports happen inside the commands, so ``--help`` stays instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

__all__ = ["register"]

CONFIG_HELP = "training pipeline config (TOML), e.g. benchmarks/results/training/nvidia_sec_10k_sparse.toml"
RESULTS_HELP = "results folder (default: beside the config, named after it)"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run(config: Path, results: Path | None):
    from .training_inputs import load_training_run

    return load_training_run(config, results=results)


def training_run(
    plan: str = typer.Argument(..., help="a plan name in benchmarks/training_plans/ (e.g. nvidia_sec_10k_reranker) or a plan file"),
    device: str = typer.Option("auto", help="fills {device} in the plan's commands: cpu, cuda or auto"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the command lines, run nothing"),
    logs: Path = typer.Option(Path("runs/plans"), help="each step's output goes to LOGS/PLAN/step-N.log"),
) -> None:
    """Run a training run plan: `hybrid-search train` and benchmark steps declared in TOML, recorded in RESULTS/training_run.json."""
    from .training_plan import load_plan, plan_file, run_plan

    record = run_plan(load_plan(plan_file(plan)), device=device, dry_run=dry_run, logs=logs, log=_log)
    if not record["ok"]:
        raise typer.Exit(1)


def training_fusion(
    config: Path = typer.Argument(..., help=CONFIG_HELP),
    results: Path | None = typer.Option(None, help=RESULTS_HELP),
) -> None:
    """Fusion tuned on a training run's dev queries for its base and tuned collections, test vs BM25 (fusion_tuning.json)."""
    from .training_fusion import run_training_fusion

    typer.echo(json.dumps(run_training_fusion(_run(config, results), log=_log)["systems"], indent=1))


offload_app = typer.Typer(
    no_args_is_help=True,
    help="Score a training run's reranker on another machine: lists (here), score (GPU), report (here).",
)


@offload_app.command("lists")
def offload_lists_command(
    config: Path = typer.Argument(..., help=CONFIG_HELP), results: Path | None = typer.Option(None, help=RESULTS_HELP)
) -> None:
    """The engine's BM25 and hybrid test lists with their texts (RUN/offload/lists.json.gz) and their metrics (unreranked.json)."""
    from .rerank_offload import offload_lists

    typer.echo(json.dumps(offload_lists(_run(config, results), log=_log), indent=1))


@offload_app.command("score")
def offload_score_command(
    config: Path = typer.Argument(..., help=CONFIG_HELP),
    results: Path | None = typer.Option(None, help=RESULTS_HELP),
    model: Path | None = typer.Option(None, help="reranker folder (default: RUN/reranker/model)"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    limit: int | None = typer.Option(None, min=1, help="only the first N queries (a smoke run)"),
) -> None:
    """Score every list with the run's reranker, as Engine.search would (scores.json)."""
    from .rerank_offload import offload_score

    result = offload_score(_run(config, results), model=model, device=device, limit=limit)
    typer.echo(f"scored {sum(len(v) for v in result['scores'].values())} lists in {result['seconds']} s")


@offload_app.command("report")
def offload_report_command(
    config: Path = typer.Argument(..., help=CONFIG_HELP), results: Path | None = typer.Option(None, help=RESULTS_HELP)
) -> None:
    """The lists reordered by their scores as Engine.search orders them, with the evaluation's metrics (metrics.json, .md)."""
    from .rerank_offload import offload_report, report_markdown

    run = _run(config, results)
    typer.echo(report_markdown(offload_report(run), tuple(run.evaluation.metrics)))


def rerank_weights(
    config: Path = typer.Argument(..., help=CONFIG_HELP),
    results: Path | None = typer.Option(None, help=RESULTS_HELP),
    model: Path | None = typer.Option(None, help="reranker folder (default: RUN/reranker/model)"),
    offloaded: bool = typer.Option(False, "--offloaded", help="test scores from RESULTS/scores.json (rerank-offload score)"),
    device: str = typer.Option("cpu", help="device the dev (and test) queries are reranked on"),
) -> None:
    """First-stage weight of a run's reranker chosen on dev; test at every weight, paired tests (rerank_weights.json, .md)."""
    from .rerank_weights import rerank_weights_markdown, run_rerank_weights

    result = run_rerank_weights(_run(config, results), model=model, offloaded=offloaded, device=device, log=_log)
    typer.echo(rerank_weights_markdown(result))


def register(app: typer.Typer) -> None:
    app.command(name="training-run")(training_run)
    app.command(name="training-fusion")(training_fusion)
    app.add_typer(offload_app, name="rerank-offload")
    app.command(name="rerank-weights")(rerank_weights)
