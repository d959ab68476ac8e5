"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from .. import __version__
from ..config import StoreConfig
from .errors import ApiError
from .metrics import CONTENT_TYPE_LATEST
from .routes_search import ERRORS
from .schemas import HealthOut, ReadyOut
from .services import Services, get_services, holds_key, require_read

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, responses={503: ERRORS[503]}, summary="Liveness")
def health(request: Request, services: Services = Depends(get_services)) -> HealthOut:
    """The process is up and answering, and its embedded Milvus Lite (if any)
    is alive or could be restarted: a store that cannot be brought back is
    503, so an orchestrator restarts the service. The process id is shown only
    to a caller with an API key when keys are configured."""
    problem = services.store_problem()
    if problem is not None:
        raise ApiError(503, "store_unrecoverable", problem)
    return HealthOut(status="ok", version=__version__, pid=os.getpid() if holds_key(request, services) else None)


@router.get("/readyz", response_model=ReadyOut, responses={503: ERRORS[503]}, summary="Readiness")
def ready(request: Request, services: Services = Depends(get_services)) -> ReadyOut:
    """Ready when start-up (model loading) is done and the store answers."""
    if not getattr(request.app.state, "started", False):
        raise ApiError(503, "starting", "the service is still starting (loading models)", headers={"Retry-After": "2"})
    engine = services.engine()
    names = engine.list_collections()  # a round trip: StoreUnavailableError -> 503
    public = not holds_key(request, services)
    return ReadyOut(
        status="ready",
        collections=len(names),
        pid=None if public else os.getpid(),
        store=None if public else StoreConfig(uri=services.settings.store_uri).display_uri,
        models_loaded=None if public else list(services.models_loaded),
    )


@router.get("/metrics", response_class=Response, responses=ERRORS, summary="Prometheus metrics")
def metrics(services: Services = Depends(require_read)) -> Response:
    engine = services.loaded_engine()
    if engine is not None:  # indexing since the last search counts too; a scrape never opens the store
        services.metrics.observe_usage(engine.usage())
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
