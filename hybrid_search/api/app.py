"""The FastAPI application: wiring only. The engine and its models are built
once, in the lifespan, and shared by every request through ``app.state``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..engine import Engine
from .errors import install_error_handlers
from .jobs import JobManager
from .middleware import BodyLimitMiddleware, RequestContextMiddleware
from .routes_collections import router as collections_router
from .routes_documents import router as documents_router
from .routes_health import router as health_router
from .routes_search import router as search_router
from .services import Services
from .settings import SETTINGS_ENV_VAR, ApiSettings, is_loopback
from .sources import router as sources_router

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger("hybrid_search.api")
STATIC_DIR = Path(__file__).with_name("static")

_DESCRIPTION = """
Hybrid retrieval over Milvus: BM25, learned-sparse and dense paths, fused and
optionally reranked. Every error has the shape
`{"error": {"status", "code", "message", "field"?, "details"?, "request_id"?}}`.
With API keys configured send `Authorization: Bearer KEY` (or `X-API-Key: KEY`).
The search page is at [/ui/](/ui/).
"""


def _announce(settings: ApiSettings) -> None:
    log.info("hybrid-search API %s: %s", __version__, settings.describe())
    if not settings.auth_enabled:
        if is_loopback(settings.host):
            log.warning(
                "no API key configured: bound to loopback (%s) so only this machine can reach the API; "
                "set HYBRID_SEARCH_READ_API_KEYS / HYBRID_SEARCH_WRITE_API_KEYS before binding another address",
                settings.host,
            )
        else:
            log.warning("no API key configured and bound to %s (allow_insecure): anyone who can reach it can write", settings.host)


def create_app(settings: ApiSettings | None = None, engine: Engine | None = None, *, record_serving: bool = False) -> FastAPI:
    """Build the app. With ``engine`` given, the app uses it and leaves closing it
    to the caller; otherwise it opens one from ``settings`` at startup. With
    ``record_serving`` (``hybrid-search serve``, one process), the running app
    records where it listens, so ``hybrid-search search`` on the same store
    sends its searches here (hybrid_search.remote)."""
    settings = settings or ApiSettings()
    services = Services(settings, engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _announce(settings)
        if services.owns_engine:
            # A store that is down does not stop the service: requests get 503
            # and the connection is retried until it answers.
            await run_in_threadpool(services.connect)
        if settings.preload:
            await run_in_threadpool(services.warm_up)
        services.jobs = JobManager(services)
        app.state.started = True
        if record_serving:
            from ..remote import write_record

            write_record(
                settings.store_config(),
                host=settings.host,
                port=settings.port,
                device=settings.device,
                fp16=settings.fp16,
                reranker=settings.rerank_config(),
                needs_key=settings.auth_enabled and not settings.public_read,
            )
        # A model call releases the GIL around every torch op and must take it
        # back from whichever thread holds it (another search's store results,
        # hits, response): at Python's 5 ms a query batch took several times
        # its time alone. Restored at shutdown (tests run several apps).
        previous_switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(settings.switch_interval_ms / 1000.0)
        try:
            yield
        finally:
            sys.setswitchinterval(previous_switch_interval)
            app.state.started = False
            if record_serving:
                from ..remote import remove_record

                remove_record(settings.store_config())
            await run_in_threadpool(services.close)

    app = FastAPI(
        title="hybrid-search",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if settings.docs else None,
        redoc_url="/redoc" if settings.docs else None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    app.state.services = services
    app.state.started = False
    install_error_handlers(app)
    # Starlette wraps in reverse order: the context middleware sees everything.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestContextMiddleware, services=services)

    app.include_router(health_router)
    app.include_router(search_router)
    app.include_router(collections_router)
    app.include_router(documents_router)
    app.include_router(sources_router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and for worker processes started by
    ``serve`` (which hands the settings over in an environment variable)."""
    text = os.environ.get(SETTINGS_ENV_VAR)
    settings = ApiSettings.from_env_json(text) if text else ApiSettings()
    return create_app(settings)
