"""ApiSettings: defaults, environment parsing, and the deployment rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hybrid_search.api import ApiSettings
from hybrid_search.api.settings import is_loopback

pytestmark = pytest.mark.unit

KEY = "k" * 24


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("HYBRID_SEARCH_"):
            monkeypatch.delenv(name)


def test_safe_defaults():
    settings = ApiSettings()
    assert settings.host == "127.0.0.1" and settings.workers == 1 and not settings.auth_enabled
    assert settings.max_k <= 1000 and settings.max_query_chars <= 4096
    assert ".pdf" in settings.upload_extensions and ".exe" not in settings.upload_extensions
    assert "no API key configured" in settings.describe()


def test_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HYBRID_SEARCH_READ_API_KEYS", f"{KEY}, {'r' * 16}")
    monkeypatch.setenv("HYBRID_SEARCH_WRITE_API_KEYS", f'["{"w" * 30}"]')
    monkeypatch.setenv("HYBRID_SEARCH_MAX_K", "50")
    monkeypatch.setenv("HYBRID_SEARCH_UPLOAD_EXTENSIONS", "TXT,.md")
    monkeypatch.setenv("HYBRID_SEARCH_DOCUMENT_ROOTS", f"docs={tmp_path}")
    monkeypatch.setenv("HYBRID_SEARCH_SPARSE_MODEL", "none")
    settings = ApiSettings()
    assert [k.get_secret_value() for k in settings.read_api_keys] == [KEY, "r" * 16]
    assert settings.write_api_keys[0].get_secret_value() == "w" * 30
    assert KEY not in repr(settings) and KEY not in settings.describe()
    assert settings.max_k == 50 and settings.upload_extensions == [".md", ".txt"]
    assert settings.document_roots == {"docs": tmp_path.resolve()}
    assert settings.sparse_model is None and settings.default_sparse() is None


def test_rerank_first_stage_weight_from_the_environment(monkeypatch):
    assert ApiSettings(rerank_model="some/reranker").rerank_config().first_stage_weight == 0.0
    monkeypatch.setenv("HYBRID_SEARCH_RERANK_MODEL", "some/reranker")
    monkeypatch.setenv("HYBRID_SEARCH_RERANK_FIRST_STAGE_WEIGHT", "0.3")
    settings = ApiSettings()
    assert settings.rerank_first_stage_weight == 0.3 and settings.rerank_config().first_stage_weight == 0.3
    monkeypatch.setenv("HYBRID_SEARCH_RERANK_FIRST_STAGE_WEIGHT", "1.5")
    with pytest.raises(ValidationError, match="rerank_first_stage_weight"):
        ApiSettings()


def test_round_trip_for_worker_processes(tmp_path):
    settings = ApiSettings(store_uri="http://127.0.0.1:19530", workers=3, read_api_keys=[KEY], store_token="tok", document_roots={"d": str(tmp_path)})
    again = ApiSettings.from_env_json(settings.to_env_json())
    assert again.read_api_keys[0].get_secret_value() == KEY and again.store_token.get_secret_value() == "tok"
    assert again.workers == 3 and again.document_roots == {"d": tmp_path.resolve()}


def test_several_workers_need_a_milvus_server():
    with pytest.raises(ValidationError, match="Milvus Lite keeps its data in one local file"):
        ApiSettings(store_uri="kb.db", workers=2)
    assert ApiSettings(store_uri="http://localhost:19530", workers=4).workers == 4


def test_no_keys_means_loopback_only():
    with pytest.raises(ValidationError, match="no key to the network"):
        ApiSettings(host="0.0.0.0")
    assert ApiSettings(host="0.0.0.0", write_api_keys=[KEY]).host == "0.0.0.0"
    assert ApiSettings(host="0.0.0.0", allow_insecure=True).allow_insecure
    assert ApiSettings(host="::1").host == "::1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"read_api_keys": ["short"]},
        {"max_k": 5000},
        {"max_query_chars": 10_000},
        {"max_depth": 10**6},
        {"port": 70000},
        {"document_roots": {"x": "/definitely/not/here"}},
        {"document_roots": "no-equals-sign"},
        {"chunk_max_tokens": 64, "chunk_overlap_tokens": 40},
        {"device": "tpu"},
        {"switch_interval_ms": 0},
    ],
)
def test_refused_settings(overrides):
    with pytest.raises(ValidationError):
        ApiSettings(**overrides)


def test_model_allowlist():
    settings = ApiSettings(dense_model="/m/dense", sparse_model=None, allowed_models=["/m/other"])
    assert settings.model_allowed("/m/dense") and settings.model_allowed("/m/other")
    assert not settings.model_allowed("/etc") and not settings.model_allowed("BAAI/bge-m3")


@pytest.mark.parametrize(("host", "loop"), [("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("10.0.0.1", False), ("example.com", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop
