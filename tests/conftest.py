"""Shared pytest configuration and fixtures for the hybrid-search test suite.

Sections (append new fixtures to the matching section):
  1. Environment      - process-wide settings applied before collection.
  2. Model fixtures   - tiny real models built locally (no downloads).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

try:  # repo root on sys.path (``python -m pytest``, or pythonpath = ["."])
    from tests.tiny_models import TinyModels, build_tiny_models
except ModuleNotFoundError:  # rootdir-less ``pytest``: tests/ itself is on sys.path
    from tiny_models import TinyModels, build_tiny_models  # type: ignore[no-redef]


# ---------------------------------------------------------------------------
# 1. Environment
# ---------------------------------------------------------------------------

#: Never touch the Hugging Face Hub from tests: every model is local.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def pytest_configure(config: pytest.Config) -> None:
    # Set here rather than in a fixture: huggingface_hub reads HF_HUB_OFFLINE
    # once, at import time, so it must be in place before any test module
    # (or library) is imported.
    os.environ.update(OFFLINE_ENV)
    # One math thread per process: the tiny models gain nothing from more, and
    # the suite runs two pytest-xdist workers (plus their Milvus Lite servers
    # and CLI subprocesses, which inherit this) on two cores. Set before torch
    # is imported, which reads it once.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # A developer's model profile (~/.config/hybrid-search/models.toml, written
    # by scripts/setup.sh) must not change what the tests see; profile tests
    # set this variable themselves.
    os.environ["HYBRID_SEARCH_MODEL_PROFILE"] = "hub"


@pytest.fixture
def quiet_pymilvus() -> Iterator[None]:
    """pymilvus warns on every query iterator, through a handler it sets up at
    import: imported inside a CliRunner call, that handler would keep the
    runner's stderr, closed afterwards. Import it here, then quiet it."""
    import logging

    import pymilvus  # noqa: F401

    logger = logging.getLogger("pymilvus")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.fixture
def no_hybrid_search_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HYBRID_SEARCH_* variable from the developer's shell leaks into a test
    of settings precedence."""
    for name in list(os.environ):
        if name.startswith("HYBRID_SEARCH_"):
            monkeypatch.delenv(name)


# ---------------------------------------------------------------------------
# 2. Model fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Paths of tiny random BERT models (dense / m3 / splade / cross-encoder),
    built once per test session.  See ``tests/tiny_models.py``.

    Under pytest-xdist every worker has its own temporary folder inside the
    session's: the models go in that shared parent, so the first worker builds
    them (~20 s) and the others wait on the build's file lock and reuse them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return build_tiny_models(tmp_path_factory.getbasetemp().parent / "tiny-models")
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))
