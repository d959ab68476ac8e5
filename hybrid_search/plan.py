"""The query plan: what one search runs, decided before anything runs.

``SearchOptions`` is what a caller asks for (every field optional); the
``QueryPlan`` is what the engine will do about it: the collection (an alias
resolved once), the paths that run with their depths and fusion weights, the
fusion, the rerank step and whether hits are highlighted. Every default and
every check lives here, so the CLI, the API, the benchmarks and training get
the same answer for the same request, and a result carries the plan it ran.

A path whose fusion weight is 0 is not run: it is not encoded and cannot add
a candidate (under weighted fusion a candidate found only by a zero-weight path
would otherwise enter at the floor score and can outrank real candidates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, get_args

from .config import (
    CollectionConfig,
    FusionConfig,
    FusionMethod,
    Normalization,
    RerankConfig,
)
from .errors import ConfigError, InputError
from .filters import FilterCondition, compile_filters
from .types import RETRIEVAL_PATHS

__all__ = [
    "MAX_DEPTH",
    "MAX_K",
    "MAX_QUERY_CHARS",
    "MIN_DEFAULT_DEPTH",
    "PathPlan",
    "QueryPlan",
    "RerankPlan",
    "SearchOptions",
    "build_plan",
    "default_depth",
]

MAX_K = 1000
MAX_DEPTH = 16384  # Milvus's top-k ceiling
MAX_QUERY_CHARS = 4096
# Fusion needs candidates beyond the k shown: each path fetches at least this many.
MIN_DEFAULT_DEPTH = 100


def default_depth(k: int) -> int:
    """Candidates per path when the request names no depth: enough for k hits,
    and at least ``MIN_DEFAULT_DEPTH`` for fusion to work with."""
    return min(max(MIN_DEFAULT_DEPTH, k), MAX_DEPTH)


@dataclass(frozen=True)
class SearchOptions:
    """Per-query choices; anything left ``None`` takes the collection's (or the
    engine's) default. ``fusion`` replaces the collection's fusion whole;
    ``fusion_method``, ``rrf_k``, ``normalization`` and ``weights`` override
    single parts of whichever fusion applies."""

    k: int = 10
    paths: tuple[str, ...] | None = None
    # None: default_depth(k) for every path; a mapping names some paths.
    depth: int | Mapping[str, int] | None = None
    fusion: FusionConfig | None = None
    fusion_method: str | None = None
    rrf_k: int | None = None
    normalization: str | None = None
    weights: Mapping[str, float] | None = None
    filters: tuple[FilterCondition, ...] = ()
    rerank: bool | None = None
    rerank_top_n: int | None = None
    min_rerank_score: float | None = None
    # Overrides RerankConfig.first_stage_weight for this query: the head is
    # ordered by (1 - w) * rerank score + w * min-max normalised fused score.
    rerank_first_stage_weight: float | None = None
    # Matched-term highlighting re-analyses each hit's text: most of a BM25
    # query's time at k=100. Off, hits carry no matched_terms and no snippet
    # (the snippet is cut around the matches; shells then show the whole text).
    highlight: bool = True
    # Fold duplicate and near-duplicate candidates into the best-ranked copy
    # (hybrid_search/collapse.py says what counts as one); off, every copy is a hit.
    collapse: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise InputError(f"k must be an integer from 1 to {MAX_K}; got {self.k!r}", field="k")
        if self.paths is not None:
            if isinstance(self.paths, str) or not self.paths:
                raise InputError("paths must name at least one of bm25, sparse, dense", field="paths")
            unknown = [p for p in self.paths if p not in RETRIEVAL_PATHS]
            if unknown:
                raise InputError(
                    f"unknown path(s) {', '.join(map(repr, unknown))}; paths are {', '.join(RETRIEVAL_PATHS)}", field="paths"
                )
            if len(set(self.paths)) != len(self.paths):
                raise InputError(f"paths must not repeat a path; got {', '.join(self.paths)}", field="paths")
        if self.depth is not None:
            depths = self.depth.values() if isinstance(self.depth, Mapping) else [self.depth]
            for value in depths:
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DEPTH:
                    raise InputError(f"depth must be an integer from 1 to {MAX_DEPTH}; got {value!r}", field="depth")
            if isinstance(self.depth, Mapping):
                unknown = [p for p in self.depth if p not in RETRIEVAL_PATHS]
                if unknown:
                    raise InputError(f"depth names unknown path(s) {', '.join(map(repr, unknown))}", field="depth")
        if self.fusion_method is not None and self.fusion_method not in get_args(FusionMethod):
            raise InputError(f"fusion must be one of {', '.join(get_args(FusionMethod))}; got {self.fusion_method!r}", field="fusion")
        if self.normalization is not None and self.normalization not in get_args(Normalization):
            raise InputError(
                f"normalization must be one of {', '.join(get_args(Normalization))}; got {self.normalization!r}", field="normalization"
            )
        if self.rrf_k is not None and (isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 0):
            raise InputError(f"rrf_k must be an integer >= 0; got {self.rrf_k!r}", field="rrf_k")
        if self.weights is not None:
            try:
                FusionConfig(weights=dict(self.weights))  # validates paths and values
            except ConfigError as error:
                raise InputError(str(error).replace("FusionConfig.weights", "weights"), field="weights") from None
        if self.rerank_top_n is not None and not 1 <= self.rerank_top_n <= MAX_DEPTH:
            raise InputError(f"rerank_top_n must be from 1 to {MAX_DEPTH}; got {self.rerank_top_n!r}", field="rerank_top_n")
        if self.min_rerank_score is not None and not 0.0 <= self.min_rerank_score <= 1.0:
            raise InputError(f"min_rerank_score must lie in [0, 1]; got {self.min_rerank_score!r}", field="min_rerank_score")
        if not isinstance(self.collapse, bool):
            raise InputError(f"collapse must be true or false; got {self.collapse!r}", field="collapse")
        weight = self.rerank_first_stage_weight
        if weight is not None and (not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0):
            raise InputError(f"rerank_first_stage_weight must lie in [0, 1]; got {weight!r}", field="rerank_first_stage_weight")

    def depth_for(self, path: str) -> int:
        """Candidates fetched from ``path``: the depth asked for, else ``default_depth(k)``."""
        if isinstance(self.depth, Mapping):
            return int(self.depth.get(path, default_depth(self.k)))
        return int(self.depth) if self.depth is not None else default_depth(self.k)


@dataclass(frozen=True)
class PathPlan:
    """One retrieval path that runs: how deep, and its fusion weight (None when
    it runs alone and its own order is served unfused)."""

    path: str
    depth: int
    weight: float | None


@dataclass(frozen=True)
class RerankPlan:
    """The cross-encoder step over the first ``top_n`` first-stage candidates."""

    model: str
    top_n: int
    min_score: float | None
    first_stage_weight: float


@dataclass(frozen=True)
class QueryPlan:
    """What one search runs. ``requested`` is the name the caller gave (an alias
    or a collection), ``collection`` the collection it resolved to; ``skipped``
    names the paths asked for (or defaulted to) that do not run, and why."""

    requested: str
    collection: str
    query: str
    k: int
    paths: tuple[PathPlan, ...]
    fusion: FusionConfig | None
    filter_expression: str = ""
    rerank: RerankPlan | None = None
    highlight: bool = True
    collapse: bool = True
    skipped: tuple[tuple[str, str], ...] = field(default=())

    @property
    def path_names(self) -> tuple[str, ...]:
        return tuple(p.path for p in self.paths)

    @property
    def fusion_label(self) -> str:
        return self.fusion.method if self.fusion is not None else "none"

    def runs(self, path: str) -> bool:
        return path in self.path_names

    def to_dict(self) -> dict[str, Any]:
        fusion = None
        if self.fusion is not None:
            fusion = {"method": self.fusion.method, "weights": dict(self.fusion.weights)}
            if self.fusion.method == "rrf":
                fusion["rrf_k"] = self.fusion.rrf_k
            elif self.fusion.method == "weighted":
                fusion["normalization"] = self.fusion.normalization
            else:
                fusion["confidence_power"] = self.fusion.confidence_power
        rerank = None
        if self.rerank is not None:
            rerank = {
                "model": self.rerank.model,
                "top_n": self.rerank.top_n,
                "min_score": self.rerank.min_score,
                "first_stage_weight": self.rerank.first_stage_weight,
            }
        return {
            "requested": self.requested,
            "collection": self.collection,
            "k": self.k,
            "paths": [{"path": p.path, "depth": p.depth, "weight": p.weight} for p in self.paths],
            "skipped": dict(self.skipped),
            "fusion": fusion,
            "filter": self.filter_expression,
            "rerank": rerank,
            "highlight": self.highlight,
            "collapse": self.collapse,
        }


def _fusion_for(config: CollectionConfig, options: SearchOptions) -> FusionConfig:
    base = options.fusion or config.fusion
    return replace(
        base,
        method=options.fusion_method or base.method,  # type: ignore[arg-type]  # checked in SearchOptions
        rrf_k=options.rrf_k if options.rrf_k is not None else base.rrf_k,
        normalization=options.normalization or base.normalization,  # type: ignore[arg-type]
    )


def _choose_paths(
    requested: tuple[str, ...], fusion: FusionConfig, options: SearchOptions
) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """The paths that run with their fusion weights, and the skipped ones."""
    given = dict(options.weights or {})
    weights = {path: float(given.get(path, fusion.weight(path))) for path in requested}
    if len(requested) == 1:
        # One path asked for runs unfused: a stored weight does not apply, but a
        # weight of 0 given with this very query contradicts it.
        (path,) = requested
        if given.get(path) == 0:
            raise InputError(f"path {path!r} is the only one asked for, but the query gives it weight 0", field="weights")
        return weights, []
    running = {path: w for path, w in weights.items() if w > 0}
    skipped = [(path, "fusion weight 0") for path, w in weights.items() if w <= 0]
    if not running:
        raise InputError(
            f"every path asked for ({', '.join(requested)}) has fusion weight 0; give one a positive weight", field="weights"
        )
    return running, skipped


def _rerank_plan(options: SearchOptions, config: RerankConfig | None) -> RerankPlan | None:
    wanted = options.rerank if options.rerank is not None else config is not None
    if not wanted:
        return None
    if config is None:
        raise InputError("reranking was asked for but no reranker is configured (set a rerank model)", field="rerank")
    return RerankPlan(
        model=config.model,
        top_n=options.rerank_top_n or config.top_n,
        min_score=options.min_rerank_score if options.min_rerank_score is not None else config.min_score,
        first_stage_weight=float(
            options.rerank_first_stage_weight if options.rerank_first_stage_weight is not None else config.first_stage_weight
        ),
    )


def build_plan(
    requested: str,
    collection: CollectionConfig,
    query: str,
    options: SearchOptions,
    reranker: RerankConfig | None,
) -> QueryPlan:
    """The plan for ``query`` on ``collection`` (already resolved from the name
    ``requested``), or an ``InputError`` naming the field that cannot be served."""
    if not isinstance(query, str) or not query.strip():
        raise InputError("query must be a non-empty string", field="query")
    if len(query) > MAX_QUERY_CHARS:
        raise InputError(f"query is longer than {MAX_QUERY_CHARS} characters", field="query")
    available = collection.paths
    asked = tuple(options.paths) if options.paths is not None else available
    missing = [p for p in asked if p not in available]
    if missing:
        raise InputError(
            f"collection {collection.name!r} has no {', '.join(missing)} path (it was built with: {', '.join(available)})",
            field="paths",
        )
    fusion = _fusion_for(collection, options)
    weights, skipped = _choose_paths(asked, fusion, options)
    fused = len(weights) > 1
    paths = tuple(PathPlan(path, options.depth_for(path), weights[path] if fused else None) for path in asked if path in weights)
    return QueryPlan(
        requested=requested,
        collection=collection.name,
        query=query,
        k=options.k,
        paths=paths,
        fusion=replace(fusion, weights=dict(weights)) if fused else None,
        filter_expression=compile_filters(options.filters),
        rerank=_rerank_plan(options, reranker),
        highlight=options.highlight,
        collapse=options.collapse,
        skipped=tuple(skipped),
    )
