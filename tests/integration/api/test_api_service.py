"""The API end to end over a real Engine (Milvus Lite, tiny models)."""

from __future__ import annotations

import io
import json
import os

import pytest

pytestmark = pytest.mark.integration


# --- health, docs, page ---------------------------------------------------------------------


def test_health_ready_docs_and_page(client):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["collections"] >= 1 and ready["pid"] == os.getpid()
    spec = client.get("/openapi.json").json()
    assert "/v1/collections/{name}/search" in spec["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/ui/")
    assert page.status_code == 200 and "search-form" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/ui/app.js").status_code == 200
    redirect = client.get("/", follow_redirects=False)
    assert redirect.status_code in (302, 307) and redirect.headers["location"] == "/ui/"


# --- search --------------------------------------------------------------------------------


def test_search_explain_shows_per_path_ranks_scores_and_terms(client):
    response = client.post("/v1/collections/docs/search", json={"query": "cat on the mat", "k": 3, "explain": True, "rerank": False})
    assert response.status_code == 200, response.text
    body = response.json()
    # a collection created without a fusion gets the label-free default
    assert body["paths"] == ["bm25", "sparse", "dense"] and body["fusion"] == "adaptive" and not body["reranked"]
    assert body["query_terms"] == ["cat", "mat"]
    assert {"encode", "bm25", "sparse", "dense", "fusion", "total"} <= set(body["timings_ms"])
    top = body["hits"][0]
    assert top["doc_id"] == "cats"
    assert top["paths"]["bm25"]["rank"] == 1 and top["paths"]["bm25"]["score"] > 0
    assert set(top["matched_terms"]) == {"cat", "mat"}
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3]
    assert set(top["fusion_weights"]) == {"bm25", "sparse", "dense"}
    assert sum(top["fusion_weights"].values()) == pytest.approx(1.0)
    assert 0.0 <= top["fused_score"] <= 1.0


def test_search_without_explain_is_lean(client):
    body = client.post("/v1/collections/docs/search", json={"query": "cat", "k": 2}).json()
    assert body["hits"] and body["hits"][0]["paths"] is None and body["timings_ms"] is None
    assert body["reranked"] is True  # the engine has a reranker: on by default


def test_search_paths_fusion_weights_and_rerank(client):
    bm25 = client.post("/v1/collections/docs/search", json={"query": "revenue profit", "paths": ["bm25"], "explain": True, "rerank": False}).json()
    assert bm25["paths"] == ["bm25"] and bm25["fusion"] == "none"
    assert all(set(h["paths"]) == {"bm25"} for h in bm25["hits"])
    assert bm25["hits"][0]["doc_id"] == "revenue"
    weighted = client.post(
        "/v1/collections/docs/search",
        json={"query": "revenue", "fusion": "weighted", "normalization": "z-score", "weights": {"bm25": 2, "dense": 0.5}, "depth": {"bm25": 5, "dense": 5, "sparse": 5}, "rerank": False},
    ).json()
    assert weighted["fusion"] == "weighted" and weighted["hits"][0]["doc_id"] == "revenue"
    reranked = client.post("/v1/collections/docs/search", json={"query": "revenue", "rerank": True, "rerank_top_n": 5, "explain": True}).json()
    assert reranked["reranked"] and reranked["hits"][0]["rerank_score"] is not None
    assert "rerank" in reranked["timings_ms"]


