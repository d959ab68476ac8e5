"""Background indexing jobs: one worker thread per process, a bounded queue,
and a status record per job.

Why one thread: indexing is model-bound and shares the models with searches;
a second indexing thread would only contend for the same cores and the same
gate. Submissions beyond ``max_queued_jobs`` get a 429 instead of an unbounded
backlog. With ``jobs_dir`` set (``serve`` sets it for several workers), status
records are files there, so any worker can answer for a job another took.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HybridSearchError
from ..types import Chunk
from .errors import ApiError

if TYPE_CHECKING:
    from .services import Services

__all__ = ["Job", "JobManager", "chunker_available", "files_work", "records_work"]

log = logging.getLogger("hybrid_search.api")

# Chunks per Engine.index call, i.e. per hold of the model gate: a search that
# arrives during a job waits for at most one such batch to encode.
_BATCH_CHUNKS = 4
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v\u3000\xa0]*\n\s*")


@dataclass
class Job:
    id: str
    kind: str
    collection: str
    state: str = "queued"
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    documents: int = 0
    documents_indexed: int = 0
    chunks_written: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Work = Callable[[Job, Callable[[], None]], None]


class JobManager:
    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.services = services
        self.max_queued = settings.max_queued_jobs
        self.history = settings.job_history
        self.jobs_dir = Path(settings.jobs_dir) if settings.jobs_dir else None
        if self.jobs_dir is not None:
            self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[tuple[Job, Work, Callable[[], None] | None] | None] = queue.Queue()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="hybrid-search-indexer", daemon=True)
        self._thread.start()

    # --- public ----------------------------------------------------------------------------

    def submit(self, kind: str, collection: str, work: Work, cleanup: Callable[[], None] | None = None) -> Job:
        with self._lock:
            if self._pending >= self.max_queued:
                if cleanup is not None:
                    cleanup()
                raise ApiError(
                    429, "too_many_jobs", f"{self._pending} indexing jobs are waiting already; retry later", headers={"Retry-After": "5"}
                )
            job = Job(id=uuid.uuid4().hex, kind=kind, collection=collection)
            self._pending += 1
            self._remember(job)
        self.services.metrics.jobs_queued.inc()
        self._save(job)
        self._queue.put((job, work, cleanup))
        return job

    def get(self, job_id: str) -> Job | None:
        if not _JOB_ID.match(job_id):  # also keeps the id from naming any other file
            return None
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                return replace(job, skipped=list(job.skipped))
        if self.jobs_dir is not None:
            path = self.jobs_dir / f"{job_id}.json"
            try:
                return Job(**json.loads(path.read_text("utf-8")))
            except (OSError, ValueError, TypeError):
                return None
        return None

    def list(self, limit: int = 100) -> list[Job]:
        with self._lock:
            return [replace(job, skipped=list(job.skipped)) for job in reversed(self._jobs.values())][:limit]

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    # --- worker ------------------------------------------------------------------------------

    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        while len(self._jobs) > self.history:
            self._jobs.popitem(last=False)

    def _save(self, job: Job) -> None:
        if self.jobs_dir is None:
            return
        with self._lock:
            data = json.dumps(job.to_dict())
        # Write then rename: a reader in another worker never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=self.jobs_dir, prefix=".job-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
        os.replace(tmp, self.jobs_dir / f"{job.id}.json")

    def _progress_saver(self, job: Job) -> Callable[[], None]:
        """Persist a running job's counts at most twice a second."""
        last_save = time.monotonic()

        def progress() -> None:
            nonlocal last_save
            if time.monotonic() - last_save > 0.5:
                last_save = time.monotonic()
                self._save(job)

        return progress

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, work, cleanup = item
            with self._lock:
                job.state = "running"
                job.started_at = time.time()
            self._save(job)
            try:
                work(job, self._progress_saver(job))
                state, error = "succeeded", None
            except HybridSearchError as exc:
                state, error = "failed", f"{type(exc).__name__}: {exc}"
            except ApiError as exc:
                state, error = "failed", exc.message
            except Exception:
                log.exception("indexing job %s failed", job.id)
                state, error = "failed", "internal error; see the server log"
            finally:
                if cleanup is not None:
                    try:
                        cleanup()
                    except Exception:
                        log.exception("cleanup of job %s failed", job.id)
            with self._lock:
                job.state = state
                job.error = error
                job.finished_at = time.time()
                self._pending -= 1
            self.services.metrics.jobs_queued.dec()
            self.services.metrics.jobs.labels(state).inc()
            self._save(job)


# --- what jobs do ---------------------------------------------------------------------------


def chunker_available() -> bool:
    try:
        import indexers.chunks
        import indexers.documents  # noqa: F401
    except ImportError:
        return False
    return True


