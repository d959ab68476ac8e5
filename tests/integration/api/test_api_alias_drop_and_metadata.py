"""DELETE of a collection an alias serves, and reserved metadata keys, over HTTP."""

from __future__ import annotations

import pytest

from hybrid_search import Chunk, CollectionConfig

pytestmark = pytest.mark.integration


def test_delete_refuses_an_alias_target_then_drops_both(client, helpers, api_engine):
    api_engine.create_collection(CollectionConfig(name="served_v1", dense=None, sparse=None))
    api_engine.index("served_v1", [Chunk(doc_id="a", chunk_index=0, text="cats")])
    api_engine.switch_alias("served", "served_v1")
    for name in ("served", "served_v1"):
        error = helpers.assert_error(client.delete(f"/v1/collections/{name}"), 409, "collection_in_use")
        assert "alias 'served'" in error["message"] and "drop_aliases=true" in error["message"]
    assert client.get("/v1/collections/served").json()["chunks"] == 1
    dropped = client.delete("/v1/collections/served", params={"drop_aliases": True})
    assert dropped.status_code == 200, dropped.text
    assert dropped.json() == {"dropped": "served_v1", "aliases_dropped": ["served"]}
    helpers.assert_error(client.get("/v1/collections/served"), 404, "collection_not_found")


def test_records_with_a_reserved_metadata_key_are_refused(client, helpers):
    records = [{"id": "r", "text": "cats", "metadata": {"fine": 1, "_ingest_root": "x"}}]
    error = helpers.assert_error(client.post("/v1/collections/docs/documents", json={"records": records}), 422)
    assert "records.0" in error["message"] and "'_ingest_root'" in error["message"] and "reserved" in error["message"]
    helpers.assert_error(client.get("/v1/collections/docs/documents/r"), 404, "document_not_found")
