"""Schema-driven fuzzing: schemathesis generates requests from the app's own
OpenAPI document (valid and invalid ones) and no answer may be a 5xx."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis", reason="the fuzz test needs schemathesis (pip install schemathesis)")
from schemathesis.checks import not_a_server_error

from hybrid_search import (
    Chunk,
)
from hybrid_search.api import ApiSettings, create_app

pytestmark = pytest.mark.integration

# Bounded: 10 examples per operation and mode keeps the run well under a minute on 2 cores.
EXAMPLES_PER_OPERATION = 10


@pytest.fixture(scope="module")
def fuzz_app(api_engine, tiny_models, tmp_path_factory) -> Iterator[object]:
    """An app over the package's engine, aimed at its own collection "fuzz"."""
    base = tmp_path_factory.mktemp("fuzz")
    (base / "root").mkdir()
    (base / "root" / "a.md").write_text("# A\n\nfuzz target document about cats\n", encoding="utf-8")
    api_engine.create_collection(
        tiny_models.hybrid_collection("fuzz"),
        exist_ok=True,
    )
    api_engine.index("fuzz", [Chunk(doc_id=f"d{i}", chunk_index=0, text=f"the cat number {i} sat on mat {i}", metadata={"n": i}) for i in range(5)])
    api_settings = ApiSettings(
        dense_model=str(tiny_models.dense),
        dense_kind="sentence-transformers",
        sparse_model=None,
        device="cpu",
        upload_dir=base / "uploads",
        document_roots={"root": str(base / "root")},
        max_upload_bytes=64 * 1024,
        busy_timeout_s=60,
    )
    app = create_app(api_settings, engine=api_engine)
    with TestClient(app):  # runs the lifespan: job worker, warm-up
        yield app
    for name in api_engine.list_collections():
        if name not in ("docs",):
            api_engine.drop_collection(name)


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    rng = random.Random(1234)

    @schema.hook
    def map_path_parameters(ctx, path_parameters):
        # Half the time aim at the real collection, so requests reach the engine
        # and Milvus instead of stopping at "collection not found".
        if path_parameters and "name" in path_parameters and rng.random() < 0.5:
            path_parameters["name"] = "fuzz"
        return path_parameters

    return schema


# The operations, read from the app's own OpenAPI document (building an app
# opens nothing: the engine and models come with the lifespan).
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in create_app(ApiSettings()).openapi()["paths"].items()
    for method in item
)


# Driven through Hypothesis directly: schemathesis's pytest plugin does not work
# with pytest 9 (it reaches for a private Item attribute).
@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_produces_a_server_error(fuzz_schema, method, path, mode):
    from schemathesis.generation import GenerationMode

    operation = fuzz_schema[path][method]
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode), hooks=fuzz_schema.hooks)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        derandomize=True,
        database=None,
    )
    def run(case):
        response = case.call()
        case.validate_response(response, checks=[not_a_server_error])
        content_type = response.headers.get("content-type") or [""]
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        if response.status_code >= 400 and content_type.startswith("application/json"):
            body = response.json()
            assert set(body) == {"error"} and {"status", "code", "message"} <= set(body["error"]), body
        assert "Traceback" not in response.text

    try:
        run()
    except Unsatisfiable:
        pytest.skip("no invalid input exists for an operation without parameters")


def test_fuzzed_service_still_answers(fuzz_app):
    """After the fuzz run the collection still searches and indexes."""
    with TestClient(fuzz_app) as client:
        response = client.post("/v1/collections/fuzz/search", json={"query": "cat", "k": 3})
        assert response.status_code in (200, 404), response.text  # 404 only if the fuzzer dropped it
        files = [("files", ("after.txt", io.BytesIO(b"after the fuzz"), "text/plain"))]
        assert client.post("/v1/collections/fuzz/documents/upload", files=files).status_code in (202, 404)
