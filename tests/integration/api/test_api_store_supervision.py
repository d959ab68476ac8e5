"""The embedded Milvus Lite process dies under a running service (SIGKILL):
it is restarted on the same file, searches answer again within 30 s, and no
acknowledged write is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.api.test_api_workers import _free_port
from tests.processes import stop_process

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the child process through /proc"),
]


def _children(pid: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found[int(entry.name)] = name
    return found


def _wait_job(client: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get(f"/v1/jobs/{job_id}").json()
        if state["state"] in ("succeeded", "failed"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def test_killed_milvus_lite_child_is_restarted_and_nothing_acknowledged_is_lost(tmp_path):
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "hybrid_search.api.server", "--store-uri", str(tmp_path / "kb.db"), "--port", str(port),
        "--dense-model", "none", "--sparse-model", "none", "--device", "cpu", "--log-level", "warning",
    ]  # fmt: skip
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[3])
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 90
            while True:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            assert client.post("/v1/collections", json={"name": "kb", "dense": None, "sparse": None}).status_code == 201
            records = [{"id": f"o'doc \"{i}\" \\", "text": f"cat number {i} sat on the mat"} for i in range(20)]
            job = client.post("/v1/collections/kb/documents", json={"records": records}).json()
            assert _wait_job(client, job["id"])["state"] == "succeeded"  # acknowledged

            children = {pid for pid, name in _children(server.pid).items() if "milvus" in name}
            assert len(children) == 1, _children(server.pid)
            (child,) = children
            os.kill(child, signal.SIGKILL)
            killed_at = time.monotonic()

            # a write right after the kill: answered (accepted or refused), never lost once acknowledged
            more = [{"id": f"after {i}", "text": f"dog number {i} in the garden"} for i in range(5)]
            late = client.post("/v1/collections/kb/documents", json={"records": more})
            assert late.status_code in (202, 503), late.text
            while True:
                response = client.post("/v1/collections/kb/search", json={"query": "cat mat", "k": 50})
                if response.status_code == 200:
                    break
                assert response.status_code == 503 and response.headers.get("retry-after"), response.text
                assert time.monotonic() - killed_at < 30, "searches did not come back within 30 s"
                time.sleep(0.5)
            assert time.monotonic() - killed_at < 30
            assert {hit["doc_id"] for hit in response.json()["hits"]} == {r["id"] for r in records}
            assert client.get("/healthz").status_code == 200

            expected = {r["id"] for r in records}
            if late.status_code == 202 and _wait_job(client, late.json()["id"])["state"] == "succeeded":
                expected |= {r["id"] for r in more}
            listed = client.get("/v1/collections/kb/documents").json()["documents"]
            assert {d["doc_id"] for d in listed} == expected and all(d["chunks"] == 1 for d in listed)
            new_children = {pid for pid, name in _children(server.pid).items() if "milvus" in name}
            assert len(new_children) == 1 and child not in new_children
    finally:
        stop_process(server)


def test_healthz_is_unhealthy_while_the_store_cannot_be_restarted(tmp_path, monkeypatch):
    import pymilvus
    from fastapi.testclient import TestClient

    from hybrid_search import Chunk, CollectionConfig, Engine, StoreConfig
    from hybrid_search.api import ApiSettings, create_app

    engine = Engine(StoreConfig(uri=str(tmp_path / "kb.db")))
    engine.create_collection(CollectionConfig(name="kb", dense=None, sparse=None))
    engine.index("kb", [Chunk(doc_id="a", chunk_index=0, text="cat on the mat")])
    with TestClient(create_app(ApiSettings(dense_model=None, sparse_model=None), engine=engine)) as client:
        assert client.get("/healthz").status_code == 200
        child = engine.store._lite_server()._p
        child.send_signal(signal.SIGKILL)
        child.wait(10)

        def refuse(*args, **kwargs):
            raise pymilvus.MilvusException(message="Open local milvus failed")

        monkeypatch.setattr(pymilvus, "MilvusClient", refuse)
        response = client.get("/healthz")
        assert response.status_code == 503 and response.json()["error"]["code"] == "store_unrecoverable", response.text
        search = client.post("/v1/collections/kb/search", json={"query": "cat"})
        assert search.status_code == 503 and search.headers["retry-after"], search.text
        monkeypatch.undo()
        assert client.get("/healthz").status_code == 200  # restarted by the probe
        assert [h["doc_id"] for h in client.post("/v1/collections/kb/search", json={"query": "cat"}).json()["hits"]] == ["a"]
    engine.close()
