"""Source documents: a hit in, the link that opens its file out, and the route
that serves files from the configured document roots.

Only files under a document root (``HYBRID_SEARCH_DOCUMENT_ROOTS``) are ever
served: the path is resolved with every link followed and must stay inside the
root, no part of it may be hidden (``.git``, ``.env``) and its extension must be
one the server indexes. Uploaded files are not kept after their job, so hits
from uploads have no link.

A hit names its file through its document id and source. A folder indexed with
``hybrid-search index FOLDER`` gives ids ``<label>/<path>`` with source
``<path>``; the API's paths job gives ``<root>/<path>`` for both. So a hit links
to root ``<label>`` (or ``<root>``) and that path, when a document root of that
name is configured and holds the file: name the root after the indexed folder
(``HYBRID_SEARCH_DOCUMENT_ROOTS=handbooks=/srv/handbooks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from .errors import ApiError
from .services import Services, require_read
from .settings import ApiSettings
from .uploads import resolve_under_root

__all__ = ["SOURCES_PREFIX", "router", "servable_file", "source_location", "source_url"]

SOURCES_PREFIX = "/v1/sources"

# Shown in the browser. HTML runs sandboxed (no scripts, an opaque origin), so an
# indexed page cannot act as this site; other text is shown as plain text.
_INLINE_TYPES = {
    ".pdf": "application/pdf",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".markdown": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/plain; charset=utf-8",
    ".jsonl": "text/plain; charset=utf-8",
}
_SANDBOX_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"

router = APIRouter(tags=["documents"])


def source_location(doc_id: str, source: str, roots: Mapping[str, object]) -> tuple[str, str] | None:
    """(root name, path under it) of the file a hit came from, or None when its
    id names no configured root."""
    head, sep, _ = doc_id.partition("/")
    if not sep or head not in roots or not source:
        return None
    if doc_id == f"{head}/{source}":  # hybrid-search index: id <label>/<path>, source <path>
        return head, source
    if source.startswith(f"{head}/"):  # the API's paths job: source <root>/<path>
        return head, source[len(head) + 1 :]
    return None


def servable_file(settings: ApiSettings, root_name: str, relative: str) -> Path:
    """The file ``relative`` under document root ``root_name``, or an ApiError
    (403 outside a root, hidden or of a type not served; 404 missing)."""
    root = settings.document_roots.get(root_name)
    if root is None:
        raise ApiError(403, "path_forbidden", f"root: {root_name[:100]!r} is not a document root", field="root")
    parts = PurePosixPath(relative).parts
    if not parts or any(part.startswith(".") for part in parts) or "\\" in relative:
        raise ApiError(403, "path_forbidden", f"path: {relative[:200]!r} is not a plain path under the root", field="path")
    path = resolve_under_root(root, relative, field="path")
    if path.suffix.lower() not in settings.upload_extensions:
        raise ApiError(403, "path_forbidden", f"path: files ending in {path.suffix or '(nothing)'!r} are not served", field="path")
    if not path.is_file():
        raise ApiError(404, "path_not_found", f"path: {relative[:200]!r} is not a file", field="path")
    return path


def source_url(settings: ApiSettings, doc_id: str, source: str, page: int | None) -> str | None:
    """Where this server serves a hit's file (``#page=N`` for a PDF), or None."""
    location = source_location(doc_id, source, settings.document_roots)
    if location is None:
        return None
    root_name, relative = location
    try:
        path = servable_file(settings, root_name, relative)
    except ApiError:
        return None
    url = f"{SOURCES_PREFIX}/{quote(root_name, safe='')}/{quote(relative, safe='/')}"
    if page is not None and path.suffix.lower() == ".pdf":
        url += f"#page={page}"
    return url


@router.get(
    SOURCES_PREFIX + "/{root}/{path:path}",
    response_class=FileResponse,
    responses={code: {"description": text} for code, text in ((403, "outside a document root"), (404, "no such file"))},
    summary="A source file under a document root",
)
def get_source(
    root: Annotated[str, PathParam(min_length=1, max_length=256)],
    path: Annotated[str, PathParam(min_length=1, max_length=4096)],
    services: Services = Depends(require_read),
) -> FileResponse:
    """The file as stored on the server: PDFs and text shown in the browser
    (HTML sandboxed), other types downloaded."""
    file = servable_file(services.settings, root, path)
    media = _INLINE_TYPES.get(file.suffix.lower())
    headers = {"content-security-policy": _SANDBOX_CSP} if media is None or media.startswith("text/") else {}
    return FileResponse(
        file,
        media_type=media or "application/octet-stream",
        filename=file.name,
        content_disposition_type="inline" if media else "attachment",
        headers=headers,
    )
