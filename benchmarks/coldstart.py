"""``python -m benchmarks coldstart``: wall time of a cold ``hybrid-search search``.

What a new user sees: each search runs the CLI in a fresh process (``python -m
hybrid_search.cli``, the entry point of the ``hybrid-search`` script, from this
checkout), timed from spawn to exit, on a collection built with a dense model
(all-MiniLM-L6-v2 by default) and the preset's sparse model. Two cases: a full
hybrid search (every path, so the models load) and a BM25-only search (which
needs no model). Each case runs ``--runs`` times; the median is reported with
every run, the machine's load average before and after, and the machine.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["coldstart_markdown", "run_coldstart"]

REPO_ROOT = Path(__file__).resolve().parent.parent

# Built in a child process: Milvus Lite lets one process open a file, and the
# timed searches must find the file free.
_BUILD = """
import sys
from benchmarks.beir import document_text, load_beir
from hybrid_search import Chunk, CollectionConfig, DenseEncoderConfig, Engine, RuntimeConfig, SparseEncoderConfig, StoreConfig
path, folder, name, dense, sparse, docs = sys.argv[1:7]
data = load_beir(folder, name)
ids = sorted(data.corpus)[: int(docs)]
with Engine(StoreConfig(uri=path), runtime=RuntimeConfig(device="cpu")) as engine:
    engine.create_collection(CollectionConfig(
        name="coldstart",
        dense=DenseEncoderConfig(model=dense, kind="sentence-transformers"),
        sparse=SparseEncoderConfig(model=sparse, kind="splade") if sparse != "none" else None,
    ))
    engine.index("coldstart", [Chunk(doc_id=i, chunk_index=0, text=document_text(*data.corpus[i])) for i in ids])
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def _time_search(store: Path, query: str, extra: list[str]) -> float:
    command = [sys.executable, "-m", "hybrid_search.cli", "--uri", str(store), "search", query, "-C", "coldstart", "-k", "5", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=_env(), cwd=store.parent, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def run_coldstart(
    folder: Path,
    name: str,
    *,
    dense_model: Path,
    sparse_model: Path | None,
    docs: int,
    runs: int,
    query: str,
    log: Any = print,
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="hybrid-search-coldstart-"))
    try:
        return _measure(work / "kb.db", folder, name, dense_model=dense_model, sparse_model=sparse_model, docs=docs, runs=runs, query=query, log=log)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(
    store: Path,
    folder: Path,
    name: str,
    *,
    dense_model: Path,
    sparse_model: Path | None,
    docs: int,
    runs: int,
    query: str,
    log: Any,
) -> dict[str, Any]:
    log(f"building a {docs}-document collection of {name} ({dense_model.name}, {sparse_model.name if sparse_model else 'no sparse'}) ...")
    build = [sys.executable, "-c", _BUILD, str(store), str(folder), name, str(dense_model), str(sparse_model or "none"), str(docs)]
    done = subprocess.run(build, check=False, capture_output=True, text=True, env=_env(), cwd=REPO_ROOT, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"building the collection failed:\n{done.stderr[-3000:]}")
    cases = {"hybrid (all paths: models load)": [], "bm25 only (no model)": ["--paths", "bm25"]}
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    # Interleaved, so a change in machine load hits both cases alike.
    times: dict[str, list[float]] = {case: [] for case in cases}
    for run in range(runs):
        for case, extra in cases.items():
            seconds = _time_search(store, query, extra)
            times[case].append(seconds)
            log(f"run {run + 1}/{runs} {case}: {seconds:.2f} s")
    load_after = os.getloadavg()
    for case, values in times.items():
        results[case] = {"median_s": statistics.median(values), "runs_s": values, "min_s": min(values), "max_s": max(values)}
    return {
        "benchmark": "coldstart",
        "dataset": name,
        "documents": docs,
        "dense_model": str(dense_model),
        "sparse_model": str(sparse_model) if sparse_model else None,
        "query": query,
        "runs": runs,
        "cases": results,
        "load_average": {"before": load_before, "after": load_after},
        "notes": (
            "Each search is a fresh `python -m hybrid_search.cli --uri DB search QUERY -C coldstart -k 5 [--paths bm25]` process, "
            "timed from spawn to exit (what `time hybrid-search search ...` shows); the two cases alternate."
        ),
    }


def coldstart_markdown(result: dict[str, Any]) -> str:
    from .report import machine_line, markdown_table

    rows = [[case, r["median_s"], r["min_s"], r["max_s"], ", ".join(f"{v:.2f}" for v in r["runs_s"])] for case, r in result["cases"].items()]
    env = result["environment"]
    load = result["load_average"]
    return "\n".join(
        [
            f"# Cold `hybrid-search search`: median of {result['runs']} fresh processes",
            "",
            (
                f"Collection: {result['documents']} documents of {result['dataset']}, dense `{Path(result['dense_model']).name}`, "
                f"sparse `{Path(result['sparse_model']).name if result['sparse_model'] else 'none'}`; query {result['query']!r}."
            ),
            "",
            markdown_table(["search", "median s", "min s", "max s", "runs (s)"], rows),
            "",
            result["notes"],
            "",
            (
                f"Machine: {machine_line(env)}; load average {load['before'][0]:.2f} before, {load['after'][0]:.2f} after "
                f"(1-minute; the machine is shared). Git {env['git_revision']}."
            ),
            "",
            f"Command: `{env['command']}`",
        ]
    )
