"""Creating a collection is all or nothing: a setting Milvus would refuse is
refused first, and a creation that fails half-way leaves nothing listed."""

from __future__ import annotations

import json

import pytest

from hybrid_search import (
    CollectionConfig,
    CollectionExistsError,
    ConfigError,
    Engine,
    RuntimeConfig,
    StoreConfig,
    StoreError,
)
from hybrid_search.manifest import manifest_for as _manifest_for

pytestmark = pytest.mark.integration


@pytest.fixture()
def engine(tmp_path):
    engine = Engine(StoreConfig(uri=str(tmp_path / "create.db")), runtime=RuntimeConfig(device="cpu"))
    yield engine
    engine.close()


@pytest.mark.parametrize("b", [2.2e-313, 1e-40, float("nan"), 1.5, -0.1])
def test_bm25_b_milvus_cannot_read_is_refused_before_creating(engine, b):
    with pytest.raises(ConfigError, match="bm25_b"):
        CollectionConfig(name="a", dense=None, sparse=None, bm25_b=b)
    assert CollectionConfig(name="a", dense=None, sparse=None, bm25_b=1.2e-38).bm25_b == 1.2e-38


def test_a_creation_that_fails_in_milvus_leaves_nothing(engine):
    config = CollectionConfig(name="a", dense=None, sparse=None)
    # straight to the store, past the validation: Milvus refuses the index
    with pytest.raises(StoreError, match="bm25_b"):
        engine.store.create_collection("a", _manifest_for(config, None), dense_dim=None, with_sparse=False, bm25_k1=1.2, bm25_b=1e-40)
    assert not engine.store.has_collection("a")
    engine.create_collection(config)
    assert engine.list_collections() == ["a"]


def test_a_half_made_collection_is_not_listed_and_can_be_dropped(engine):
    from pymilvus import DataType, MilvusClient

    config = CollectionConfig(name="half", dense=None, sparse=None)
    schema = MilvusClient.create_schema(auto_id=False, description=json.dumps(_manifest_for(config, None)))
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("bm25", DataType.SPARSE_FLOAT_VECTOR)
    engine.store.client.create_collection("half", schema=schema)  # as an old failed creation left it: no index
    engine.create_collection(CollectionConfig(name="whole", dense=None, sparse=None))
    assert engine.list_collections() == ["whole"]
    with pytest.raises(CollectionExistsError, match="incomplete"):
        engine.create_collection(config, exist_ok=True)
    engine.drop_collection("half")
    engine.create_collection(config)
    assert engine.list_collections() == ["half", "whole"]


def test_api_names_the_field_and_delete_removes_a_half_made_collection(engine, tmp_path):
    from fastapi.testclient import TestClient
    from pymilvus import DataType, MilvusClient

    from hybrid_search.api import ApiSettings, create_app

    with TestClient(create_app(ApiSettings(device="cpu"), engine=engine)) as client:
        response = client.post("/v1/collections", json={"name": "a", "dense": None, "sparse": None, "bm25": {"b": 2.2e-313}})
        assert response.status_code == 422 and response.json()["error"]["field"] == "bm25.b", response.text
        assert client.get("/v1/collections").json()["collections"] == []
        schema = MilvusClient.create_schema(auto_id=False, description="{}")
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("bm25", DataType.SPARSE_FLOAT_VECTOR)
        engine.store.client.create_collection("a", schema=schema)
        assert client.get("/v1/collections").json()["collections"] == []
        response = client.delete("/v1/collections/a")
        assert response.status_code == 200, response.text
        assert not engine.store.has_collection("a")
