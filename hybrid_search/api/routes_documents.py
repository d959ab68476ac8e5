"""Documents: add (JSON records, uploaded files, or files under a configured
server root) as background jobs; job status; get, list and delete documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Query, UploadFile
from starlette.convertors import Convertor, register_url_convertor

from ..types import MAX_DOC_ID_CHARS, doc_id_problem
from .errors import ApiError
from .jobs import chunker_available, files_work, records_work, remove_tree
from .routes_search import ERRORS, CollectionName
from .schemas import (
    ChunkOut,
    DeletedOut,
    DocumentList,
    DocumentOut,
    JobOut,
    PathsRequest,
    RecordsRequest,
)
from .services import Services, require_read, require_write
from .uploads import (
    UploadStaging,
    check_upload_type,
    collect_files,
    resolve_under_root,
    safe_file_name,
)

__all__ = ["router"]


class _AnyTextConvertor(Convertor[str]):
    """A path parameter of any text: Starlette's ``path`` convertor matches
    ``.*``, which stops at a line break (and ``$`` matches before a final one),
    so an id holding a newline reached the route cut short or empty."""

    regex = "(?s:.+)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# Registered under its own name: the routes below use it, no other route changes.
register_url_convertor("any_text", _AnyTextConvertor())

#: Uploaded files are one ingest root: document ids are ``upload/<file name>``.
UPLOAD_ROOT_LABEL = "upload"

router = APIRouter(tags=["documents"])

DocId = Annotated[str, Path(min_length=1, max_length=MAX_DOC_ID_CHARS, description="document id (URL-encode it: any text works)")]
JOB_ERRORS = ERRORS | {415: ERRORS[422]}


def _jobs(services: Services):
    if services.jobs is None:  # only before startup finished
        raise ApiError(503, "unavailable", "the job worker is not running yet", headers={"Retry-After": "2"})
    return services.jobs


def _existing(services: Services, name: str) -> str:
    """Fail fast on an unknown collection (404), or one being promoted (409),
    instead of in the job."""
    engine = services.engine()
    engine.open_collection(name)
    target = engine.resolve(name)
    engine.check_writable(target)  # the job checks again before every write
    return target


@router.post(
    "/v1/collections/{name}/documents",
    response_model=JobOut,
    status_code=202,
    responses=JOB_ERRORS,
    summary="Add JSON records (background job)",
)
def add_records(name: CollectionName, request: RecordsRequest, services: Services = Depends(require_write)) -> JobOut:
    """Each record ``{id, text, title?, source?, metadata?}`` becomes one document,
    replacing any earlier document with that id. Answers at once with a job to poll."""
    if len(request.records) > services.settings.max_records_per_request:
        raise ApiError.field_error("records", f"at most {services.settings.max_records_per_request} records per request")
    target = _existing(services, name)
    records = [r.model_dump() for r in request.records]
    job = _jobs(services).submit("records", target, records_work(services, target, records, request.chunk))
    return JobOut.model_validate(job.to_dict())


@router.post(
    "/v1/collections/{name}/documents/upload",
    response_model=JobOut,
    status_code=202,
    responses=JOB_ERRORS,
    summary="Upload files (background job)",
)
def upload_files(
    name: CollectionName,
    files: Annotated[list[UploadFile], File(description="PDF, DOCX, HTML, Markdown, text, JSONL or CSV files")],
    services: Services = Depends(require_write),
) -> JobOut:
    """Files are staged in a server folder under sanitised names and indexed in the
    background by the same pipeline as ``hybrid-search index``; each becomes a
    document whose id is ``upload/<sanitised file name>`` (JSONL/CSV: one
    document per record, id from its ``id`` field, the other scalar fields of
    the first record kept as metadata). Uploading an unchanged file again
    writes nothing."""
    settings = services.settings
    if not chunker_available():
        raise ApiError(501, "not_implemented", "document readers are not installed on this server")
    if len(files) > settings.max_upload_files:
        raise ApiError.field_error("files", f"at most {settings.max_upload_files} files per request")
    target = _existing(services, name)
    names = [safe_file_name(f.filename) for f in files]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ApiError.field_error("files", f"file name(s) sent twice: {', '.join(sorted(duplicates))}")
    for upload, safe in zip(files, names):
        head = upload.file.read(8)
        upload.file.seek(0)
        check_upload_type(safe, upload.content_type, head, settings)
    staging = UploadStaging(settings)
    folder = staging.new_folder()
    cleanup = remove_tree(folder)
    try:
        budget = settings.max_upload_bytes
        paths = []
        for upload, safe in zip(files, names):
            budget -= staging.save(folder, safe, upload.file, budget)
            paths.append(folder / safe)
    except BaseException:
        cleanup()
        raise
    job = _jobs(services).submit("upload", target, files_work(services, target, paths, folder, UPLOAD_ROOT_LABEL), cleanup=cleanup)
    return JobOut.model_validate(job.to_dict())


@router.post(
    "/v1/collections/{name}/documents/paths",
    response_model=JobOut,
    status_code=202,
    responses=JOB_ERRORS,
    summary="Index files under a configured server root (background job)",
)
def add_paths(name: CollectionName, request: PathsRequest, services: Services = Depends(require_write)) -> JobOut:
    """Only folders the operator configured (``document_roots``) can be read, and
    no path, ``..`` or symlink can lead out of them. Document ids are
    ``ROOT/relative/path``."""
    settings = services.settings
    if not chunker_available():
        raise ApiError(501, "not_implemented", "document readers are not installed on this server")
    root = settings.document_roots.get(request.root)
    if root is None:
        known = ", ".join(sorted(settings.document_roots)) or "none are configured"
        raise ApiError(403, "path_forbidden", f"root: {request.root!r} is not a document root ({known})", field="root")
    target = _existing(services, name)
    files: list = []
    for i, relative in enumerate(request.paths):
        start = resolve_under_root(root, relative, field=f"paths.{i}")
        files.extend(collect_files(root, start, settings, settings.max_files_per_path_job - len(files)))
    files = list(dict.fromkeys(files))
    if not files:
        raise ApiError.field_error("paths", f"no files with an accepted extension ({', '.join(settings.upload_extensions)})")
    job = _jobs(services).submit("paths", target, files_work(services, target, files, root, request.root))
    return JobOut.model_validate(job.to_dict())


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=ERRORS, summary="Job status", tags=["jobs"])
def job_status(job_id: Annotated[str, Path(max_length=64)], services: Services = Depends(require_read)) -> JobOut:
    job = _jobs(services).get(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"no job {job_id[:64]!r} (finished jobs are kept for a while, then forgotten)")
    return JobOut.model_validate(job.to_dict())


@router.get("/v1/jobs", response_model=list[JobOut], responses=ERRORS, summary="Recent jobs", tags=["jobs"])
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, services: Services = Depends(require_read)
) -> list[JobOut]:
    return [JobOut.model_validate(job.to_dict()) for job in _jobs(services).list(limit)]


@router.get("/v1/collections/{name}/documents", response_model=DocumentList, responses=ERRORS, summary="List documents")
def list_documents(
    name: CollectionName,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    services: Services = Depends(require_read),
) -> DocumentList:
    engine = services.engine()
    items = engine.list_documents(name, limit=limit + 1)
    return DocumentList(
        collection=engine.resolve(name),
        documents=[{"doc_id": doc_id, "chunks": count} for doc_id, count in items[:limit]],
        truncated=len(items) > limit,
    )


@router.get("/v1/collections/{name}/documents/{doc_id:any_text}", response_model=DocumentOut, responses=ERRORS, summary="Get a document")
def get_document(name: CollectionName, doc_id: DocId, services: Services = Depends(require_read)) -> DocumentOut:
    _check_doc_id(doc_id)
    engine = services.engine()
    chunks = engine.get_document(name, doc_id)
    if not chunks:
        raise ApiError(404, "document_not_found", f"no document {doc_id[:200]!r} in collection {name!r}")
    return DocumentOut(
        collection=engine.resolve(name),
        doc_id=doc_id,
        chunks=[
            ChunkOut(
                chunk_id=c.id,
                chunk_index=c.chunk_index,
                text=c.text,
                title=c.title,
                source=c.source,
                page=c.page,
                heading_path=list(c.heading_path),
                metadata=c.metadata,
            )
            for c in chunks
        ],
    )


@router.delete("/v1/collections/{name}/documents/{doc_id:any_text}", response_model=DeletedOut, responses=ERRORS, summary="Delete a document")
def delete_document(name: CollectionName, doc_id: DocId, services: Services = Depends(require_write)) -> DeletedOut:
    _check_doc_id(doc_id)
    removed = services.engine().delete_documents(name, [doc_id])
    if removed == 0:
        raise ApiError(404, "document_not_found", f"no document {doc_id[:200]!r} in collection {name!r}")
    return DeletedOut(doc_id=doc_id, chunks_deleted=removed)


def _check_doc_id(doc_id: str) -> None:
    problem = doc_id_problem(doc_id)
    if problem is not None:
        raise ApiError.field_error("doc_id", problem)
