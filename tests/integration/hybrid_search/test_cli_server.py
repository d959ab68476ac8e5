"""`hybrid-search search` and a running `hybrid-search serve` of the same store:
the search is sent to the server (the same engine and plan: the same hits as a
search in a fresh process, once the server is gone), importing neither pymilvus
nor numpy; a record the server left behind when killed is recognised as stale
and the search runs in the CLI's own process, saying why with --verbose."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

try:
    from tests.processes import stop_process
except ModuleNotFoundError:  # rootdir-less pytest
    from processes import stop_process  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]

BUILD = """
import sys
from hybrid_search import Chunk, CollectionConfig, DenseEncoderConfig, Engine, RuntimeConfig, SparseEncoderConfig, StoreConfig
path, dense, splade = sys.argv[1:4]
texts = ["The cat sat on the mat.", "Dogs chase cats in the garden.", "A vector database stores dense vectors.",
         "The cat sat on the mat.", "Revenue grew in the fourth quarter."]
with Engine(StoreConfig(uri=path), runtime=RuntimeConfig(device="cpu")) as engine:
    engine.create_collection(CollectionConfig(
        name="docs",
        dense=DenseEncoderConfig(model=dense, kind="sentence-transformers"),
        sparse=SparseEncoderConfig(model=splade, kind="splade"),
    ))
    engine.index("docs", [Chunk(doc_id=f"d{i}", chunk_index=0, text=t) for i, t in enumerate(texts)])
"""

# Runs the `hybrid-search` program's entry point, then reports which heavy modules it imported.
PROBE = """
import json, sys
from hybrid_search.cli_entry import main
sys.argv = ["hybrid-search", *json.loads(sys.argv[1])]
code = 0
try:
    main()
except SystemExit as exit_:
    code = exit_.code or 0
print("LOADED=" + json.dumps([m for m in ("pymilvus", "numpy", "torch", "hybrid_search.engine", "typer", "pydantic") if m in sys.modules]), file=sys.stderr)
sys.exit(code)
"""

SEARCHES = [
    ["cat on the mat", "-k", "3"],
    ["dogs garden", "--paths", "bm25", "-k", "2"],
    ["vector database", "--paths", "dense,sparse", "--fusion", "rrf", "--no-collapse", "-f", "doc_id in d1,d2,d3"],
]


def _env(runtime_dir: Path) -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=str(REPO_ROOT),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        HYBRID_SEARCH_RUNTIME_DIR=str(runtime_dir),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _search(store: Path, runtime_dir: Path, args: list[str], *extra: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    argv = ["--uri", str(store), "--device", "cpu", "search", *args, "-C", "docs", "--json", "--verbose", *extra]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)], check=False, capture_output=True, text=True, env=_env(runtime_dir), cwd=store.parent, timeout=600
    )
    loaded = [line for line in done.stderr.splitlines() if line.startswith("LOADED=")]
    return done, json.loads(loaded[-1][len("LOADED="):]) if loaded else []


def _hits(done: subprocess.CompletedProcess) -> list[tuple]:
    assert done.returncode == 0, done.stderr[-3000:]
    body = json.loads(done.stdout)
    return [
        (h["chunk_id"], h["text"], round(h["score"], 5), {p: s["rank"] for p, s in h["paths"].items()}, h["matched_terms"],
         h["snippet"], [c["chunk_id"] for c in h["folded"]])
        for h in body["hits"]
    ]  # fmt: skip


@pytest.fixture(scope="module")
def store(tiny_models, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli-server") / "kb.db"
    argv = [sys.executable, "-c", BUILD, str(path), str(tiny_models.dense), str(tiny_models.splade)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, env=_env(path.parent / "runtime"), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return path


def _serve(store: Path, runtime_dir: Path) -> subprocess.Popen:
    port = _free_port()
    command = [
        sys.executable, "-m", "hybrid_search.cli", "--uri", str(store), "--device", "cpu", "serve", "--port", str(port),
        "--dense-model", "none", "--sparse-model", "none", "--log-level", "warning",
    ]  # fmt: skip
    log = open(store.parent / "serve.log", "wb")  # noqa: SIM115 - closed with the process
    server = subprocess.Popen(command, env=_env(runtime_dir), stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        assert server.poll() is None, (store.parent / "serve.log").read_text()
        assert time.monotonic() < deadline, (store.parent / "serve.log").read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
                if response.status == 200 and list(runtime_dir.glob("serve-*.json")):
                    return server
        except OSError:
            pass
        time.sleep(0.3)


@pytest.mark.slow  # ~80 s: ten fresh CLI processes and a server; the routing logic is unit-tested in tests/unit/hybrid_search/test_remote.py
def test_cli_searches_go_to_the_running_server_and_give_the_local_hits(store, tmp_path):
    runtime_dir = tmp_path / "runtime"
    server = _serve(store, runtime_dir)
    try:
        served = []
        for args in SEARCHES:
            done, loaded = _search(store, runtime_dir, args)
            assert "searched through the server at http://127.0.0.1:" in done.stderr, done.stderr[-2000:]
            assert "pymilvus" not in loaded and "numpy" not in loaded and "hybrid_search.engine" not in loaded, loaded
            assert "typer" not in loaded and "pydantic" not in loaded, loaded  # answered before the full command line loads
            served.append(_hits(done))
        assert served[0] and served[1] and served[2]
        # --local searches in this process: the server holds the Milvus Lite file.
        done, loaded = _search(store, runtime_dir, SEARCHES[1], "--local")
        assert done.returncode != 0 and "opened by another program" in done.stderr + done.stdout
        # A server that would run another plan (its models on another device) is not used.
        argv = ["--uri", str(store), "--device", "auto", "search", "cats", "-C", "docs", "--verbose", "--paths", "bm25"]
        done = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(argv)], check=False, capture_output=True, text=True, env=_env(runtime_dir), cwd=store.parent, timeout=600
        )
        assert "searching in this process: the server at http://127.0.0.1:" in done.stderr
        assert "runs its models on device 'cpu', this search asks for 'auto'" in done.stderr
        assert "LOADED=" in done.stderr and "searched through the server" not in done.stderr
    finally:
        stop_process(server)
    assert not list(runtime_dir.glob("serve-*.json"))  # a server that stops removes its record
    for args, expected in zip(SEARCHES, served):
        done, loaded = _search(store, runtime_dir, args)
        assert "searching in this process: no running `hybrid-search serve` is recorded" in done.stderr, done.stderr[-2000:]
        assert "pymilvus" in loaded
        assert _hits(done) == expected, args


@pytest.mark.slow
def test_a_killed_servers_record_is_stale_and_the_search_runs_here(store, tmp_path):
    runtime_dir = tmp_path / "runtime"
    server = _serve(store, runtime_dir)
    os.killpg(server.pid, signal.SIGKILL)  # no shutdown: the record stays behind
    server.wait(20)
    assert list(runtime_dir.glob("serve-*.json"))
    deadline = time.monotonic() + 60
    while True:  # Milvus Lite's own process stops once the file lock is released
        done, _ = _search(store, runtime_dir, SEARCHES[1])
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert f"the serve record {next(runtime_dir.glob('serve-*.json'))} is stale: process {server.pid} is gone" in done.stderr
    assert _hits(done)[0][0] == "d1#0"

