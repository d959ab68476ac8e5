"""``python -m benchmarks coldstart``: wall time of a cold ``hybrid-search search``.

What a user sees: each search runs the CLI in a fresh process (``python -m
hybrid_search``: ``hybrid_search.cli_entry.main``, the entry point of the
``hybrid-search`` script, from this checkout), timed from spawn to exit, on a collection built with a dense model
(all-MiniLM-L6-v2 by default) and the preset's sparse model. Two searches: a
full hybrid search (every path, so the models load) and a BM25-only search
(which needs no model), each two ways:

- in the CLI's own process (``--local``): it imports pymilvus, starts Milvus
  Lite and, for the hybrid search, loads the models;
- through a running ``hybrid-search serve`` of the same store, which the CLI
  finds by its serve record (hybrid_search.remote) and sends the search to: the
  common case of several searches in a row (the entry point sends it before
  the full command line is imported). The server is started once, and
  answers each search once before the timed runs (a server that has run).
  The same searches also go through the full command line (``python -m
  hybrid_search.cli``: Typer and pydantic imported first), for the ratio.

Each case runs ``--runs`` times; the median is reported with every run, the
machine's load average before and after, and the machine.
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


_RECORDS = tempfile.mkdtemp(prefix="hybrid-search-coldstart-records-")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Serve records of this benchmark only: a server the user runs is never used.
    env["HYBRID_SEARCH_RUNTIME_DIR"] = _RECORDS
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def _time_search(store: Path, query: str, extra: list[str], *, via_server: bool, program: str = "hybrid_search") -> float:
    command = [sys.executable, "-m", program, "--uri", str(store), "search", query, "-C", "coldstart", "-k", "5", *extra]
    command += ["--verbose"] if via_server else ["--local"]
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=_env(), cwd=store.parent, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    if via_server and "searched through the server" not in done.stderr:
        raise RuntimeError(f"{' '.join(command)} did not search through the server:\n{done.stderr[-2000:]}")
    return elapsed


def _start_server(store: Path, log: Any) -> subprocess.Popen:
    """``hybrid-search serve`` on ``store``, once it has written its serve record."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "hybrid_search", "--uri", str(store), "serve", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, env=_env(), cwd=store.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = Path(_env()["HYBRID_SEARCH_RUNTIME_DIR"])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"hybrid-search serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
                if response.status == 200 and any(records.glob("serve-*.json")):
                    log(f"serve is up on port {port}")
                    return server
        except OSError:
            pass
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("hybrid-search serve did not come up in 600 s")


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
    searches = {"hybrid (all paths)": [], "bm25 only": ["--paths", "bm25"]}
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    times: dict[str, list[float]] = {}
    # In this process first (the file is free), then through one running server.
    for via_server in (False, True):
        server = _start_server(store, log) if via_server else None
        try:
            where = "through a running serve" if via_server else "in this process"
            cases = {f"{search}, {where}": (extra, "hybrid_search") for search, extra in searches.items()}
            if via_server:
                # The same searches through the full command line (what the
                # entry point ran before it answered searches itself): the
                # ratio within this run.
                cases.update({f"{search}, {where}, full command line": (extra, "hybrid_search.cli") for search, extra in searches.items()})
                for extra, program in cases.values():  # a server that has answered before
                    _time_search(store, query, extra, via_server=True, program=program)
            times.update({case: [] for case in cases})
            # Interleaved, so a change in machine load hits every case alike.
            for run in range(runs):
                for case, (extra, program) in cases.items():
                    seconds = _time_search(store, query, extra, via_server=via_server, program=program)
                    times[case].append(seconds)
                    log(f"run {run + 1}/{runs} {case}: {seconds:.2f} s")
        finally:
            if server is not None:
                server.terminate()
                server.wait(60)
    load_after = os.getloadavg()
    for case, values in times.items():
        results[case] = {"median_s": statistics.median(values), "runs_s": values, "min_s": min(values), "max_s": max(values)}
    # The entry point's time over the full command line's, same search, same run.
    ratios = {
        search: results[f"{search}, through a running serve"]["median_s"] / results[f"{search}, through a running serve, full command line"]["median_s"]
        for search in searches
    }
    return {
        "benchmark": "coldstart",
        "dataset": name,
        "documents": docs,
        "dense_model": str(dense_model),
        "sparse_model": str(sparse_model) if sparse_model else None,
        "query": query,
        "runs": runs,
        "cases": results,
        "entry_point_over_full_command_line": ratios,
        "load_average": {"before": load_before, "after": load_after},
        "notes": (
            "Each search is a fresh `python -m hybrid_search --uri DB search QUERY -C coldstart -k 5 [--paths bm25]` process "
            "(with --local in this process; with --verbose, checked to have searched through the server, when a "
            "`hybrid-search serve` of the same store runs), timed from spawn to exit (what `time hybrid-search search ...` "
            "shows; `python -m hybrid_search` runs the `hybrid-search` script's entry point, which answers a search a running server "
            "can take before importing the full command line). \"full command line\": the same search through `python -m hybrid_search.cli` "
            "(Typer, pydantic and rich's tables imported first, as every search did before). The cases alternate within each run."
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
            "Through a running serve, the entry point's median over the full command line's (same search, same run): "
            + ", ".join(f"{search} {ratio:.2f}x" for search, ratio in result.get("entry_point_over_full_command_line", {}).items())
            + ".",
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