def test_search_rerank_first_stage_weight_reaches_the_engine(client):
    def search(**extra):
        body = {"query": "cat dog database", "k": 10, "rerank": True, "explain": True, **extra}
        response = client.post("/v1/collections/docs/search", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    default = search()
    assert default["rerank_first_stage_weight"] == 0.0  # the server's default: pure rerank order
    assert all(h["combined_score"] == h["rerank_score"] == h["score"] for h in default["hits"])
    fused_order = search(rerank_first_stage_weight=1.0)
    assert fused_order["rerank_first_stage_weight"] == 1.0
    fused = [h["fused_score"] for h in fused_order["hits"]]
    assert len(fused) > 2 and fused == sorted(fused, reverse=True)
    assert fused_order["hits"][0]["combined_score"] == 1.0 and fused_order["hits"][-1]["combined_score"] == 0.0
    mixed = search(rerank_first_stage_weight=0.5)
    assert mixed["rerank_first_stage_weight"] == 0.5
    low, high = min(h["fused_score"] for h in mixed["hits"]), max(h["fused_score"] for h in mixed["hits"])
    for hit in mixed["hits"]:  # every candidate is in the reranked head (top_n 20 > 8 documents)
        expected = 0.5 * hit["rerank_score"] + 0.5 * (hit["fused_score"] - low) / (high - low)
        assert hit["combined_score"] == pytest.approx(expected, abs=1e-9) and hit["score"] == hit["combined_score"]
    combined = [h["combined_score"] for h in mixed["hits"]]
    assert combined == sorted(combined, reverse=True)
    plain = search(rerank=False)
    assert plain["rerank_first_stage_weight"] is None and all(h["combined_score"] is None for h in plain["hits"])


def test_search_filters(client):
    def ids(filters):
        response = client.post("/v1/collections/docs/search", json={"query": "cat dog database", "k": 20, "filters": filters, "rerank": False})
        assert response.status_code == 200, response.text
        return {h["doc_id"] for h in response.json()["hits"]}

    assert ids([{"field": "metadata.tag", "op": "==", "value": "pets"}]) == {"cats", "dogs"}
    assert ids([{"field": "metadata.n", "op": "in", "value": [0, 2]}]) <= {"cats", "milvus"}
    assert ids([{"field": "doc_id", "op": "in", "value": ["cats", "milvus"]}, {"field": "metadata.lang", "op": "==", "value": "en"}]) <= {"cats", "milvus"}
    assert ids([{"field": "source", "op": "like", "value": "dog%"}]) == {"dogs"}
    assert ids([{"field": "metadata.tag", "op": "==", "value": 'we"ird'}]) <= {"quotes"}


def test_search_unknown_collection_and_missing_path(client, make_client, helpers, api_engine, tiny_models):
    helpers.assert_error(client.post("/v1/collections/nope/search", json={"query": "x"}), 404, "collection_not_found")
    other = make_client()
    created = other.post("/v1/collections", json={"name": "bm25_only", "dense": None, "sparse": None})
    assert created.status_code == 201, created.text
    assert created.json()["paths"] == ["bm25"]
    helpers.assert_error(other.post("/v1/collections/bm25_only/search", json={"query": "x", "paths": ["dense"]}), 422, field="paths")
    assert other.delete("/v1/collections/bm25_only").status_code == 200


def test_rerank_requested_without_a_reranker(make_client, helpers, api_engine):
    saved = api_engine.rerank_config
    api_engine.rerank_config = None
    try:
        other = make_client()
        helpers.assert_error(other.post("/v1/collections/docs/search", json={"query": "cat", "rerank": True}), 422, field="rerank")
    finally:
        api_engine.rerank_config = saved


# --- collections ------------------------------------------------------------------------------


def test_collections_create_stats_list_drop(client, helpers, tiny_models):
    response = client.post(
        "/v1/collections",
        json={"name": "made", "analyzer": {"language": "en", "stem": False}, "fusion": {"method": "weighted"}, "bm25": {"k1": 1.5, "b": 0.5}, "description": "d"},
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["paths"] == ["bm25", "sparse", "dense"] and made["chunks"] == 0
    assert made["manifest"]["analyzer"]["stem"] is False and made["manifest"]["bm25"] == {"k1": 1.5, "b": 0.5}
    assert made["manifest"]["dense"]["model"] == str(tiny_models.dense)
    helpers.assert_error(client.post("/v1/collections", json={"name": "made"}), 409, "collection_exists")
    same = {"name": "made", "analyzer": {"language": "en", "stem": False}, "bm25": {"k1": 1.5, "b": 0.5}, "exist_ok": True}
    assert client.post("/v1/collections", json=same).status_code == 201
    helpers.assert_error(client.post("/v1/collections", json={"name": "made", "exist_ok": True}), 409, "manifest_mismatch")
    names = [c["name"] for c in client.get("/v1/collections").json()["collections"]]
    assert {"docs", "made"} <= set(names)
    stats = client.get("/v1/collections/docs", params={"documents": True}).json()
    assert stats["documents"] >= len(helpers.corpus) and stats["chunks"] >= len(helpers.corpus)
    assert client.delete("/v1/collections/made").json() == {"dropped": "made", "aliases_dropped": []}
    helpers.assert_error(client.delete("/v1/collections/made"), 404, "collection_not_found")
    helpers.assert_error(client.get("/v1/collections/made"), 404)


def test_search_on_an_empty_collection(client):
    assert client.post("/v1/collections", json={"name": "empty_one", "sparse": None}).status_code == 201
    try:
        for paths in (None, ["bm25"], ["dense"]):
            response = client.post("/v1/collections/empty_one/search", json={"query": "cat", "paths": paths, "explain": True})
            assert response.status_code == 200, response.text
            assert response.json()["hits"] == []
    finally:
        client.delete("/v1/collections/empty_one")


def test_create_refuses_models_the_server_does_not_offer(client, helpers):
    error = helpers.assert_error(
        client.post("/v1/collections", json={"name": "evil", "dense": {"model": "/etc", "kind": "sentence-transformers"}}), 422, field="dense.model"
    )
    assert "not offered" in error["message"]
    helpers.assert_error(client.post("/v1/collections", json={"name": "evil", "sparse": {"model": "../../x"}}), 422, field="sparse.model")
    helpers.assert_error(client.post("/v1/collections", json={"name": "bad-name"}), 422, field="name")


# --- documents and jobs -----------------------------------------------------------------------------


def test_records_job_get_list_delete(client, helpers):
    records = [
        {"id": "rec/1", "text": "Pilots checked the aircraft engines before flying.", "title": "Pilots", "metadata": {"kind": "note"}},
        {"id": "rec#2", "text": "Farmers harvest wheat and corn.\n\nThey sell it at the market in autumn.", "source": "farm.txt"},
    ]
    response = client.post("/v1/collections/docs/documents", json={"records": records})
    assert response.status_code == 202, response.text
    job = helpers.wait_for_job(client, response.json())
    assert job["state"] == "succeeded", job
    assert job["documents"] == 2 and job["documents_indexed"] == 2 and job["chunks_written"] >= 2
    doc = client.get("/v1/collections/docs/documents/rec/1").json()
    assert doc["doc_id"] == "rec/1" and doc["chunks"][0]["metadata"] == {"kind": "note"}
    assert client.get("/v1/collections/docs/documents/rec%232").json()["chunks"][0]["source"] == "farm.txt"
    found = client.post("/v1/collections/docs/search", json={"query": "aircraft engines", "paths": ["bm25"], "rerank": False}).json()
    assert found["hits"][0]["doc_id"] == "rec/1"
    listed = client.get("/v1/collections/docs/documents", params={"limit": 2}).json()
    assert listed["truncated"] is True and len(listed["documents"]) == 2
    assert any(j["id"] == job["id"] for j in client.get("/v1/jobs").json())
    assert client.delete("/v1/collections/docs/documents/rec/1").json() == {"doc_id": "rec/1", "chunks_deleted": 1}
    helpers.assert_error(client.get("/v1/collections/docs/documents/rec/1"), 404, "document_not_found")
    helpers.assert_error(client.delete("/v1/collections/docs/documents/rec/1"), 404, "document_not_found")
    assert client.delete("/v1/collections/docs/documents/rec%232").status_code == 200


def test_records_without_chunking(client, helpers):
    response = client.post("/v1/collections/docs/documents", json={"records": [{"id": "whole", "text": "one chunk only. " * 50}], "chunk": False})
    job = helpers.wait_for_job(client, response.json())
    assert job["state"] == "succeeded" and job["chunks_written"] == 1
    assert client.delete("/v1/collections/docs/documents/whole").status_code == 200


def test_upload_files_job(client, helpers, upload_root):
    files = [
        ("files", ("garden notes.md", io.BytesIO(b"# Garden\n\nTomatoes need sun and water every day.\n"), "text/markdown")),
        ("files", ("plain.txt", io.BytesIO("Die Katze schläft. 猫在睡觉。".encode()), "text/plain")),
        ("files", ("records.jsonl", io.BytesIO(b'{"id": "j1", "text": "jsonl record about tomatoes", "title": "J1"}\n{"id": "j2", "text": "second"}\n'), "application/octet-stream")),
        ("files", ("empty.txt", io.BytesIO(b"   \n"), "text/plain")),
    ]
    response = client.post("/v1/collections/docs/documents/upload", files=files)
    assert response.status_code == 202, response.text
    job = helpers.wait_for_job(client, response.json())
    assert job["state"] == "succeeded", job
    assert job["documents"] == 4  # md, txt, two jsonl records; the blank file is skipped
    assert [s["reason"] for s in job["skipped"]] == ["empty"] or [s["source"] for s in job["skipped"]] == ["empty.txt"]
    assert client.get("/v1/collections/docs/documents/upload/garden notes.md").status_code == 200
    assert client.get("/v1/collections/docs/documents/j1").json()["chunks"][0]["title"] == "J1"
    hits = client.post("/v1/collections/docs/search", json={"query": "tomatoes", "paths": ["bm25"], "rerank": False}).json()["hits"]
    assert {"upload/garden notes.md", "j1"} <= {h["doc_id"] for h in hits}
    # The staging folder is removed once the job is done.
    assert list(upload_root.iterdir()) == []
    for doc_id in ("upload/garden notes.md", "upload/plain.txt", "j1", "j2"):
        client.delete(f"/v1/collections/docs/documents/{doc_id}")


def test_paths_job_reads_only_inside_the_root(client, helpers):
    response = client.post("/v1/collections/docs/documents/paths", json={"root": "files", "paths": ["notes"]})
    assert response.status_code == 202, response.text
    job = helpers.wait_for_job(client, response.json())
    assert job["state"] == "succeeded" and job["documents"] == 2, job
    assert client.get("/v1/collections/docs/documents/files/notes/alpha.md").status_code == 200
    # The whole root: the symlink to a file outside it is not followed.
    job = helpers.wait_for_job(client, client.post("/v1/collections/docs/documents/paths", json={"root": "files"}).json())
    assert job["documents"] == 2
    helpers.assert_error(client.get("/v1/collections/docs/documents/files/link-out.txt"), 404)
    for bad in ("../secret.txt", "notes/../../secret.txt", "/etc/passwd", "link-out.txt", "~/x"):
        helpers.assert_error(client.post("/v1/collections/docs/documents/paths", json={"root": "files", "paths": [bad]}), 403, "path_forbidden")
    helpers.assert_error(client.post("/v1/collections/docs/documents/paths", json={"root": "files", "paths": ["nope"]}), 404, "path_not_found")
    helpers.assert_error(client.post("/v1/collections/docs/documents/paths", json={"root": "elsewhere"}), 403, "path_forbidden", field="root")
    for doc_id in ("files/notes/alpha.md", "files/notes/beta.txt"):
        client.delete(f"/v1/collections/docs/documents/{doc_id}")


def test_job_queue_is_bounded(make_client, helpers):
    other = make_client(max_queued_jobs=1, engine_concurrency=1)
    # Hold the model gate so the worker blocks on the first job and the queue stays full.
    services = other.app.state.services
    with services.job_gate():
        first = other.post("/v1/collections/docs/documents", json={"records": [{"id": "q1", "text": "queued one"}]})
        assert first.status_code == 202
        helpers.assert_error(other.post("/v1/collections/docs/documents", json={"records": [{"id": "q2", "text": "two"}]}), 429, "too_many_jobs")
    assert helpers.wait_for_job(other, first.json())["state"] == "succeeded"
    other.delete("/v1/collections/docs/documents/q1")


def test_unknown_job(client, helpers):
    helpers.assert_error(client.get("/v1/jobs/0123456789abcdef0123456789abcdef"), 404, "job_not_found")
    helpers.assert_error(client.get("/v1/jobs/..%2F..%2Fetc%2Fpasswd"), 404)


# --- metrics ------------------------------------------------------------------------------------------


def test_metrics_have_per_stage_histograms(client):
    client.post("/v1/collections/docs/search", json={"query": "cat", "rerank": True})
    text = client.get("/metrics").text
    for stage in ("encode", "bm25", "sparse", "dense", "fusion", "rerank", "total"):
        assert f'hybrid_search_search_stage_seconds_count{{stage="{stage}"}}' in text, stage
    assert 'hybrid_search_http_request_duration_seconds_bucket{le="0.001",method="POST",route="/v1/collections/{name}/search"}' in text
    assert "hybrid_search_index_jobs_total" in text


def test_metrics_count_what_the_models_and_the_store_did(client):
    def counters() -> dict[str, float]:
        lines = client.get("/metrics").text.splitlines()
        return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in lines if line.startswith("hybrid_search_") and "_total" in line)}

    before = counters()
    for query in ("cat", "dog on a mat"):
        assert client.post("/v1/collections/docs/search", json={"query": query, "rerank": False}).status_code == 200
    after = counters()
    assert after["hybrid_search_queries_encoded_total"] - before.get("hybrid_search_queries_encoded_total", 0) == 2
    assert after["hybrid_search_query_encode_calls_total"] > before.get("hybrid_search_query_encode_calls_total", 0)
    assert after['hybrid_search_encode_seconds_total{work="queries"}'] > before.get('hybrid_search_encode_seconds_total{work="queries"}', 0)
    assert after['hybrid_search_encode_seconds_total{work="documents"}'] > 0, "the fixture's documents were encoded"
    searches = after["hybrid_search_store_requests_total"] - before.get("hybrid_search_store_requests_total", 0)
    calls = after["hybrid_search_store_calls_total"] - before.get("hybrid_search_store_calls_total", 0)
    assert searches >= 2 * 3 and 0 < calls <= searches


