"""Fixtures for the API tests: one real Engine on Milvus Lite with the tiny
models (built once per package), and apps over it with different settings."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hybrid_search import (
    Chunk,
    Engine,
    RerankConfig,
    RuntimeConfig,
    StoreConfig,
)
from hybrid_search.api import ApiSettings, create_app

#: (doc_id, title, text, metadata) indexed into the "docs" collection.
CORPUS = [
    ("cats", "Cats", "The cat sat on the mat and watched the dog.", {"lang": "en", "n": 0, "tag": "pets"}),
    ("dogs", "Dogs", "Dogs chase cats around the garden every morning.", {"lang": "en", "n": 1, "tag": "pets"}),
    ("milvus", "Milvus", "Milvus is an open source vector database built for similarity search.", {"lang": "en", "n": 2, "tag": "tech"}),
    ("revenue", "Revenue", "The company reported record revenue and profit in the fourth quarter.", {"lang": "en", "n": 3, "tag": "finance"}),
    ("hybrid", "Hybrid", "Hybrid search combines dense retrieval with sparse lexical retrieval.", {"lang": "en", "n": 4, "tag": "tech"}),
    ("weather", "Weather", "The weather today is sunny with a light wind from the west.", {"lang": "en", "n": 5, "tag": "misc"}),
    ("zh-db", "数据库", "向量数据库用于高效的相似度检索。", {"lang": "zh", "n": 6, "tag": "tech"}),
    ("quotes", 'He said "hi"', 'A title with "quotes" and a back\\slash in the text.', {"lang": "en", "n": 7, "tag": 'we"ird'}),
]


def model_settings(tiny_models: Any, **overrides: Any) -> ApiSettings:
    """Settings whose default models are the tiny test models."""
    values: dict[str, Any] = {
        "dense_model": str(tiny_models.dense),
        "dense_kind": "sentence-transformers",
        "sparse_model": str(tiny_models.splade),
        "sparse_kind": "splade",
        "device": "cpu",
        "busy_timeout_s": 60.0,
    }
    values.update(overrides)
    return ApiSettings(**values)


@pytest.fixture(scope="package")
def api_engine(tiny_models, tmp_path_factory) -> Iterator[Engine]:
    """An Engine with a reranker and one indexed collection, "docs"."""
    engine = Engine(
        StoreConfig(uri=str(tmp_path_factory.mktemp("api-milvus") / "api.db"), timeout_s=30),
        runtime=RuntimeConfig(device="cpu"),
        reranker=RerankConfig(model=str(tiny_models.cross_encoder), kind="cross-encoder", top_n=20),
    )
    engine.create_collection(tiny_models.hybrid_collection("docs"))
    engine.index(
        "docs",
        [Chunk(doc_id=d, chunk_index=0, text=text, title=title, source=f"{d}.txt", metadata=meta) for d, title, text, meta in CORPUS],
    )
    yield engine
    engine.close()


@pytest.fixture(scope="package")
def upload_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="package")
def document_root(tmp_path_factory) -> Path:
    """A server folder the paths endpoint may read, and a secret outside it."""
    base = tmp_path_factory.mktemp("server-files")
    root = base / "root"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "alpha.md").write_text("# Alpha\n\nThe alpha note talks about cats and gardens.\n", encoding="utf-8")
    (root / "notes" / "beta.txt").write_text("Beta is a note about vector databases.\n", encoding="utf-8")
    (root / "notes" / "skip.bin").write_bytes(b"\x00\x01binary")
    (base / "secret.txt").write_text("top secret outside the root\n", encoding="utf-8")
    (root / "link-out.txt").symlink_to(base / "secret.txt")
    return root


@pytest.fixture(scope="package")
def api_settings(tiny_models, upload_root, document_root) -> ApiSettings:
    return model_settings(
        tiny_models,
        upload_dir=upload_root,
        document_roots={"files": document_root},
        max_upload_bytes=256 * 1024,
    )


@pytest.fixture(scope="package")
def client(api_engine, api_settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings, engine=api_engine)) as test_client:
        yield test_client


@pytest.fixture()
def make_client(api_engine, tiny_models) -> Iterator[Callable[..., TestClient]]:
    """Another app over the shared engine, with other settings."""
    opened: list[TestClient] = []

    def make(raise_server_exceptions: bool = True, **overrides: Any) -> TestClient:
        test_client = TestClient(
            create_app(model_settings(tiny_models, **overrides), engine=api_engine),
            raise_server_exceptions=raise_server_exceptions,
        )
        test_client.__enter__()
        opened.append(test_client)
        return test_client

    yield make
    for test_client in opened:
        test_client.__exit__(None, None, None)


def wait_for_job(client: TestClient, job: dict[str, Any], timeout: float = 60.0, headers: dict | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/jobs/{job['id']}", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["state"] in ("succeeded", "failed"):
            return body
        assert time.monotonic() < deadline, f"job did not finish: {body}"
        time.sleep(0.05)


def assert_error(response, status: int, code: str | None = None, field: str | None = None) -> dict[str, Any]:
    """The one error shape, the expected status, and never a stack trace."""
    assert response.status_code == status, f"{response.status_code}: {response.text[:500]}"
    assert "Traceback" not in response.text and 'File "' not in response.text
    body = response.json()
    error = body["error"]
    assert error["status"] == status
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert error.get("field") == field, error
    return error


def raw_json(client: TestClient, url: str, text: str, **kwargs: Any):
    """POST a JSON text exactly as given (json= would normalise it)."""
    return client.post(url, content=text.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"}, **kwargs)


@pytest.fixture(scope="package")
def helpers():
    """The helper functions, for test modules (importlib mode: no conftest imports)."""

    class Helpers:
        wait_for_job = staticmethod(wait_for_job)
        assert_error = staticmethod(assert_error)
        raw_json = staticmethod(raw_json)
        corpus = CORPUS
        dumps = staticmethod(json.dumps)

    return Helpers


# --- a real browser on the page (Debian's chromium + chromedriver, via selenium) -----------


@pytest.fixture(scope="package")
def serve_app() -> Callable[[Any], Iterator[str]]:
    """A generator serving an app with uvicorn on loopback, in a thread of this
    process: ``yield from serve_app(app)`` in a fixture yields its base URL."""

    def serve(app: Any) -> Iterator[str]:
        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True
        thread.join(10)

    return serve


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless chromium; the test skips where selenium, chromium or chromedriver is missing."""
    pytest.importorskip("selenium", reason="the browser tests need selenium (pip install selenium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip("no chromium/chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    except Exception as error:  # noqa: BLE001 - a browser that cannot start is an environment problem
        pytest.skip(f"chromium could not be started: {error}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
