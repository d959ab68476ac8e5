"""What every request shares: the one Engine (built once, models loaded once),
the gate that keeps model work from running in too many threads at once, the
job manager, metrics, and the API-key checks used as route dependencies.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import Depends, Request

from ..engine import Engine
from ..errors import HybridSearchError, StoreUnavailableError
from .errors import ApiError
from .metrics import Metrics
from .settings import ApiSettings

if TYPE_CHECKING:
    from .jobs import JobManager

__all__ = ["FairGate", "Services", "get_services", "require_read", "require_write"]

log = logging.getLogger("hybrid_search.api")

# After a failed attempt to reach the store, wait this long before the next one,
# so a dead Milvus is not hammered by every request.
_RECONNECT_INTERVAL_S = 2.0


class FairGate:
    """A counting gate for model work: requests first, background work (indexing
    batches) never starved, everyone in arrival order within their class.

    ``threading.Semaphore`` lets a thread that releases and at once re-acquires
    (the indexing loop, batch after batch) barge ahead of threads already
    waiting, so searches starved behind a long job (seen in the load test:
    8-second search waits). Here a released slot is handed straight to a waiter:
    the oldest request, except that after ``background_every`` requests have
    gone ahead of a waiting background batch, the batch goes next, so indexing
    keeps progressing under any search load.
    """

    def __init__(self, slots: int, *, background_every: int = 8) -> None:
        self._lock = threading.Lock()
        self._free = slots
        self._requests: deque[threading.Event] = deque()
        self._background: deque[threading.Event] = deque()
        self._background_every = background_every
        self._passed_background = 0

    def acquire(self, timeout: float | None = None, *, background: bool = False) -> bool:
        with self._lock:
            if self._free > 0 and not self._requests and not self._background:
                self._free -= 1
                return True
            granted = threading.Event()
            (self._background if background else self._requests).append(granted)
        if granted.wait(timeout):
            return True
        with self._lock:
            if granted.is_set():  # handed over between the timeout and this lock
                return True
            (self._background if background else self._requests).remove(granted)
            return False

    def release(self) -> None:
        with self._lock:
            if self._background and (not self._requests or self._passed_background >= self._background_every):
                self._passed_background = 0
                self._background.popleft().set()
            elif self._requests:
                if self._background:
                    self._passed_background += 1
                self._requests.popleft().set()
            else:
                self._free += 1


class Services:
    def __init__(self, settings: ApiSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self._engine = engine
        self.owns_engine = engine is None
        self._engine_lock = threading.Lock()
        self._engine_error: str | None = None
        self._last_attempt = 0.0
        # Hugging Face fast tokenizers raise "Already borrowed" when one instance
        # is used from two threads, and on CPU torch already spreads one encode
        # over every core: so model work (search, indexing batches, collection
        # creation) passes this gate; store-only reads do not.
        self._gate = FairGate(settings.engine_concurrency)
        self.jobs: JobManager | None = None
        self.models_loaded: list[str] = []
        self.started_at = time.time()

    # --- engine ------------------------------------------------------------------------

    def connect(self) -> Engine | None:
        """Build the engine if it is not built (startup, or after the store was down)."""
        with self._engine_lock:
            if self._engine is not None:
                return self._engine
            self._last_attempt = time.monotonic()
            try:
                self._engine = Engine(
                    self.settings.store_config(),
                    runtime=self.settings.runtime_config(),
                    reranker=self.settings.rerank_config(),
                )
                self._engine_error = None
            except HybridSearchError as error:
                self._engine_error = str(error)
                log.error("cannot open the store: %s", error)
            return self._engine

    def engine(self) -> Engine:
        """The shared engine, or a 503 if the store cannot be reached."""
        engine = self._engine
        if engine is not None:
            return engine
        if time.monotonic() - self._last_attempt >= _RECONNECT_INTERVAL_S:
            engine = self.connect()
            if engine is not None:
                return engine
        raise ApiError(
            503,
            "store_unavailable",
            f"the store is unreachable: {self._engine_error or 'not connected yet'}",
            headers={"Retry-After": str(int(_RECONNECT_INTERVAL_S) + 1)},
        )

    def loaded_engine(self) -> Engine | None:
        """The engine when it is built; never connects (for a metrics scrape)."""
        return self._engine

    def store_problem(self) -> str | None:
        """Why the store cannot be brought back (an embedded Milvus Lite that
        died and cannot be restarted), or None; restarts a dead one first."""
        engine = self._engine
        return engine.supervise_store() if engine is not None else None

    def warm_up(self) -> None:
        """Load every collection's encoders (and the reranker) now, so the first
        query does not pay for it and a broken model shows at startup."""
        engine = self._engine
        if engine is None:
            return
        try:
            names = engine.list_collections()
        except StoreUnavailableError as error:
            log.error("store unreachable during warm-up: %s", error)
            return
        for name in names:
            try:
                with self.gate():
                    engine.encoders(name)
                self.models_loaded.append(name)
            except HybridSearchError as error:
                # One collection with a broken model must not keep the others offline.
                log.error("collection %r: models not loaded: %s", name, error)
        if engine.rerank_config is not None:
            _ = engine.reranker  # a misconfigured reranker fails startup: it would fail every query
            self.models_loaded.append(f"reranker:{engine.rerank_config.model}")

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.close()
        if self.owns_engine and self._engine is not None:
            self._engine.close()

    # --- gate --------------------------------------------------------------------------

    @contextlib.contextmanager
    def gate(self) -> Iterator[None]:
        """Hold one model slot for a request: wait at most ``busy_timeout_s``, then
        answer 503 instead of piling up (the job thread uses :meth:`job_gate`)."""
        if not self._gate.acquire(timeout=self.settings.busy_timeout_s):
            raise ApiError(503, "busy", "the server is busy; retry shortly", headers={"Retry-After": "2"})
        try:
            yield
        finally:
            self._gate.release()

    @contextlib.contextmanager
    def search_gate(self) -> Iterator[None]:
        """A search's hold on the models. With query micro-batching on, the
        encoders and the reranker serialise their own model calls, so searches
        run side by side and their query encodes share model calls; with it
        off, a search holds one model slot like any other model work."""
        if self.settings.query_batch_size > 1:
            yield
            return
        with self.gate():
            yield

    @contextlib.contextmanager
    def job_gate(self) -> Iterator[None]:
        """Hold one model slot for an indexing batch, waiting as long as it takes
        (behind waiting requests, but never for more than a few of them)."""
        self._gate.acquire(background=True)
        try:
            yield
        finally:
            self._gate.release()


def get_services(request: Request) -> Services:
    return request.app.state.services


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def _matches(key: str, keys: list) -> bool:
    # Compare against every key, always, in constant time per key: no early exit
    # that would tell an attacker how many keys exist or which prefix matched.
    found = False
    for candidate in keys:
        found |= hmac.compare_digest(key.encode("utf-8", "surrogatepass"), candidate.get_secret_value().encode("utf-8"))
    return found


def _check(request: Request, services: Services, scope: str) -> None:
    settings = services.settings
    if not settings.auth_enabled:
        return
    if scope == "read" and settings.public_read:
        return
    key = _presented_key(request)
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if _matches(key, settings.write_api_keys):
        return
    if scope == "read" and _matches(key, settings.read_api_keys):
        return
    if scope == "write" and _matches(key, settings.read_api_keys):
        raise ApiError(403, "forbidden", "this API key may only read; writing needs a write key")
    raise ApiError(401, "unauthorized", "the API key is not valid", headers={"WWW-Authenticate": "Bearer"})


def holds_key(request: Request, services: Services) -> bool:
    """Whether the caller may see operational details (process id, store,
    models): always without API keys configured, else only with a valid key
    (public reads do not count)."""
    settings = services.settings
    if not settings.auth_enabled:
        return True
    key = _presented_key(request)
    return key is not None and (_matches(key, settings.write_api_keys) or _matches(key, settings.read_api_keys))


def require_read(request: Request, services: Services = Depends(get_services)) -> Services:
    _check(request, services, "read")
    return services


def require_write(request: Request, services: Services = Depends(get_services)) -> Services:
    _check(request, services, "write")
    return services
