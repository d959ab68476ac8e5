"""Property: documents with ids drawn from the whole Unicode range (no lone
surrogates, no NUL) index, list, get, re-index and delete through the API
against real Milvus Lite: every call answers, nothing is lost or doubled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_search.types import MAX_DOC_ID_CHARS
from tests.integration.api.test_api_workers import _free_port
from tests.processes import stop_process

pytestmark = pytest.mark.integration

ID_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
DOC_IDS = st.one_of(
    st.text(ID_CHARS, min_size=1, max_size=40),
    st.text(ID_CHARS, min_size=1, max_size=6).map(lambda s: (s * MAX_DOC_ID_CHARS)[:MAX_DOC_ID_CHARS]),
    st.sampled_from(["o'brien", 'a"b', "zz\\q#0", ".", "..", "a/../b", "?x=1#y", "%2F", " ", "\n", "\u2028"]),
)
ID_SETS = st.lists(DOC_IDS, min_size=1, max_size=6, unique=True)


def path_of(doc_id: str) -> str:
    # Dots too: a client would otherwise resolve "." and ".." path segments away.
    return "/v1/collections/kb/documents/" + quote(doc_id, safe="").replace(".", "%2E")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    # A real server: Starlette's TestClient decodes a path twice ("%2500" reaches
    # the route as NUL), uvicorn once, as clients expect.
    folder = tmp_path_factory.mktemp("ids")
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "hybrid_search.api.server", "--store-uri", str(folder / "ids.db"), "--port", str(port),
        "--dense-model", "none", "--sparse-model", "none", "--device", "cpu", "--log-level", "warning",
    ]  # fmt: skip
    with open(folder / "serve.log", "wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[3])
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 90
            while True:
                assert server.poll() is None and time.monotonic() < deadline, (folder / "serve.log").read_text()
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            yield client
    finally:
        stop_process(server)


def _run_job(client: httpx.Client, records: list[dict]) -> None:
    response = client.post("/v1/collections/kb/documents", json={"records": records, "chunk": False})
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 60
    while (state := client.get(f"/v1/jobs/{response.json()['id']}").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state["state"] == "succeeded" and state["chunks_written"] == len(records), state


def _listed(client: httpx.Client) -> dict[str, int]:
    response = client.get("/v1/collections/kb/documents", params={"limit": 100})
    assert response.status_code == 200, response.text
    return {d["doc_id"]: d["chunks"] for d in response.json()["documents"]}


def check_ids(client: httpx.Client, ids: list[str]) -> None:
    assert client.delete("/v1/collections/kb").status_code in (200, 404)
    assert client.post("/v1/collections", json={"name": "kb", "dense": None, "sparse": None}).status_code == 201
    _run_job(client, [{"id": doc_id, "text": f"alpha text number {i}"} for i, doc_id in enumerate(ids)])
    assert _listed(client) == dict.fromkeys(ids, 1)
    for i, doc_id in enumerate(ids):
        response = client.get(path_of(doc_id))
        assert response.status_code == 200, (doc_id, response.text)
        body = response.json()
        assert body["doc_id"] == doc_id and [c["chunk_id"] for c in body["chunks"]] == [f"{doc_id}#0"]
        assert body["chunks"][0]["text"] == f"alpha text number {i}"
    # re-index with new text: replaced, not doubled
    _run_job(client, [{"id": doc_id, "text": f"beta text number {i}"} for i, doc_id in enumerate(ids)])
    assert _listed(client) == dict.fromkeys(ids, 1)
    hits = client.post("/v1/collections/kb/search", json={"query": "beta text", "k": 50, "paths": ["bm25"]}).json()["hits"]
    assert sorted(h["doc_id"] for h in hits) == sorted(ids)
    for doc_id in ids:
        response = client.delete(path_of(doc_id))
        assert response.status_code == 200 and response.json()["chunks_deleted"] == 1, (doc_id, response.text)
        assert client.get(path_of(doc_id)).status_code == 404
    assert _listed(client) == {}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ids=ID_SETS)
def test_any_ids_through_the_api(api, ids):
    check_ids(api, ids)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ids=ID_SETS)
def test_any_ids_through_the_api_long_run(api, ids):
    check_ids(api, ids)
