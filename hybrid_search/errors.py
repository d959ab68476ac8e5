"""One error hierarchy for the whole project.

Third-party exceptions (pymilvus, transformers, FlagEmbedding) are wrapped at
the boundary into one of these, so callers and the CLI/API shells only ever
catch ``HybridSearchError``.
"""

from __future__ import annotations

__all__ = [
    "HybridSearchError",
    "ConfigError",
    "ModelKindError",
    "ModelLoadError",
    "StoreError",
    "StoreUnavailableError",
    "CollectionNotFoundError",
    "CollectionExistsError",
    "ManifestMismatchError",
    "SchemaVersionError",
    "FilterError",
    "InputError",
    "MissingDependencyError",
    "CollectionInUseError",
    "PromotionInProgressError",
]


class HybridSearchError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(HybridSearchError, ValueError):
    """A configuration value is invalid (wrong choice, out of range, inconsistent)."""


class InputError(HybridSearchError, ValueError):
    """User input (a query, a record, a file) cannot be used as given. ``field``
    names the request field at fault when there is one (the API reports it)."""

    default_field: str | None = None

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field if field is not None else self.default_field


class FilterError(InputError):
    """A metadata filter names an unknown field, operator, or an ill-typed value."""

    default_field = "filters"


class ModelLoadError(HybridSearchError):
    """A model could not be loaded; the message says what was tried."""


class ModelKindError(ConfigError, ModelLoadError):
    """The model loads, but is not of the kind named (a sentence-transformers
    folder given as bge-m3): a configuration error, not an unavailable model."""


class StoreError(HybridSearchError):
    """Milvus refused or failed an operation."""


class StoreUnavailableError(StoreError):
    """Milvus cannot be reached at the configured URI."""


class CollectionNotFoundError(StoreError):
    """The named collection does not exist."""


class CollectionExistsError(StoreError):
    """A collection of that name exists already."""


class CollectionInUseError(InputError):
    """The collection is what an alias serves: dropping it would leave the alias dangling."""


class PromotionInProgressError(HybridSearchError):
    """The collection is being promoted to a new version; writes wait until it is done."""


class ManifestMismatchError(HybridSearchError):
    """A collection or artefact was built with a configuration other than the one given."""


class SchemaVersionError(ManifestMismatchError):
    """A collection was written with another storage schema version; the
    message says how to move on (re-index, or drop and index again)."""


class MissingDependencyError(HybridSearchError, ImportError):
    """An optional dependency is not installed; the message names the extra."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package: pip install 'hybrid-search[{extra}]'"
        )
        self.package = package
        self.extra = extra
