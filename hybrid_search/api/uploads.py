"""Files from clients, and files on the server named by clients, made safe.

Two rules hold for every request:

* An uploaded file is written only inside a server-controlled staging folder,
  under a name the server derives; the client's file name is checked (no folder
  parts, no ``..``, no control characters) and sanitised, never used as a path.
* A server path named in a request is resolved (``..`` and symlinks followed)
  and must land inside one of the configured document roots, or it is refused.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
import uuid
from pathlib import Path
from typing import BinaryIO

from .errors import ApiError
from .settings import ApiSettings

__all__ = ["UploadStaging", "check_upload_type", "collect_files", "resolve_under_root", "safe_file_name"]

_UNSAFE = re.compile(r"[^\w.\- ()+,@=]+", re.UNICODE)
_MAX_NAME_BYTES = 200
_COPY_CHUNK = 1024 * 1024
_MAGIC = {".pdf": (b"%PDF-",), ".docx": (b"PK\x03\x04",)}


def safe_file_name(name: str | None, *, field: str = "files") -> str:
    """The name an upload is stored and indexed under, or a 422.

    Refused: empty names, names with a folder part (``/`` or ``\\``), ``..``,
    NUL or other control characters. Kept: letters of any script, digits and
    ``. - _ ( ) + , @ =`` and spaces; anything else becomes ``_``.
    """
    if not name:
        raise ApiError.field_error(field, "every uploaded file needs a file name")
    if any(sep in name for sep in ("/", "\\")) or name.strip() in (".", "..") or ".." in Path(name).parts:
        raise ApiError.field_error(field, f"file name {name[:100]!r} has folder parts; send a plain file name")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in name):
        raise ApiError.field_error(field, f"file name {name[:100]!r} holds control or invisible characters")
    if name.startswith("."):
        raise ApiError.field_error(field, f"file name {name[:100]!r} is a hidden file name")
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFC", name)).strip(" .")
    if not cleaned:
        raise ApiError.field_error(field, f"file name {name[:100]!r} has no usable characters")
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot:
        stem, suffix = cleaned, ""
    while len((stem + dot + suffix).encode("utf-8")) > _MAX_NAME_BYTES and stem:
        stem = stem[:-1]
    return stem + dot + suffix


def check_upload_type(name: str, content_type: str | None, head: bytes, settings: ApiSettings, *, field: str = "files") -> None:
    """Extension and content type must both be allowed; PDF and DOCX must also
    start like one (a renamed executable is refused here, not by a parser)."""
    suffix = Path(name).suffix.lower()
    if suffix not in settings.upload_extensions:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{name!r}: files ending in {suffix or '(no extension)'!r} are not accepted; allowed: {', '.join(settings.upload_extensions)}",
            field=field,
        )
    media = (content_type or "application/octet-stream").split(";")[0].strip().lower()
    if media not in settings.upload_content_types:
        raise ApiError(
            415, "unsupported_media_type", f"{name!r}: content type {media!r} is not accepted", field=field
        )
    magic = _MAGIC.get(suffix)
    if magic is not None and not head.startswith(magic):
        raise ApiError(415, "unsupported_media_type", f"{name!r} does not look like a {suffix} file", field=field)


class UploadStaging:
    """A private folder per upload request, inside the server's upload dir."""

    def __init__(self, settings: ApiSettings) -> None:
        base = settings.upload_dir
        if base is None:
            base = Path(tempfile.gettempdir()) / f"hybrid-search-uploads-{os.getuid()}"
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.base = base.resolve()
        self.settings = settings

    def new_folder(self) -> Path:
        folder = self.base / uuid.uuid4().hex
        folder.mkdir(mode=0o700)
        return folder

    def save(self, folder: Path, name: str, stream: BinaryIO, budget: int) -> int:
        """Copy ``stream`` to ``folder/name``; returns bytes written. ``budget`` is
        what is left of the request's upload allowance."""
        target = folder / name
        # The name was sanitised, but check the result anyway: defence in depth.
        if target.resolve().parent != folder.resolve():
            raise ApiError.field_error("files", f"file name {name!r} is not allowed")
        written = 0
        # "xb": never follow or overwrite anything already there.
        with open(target, "xb") as out:
            while True:
                block = stream.read(_COPY_CHUNK)
                if not block:
                    break
                written += len(block)
                if written > budget:
                    raise ApiError(
                        413, "payload_too_large", f"uploads are limited to {self.settings.max_upload_bytes} bytes per request", field="files"
                    )
                out.write(block)
        if written == 0:
            raise ApiError.field_error("files", f"{name!r} is empty")
        return written


def resolve_under_root(root: Path, relative: str, *, field: str) -> Path:
    """``root/relative`` with every link followed, if it stays inside ``root``."""
    if "\x00" in relative:
        raise ApiError.field_error(field, "path holds a NUL character")
    if os.path.isabs(relative) or relative.startswith("~"):
        raise ApiError(403, "path_forbidden", f"{field}: give a path relative to the root, not {relative[:200]!r}", field=field)
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise ApiError(403, "path_forbidden", f"{field}: {relative[:200]!r} lies outside the document root", field=field)
    if not candidate.exists():
        raise ApiError(404, "path_not_found", f"{field}: {relative[:200]!r} does not exist under the root", field=field)
    return candidate


def collect_files(root: Path, start: Path, settings: ApiSettings, limit: int) -> list[Path]:
    """Readable files at or under ``start`` with an allowed extension; links that
    lead outside ``root`` are skipped, folders are not followed through links."""
    if start.is_file():
        found = [start]
    else:
        found = []
        for folder, dirs, names in os.walk(start, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                path = Path(folder) / name
                real = path.resolve()
                if root not in real.parents or not real.is_file():
                    continue
                found.append(path)
                if len(found) > limit:
                    raise ApiError(
                        422, "validation_error", f"paths: more than {limit} files; index a smaller folder per job", field="paths"
                    )
    return [p for p in found if p.suffix.lower() in settings.upload_extensions]
