"""hybrid-search: BM25, learned-sparse and dense retrieval over Milvus, fused and reranked."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hybrid-search")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

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
from .engine import Engine
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
from .types import Chunk, CollectionInfo, Hit, IndexReport, PathScore, SearchResult

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
