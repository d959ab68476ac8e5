"""The one error shape, status mapping, API-key scopes and body limits, on an
app over a stand-in engine (no Milvus, no models)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hybrid_search.api import ApiSettings, create_app
from hybrid_search.api.errors import status_for
from hybrid_search.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigError,
    FilterError,
    HybridSearchError,
    InputError,
    ManifestMismatchError,
    ModelLoadError,
    StoreError,
    StoreUnavailableError,
)

pytestmark = pytest.mark.unit

READ = "r" * 20
WRITE = "w" * 20


class FakeEngine:
    """Just enough of Engine for the routes that only list."""

    rerank_config = None

    def __init__(self) -> None:
        self.error: Exception | None = None

    def list_collections(self) -> list[str]:
        if self.error is not None:
            raise self.error
        return []

    def supervise_store(self) -> str | None:
        return None

    def close(self) -> None:  # pragma: no cover - the app never closes an engine it was given
        raise AssertionError("the app must not close an engine it did not open")


def make(engine: FakeEngine | None = None, **settings) -> TestClient:
    return TestClient(create_app(ApiSettings(**settings), engine=engine or FakeEngine()), raise_server_exceptions=False)


def shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) <= {"status", "code", "message", "field", "details", "request_id"}
    assert error["status"] == status and error["code"] == code and error["message"]
    assert error["request_id"] == response.headers.get("x-request-id", error["request_id"])
    assert "Traceback" not in response.text
    return error


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (FilterError("f"), 422, "invalid_filter"),
        (InputError("i"), 422, "invalid_input"),
        (ConfigError("c"), 422, "invalid_config"),
        (CollectionNotFoundError("n"), 404, "collection_not_found"),
        (CollectionExistsError("e"), 409, "collection_exists"),
        (ManifestMismatchError("m"), 409, "manifest_mismatch"),
        (StoreUnavailableError("u"), 503, "store_unavailable"),
        (StoreError("s"), 502, "store_error"),
        (ModelLoadError("l"), 503, "model_unavailable"),
        (HybridSearchError("h"), 500, "internal_error"),
    ],
)
def test_project_errors_map_to_statuses(error, status, code):
    assert status_for(error) == (status, code)
    engine = FakeEngine()
    with make(engine) as client:
        engine.error = error
        body = shape(client.get("/v1/collections"), status, code)
        if status == 503:
            assert client.get("/v1/collections").headers["retry-after"]
        if status != 500:
            assert body["message"] == str(error)


def test_unexpected_exception_is_a_bare_500():
    engine = FakeEngine()
    with make(engine) as client:
        engine.error = KeyError("/secret/path")
        error = shape(client.get("/v1/collections"), 500, "internal_error")
        assert "secret" not in error["message"] and error["request_id"] in error["message"]


def test_validation_and_http_errors_share_the_shape():
    with make() as client:
        error = shape(client.get("/v1/jobs", params={"limit": "many"}), 422, "validation_error")
        assert error["field"] == "limit" and error["details"][0]["location"] == "query"
        shape(client.post("/v1/collections", content=b"{", headers={"content-type": "application/json"}), 400, "malformed_json")
        shape(client.get("/nowhere"), 404, "not_found")
        shape(client.put("/v1/collections"), 405, "method_not_allowed")
        shape(client.get("/ui/missing.js"), 404, "not_found")


def test_body_limit_from_content_length():
    with make(max_body_bytes=2048) as client:
        error = shape(client.post("/v1/collections", content=b"x" * 4096, headers={"content-type": "application/json"}), 413, "payload_too_large")
        assert error["field"] == "body"


def test_api_key_scopes():
    with make(read_api_keys=[READ], write_api_keys=[WRITE]) as client:
        shape(client.get("/v1/collections"), 401, "unauthorized")
        assert client.get("/v1/collections").headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/collections", headers={"Authorization": f"Bearer {READ}"}).status_code == 200
        assert client.get("/v1/collections", headers={"Authorization": f"bearer {WRITE}"}).status_code == 200
        assert client.get("/v1/collections", headers={"X-API-Key": READ}).status_code == 200
        shape(client.get("/v1/collections", headers={"X-API-Key": READ + "x"}), 401, "unauthorized")
        shape(client.get("/v1/collections", headers={"Authorization": "Basic abc"}), 401, "unauthorized")
        shape(client.post("/v1/collections", json={"name": "x"}, headers={"X-API-Key": READ}), 403, "forbidden")
        # A write request with a valid write key gets past auth (to validation here).
        shape(client.post("/v1/collections", json={}, headers={"X-API-Key": WRITE}), 422, "validation_error")
        assert client.get("/healthz").status_code == 200


def test_openapi_and_docs_can_be_switched_off():
    with make(docs=False) as client:
        assert client.get("/openapi.json").status_code == 404 and client.get("/docs").status_code == 404


def test_security_headers():
    with make() as client:
        response = client.get("/healthz")
        assert response.headers["x-content-type-options"] == "nosniff" and len(response.headers["x-request-id"]) == 32
        page = client.get("/ui/")
        assert "script-src 'self'" in page.headers["content-security-policy"] and page.headers["x-frame-options"] == "DENY"


def test_the_running_app_shortens_the_gil_switch_interval_and_restores_it():
    import sys

    before = sys.getswitchinterval()
    with make(switch_interval_ms=0.5) as client:
        assert client.get("/v1/collections").status_code == 200
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert sys.getswitchinterval() == before
