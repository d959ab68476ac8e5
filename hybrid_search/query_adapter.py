"""A linear adapter on query embeddings: ``q' = normalise(W q)``.

Trained on a collection's (question, chunk) pairs (``training.adapter``), it
moves questions towards the chunks that answer them while the chunk vectors
stay exactly as indexed, so adopting one needs no re-embedding of the corpus
(the LlamaIndex recipe). The engine applies it to every dense query vector
when ``DenseEncoderConfig.query_adapter`` names its folder::

    <folder>/adapter.npy    the d x d float32 matrix W
    <folder>/adapter.json   format, the dense model it was trained for, d,
                            sha256 of adapter.npy

The manifest is checked on load: an adapter for another model, another
dimension or a changed matrix file is refused, because it would silently move
queries into a space the stored chunk vectors are not in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, ManifestMismatchError

__all__ = ["ADAPTER_FORMAT", "QueryAdapter", "load_query_adapter", "save_query_adapter"]

ADAPTER_FORMAT = "hybrid-search-query-adapter/1"
MATRIX_FILE = "adapter.npy"
MANIFEST_FILE = "adapter.json"


@dataclass(frozen=True)
class QueryAdapter:
    matrix: np.ndarray  # (d, d): adapted = matrix @ query
    base_model: str
    manifest: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[0])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Adapted, unit-length query vectors (the collection scores by inner product
        of unit vectors, so a query keeps the scale the fusion was tuned on)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ManifestMismatchError(f"query adapter expects {self.dim}-dimensional vectors; got shape {vectors.shape}")
        adapted = vectors @ self.matrix.T
        norms = np.linalg.norm(adapted, axis=1, keepdims=True)
        return (adapted / np.maximum(norms, 1e-12)).astype(np.float32)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_query_adapter(folder: str | Path, matrix: np.ndarray, *, base_model: str, extra: dict[str, Any] | None = None) -> Path:
    """Write ``adapter.npy`` and its manifest; returns the folder."""
    folder = Path(folder)
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InputError(f"a query adapter is a square matrix; got shape {matrix.shape}")
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / MATRIX_FILE, matrix)
    manifest = {
        "format": ADAPTER_FORMAT,
        "base_model": base_model,
        "dim": int(matrix.shape[0]),
        "sha256": _sha256(folder / MATRIX_FILE),
        **(extra or {}),
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


def load_query_adapter(folder: str | Path, *, model: str, dim: int | None = None) -> QueryAdapter:
    """The adapter in ``folder``, checked against the dense ``model`` (and its
    dimension) it is about to be applied to."""
    folder = Path(folder).expanduser()
    manifest_path, matrix_path = folder / MANIFEST_FILE, folder / MATRIX_FILE
    if not manifest_path.is_file() or not matrix_path.is_file():
        raise InputError(f"{folder} is not a query adapter folder (needs {MANIFEST_FILE} and {MATRIX_FILE})")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format") != ADAPTER_FORMAT:
        raise ManifestMismatchError(f"{manifest_path}: format {manifest.get('format')!r}, expected {ADAPTER_FORMAT!r}")
    if manifest.get("base_model") != model:
        raise ManifestMismatchError(
            f"query adapter {folder} was trained for dense model {manifest.get('base_model')!r}, not {model!r}: "
            "its queries would not match the stored chunk vectors"
        )
    if manifest.get("sha256") != _sha256(matrix_path):
        raise ManifestMismatchError(f"{matrix_path} changed since its manifest was written (sha256 differs)")
    matrix = np.load(matrix_path)
    if dim is not None and (matrix.shape != (dim, dim) or manifest.get("dim") != dim):
        raise ManifestMismatchError(f"query adapter {folder} is {matrix.shape}, but the dense model makes {dim}-dimensional vectors")
    return QueryAdapter(matrix.astype(np.float32), model, manifest)
