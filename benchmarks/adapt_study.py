"""`hybrid-search adapt` measured as a user runs it: one command on a served
collection, then the served configuration's nDCG@10 on the dataset's real
test questions, before vs after, with the paired randomization test.

The collection is the benchmark index of the dataset (one chunk per
document, the preset's models), copied into a fresh Milvus Lite file and
served behind an alias. "Before" is what a user serves before adapting:
with labels, the fusion ``python -m benchmarks tune`` chose on the train
split's dev half (``benchmarks/results/<dataset>/tuning.json``, never test);
label-free, the collection default. The adapt command gets the train
questions only (labelled) or nothing (label-free); the test questions are
read only to score before and after, through ``Engine.search`` on the alias.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hybrid_search.config import RuntimeConfig, StoreConfig, to_plain
from hybrid_search.engine import Engine
from hybrid_search.evaluation import as_ranking, fast_ndcg, paired_comparison
from hybrid_search.plan import SearchOptions

from .indexes import COLLECTION, IndexSpec, open_index
from .report import environment, write_json, write_text
from .tuning import setting_from_plain

__all__ = ["ALIAS", "adapt_markdown", "run_adapt_study"]

ALIAS = "served"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _release_lite(db: Path) -> None:
    """Stop this process's Milvus Lite server of ``db``: the adapt command opens the file next."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(db.absolute().resolve()))


