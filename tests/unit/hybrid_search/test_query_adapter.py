"""The linear query adapter file: identity leaves vectors unchanged, a saved
adapter loads back, and one made for another model, dimension or a changed
matrix file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hybrid_search.config import DenseEncoderConfig
from hybrid_search.errors import ConfigError, InputError, ManifestMismatchError
from hybrid_search.query_adapter import load_query_adapter, save_query_adapter

pytestmark = pytest.mark.unit


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_identity_adapter_leaves_query_vectors_unchanged(tmp_path: Path) -> None:
    vectors = _unit(np.random.default_rng(0).normal(size=(5, 8))).astype(np.float32)
    adapter = load_query_adapter(save_query_adapter(tmp_path / "a", np.eye(8), base_model="m"), model="m", dim=8)
    np.testing.assert_allclose(adapter.apply(vectors), vectors, atol=1e-6)


def test_saved_adapter_loads_back_and_applies_w_q_normalised(tmp_path: Path) -> None:
    matrix = np.random.default_rng(1).normal(size=(4, 4)).astype(np.float32)
    folder = save_query_adapter(tmp_path / "a", matrix, base_model="m", extra={"epoch": 3})
    loaded = load_query_adapter(folder, model="m", dim=4)
    np.testing.assert_array_equal(loaded.matrix, matrix)
    assert loaded.manifest["epoch"] == 3 and loaded.dim == 4
    query = np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    expected = matrix @ query[0]
    np.testing.assert_allclose(loaded.apply(query)[0], expected / np.linalg.norm(expected), atol=1e-6)


def test_adapter_for_another_model_dimension_or_changed_file_is_refused(tmp_path: Path) -> None:
    folder = save_query_adapter(tmp_path / "a", np.eye(4), base_model="minilm")
    with pytest.raises(ManifestMismatchError, match="trained for dense model 'minilm'"):
        load_query_adapter(folder, model="e5")
    with pytest.raises(ManifestMismatchError, match="8-dimensional"):
        load_query_adapter(folder, model="minilm", dim=8)
    with pytest.raises(ManifestMismatchError, match="expects 4-dimensional"):
        load_query_adapter(folder, model="minilm").apply(np.ones((1, 3), dtype=np.float32))
    np.save(folder / "adapter.npy", 2 * np.eye(4, dtype=np.float32))
    with pytest.raises(ManifestMismatchError, match="changed since its manifest"):
        load_query_adapter(folder, model="minilm")
    manifest = json.loads((folder / "adapter.json").read_text())
    (folder / "adapter.json").write_text(json.dumps({**manifest, "format": "other/9"}))
    with pytest.raises(ManifestMismatchError, match="format"):
        load_query_adapter(folder, model="minilm")
    with pytest.raises(InputError, match="not a query adapter folder"):
        load_query_adapter(tmp_path / "nothing", model="minilm")
    with pytest.raises(InputError, match="square matrix"):
        save_query_adapter(tmp_path / "b", np.ones((2, 3)), base_model="m")


def test_dense_config_refuses_an_empty_adapter_name() -> None:
    assert DenseEncoderConfig(model="m", kind="sentence-transformers").query_adapter is None
    with pytest.raises(ConfigError, match="query_adapter"):
        DenseEncoderConfig(model="m", kind="sentence-transformers", query_adapter="")
