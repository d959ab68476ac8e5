"""hybrid-search: BM25, learned-sparse and dense retrieval over Milvus, fused and reranked."""

from .config import (
    AnalyzerConfig,
    CollectionConfig,
    DenseEncoderConfig,
    FusionConfig,
    RerankConfig,
    RuntimeConfig,
    SparseEncoderConfig,
    StoreConfig,
)
from .errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigError,
    FilterError,
    HybridSearchError,
    InputError,
    ManifestMismatchError,
    MissingDependencyError,
    ModelLoadError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
)
from .filters import FilterCondition, parse_filter
from .plan import PathPlan, QueryPlan, RerankPlan, SearchOptions
from .types import Chunk, CollectionInfo, EngineUsage, Hit, IndexReport, PathScore, SearchResult

__all__ = [
    "__version__",
    "AnalyzerConfig",
    "Chunk",
    "CollectionConfig",
    "CollectionExistsError",
    "CollectionInfo",
    "CollectionNotFoundError",
    "ConfigError",
    "DenseEncoderConfig",
    "Engine",
    "EngineUsage",
    "FilterCondition",
    "FilterError",
    "FusionConfig",
    "Hit",
    "HybridSearchError",
    "IndexReport",
    "InputError",
    "ManifestMismatchError",
    "SchemaVersionError",
    "MissingDependencyError",
    "ModelLoadError",
    "PathPlan",
    "PathScore",
    "QueryPlan",
    "RerankPlan",
    "RerankConfig",
    "RuntimeConfig",
    "SearchOptions",
    "SearchResult",
    "SparseEncoderConfig",
    "StoreConfig",
    "StoreError",
    "StoreUnavailableError",
    "parse_filter",
]


def __getattr__(name: str) -> object:
    # Both are looked up when first named: `hybrid-search search` sent to a
    # running server needs neither the Engine (numpy, the encoders and pymilvus
    # behind it) nor the package metadata (importlib.metadata is slow to load).
    if name == "Engine":
        from .engine import Engine

        return Engine
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("hybrid-search")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.0.0+local"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
