"""A training run's reranker scored on another machine (``python -m benchmarks
rerank-offload lists|score|report CONFIG``): for a GPU machine that cannot
carry Milvus Lite and the models in one transfer.

The evaluation is split where no result can change:

  lists (here): the engine's own ranked lists for every test query from the
      run's base evaluation collection (BM25 alone, and hybrid with the
      evaluation's fusion; top ``[evaluation] k``), with their texts, and the
      metrics of these unreranked rows (``unreranked.json``).
  score (GPU): ``hybrid_search.rerank.load_reranker`` scores every list,
      exactly the call ``Engine.search`` makes (the reranker's windows and
      length as trained), in fp32 (``scores.json``).
  report (here): each list ordered as ``Engine.search`` orders it at
      first-stage weight 0 (``training.evaluate.rankings_at``) and scored with
      the same metrics as ``train evaluate`` (``metrics.json``, ``.md``).

Everything it uses is declared by the run's config (``training_inputs``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybrid_search.errors import InputError

from .training_inputs import TrainingRun

__all__ = ["ROWS", "check_scored_lists", "lists_file", "lists_fingerprint", "offload_lists", "offload_report", "offload_score", "report_markdown", "reranked_from_scores"]

ROWS = ("bm25", "hybrid")


def lists_file(run: TrainingRun) -> Path:
    """The lists with their texts: an intermediate (the run folder, git-ignored), not a result."""
    return run.out / "offload" / "lists.json.gz"


def lists_fingerprint(lists: dict[str, dict[str, list[list[str]]]]) -> str:
    """sha256 of the chunk ids in order: scores belong to exactly these lists."""
    ids = {row: {qid: [hit[0] for hit in hits] for qid, hits in sorted(by_query.items())} for row, by_query in sorted(lists.items())}
    return hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()


def check_scored_lists(scored: dict[str, Any], lists: dict[str, dict[str, list[list[str]]]]) -> None:
    """Scores are matched to hits by position: only the lists they were made for will do. Scores
    without a fingerprint (made before it was recorded) cannot be matched to lists searched again:
    the engine's lists may have moved since (a tie, a fusion change), and a shifted list would
    silently take another passage's score."""
    recorded = scored.get("lists_sha256")
    if recorded is None:
        raise InputError("scores.json records no lists fingerprint (scored before it was recorded): it cannot be matched to lists searched again; score them again (`rerank-offload score`)")
    if recorded != lists_fingerprint(lists):
        raise InputError("scores.json was scored over other lists than RUN/offload/lists.json.gz: score them again (`rerank-offload score`)")


