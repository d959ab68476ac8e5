"""Searching through a running ``hybrid-search serve``.

A fresh ``hybrid-search search`` process spends seconds importing pymilvus and
starting Milvus Lite (and the models) before its query takes milliseconds; a
server already holds all of that (and a Milvus Lite file is locked to the one
process that opened it, so a second process could not open it anyway). So
``serve`` records where it listens, in a small file keyed by its store under
the user's runtime (or cache) folder, and ``search`` sends its request there
when one serves the same store, importing nothing heavier than ``urllib``.

The server runs the same ``Engine.search`` with the same options, so the same
request gives the same hits. The request goes there only when nothing could
make the plan differ: the server's reranker and device settings equal the
CLI's, and the server needs no API key for reads. Otherwise, or when the
record is stale (its process gone, nothing listening), the search runs in this
process, and ``--verbose`` says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RerankConfig, StoreConfig, to_plain
from .errors import ConfigError, HybridSearchError, InputError, StoreUnavailableError
from .plan import SearchOptions
from .types import FoldedCopy, Hit, PathScore, SearchResult, Snippet

__all__ = [
    "RECORD_FORMAT",
    "ServeRecord",
    "ServerAnswer",
    "ask_server",
    "find_server",
    "record_folder",
    "record_path",
    "remove_record",
    "request_body",
    "result_from_dict",
    "search_via_server",
    "store_key",
    "write_record",
]

RECORD_FORMAT = "hybrid-search/serve-record/1"
RECORD_DIR_ENV = "HYBRID_SEARCH_RUNTIME_DIR"


def store_key(store: StoreConfig) -> str:
    """The store a server serves, as both sides spell it: a Milvus Lite file by
    its absolute path, a server by its URI and database."""
    if "://" not in store.uri:
        where = str(Path(store.uri).expanduser().absolute().resolve())
    else:
        where = store.uri.rstrip("/")
    return f"{where}|{store.db_name or ''}"


def record_folder() -> Path:
    """Where serve records live: ``HYBRID_SEARCH_RUNTIME_DIR``, else the user's
    runtime folder (``$XDG_RUNTIME_DIR``), else the user's cache folder."""
    if os.environ.get(RECORD_DIR_ENV):
        return Path(os.environ[RECORD_DIR_ENV]).expanduser()
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "hybrid-search"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "hybrid-search" / "servers"


def record_path(store: StoreConfig) -> Path:
    digest = hashlib.sha256(store_key(store).encode("utf-8")).hexdigest()[:32]
    return record_folder() / f"serve-{digest}.json"


@dataclass(frozen=True)
class ServeRecord:
    """What a running server wrote about itself."""

    store: str
    url: str
    pid: int
    device: str
    fp16: bool | None
    reranker: dict[str, Any] | None
    needs_key: bool
    started: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "store": self.store,
            "url": self.url,
            "pid": self.pid,
            "device": self.device,
            "fp16": self.fp16,
            "reranker": self.reranker,
            "needs_key": self.needs_key,
            "started": self.started,
        }


def write_record(
    store: StoreConfig, *, host: str, port: int, device: str, fp16: bool | None, reranker: RerankConfig | None, needs_key: bool
) -> Path:
    """Record (atomically, readable by this user only) that this process serves ``store``."""
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # a bind-all address is reached on loopback
    if ":" in connect_host:
        connect_host = f"[{connect_host}]"
    record = ServeRecord(
        store=store_key(store),
        url=f"http://{connect_host}:{port}",
        pid=os.getpid(),
        device=device,
        fp16=fp16,
        reranker=to_plain(reranker) if reranker is not None else None,
        needs_key=needs_key,
        started=time.time(),
    )
    path = record_path(store)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(record.to_dict()), encoding="utf-8")
    partial.chmod(0o600)
    os.replace(partial, path)
    return path


