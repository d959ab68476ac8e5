"""POST /v1/collections/{name}/search: a thin shell over Engine.search."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from ..config import FusionConfig
from ..engine import SearchOptions
from ..types import SearchResult
from .errors import ApiError
from .schemas import (
    COLLECTION_NAME_PATTERN,
    ErrorResponse,
    SearchRequest,
    SearchResponse,
)
from .services import Services, require_read
from .settings import ApiSettings
from .sources import source_url

__all__ = ["router"]

router = APIRouter(tags=["search"])

CollectionName = Annotated[str, Path(pattern=COLLECTION_NAME_PATTERN, description="collection (or alias) name")]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse}
    for code in (400, 401, 403, 404, 413, 422, 429, 503)
}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _check_limits(request: SearchRequest, services: Services) -> None:
    """The operator's limits, tighter than the schema's hard ceilings."""
    settings = services.settings
    if len(request.query) > settings.max_query_chars:
        raise ApiError.field_error("query", f"at most {settings.max_query_chars} characters; got {len(request.query)}")
    if not request.query.strip():
        raise ApiError.field_error("query", "must hold more than whitespace")
    if request.k > settings.max_k:
        raise ApiError.field_error("k", f"at most {settings.max_k}; got {request.k}")
    depths = request.depth.values() if isinstance(request.depth, dict) else [request.depth] if request.depth is not None else []
    for depth in depths:
        if depth > settings.max_depth:
            raise ApiError.field_error("depth", f"at most {settings.max_depth}; got {depth}")
    if request.rerank_top_n is not None and request.rerank_top_n > settings.max_rerank_top_n:
        raise ApiError.field_error("rerank_top_n", f"at most {settings.max_rerank_top_n}; got {request.rerank_top_n}")
    if len(request.filters) > settings.max_filters:
        raise ApiError.field_error("filters", f"at most {settings.max_filters} conditions; got {len(request.filters)}")


def _options(request: SearchRequest, name: str, services: Services) -> SearchOptions:
    engine = services.engine()
    config = engine.open_collection(name)
    if request.paths is not None:
        missing = [p for p in request.paths if p not in config.paths]
        if missing:
            raise ApiError.field_error(
                "paths", f"collection {name!r} has no {', '.join(missing)} path (it has: {', '.join(config.paths)})"
            )
    if request.rerank and engine.rerank_config is None:
        raise ApiError.field_error("rerank", "no reranker is configured on this server")
    fusion = None
    if request.fusion is not None or request.rrf_k is not None or request.normalization is not None:
        base = config.fusion
        fusion = FusionConfig(
            method=request.fusion or base.method,
            rrf_k=request.rrf_k if request.rrf_k is not None else base.rrf_k,
            normalization=request.normalization or base.normalization,
            weights=dict(base.weights),
            confidence_power=base.confidence_power,
        )
    # Without a depth, fetch enough candidates for k (at least 100, for fusion to work with).
    depth: Any = request.depth if request.depth is not None else min(max(100, request.k), services.settings.max_depth)
    return SearchOptions(
        k=request.k,
        paths=tuple(request.paths) if request.paths is not None else None,
        depth=depth,
        fusion=fusion,
        weights=request.weights,
        filters=tuple(f.condition() for f in request.filters),
        rerank=request.rerank,
        rerank_top_n=request.rerank_top_n,
        min_rerank_score=request.min_rerank_score,
        rerank_first_stage_weight=request.rerank_first_stage_weight,
        collapse=request.collapse,
    )


def _response(result: SearchResult, explain: bool, settings: ApiSettings) -> SearchResponse:
    hits = []
    for hit in result.hits:
        item: dict[str, Any] = {
            "rank": hit.rank,
            "chunk_id": hit.chunk_id,
            "doc_id": hit.doc_id,
            "text": hit.text,
            "title": hit.title,
            "source": hit.source,
            "page": hit.page,
            "heading_path": list(hit.heading_path),
            "metadata": hit.metadata,
            "score": _finite(hit.score),
            "snippet": hit.snippet.to_dict() if hit.snippet is not None else None,
            "folded": [copy.to_dict() for copy in hit.folded],
            "source_url": source_url(settings, hit.doc_id, hit.source, hit.page),
        }
        if explain:
            item["paths"] = {p: {"rank": s.rank, "score": _finite(s.score)} for p, s in hit.paths.items()}
            item["fused_score"] = _finite(hit.fused_score)
            item["fusion_weights"] = dict(hit.fusion_weights)
            item["rerank_score"] = _finite(hit.rerank_score)
            item["combined_score"] = _finite(hit.combined_score)
            item["matched_terms"] = list(hit.matched_terms)
        hits.append(item)
    body: dict[str, Any] = {
        "query": result.query,
        "collection": result.collection,
        "paths": list(result.paths),
        "fusion": result.fusion,
        "reranked": result.reranked,
        "rerank_first_stage_weight": result.rerank_first_stage_weight,
        "confident": result.confident,
        "hits": hits,
    }
    if explain:
        body["query_terms"] = list(result.query_terms)
        body["timings_ms"] = {k: round(v, 3) for k, v in result.timings_ms.items()}
    return SearchResponse.model_validate(body)


@router.post(
    "/v1/collections/{name}/search",
    response_model=SearchResponse,
    response_model_exclude_none=False,
    responses=ERRORS,
    summary="Search a collection",
)
def search(name: CollectionName, request: SearchRequest, services: Services = Depends(require_read)) -> SearchResponse:
    """Hybrid search: BM25, learned-sparse and dense paths, fused (RRF or weighted)
    and optionally reranked. ``explain`` adds each hit's per-path ranks and scores."""
    _check_limits(request, services)
    options = _options(request, name, services)
    engine = services.engine()
    with services.search_gate():
        result = engine.search(name, request.query, options)
    services.metrics.observe_search(result.collection, result.timings_ms)
    return _response(result, request.explain, services.settings)
