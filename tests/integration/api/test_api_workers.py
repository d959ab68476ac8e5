"""Deployment: several workers are refused on Milvus Lite and work on a Milvus
server URI (milvus-lite served over TCP); an unreachable store is a 503."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hybrid_search.api import ApiSettings, create_app
from hybrid_search.api.server import serve_command

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


class MilvusOverTcp:
    """milvus-lite's own server process serving one .db file on a TCP port: the
    ``http://host:port`` code path of a real Milvus deployment, on one machine."""

    def __init__(self, folder: Path) -> None:
        from milvus_lite.server import Server

        self.port = _free_port()
        self.server = Server(str(folder / "served.db"), address=f"127.0.0.1:{self.port}")
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.server.start()
        _wait_port(self.port)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture()
def milvus_server(tmp_path) -> Iterator[MilvusOverTcp]:
    served = MilvusOverTcp(tmp_path)
    served.start()
    yield served
    served.stop()


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("serve")(serve_command)
    app.command("other")(lambda: None)  # two commands: "serve" stays a subcommand
    return app


def test_serve_refuses_several_workers_on_milvus_lite(tmp_path):
    result = CliRunner().invoke(_cli(), ["serve", "--workers", "2", "--store-uri", str(tmp_path / "kb.db")])
    assert result.exit_code == 2
    assert "Milvus Lite keeps its data in one local file" in result.output
    assert "Milvus server" in result.output


def test_serve_refuses_open_network_binding_without_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("HYBRID_SEARCH_WRITE_API_KEYS", raising=False)
    monkeypatch.delenv("HYBRID_SEARCH_READ_API_KEYS", raising=False)
    result = CliRunner().invoke(_cli(), ["serve", "--host", "0.0.0.0", "--store-uri", str(tmp_path / "kb.db")])
    assert result.exit_code == 2 and "no key to the network" in result.output


def test_an_unreachable_store_is_503_then_recovers(tmp_path, tiny_models):
    served = MilvusOverTcp(tmp_path)  # not started yet: nothing listens
    settings = ApiSettings(store_uri=served.uri, store_timeout_s=3, dense_model=None, sparse_model=None)
    with TestClient(create_app(settings)) as client:
        error = client.get("/v1/collections").json()["error"]
        assert error["code"] == "store_unavailable" and error["status"] == 503
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200  # alive, just not ready
        served.start()
        try:
            deadline = time.monotonic() + 20
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "did not reconnect"
                time.sleep(0.5)
            created = client.post("/v1/collections", json={"name": "kept", "dense": None, "sparse": None})
            assert created.status_code == 201, created.text
        finally:
            served.stop()
        # The store goes away under a running service: 503, never a 500.
        response = client.post("/v1/collections/kept/search", json={"query": "anything"})
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "store_unavailable"
        assert response.headers["retry-after"]


# Slow: two extra processes import torch and load a model each (about 25 s on an
# idle 2-core machine, a minute under load). Run with `pytest -m slow`.
@pytest.mark.slow
def test_two_workers_on_a_milvus_server_uri(milvus_server, tiny_models, tmp_path):
    port = _free_port()
    env = dict(os.environ)
    # One torch thread per worker: two workers on two cores must not oversubscribe.
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [
        sys.executable, "-m", "hybrid_search.api.server",
        "--store-uri", milvus_server.uri, "--workers", "2", "--port", str(port),
        # No dense path: milvus-lite behind a TCP port refuses the HNSW index the
        # store picks for server URIs (a real Milvus server takes it).
        "--dense-model", "none",
        "--sparse-model", str(tiny_models.splade), "--sparse-kind", "splade",
        "--device", "cpu", "--log-level", "warning",
    ]  # fmt: skip
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[3])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        pids: set[int] = set()
        while len(pids) < 2:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"saw workers {pids}; log:\n{log.read_text()}"
            try:
                # A new connection per request, so the kernel hands them to either worker.
                pids.add(httpx.get(base + "/healthz", timeout=5).json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=60) as client:
            created = client.post("/v1/collections", json={"name": "shared"})
            assert created.status_code == 201, created.text
            job = client.post("/v1/collections/shared/documents", json={"records": [{"id": f"d{i}", "text": f"cat number {i} on the mat"} for i in range(6)]})
            assert job.status_code == 202, job.text
            job_id = job.json()["id"]
        # Poll on fresh connections: whichever worker answers knows the job (shared jobs dir).
        answered_by_both = set()
        deadline = time.monotonic() + 60
        while True:
            state = httpx.get(f"{base}/v1/jobs/{job_id}", timeout=10)
            assert state.status_code == 200, state.text
            if state.json()["state"] in ("succeeded", "failed"):
                assert state.json()["state"] == "succeeded", state.text
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        for _ in range(12):
            response = httpx.post(f"{base}/v1/collections/shared/search", json={"query": "cat mat", "k": 6}, timeout=30)
            assert response.status_code == 200, response.text
            answered_by_both.add(len(response.json()["hits"]))
        assert answered_by_both == {6}  # every worker sees every document
        metrics = httpx.get(base + "/metrics", timeout=10).text
        assert 'hybrid_search_search_stage_seconds_count{stage="sparse"}' in metrics
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
