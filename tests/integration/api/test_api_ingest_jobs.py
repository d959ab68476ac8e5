"""API document jobs run the same ingestion pipeline as `hybrid-search index`:
JSONL metadata fields are kept, sync state makes a repeated upload a no-op,
and skip reasons are reported."""

from __future__ import annotations

import io
import json

import pytest

pytestmark = pytest.mark.integration

RECORDS = [
    {"id": "meta-1", "title": "Tomatoes", "text": "Tomatoes need sun and water.", "dept": "garden", "year": 2023},
    {"id": "meta-2", "title": "Basil", "text": "Basil grows well next to tomatoes.", "dept": "garden", "year": 2021},
]


def upload(client, helpers, name: str, body: bytes):
    response = client.post("/v1/collections/docs/documents/upload", files=[("files", (name, io.BytesIO(body), "application/octet-stream"))])
    assert response.status_code == 202, response.text
    return helpers.wait_for_job(client, response.json())


def test_jsonl_metadata_survives_an_upload_job_and_an_unchanged_file_is_not_rewritten(client, helpers):
    body = "".join(json.dumps(r) + "\n" for r in RECORDS).encode()
    try:
        job = upload(client, helpers, "plants.jsonl", body)
        assert job["state"] == "succeeded" and job["documents"] == 2 and job["chunks_written"] == 2, job
        stored = client.get("/v1/collections/docs/documents/meta-1").json()["chunks"][0]
        assert stored["metadata"] == {"dept": "garden", "year": 2023}
        filtered = client.post(
            "/v1/collections/docs/search",
            json={"query": "tomatoes", "paths": ["bm25"], "rerank": False, "filters": [{"field": "metadata.year", "op": "<", "value": 2022}]},
        ).json()["hits"]
        assert [h["doc_id"] for h in filtered] == ["meta-2"]
        # The sync state knows the file: the same upload again writes nothing.
        again = upload(client, helpers, "plants.jsonl", body)
        assert again["state"] == "succeeded" and again["chunks_written"] == 0 and again["documents"] == 2, again
    finally:
        for doc_id in ("meta-1", "meta-2"):
            client.delete(f"/v1/collections/docs/documents/{doc_id}")


def test_a_bad_record_is_skipped_with_its_reason(client, helpers):
    body = (json.dumps({"id": "ok-1", "text": "a good record about soil"}) + "\n{not json\n").encode()
    try:
        job = upload(client, helpers, "mixed.jsonl", body)
        assert job["state"] == "succeeded" and job["documents"] == 1, job
        assert [s["source"] for s in job["skipped"]] == ["mixed.jsonl:2"] and job["skipped"][0]["reason"], job  # file:line
    finally:
        client.delete("/v1/collections/docs/documents/ok-1")
