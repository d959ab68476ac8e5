"""POST /v1/collections/{name}/search: a thin shell over Engine.search."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from ..plan import SearchOptions, default_depth
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


def _check_limits(request: SearchRequest, services: Services) -> None:
    """The operator's limits, tighter than the engine's own (which the engine checks)."""
    settings = services.settings
    if len(request.query) > settings.max_query_chars:
        raise ApiError.field_error("query", f"at most {settings.max_query_chars} characters; got {len(request.query)}")
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


def _options(request: SearchRequest, services: Services) -> SearchOptions:
    depth: Any = request.depth
    if depth is None and default_depth(request.k) > services.settings.max_depth:
        depth = services.settings.max_depth  # the engine's default, held to the operator's ceiling
    return SearchOptions(
        k=request.k,
        paths=tuple(request.paths) if request.paths is not None else None,
        depth=depth,
        fusion_method=request.fusion,
        rrf_k=request.rrf_k,
        normalization=request.normalization,
        weights=request.weights,
        filters=tuple(f.condition() for f in request.filters),
        rerank=request.rerank,
        rerank_top_n=request.rerank_top_n,
        min_rerank_score=request.min_rerank_score,
        rerank_first_stage_weight=request.rerank_first_stage_weight,
        collapse=request.collapse,
        # Every hit's snippet is cut around its matched terms, so they are always computed.
    )


def _response(result: SearchResult, explain: bool, settings: ApiSettings) -> SearchResponse:
    body = result.to_dict(explain=explain)
    for item, hit in zip(body["hits"], result.hits):
        # Where this server serves the hit's source file: the API's own addition.
        item["source_url"] = source_url(settings, hit.doc_id, hit.source, hit.page)
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
    and optionally reranked. ``explain`` adds each hit's per-path ranks and scores,
    matched terms, timings and the plan the engine ran."""
    _check_limits(request, services)
    options = _options(request, services)
    engine = services.engine()
    with services.search_gate():
        result = engine.search(name, request.query, options)
    services.metrics.observe_search(result.collection, result.timings_ms)
    services.metrics.observe_usage(engine.usage())
    return _response(result, request.explain, services.settings)