def remove_record(store: StoreConfig) -> None:
    """Remove this process's record of ``store`` (another server's is left alone)."""
    path = record_path(store)
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def find_server(store: StoreConfig) -> tuple[ServeRecord | None, str]:
    """The running server recorded for ``store``, or None and why not."""
    path = record_path(store)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no running `hybrid-search serve` is recorded for this store ({path})"
    except (OSError, ValueError) as error:
        return None, f"the serve record {path} cannot be read ({error}): ignored"
    try:
        if data.get("format") != RECORD_FORMAT or data.get("store") != store_key(store):
            return None, f"the serve record {path} is for another format or store: ignored"
        record = ServeRecord(
            store=str(data["store"]),
            url=str(data["url"]),
            pid=int(data["pid"]),
            device=str(data["device"]),
            fp16=data["fp16"],
            reranker=data["reranker"],
            needs_key=bool(data["needs_key"]),
            started=float(data["started"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, f"the serve record {path} is malformed: ignored"
    if not _process_alive(record.pid):
        return None, f"the serve record {path} is stale: process {record.pid} is gone"
    return record, ""


def plan_difference(record: ServeRecord, *, device: str, fp16: bool | None, reranker: RerankConfig | None) -> str | None:
    """Why the server could run another plan than this process would (None: it cannot)."""
    if record.needs_key:
        return f"the server at {record.url} needs an API key to search"
    if record.device != device:
        return f"the server at {record.url} runs its models on device {record.device!r}, this search asks for {device!r}"
    if record.fp16 != fp16:
        return f"the server at {record.url} runs its models with fp16={record.fp16}, this search asks for fp16={fp16}"
    ours = to_plain(reranker) if reranker is not None else None
    if record.reranker != ours:
        theirs = record.reranker["model"] if record.reranker else "none"
        return f"the server at {record.url} has another reranker configured ({theirs}) than this search ({reranker.model if reranker else 'none'})"
    return None


def request_body(query: str, options: SearchOptions) -> dict[str, Any]:
    """``options`` as the API's search request (explained, so hits come back whole)."""
    if options.fusion is not None:
        raise ConfigError("a whole FusionConfig cannot be sent to a server: name its parts (fusion_method, rrf_k, ...)")
    if not options.highlight:
        raise ConfigError("the API always highlights: search without a server to turn highlighting off")
    depth: Any = dict(options.depth) if isinstance(options.depth, dict) else options.depth
    return {
        "query": query,
        "k": options.k,
        "paths": list(options.paths) if options.paths is not None else None,
        "depth": depth,
        "fusion": options.fusion_method,
        "rrf_k": options.rrf_k,
        "normalization": options.normalization,
        "weights": dict(options.weights) if options.weights is not None else None,
        "filters": [{"field": f.field, "op": f.op, "value": list(f.value) if isinstance(f.value, tuple) else f.value} for f in options.filters],
        "rerank": options.rerank,
        "rerank_top_n": options.rerank_top_n,
        "min_rerank_score": options.min_rerank_score,
        "rerank_first_stage_weight": options.rerank_first_stage_weight,
        "collapse": options.collapse,
        "explain": True,
    }


class ServerUnreachable(Exception):
    """Nothing (or not a hybrid-search server) answered at the recorded address."""


def search_via_server(record: ServeRecord, collection: str, query: str, options: SearchOptions, *, timeout_s: float = 600.0) -> dict[str, Any]:
    """The server's answer (the API's search response) to this search.

    Raises ServerUnreachable when nothing answers there (a stale record), and the
    engine's own error classes for what the server refused (so the CLI reports
    them as it would a local error)."""
    from urllib.parse import quote

    data = json.dumps(request_body(query, options)).encode("utf-8")
    request = urllib.request.Request(
        f"{record.url}/v1/collections/{quote(collection, safe='')}/search",
        data=data,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    # Never through a proxy: the recorded address is this machine's.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        raise _server_error(record, error) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        raise ServerUnreachable(f"nothing answered at {record.url} ({getattr(error, 'reason', error)})") from None
    except ValueError as error:
        raise ServerUnreachable(f"the answer from {record.url} is not JSON ({error})") from None


@dataclass(frozen=True)
class ServerAnswer:
    """The running server's answer to a search (``body``, the API's response),
    or None and why the search runs in this process instead; ``note`` says
    which, for ``--verbose``."""

    body: dict[str, Any] | None
    note: str


def ask_server(
    store: StoreConfig,
    *,
    device: str,
    fp16: bool | None,
    reranker: RerankConfig | None,
    collection: str,
    query: str,
    options: SearchOptions,
) -> ServerAnswer:
    """Send the search to the server recorded for ``store`` when it would run
    the same plan. Raises the engine's error classes for a refusal that stands."""
    record, reason = find_server(store)
    if record is not None:
        reason = plan_difference(record, device=device, fp16=fp16, reranker=reranker) or ""
    if record is not None and not reason:
        try:
            body = search_via_server(record, collection, query, options)
        except ServerUnreachable as error:
            reason = f"the serve record of process {record.pid} is stale: {error}"
        except InputError as error:
            # The server's operator limits (max k, depth ...) are tighter than
            # the engine's: a Milvus server can be searched here instead; a
            # Milvus Lite file is the server's alone, so its refusal stands.
            if "://" not in store.uri:
                raise
            reason = str(error)
        else:
            return ServerAnswer(body, f"searched through the server at {record.url} (process {record.pid})")
    return ServerAnswer(None, reason)


def _server_error(record: ServeRecord, error: urllib.error.HTTPError) -> HybridSearchError:
    try:
        detail = json.loads(error.read().decode("utf-8")).get("error", {})
        message = detail.get("message") or str(detail)
        field = detail.get("field")
    except (ValueError, AttributeError, OSError):
        message, field = error.reason, None
    text = f"the server at {record.url} refused the search ({error.code}): {message}"
    if 400 <= error.code < 500 and error.code not in (404, 429):
        return InputError(text, field=field) if field else InputError(text)
    if error.code == 404:
        from .errors import CollectionNotFoundError

        return CollectionNotFoundError(text)
    return StoreUnavailableError(text)


def result_from_dict(body: dict[str, Any]) -> SearchResult:
    """A SearchResult from its explained plain form (``SearchResult.to_dict``,
    the API's response), for rendering as a local result would be. The plan
    stays the plain form in ``body["plan"]``."""
    hits = [
        Hit(
            rank=item["rank"],
            chunk_id=item["chunk_id"],
            doc_id=item["doc_id"],
            text=item["text"],
            title=item["title"],
            source=item["source"],
            page=item["page"],
            heading_path=tuple(item["heading_path"]),
            metadata=item["metadata"],
            paths={path: PathScore(s["rank"], _score(s["score"])) for path, s in (item.get("paths") or {}).items()},
            fused_score=_score(item.get("fused_score")),
            rerank_score=item.get("rerank_score"),
            matched_terms=tuple(item.get("matched_terms") or ()),
            fusion_weights=dict(item.get("fusion_weights") or {}),
            combined_score=item.get("combined_score"),
            snippet=Snippet(**item["snippet"]) if item.get("snippet") else None,
            folded=tuple(FoldedCopy(**copy) for copy in item.get("folded") or ()),
        )
        for item in body["hits"]
    ]
    return SearchResult(
        query=body["query"],
        collection=body["collection"],
        hits=hits,
        paths=tuple(body["paths"]),
        fusion=body["fusion"],
        reranked=body["reranked"],
        confident=body["confident"],
        query_terms=tuple(body.get("query_terms") or ()),
        timings_ms=dict(body.get("timings_ms") or {}),
        rerank_first_stage_weight=body.get("rerank_first_stage_weight"),
        fusion_weights=dict(body.get("fusion_weights") or {}),
    )


def _score(value: float | None) -> float:
    return float("nan") if value is None else float(value)