def _read_lists(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"no lists at {path}: run `python -m benchmarks rerank-offload lists CONFIG` first")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def offload_lists(run: TrainingRun, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    from hybrid_search.config import FusionConfig, RuntimeConfig, StoreConfig, to_plain
    from hybrid_search.engine import Engine, SearchOptions
    from training.evaluate import rank_metrics

    from .report import environment, write_json

    settings = run.evaluation
    data = run.load_data()
    name = run.collection("base", [c.id for c in data.corpus])
    run.require(Path(run.store_uri), "the run's evaluation collections")
    lists: dict[str, dict[str, list[list[str]]]] = {row: {} for row in ROWS}
    fusion = settings.fusion or FusionConfig()
    with Engine(StoreConfig(uri=run.store_uri, timeout_s=600), runtime=RuntimeConfig(device="cpu")) as engine:
        if engine.store.count(name) != len(data.corpus):
            raise InputError(f"the evaluation collection {name} is incomplete: run the pipeline's evaluation first")
        for row, options in (
            ("bm25", SearchOptions(k=settings.k, paths=("bm25",), depth=settings.depth, rerank=False, highlight=False)),
            ("hybrid", SearchOptions(k=settings.k, depth=settings.depth, rerank=False, highlight=False, fusion=fusion)),
        ):
            for query in data.test:
                hits = engine.search(name, query.query, options).hits
                lists[row][query.query_id] = [[hit.chunk_id, hit.text] for hit in hits]
    log(f"{len(data.test)} test queries, {len(ROWS)} rows, from {name}")
    queries = [{"id": q.query_id, "query": q.query} for q in data.test]
    metrics = {row: rank_metrics(data.test, {qid: [cid for cid, _ in hits] for qid, hits in by_query.items()}, settings.metrics) for row, by_query in lists.items()}
    target = lists_file(run)
    target.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(target, "wt", encoding="utf-8") as handle:
        json.dump({"collection": name, "fusion": to_plain(fusion), "k": settings.k, "queries": queries, "lists": lists}, handle)
    write_json(run.results / "unreranked.json", {**metrics, "environment": environment()})
    return metrics


def offload_score(run: TrainingRun, *, model: Path | None = None, device: str = "auto", limit: int | None = None) -> dict[str, Any]:
    """Score every list with the run's reranker (``--limit``: the first N queries, a smoke run of the plumbing)."""
    from hybrid_search.config import RerankConfig, RuntimeConfig
    from hybrid_search.rerank import load_reranker

    from .report import environment, write_json

    material = _read_lists(lists_file(run))
    if limit is not None:
        material["queries"] = material["queries"][:limit]
    folder = run.require(Path(model) if model is not None else run.reranker_model, "the trained reranker")
    rerank = run.rerank_settings()
    # fp32 on any device, as a CPU deployment scores it.
    reranker = load_reranker(RerankConfig(model=str(folder), kind="cross-encoder", batch_size=64, **rerank), RuntimeConfig(device=device, fp16=False))  # type: ignore[arg-type]
    started = time.perf_counter()
    scores = {
        row: {q["id"]: reranker.score(q["query"], [text for _, text in by_query[q["id"]]]) for q in material["queries"]}
        for row, by_query in material["lists"].items()
    }
    result = {"rerank": rerank, "model": str(folder), "lists_sha256": lists_fingerprint(material["lists"]), "seconds": round(time.perf_counter() - started, 1), "scores": scores, "environment": environment()}
    write_json(run.results / "scores.json", result)
    return result


def reranked_from_scores(lists: dict[str, list[list[str]]], scores: dict[str, list[float]]) -> list[tuple[str, list[tuple[str, float]], dict[str, float], list[str]]]:
    """Offloaded lists and their scores in ``training.evaluate.reranked_lists``' shape: the whole
    list is the head (first-stage positions break ties; its scores are unused at weight 0)."""
    out = []
    for qid, hits in lists.items():
        if qid not in scores:
            continue
        values = scores[qid]
        if len(values) != len(hits):
            raise InputError(f"query {qid}: {len(values)} scores for {len(hits)} hits; the scores belong to other lists")
        head = [(cid, float(len(hits) - i)) for i, (cid, _) in enumerate(hits)]
        out.append((qid, head, {cid: float(s) for (cid, _), s in zip(hits, values, strict=True)}, []))
    return out


def report_markdown(metrics: dict[str, dict[str, float]], names: tuple[str, ...]) -> str:
    rows = [row for row in (*ROWS, *(f"{r}+rerank" for r in ROWS)) if row in metrics]
    lines = ["| row | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {row} | " + " | ".join(f"{metrics[row][m]:.4f}" for m in names) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def offload_report(run: TrainingRun) -> dict[str, Any]:
    from training.evaluate import rank_metrics, rankings_at

    from .report import command_line, environment, write_json, write_text

    data = run.load_data()
    material = _read_lists(lists_file(run))
    scored = json.loads(run.require(run.results / "scores.json", "the reranker's scores").read_text(encoding="utf-8"))
    unreranked = json.loads(run.require(run.results / "unreranked.json", "the unreranked metrics").read_text(encoding="utf-8"))
    check_scored_lists(scored, material["lists"])
    names = tuple(run.evaluation.metrics)
    metrics = {row: unreranked[row] for row in ROWS}
    for row, by_query in material["lists"].items():
        # Engine.search at first-stage weight 0: rerank score descending, fused position breaking ties.
        metrics[f"{row}+rerank"] = rank_metrics(data.test, rankings_at(reranked_from_scores(by_query, scored["scores"][row]), 0.0), names)
    write_json(run.results / "metrics.json", {**metrics, "environment": environment()})
    write_text(run.results / "metrics.md", report_markdown(metrics, names) + f"\nWritten by `{command_line()}` (scores: {scored.get('model')}).\n")
    return metrics
