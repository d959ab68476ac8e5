"""ASGI middleware: body-size limits, request ids, security headers, request
metrics. Plain ASGI (not BaseHTTPMiddleware) so streaming bodies are counted as
they arrive and nothing is buffered twice."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from .services import Services

__all__ = ["BodyLimitMiddleware", "RequestContextMiddleware"]

# Multipart framing (boundaries, part headers) on top of the files themselves.
_MULTIPART_SLACK = 1024 * 1024
# Metric labels take only these methods: any other token a client invents is
# "OTHER", so hostile requests cannot grow the label set without bound.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class _TooLarge(HTTPException):
    pass


async def _send_json(send: Send, status: int, body: dict, request_id: str | None) -> None:
    if request_id:
        body["error"]["request_id"] = request_id
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyLimitMiddleware:
    """Refuse bodies over the limit: at once from Content-Length, or as soon as a
    streamed (chunked) body passes it. Uploads get their own, larger limit."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    def _limit(self, path: str) -> int:
        if path.endswith("/documents/upload"):
            return self.max_upload_bytes + _MULTIPART_SLACK
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""))
        request_id = scope.get("state", {}).get("request_id")
        message = f"the request body is over the {limit}-byte limit"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if not value.strip().isdigit():
                    await _send_json(send, 400, {"error": {"status": 400, "code": "bad_request", "message": "invalid Content-Length"}}, request_id)
                    return
                if int(value) > limit:
                    await _send_json(
                        send, 413, {"error": {"status": 413, "code": "payload_too_large", "message": message, "field": "body"}}, request_id
                    )
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI re-raises it from body parsing, and
                    # the app's handler turns it into the usual JSON error.
                    raise _TooLarge(413, message)
            return incoming

        await self.app(scope, limited_receive, send)


class RequestContextMiddleware:
    """Request id (kept from X-Request-ID when sane, else new), security headers,
    and per-route latency metrics."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id" and 8 <= len(value) <= 64 and value.replace(b"-", b"").isalnum():
                request_id = value.decode("ascii")
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope.get("path", "")
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if path == "/" or path.startswith("/ui"):
                    headers += [(b"content-security-policy", _PAGE_CSP.encode()), (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/ui" if path.startswith("/ui") else "unmatched")
            method = scope.get("method", "")
            method = method if method in _METHODS else "OTHER"
            self.services.metrics.observe_request(method, template, status_holder["status"], time.perf_counter() - started)