def _served_ndcg(engine: Engine, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Per-query nDCG@10 of what the alias serves (documents in first-seen order)."""
    scores = {}
    for qid, text in queries.items():
        hits = engine.search(ALIAS, text, SearchOptions(k=100, highlight=False)).hits
        scores[qid] = fast_ndcg(qrels[qid], as_ranking(h.doc_id for h in hits), 10)
    return scores


def _served_description(engine: Engine) -> dict[str, Any]:
    config = engine.open_collection(ALIAS)
    return {"collection": engine.resolve(ALIAS), "dense": to_plain(config.dense), "fusion": to_plain(config.fusion)}


def run_adapt_study(
    spec: IndexSpec,
    *,
    label_free: bool,
    cache: Path,
    runtime: RuntimeConfig,
    out_dir: Path,
    tuning_file: Path | None,
    adapt_options: list[str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    dataset = spec.dataset
    opened = open_index(spec, cache=cache, runtime=runtime, log=log)
    source_db = Path(opened.uri)
    opened.engine.close()
    _release_lite(source_db)
    mode = "label-free" if label_free else "labelled"
    work = Path(cache) / "adapt" / f"{spec.key()}-{mode}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "serving.db"
    shutil.copyfile(source_db, db)
    test_queries, test_qrels = dataset.split("test")

    with Engine(StoreConfig(uri=str(db)), runtime=runtime) as engine:
        engine.switch_alias(ALIAS, COLLECTION)
        before_label = "collection default fusion (no labels to tune it)"
        if not label_free and tuning_file is not None and tuning_file.is_file():
            tuned = json.loads(tuning_file.read_text(encoding="utf-8"))
            setting = setting_from_plain(tuned["selected"])
            engine.set_fusion_defaults(ALIAS, setting.default_fusion(list(engine.open_collection(ALIAS).paths)))
            before_label = f"tuned hybrid: {tuned['selected']['description']} (tuned on {tuned.get('dev_queries')} {tuned.get('tune_split')} dev queries, {tuning_file})"
        log(f"[adapt-study] before: {before_label}; scoring {len(test_queries)} test questions")
        served_before = _served_description(engine)
        before = _served_ndcg(engine, test_queries, test_qrels)
    _release_lite(db)

    command = [sys.executable, "-m", "hybrid_search.cli", "adapt", "-C", ALIAS, "--uri", str(db), "--run-dir", str(work / "run"), *adapt_options]
    if not label_free:
        train_queries, train_qrels = dataset.split("train")
        questions = work / "train_questions.jsonl"
        questions.write_text(
            "".join(json.dumps({"query": train_queries[q], "doc_ids": sorted(d for d, g in train_qrels[q].items() if g > 0)}) + "\n" for q in train_queries),
            encoding="utf-8",
        )
        command += ["--questions", str(questions)]
    shown = " ".join(["hybrid-search", *command[3:]])
    log(f"[adapt-study] running: {shown}")
    load_before = _load()
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = round(time.monotonic() - started, 1)
    load_after = _load()
    (work / "adapt.log").write_text(completed.stdout + completed.stderr, encoding="utf-8")
    if completed.returncode != 0:
        raise RuntimeError(f"adapt failed (exit {completed.returncode}); see {work / 'adapt.log'}:\n{completed.stderr[-2000:]}")
    run = json.loads((work / "run" / "adapt.json").read_text(encoding="utf-8"))

    with Engine(StoreConfig(uri=str(db)), runtime=runtime) as engine:
        served_after = _served_description(engine)
        after = _served_ndcg(engine, test_queries, test_qrels)
    compared = paired_comparison(after, before)
    result = {
        "benchmark": "adapt",
        "dataset": {"name": dataset.name, "path": str(dataset.root), "documents": len(dataset.corpus)},
        "mode": mode,
        "adapt_command": shown,
        "adapt_wall_s": wall,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "adapt_stage_seconds": run.get("seconds"),
        "adapt_result": run.get("result"),
        "before": {"label": before_label, "served": served_before},
        "after": {"served": served_after},
        "test": {"queries": len(test_queries), "ndcg@10": compared},
        "per_query": {"before": before, "after": after},
        "adapt_console": (completed.stdout[-6000:]),
        "environment": environment(),
    }
    out_dir = Path(out_dir)
    write_json(out_dir / f"{dataset.name}-{mode}.json", result)
    write_text(out_dir / f"{dataset.name}-{mode}.md", adapt_markdown(result))
    return result


def adapt_markdown(result: dict[str, Any]) -> str:
    test = result["test"]["ndcg@10"]
    decision = (result["adapt_result"] or {}).get("decision") or {}
    chosen = decision.get("chosen") or {}
    env = result["environment"]
    lines = [
        f"# adapt: {result['dataset']['name']} ({result['mode']})",
        "",
        f"One command: `{result['adapt_command']}`",
        "",
        f"Outcome: {result['adapt_result']['reason']}",
        "",
        f"| served configuration | nDCG@10 on {test['queries']} test questions |",
        "| --- | ---: |",
        f"| before: {result['before']['label']} | {test['baseline']:.4f} |",
        f"| after adapt | {test['candidate']:.4f} |",
        "",
        f"Δ nDCG@10 {test['delta']:+.4f}, paired randomization p = {test['p_value']:.4f} (10,000 sign flips).",
        "",
        "What adapt measured on its own held-out questions (a split of the questions it was given; never the test questions above):",
        "",
        f"- dev nDCG@10 (served, each candidate's fusion tuned on dev): {decision.get('dev')}",
        f"- chosen on dev: {chosen.get('name')} ({chosen.get('description')})",
        (
            f"- gate on adapt's own test split: {decision.get('baseline', {}).get('value')} -> {decision.get('candidate', {}).get('value')}, "
            f"p = {decision.get('p_value')}, passed: {decision.get('better')}"
        ),
        "",
        (
            f"adapt wall time {result['adapt_wall_s']:.0f} s; stages (s): {result['adapt_stage_seconds']}. "
            f"Load average (1/5/15 min) before {result['load_average_before']}, after {result['load_average_after']} "
            "(other jobs shared the 2 cores: wall time is inflated by that load)."
        ),
        "",
        f"Served after: {result['after']['served']['collection']}, dense {result['after']['served']['dense']}, fusion {result['after']['served']['fusion']}",
        "",
        (
            f"Machine: {env['machine'].get('cpu')} ({env['machine'].get('cpu_usable')} usable CPUs), Python {env['machine'].get('python')}. "
            f"Git: {env.get('git_revision')}. Packages: {env.get('packages')}"
        ),
        "",
        f"Command: `{env.get('command')}`",
    ]
    return "\n".join(lines) + "\n"
