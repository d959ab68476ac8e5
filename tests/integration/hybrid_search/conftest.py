import pytest

from hybrid_search import CollectionConfig, DenseEncoderConfig, Engine, RuntimeConfig, SparseEncoderConfig, StoreConfig

@pytest.fixture(scope="module")
def m3_engine(tiny_models, tmp_path_factory):
    """An engine with one M3 collection (dense + sparse from one model)."""
    engine = Engine(StoreConfig(uri=str(tmp_path_factory.mktemp("milvus") / "m3.db")), runtime=RuntimeConfig(device="cpu"))
    engine.create_collection(
        CollectionConfig(
            name="m3",
            dense=DenseEncoderConfig(model=str(tiny_models.m3), kind="bge-m3"),
            sparse=SparseEncoderConfig(model=str(tiny_models.m3), kind="bge-m3"),
        )
    )
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def st_engine(tiny_models, tmp_path_factory):
    """An engine with one sentence-transformers dense + SPLADE collection."""
    engine = Engine(StoreConfig(uri=str(tmp_path_factory.mktemp("milvus") / "st.db")), runtime=RuntimeConfig(device="cpu"))
    engine.create_collection(tiny_models.hybrid_collection("st"))
    yield engine
    engine.close()
