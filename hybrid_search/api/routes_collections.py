"""Collections: list, create (with analyzer and encoder settings), stats, drop."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Query

from ..config import (
    AnalyzerConfig,
    CollectionConfig,
    DenseEncoderConfig,
    FusionConfig,
    SparseEncoderConfig,
)
from ..errors import CollectionNotFoundError, ManifestMismatchError, ModelKindError
from ..types import RETRIEVAL_PATHS
from .errors import ApiError
from .routes_search import ERRORS, CollectionName
from .schemas import CollectionList, CollectionOut, CreateCollectionRequest, DroppedOut
from .services import Services, require_read, require_write

__all__ = ["router"]

log = logging.getLogger("hybrid_search.api")

router = APIRouter(tags=["collections"])


def _collection_out(services: Services, name: str, *, documents: bool = False) -> CollectionOut:
    engine = services.engine()
    info = engine.collection_info(name)
    config = engine.open_collection(info.name)
    count = len(engine.list_documents(info.name)) if documents else None
    return CollectionOut(name=info.name, chunks=info.chunks, paths=list(config.paths), documents=count, manifest=info.manifest)


def _allowed_model(services: Services, model: str, field: str) -> str:
    if not services.settings.model_allowed(model):
        raise ApiError.field_error(
            field, f"model {model!r} is not offered by this server; ask the operator to add it to allowed_models"
        )
    return model


def _config(request: CreateCollectionRequest, services: Services) -> CollectionConfig:
    settings = services.settings
    given = request.model_fields_set
    dense: DenseEncoderConfig | None
    if "dense" in given and request.dense is None:
        dense = None
    else:
        spec = request.dense
        default = settings.default_dense()
        model = (spec.model if spec and spec.model else None) or (default.model if default else None)
        if model is None:
            if "dense" in given:
                raise ApiError.field_error("dense.model", "this server has no default dense model; name one, or send dense: null")
            dense = None  # nothing asked, nothing configured: BM25 (and sparse) only
        else:
            dense = DenseEncoderConfig(
                model=_allowed_model(services, model, "dense.model"),
                kind=(spec.kind if spec and spec.kind else None) or (default.kind if default and model == default.model else "sentence-transformers"),
                query_prompt=spec.query_prompt if spec else None,
                document_prompt=spec.document_prompt if spec else None,
                max_length=spec.max_length if spec else None,
            )
    sparse: SparseEncoderConfig | None
    if "sparse" in given and request.sparse is None:
        sparse = None
    else:
        sspec = request.sparse
        sdefault = settings.default_sparse()
        model = (sspec.model if sspec and sspec.model else None) or (sdefault.model if sdefault else None)
        if model is None:
            if "sparse" in given:
                raise ApiError.field_error("sparse.model", "this server has no default sparse model; name one, or send sparse: null")
            sparse = None  # nothing asked, nothing configured: BM25 and dense only
        else:
            sparse = SparseEncoderConfig(
                model=_allowed_model(services, model, "sparse.model"),
                kind=(sspec.kind if sspec and sspec.kind else None) or (sdefault.kind if sdefault and model == sdefault.model else "splade"),
                max_length=sspec.max_length if sspec else None,
            )
    weights = request.fusion.weights
    return CollectionConfig(
        name=request.name,
        dense=dense,
        sparse=sparse,
        # user_dict is a server path: not settable over the API on purpose.
        analyzer=AnalyzerConfig(language=request.analyzer.language, stopwords=request.analyzer.stopwords, stem=request.analyzer.stem),
        fusion=FusionConfig(
            method=request.fusion.method,
            rrf_k=request.fusion.rrf_k,
            normalization=request.fusion.normalization,
            weights={p: 1.0 for p in RETRIEVAL_PATHS} | dict(weights or {}),
        ),
        bm25_k1=request.bm25.k1,
        bm25_b=request.bm25.b,
        description=request.description,
    )


@router.get("/v1/collections", response_model=CollectionList, responses=ERRORS, summary="List collections")
def list_collections(services: Services = Depends(require_read)) -> CollectionList:
    engine = services.engine()
    out = []
    for name in engine.list_collections():
        try:
            out.append(_collection_out(services, name))
        except CollectionNotFoundError:
            continue  # dropped between the listing and the look-up
        except ManifestMismatchError as error:
            log.warning("collection %r not listed: %s", name, error)  # another schema: not servable here
    return CollectionList(collections=out)


@router.post("/v1/collections", response_model=CollectionOut, status_code=201, responses=ERRORS | {409: ERRORS[404]}, summary="Create a collection")
def create_collection(request: CreateCollectionRequest, services: Services = Depends(require_write)) -> CollectionOut:
    """Create a collection. Models must be ones the server offers (its defaults
    or ``allowed_models``); they are loaded once and shared with every request."""
    config = _config(request, services)
    engine = services.engine()
    with services.gate():
        try:
            engine.create_collection(config, exist_ok=request.exist_ok)
        except ModelKindError as error:
            kind = "dense.kind" if config.dense is not None and config.dense.kind == "bge-m3" else "sparse.kind"
            raise ApiError.field_error(kind, str(error)) from error
    return _collection_out(services, config.name)


@router.get("/v1/collections/{name}", response_model=CollectionOut, responses=ERRORS, summary="Collection stats")
def collection_stats(
    name: CollectionName,
    documents: bool = Query(False, description="also count documents (scans the collection)"),
    services: Services = Depends(require_read),
) -> CollectionOut:
    return _collection_out(services, name, documents=documents)


@router.delete("/v1/collections/{name}", response_model=DroppedOut, responses=ERRORS, summary="Drop a collection")
def drop_collection(
    name: CollectionName,
    drop_aliases: bool = Query(False, description="also drop the aliases that point at it (refused otherwise, 409)"),
    services: Services = Depends(require_write),
) -> DroppedOut:
    engine = services.engine()
    target = engine.resolve(name)
    aliases = engine.drop_collection(target, drop_aliases=drop_aliases)
    return DroppedOut(dropped=target, aliases_dropped=aliases)