def _index_units(services: Services, collection: str, units: Iterable[list[Chunk]], job: Job, progress: Callable[[], None]) -> None:
    """Index documents (each a list of chunks) in batches of whole documents,
    taking the model gate once per batch so searches interleave with a long job."""
    engine = services.engine()
    batch: list[Chunk] = []
    docs_in_batch = 0

    def flush() -> None:
        nonlocal docs_in_batch
        if not batch:
            return
        with services.job_gate():
            report = engine.index(collection, batch, batch_size=_BATCH_CHUNKS)
        job.chunks_written += report.chunks_written
        job.documents_indexed += docs_in_batch
        services.metrics.chunks_indexed.inc(report.chunks_written)
        batch.clear()
        docs_in_batch = 0
        progress()

    for chunks in units:
        if not chunks:
            continue
        if batch and len(batch) + len(chunks) > _BATCH_CHUNKS:
            flush()
        # A document larger than a batch goes in slices, the gate released
        # between them. Each slice replaces the positions from its own on (the
        # old version's later chunks go with the first), and the last slice
        # leaves exactly the new document.
        last = (len(chunks) - 1) // _BATCH_CHUNKS * _BATCH_CHUNKS
        for offset in range(0, last, _BATCH_CHUNKS):
            batch.extend(chunks[offset : offset + _BATCH_CHUNKS])
            flush()
        batch.extend(chunks[last:])
        docs_in_batch += 1
    flush()


def _token_counter(services: Services, collection: str) -> Callable[[str], int]:
    from indexers.chunks import hf_token_counter, whitespace_token_counter

    encoders = services.engine().encoders(collection)
    model = encoders.dense or encoders.sparse
    tokenizer = getattr(model, "tokenizer", None)
    return hf_token_counter(tokenizer) if tokenizer is not None else whitespace_token_counter


def _chunking_config(services: Services) -> Any:
    from indexers.chunks import ChunkingConfig

    settings = services.settings
    return ChunkingConfig(max_tokens=settings.chunk_max_tokens, overlap_tokens=settings.chunk_overlap_tokens)


def records_work(services: Services, collection: str, records: list[dict[str, Any]], chunk: bool) -> Work:
    """A job that indexes JSON records: one document each, chunked when the
    chunker is there and ``chunk`` is set, else one chunk per record."""

    def work(job: Job, progress: Callable[[], None]) -> None:
        job.documents = len(records)
        use_chunker = chunk and chunker_available()
        if use_chunker:
            from indexers.chunks import chunk_document
            from indexers.documents import Block, Document

            config = _chunking_config(services)
            count = _token_counter(services, collection)

        def units() -> Iterator[list[Chunk]]:
            for record in records:
                if use_chunker:
                    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(record["text"]) if p.strip()]
                    doc = Document(
                        doc_id=record["id"],
                        source=record.get("source", ""),
                        title=record.get("title", ""),
                        blocks=tuple(Block("paragraph", p) for p in paragraphs),
                        format="text",
                        metadata=dict(record.get("metadata") or {}),
                    )
                    yield chunk_document(doc, config, count)
                else:
                    yield [
                        Chunk(
                            doc_id=record["id"],
                            chunk_index=0,
                            text=record["text"],
                            title=record.get("title", ""),
                            source=record.get("source", ""),
                            metadata=dict(record.get("metadata") or {}),
                        )
                    ]

        _index_units(services, collection, units(), job, progress)

    return work


class _JobProgress:
    """The ingestion pipeline's progress, counted into a job's status record."""

    def __init__(self, services: Services, job: Job, saved: Callable[[], None]) -> None:
        self.services, self.job, self.saved = services, job, saved

    def files_planned(self, total: int) -> None: ...

    def chunks_planned(self, more: int) -> None: ...

    def file_done(self, source: str, status: str) -> None:
        self.saved()

    def chunks_written(self, count: int) -> None:
        self.job.chunks_written += count
        self.services.metrics.chunks_indexed.inc(count)
        self.saved()


def files_work(services: Services, collection: str, files: list[Path], root: Path, label: str) -> Work:
    """A job that brings the documents of ``files`` (already vetted to lie
    inside ``root``) in line with them through the same ingestion pipeline as
    ``hybrid-search index``: sync state (an unchanged file is not re-indexed),
    JSONL records with their metadata fields, skip reasons. Document ids are
    ``<label>/<path relative to root>``; JSONL/CSV records keep their own ids.
    Each encoder batch holds the model gate, so searches interleave."""

    def work(job: Job, progress: Callable[[], None]) -> None:
        from indexers.documents import ReadOptions, record_fields
        from indexers.pipeline import IngestConfig, ingest_files

        record_id, record_metadata = record_fields(files, None, "text", "title", None)
        config = IngestConfig(
            read=ReadOptions(
                max_file_bytes=services.settings.max_upload_bytes,
                id_field=record_id or "id",
                title_field="title",
                metadata_fields=record_metadata,
            ),
            chunking=_chunking_config(services),
            batch_size=_BATCH_CHUNKS,
            root_label=label,
        )
        summary = ingest_files(
            services.engine(), collection, root, files, config, _JobProgress(services, job, progress), batch_guard=services.job_gate
        )
        job.skipped.extend({"source": s.source, "reason": s.reason, "detail": s.detail} for s in summary.skipped)
        job.documents = summary.documents_written + summary.documents_unchanged
        job.documents_indexed = summary.documents_written

    return work


def remove_tree(path: Path) -> Callable[[], None]:
    def cleanup() -> None:
        shutil.rmtree(path, ignore_errors=True)

    return cleanup
