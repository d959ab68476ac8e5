"""The collection manifest: what a collection was built from, recorded with
it, and the configuration read back from it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from . import __version__
from .config import (
    AnalyzerConfig,
    CollectionConfig,
    DenseEncoderConfig,
    FusionConfig,
    SparseEncoderConfig,
    from_plain,
    to_plain,
)
from .store import MANIFEST_FORMAT, SCHEMA_VERSION

__all__ = ["config_differences", "config_from_manifest", "manifest_for"]


def manifest_for(config: CollectionConfig, dense_dim: int | None, probe: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest a collection built from ``config`` records. The dense and
    sparse entries name the backend that built the vectors, and ``probe``
    (hybrid_search.probe) what it gave for fixed texts."""
    dense = to_plain(config.dense)
    if dense is not None:
        dense["dim"] = dense_dim
    return {
        "format": MANIFEST_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created_by": f"hybrid-search {__version__}",
        "dense": dense,
        "sparse": to_plain(config.sparse),
        "analyzer": to_plain(config.analyzer),
        "bm25": {"k1": config.bm25_k1, "b": config.bm25_b},
        "fusion": to_plain(config.fusion),
        "description": config.description,
        "probe": probe,
    }


def _analyzer_from_manifest(recorded: dict[str, Any]) -> AnalyzerConfig:
    # Manifests written before analyzer versions existed hold version 1's rules.
    return from_plain(AnalyzerConfig, {"version": 1, **recorded})


def config_from_manifest(name: str, manifest: dict[str, Any]) -> CollectionConfig:
    """The configuration a collection's manifest records."""
    dense = dict(manifest["dense"]) if manifest.get("dense") else None
    if dense is not None:
        dense.pop("dim", None)
    return CollectionConfig(
        name=name,
        dense=from_plain(DenseEncoderConfig, dense),
        sparse=from_plain(SparseEncoderConfig, manifest.get("sparse")),
        analyzer=_analyzer_from_manifest(manifest["analyzer"]),
        fusion=from_plain(FusionConfig, manifest["fusion"]),
        bm25_k1=manifest["bm25"]["k1"],
        bm25_b=manifest["bm25"]["b"],
        description=manifest.get("description", ""),
    )


def config_differences(expected: CollectionConfig, actual: CollectionConfig) -> list[str]:
    """What makes ``expected`` incompatible with a collection built as ``actual``."""
    found = []
    for label in ("dense", "sparse", "analyzer"):
        want, have = getattr(expected, label), getattr(actual, label)
        if label == "analyzer":
            # The analyzer version is not the caller's choice: an existing
            # collection keeps the rules it was built with until re-indexed.
            want = replace(want, version=have.version)
        elif want is not None and have is not None:
            # The backend is how vectors are computed, not what they are: a
            # different one is checked against the recorded probe vectors
            # (hybrid_search.probe) when the collection's encoders load.
            want = replace(want, backend=have.backend, quantize=have.quantize)
        if want != have:
            found.append(f"{label}: collection has {to_plain(have)}, given {to_plain(want)}")
    if (expected.bm25_k1, expected.bm25_b) != (actual.bm25_k1, actual.bm25_b):
        found.append(f"bm25: collection has k1={actual.bm25_k1} b={actual.bm25_b}, given k1={expected.bm25_k1} b={expected.bm25_b}")
    return found