# --- API keys ------------------------------------------------------------------------------------------

READ_KEY = "r" * 20
WRITE_KEY = "w" * 20


def test_api_keys_and_scopes(make_client, helpers):
    secured = make_client(read_api_keys=[READ_KEY], write_api_keys=[WRITE_KEY])
    search = {"query": "cat", "rerank": False}
    helpers.assert_error(secured.post("/v1/collections/docs/search", json=search), 401, "unauthorized")
    helpers.assert_error(secured.post("/v1/collections/docs/search", json=search, headers={"Authorization": "Bearer wrong-key-xxxxxxxxxx"}), 401)
    assert secured.post("/v1/collections/docs/search", json=search, headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200
    assert secured.post("/v1/collections/docs/search", json=search, headers={"X-API-Key": WRITE_KEY}).status_code == 200
    helpers.assert_error(secured.post("/v1/collections", json={"name": "x1"}, headers={"X-API-Key": READ_KEY}), 403, "forbidden")
    helpers.assert_error(secured.get("/metrics"), 401)
    assert secured.get("/metrics", headers={"X-API-Key": READ_KEY}).status_code == 200
    # Liveness, readiness, docs and the page need no key.
    for url in ("/healthz", "/readyz", "/openapi.json", "/ui/"):
        assert secured.get(url).status_code == 200, url
    # ... but the process id, store and models only show to a key holder
    for url in ("/healthz", "/readyz"):
        assert secured.get(url).json().get("pid") is None, url
        assert secured.get(url, headers={"X-API-Key": READ_KEY}).json()["pid"] == os.getpid(), url
    assert secured.get("/readyz").json().get("store") is None
    public = make_client(write_api_keys=[WRITE_KEY], public_read=True)
    assert public.post("/v1/collections/docs/search", json=search).status_code == 200
    helpers.assert_error(public.delete("/v1/collections/docs"), 401)


def test_search_reports_request_id(client):
    response = client.post("/v1/collections/docs/search", json={"query": "cat"}, headers={"X-Request-ID": "abc-123-def-456"})
    assert response.headers["x-request-id"] == "abc-123-def-456"
    bad = client.post("/v1/collections/docs/search", json={"k": 1}, headers={"X-Request-ID": "<script>"})
    assert bad.json()["error"]["request_id"] == bad.headers["x-request-id"] != "<script>"


def test_openapi_documents_the_error_shape(client):
    spec = client.get("/openapi.json").json()
    search = spec["paths"]["/v1/collections/{name}/search"]["post"]
    assert "422" in search["responses"] and "503" in search["responses"]
    assert "ErrorResponse" in json.dumps(spec["components"])
