"""One JSON error shape for every failure, and the mapping from the project's
error hierarchy to HTTP statuses.

Every error body is::

    {"error": {"status": 422, "code": "validation_error", "message": "...",
               "field": "k", "details": [{"field": "k", "message": "...", "type": "..."}],
               "request_id": "..."}}

Clients branch on ``code`` (stable) and show ``message`` (human). No stack trace
ever leaves the server: unexpected exceptions are logged with the request id and
answered with a bare 500 that quotes it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    CollectionExistsError,
    CollectionInUseError,
    CollectionNotFoundError,
    ConfigError,
    FilterError,
    HybridSearchError,
    InputError,
    ManifestMismatchError,
    MissingDependencyError,
    ModelLoadError,
    PromotionInProgressError,
    StoreError,
    StoreUnavailableError,
)

__all__ = ["ApiError", "error_response", "install_error_handlers", "status_for"]

log = logging.getLogger("hybrid_search.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    502: "store_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API answers on purpose, with its status and stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = details
        self.headers = headers

    @classmethod
    def field_error(cls, field: str, message: str, *, status: int = 422) -> ApiError:
        return cls(status, "validation_error", f"{field}: {message}", field=field, details=[{"field": field, "message": message}])


def status_for(error: HybridSearchError) -> tuple[int, str]:
    """HTTP status and code for one of the project's own errors."""
    # Order matters: subclasses before their bases.
    table: list[tuple[type[HybridSearchError], int, str]] = [
        (FilterError, 422, "invalid_filter"),
        (CollectionInUseError, 409, "collection_in_use"),
        (PromotionInProgressError, 409, "promotion_in_progress"),
        (InputError, 422, "invalid_input"),
        (ConfigError, 422, "invalid_config"),
        (CollectionNotFoundError, 404, "collection_not_found"),
        (CollectionExistsError, 409, "collection_exists"),
        (ManifestMismatchError, 409, "manifest_mismatch"),
        (StoreUnavailableError, 503, "store_unavailable"),
        (StoreError, 502, "store_error"),
        (ModelLoadError, 503, "model_unavailable"),
        (MissingDependencyError, 501, "missing_dependency"),
    ]
    for cls, status, code in table:
        if isinstance(error, cls):
            return status, code
    return 500, "internal_error"


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(
    request: Request | None,
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if field is not None:
        body["field"] = field
    if details:
        body["details"] = details
    if request is not None and _request_id(request):
        body["request_id"] = _request_id(request)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str]:
    """("body", "filters", 0, "value") -> ("body", "filters.0.value")."""
    parts = list(loc)
    where = str(parts.pop(0)) if parts and parts[0] in ("body", "query", "path", "header", "cookie") else "body"
    # pydantic adds the union member it tried ("str", "int") to the location: noise for clients.
    parts = [p for p in parts if not (isinstance(p, str) and p.startswith(("function-after[", "function-before[")))]
    return where, ".".join(str(p) for p in parts) or where


def _clean_message(message: str) -> str:
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


async def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (first.get("ctx") or {}).get("error", "")
        return error_response(
            request, 400, "malformed_json", f"the request body is not valid JSON{': ' + str(reason) if reason else ''}", field="body"
        )
    details = []
    for e in errors[:20]:
        where, name = _field_name(e.get("loc", ()))
        details.append({"field": name, "location": where, "message": _clean_message(str(e.get("msg", ""))), "type": e.get("type", "")})
    first = details[0] if details else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return error_response(request, 422, "validation_error", message, field=first["field"], details=details)


async def _api_error_handler(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(request, exc.status, exc.code, exc.message, field=exc.field, details=exc.details, headers=exc.headers)


async def _project_error_handler(request: Request, exc: HybridSearchError) -> JSONResponse:
    status, code = status_for(exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    field = exc.field if isinstance(exc, InputError) else None
    if status >= 500:
        log.warning("request %s failed: %s: %s", _request_id(request), type(exc).__name__, exc)
    return error_response(request, status, code, str(exc), field=field, headers=headers)


async def _http_error_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint or file: {request.url.path}"
    if exc.status_code == 405 and message == "Method Not Allowed":
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(request, exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the server log, never to the client.
    log.exception("unhandled error in request %s %s (request id %s)", request.method, request.url.path, _request_id(request))
    return error_response(
        request, 500, "internal_error", f"internal error; the server log has details under request id {_request_id(request)}"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(HybridSearchError, _project_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_handler)
