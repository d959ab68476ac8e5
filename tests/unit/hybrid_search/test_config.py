import pytest

from hybrid_search.settings import LayeredSettings
from hybrid_search.config import (
    CollectionConfig,
    DenseEncoderConfig,
    FusionConfig,
    RerankConfig,
    RuntimeConfig,
    SparseEncoderConfig,
    StoreConfig,
)
from hybrid_search.errors import ConfigError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DenseEncoderConfig(kind="word2vec"), "kind must be one of"),
        (lambda: SparseEncoderConfig(kind="tfidf"), "kind must be one of"),
        (lambda: FusionConfig(method="max"), "method must be one of"),
        (lambda: FusionConfig(normalization="l2"), "normalization must be one of"),
        (lambda: FusionConfig(weights={"colbert": 1.0}), "unknown path"),
        (lambda: FusionConfig(weights={"bm25": -1.0}), ">= 0"),
        (lambda: RerankConfig(kind="llm"), "kind must be one of"),
        (lambda: RerankConfig(min_score=1.5), r"\[0, 1\]"),
        (lambda: RerankConfig(first_stage_weight=-0.1), r"first_stage_weight must lie in \[0, 1\]"),
        (lambda: RerankConfig(first_stage_weight=1.5), r"first_stage_weight must lie in \[0, 1\]"),
        (lambda: RerankConfig(first_stage_weight=float("nan")), "first_stage_weight"),
        (lambda: RerankConfig(first_stage_weight="0.5"), "first_stage_weight"),
        (lambda: RuntimeConfig(device="tpu"), "device must be one of"),
        (lambda: StoreConfig(uri=""), "empty"),
        (lambda: StoreConfig(dense_index="IVF_PQ"), "dense_index"),
        (lambda: CollectionConfig(name="bad-name"), "not valid"),
        (lambda: CollectionConfig(name="1abc"), "not valid"),
        (lambda: CollectionConfig(name="ok", bm25_b=2.0), "bm25_b"),
        (lambda: CollectionConfig(name="ok", bm25_k1=3.5), "bm25_k1"),
        (lambda: CollectionConfig(name="ok", bm25_k1=1e-300), "bm25_k1"),
    ],
)
def test_choices_are_checked_on_construction(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_collection_paths_follow_its_encoders():
    assert CollectionConfig(name="a").paths == ("bm25", "sparse", "dense")
    assert CollectionConfig(name="a", dense=None, sparse=None).paths == ("bm25",)


def test_store_knows_lite_from_server():
    assert StoreConfig(uri="kb.db").is_lite
    assert not StoreConfig(uri="http://localhost:19530").is_lite


def test_layered_settings_precedence(tmp_path, monkeypatch):
    config = tmp_path / "hs.toml"
    config.write_text('[store]\nuri = "from-file.db"\n[runtime]\nbatch_size = 8\n', encoding="utf-8")
    monkeypatch.setenv("HYBRID_SEARCH_URI", "from-env.db")
    monkeypatch.setenv("HYBRID_SEARCH_DEVICE", "cpu")
    settings = LayeredSettings.load(config)
    assert settings.get("store", "uri", "from-flag.db", "default.db") == "from-flag.db"
    # relative paths in the file are relative to the file
    assert settings.get("store", "uri", None, "default.db") == str(tmp_path / "from-file.db")
    assert settings.get("runtime", "device", None, "auto") == "cpu"
    assert settings.get("runtime", "batch_size", None, 32) == 8
    assert settings.get("rerank", "model", None, "default") == "default"


def test_layered_settings_refuse_unknown_keys_and_bad_env(tmp_path, monkeypatch):
    config = tmp_path / "hs.toml"
    config.write_text("[store]\nurl = 'typo'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key"):
        LayeredSettings.load(config)
    monkeypatch.setenv("HYBRID_SEARCH_BATCH_SIZE", "many")
    with pytest.raises(ConfigError, match="HYBRID_SEARCH_BATCH_SIZE"):
        LayeredSettings().get("runtime", "batch_size", None, 32)
