"""The ingestion pipeline: folders and files in, a collection in sync out.

Files are hashed and compared with what the collection holds (see ``sync``):
unchanged files are not even parsed; new and changed files are read and
chunked on a thread pool while the encoder works on earlier chunks and the
batch before is written to Milvus (``IngestConfig.overlap``, see
``hybrid_search.index_batches``), and chunks from many files share encoder
batches; documents whose files disappeared are removed at the end. Killing a run at any point and running it again ends in the
same state as one clean run.

The order of the writes is what makes that hold:

1. new and changed documents are written (``Engine.index``), each chunk
   stamped with its file's hash and document count; a document half written
   is incomplete and is written again by the next run;
2. unchanged documents of changed files (other records of an edited JSONL
   file) get the new file stamp (their rows are rewritten as they are, no
   re-encoding); until then the file does not count as unchanged;
3. documents whose file is gone, or whose re-read file no longer yields them,
   are deleted; until then they are still in the state, so the next run
   deletes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hybrid_search.errors import ConfigError, InputError
from hybrid_search.filters import FilterCondition, compile_filters
from hybrid_search.types import Chunk

from .chunks import (
    ChunkingConfig,
    TokenCounter,
    chunk_document,
    hf_token_counter,
    whitespace_token_counter,
)
from .documents import (
    RECORD_FORMATS,
    Document,
    ReadOptions,
    Skipped,
    document_format,
    read_file,
    source_for,
)
from .files import FileSelection, find_files
from .sync import (
    CHUNKS_KEY,
    DOC_HASH_KEY,
    FILE_DOCS_KEY,
    FILE_HASH_KEY,
    ROOT_KEY,
    SyncState,
    chunking_tokenizer_name,
    document_sha256,
    file_sha256,
    pipeline_fingerprint,
)

if TYPE_CHECKING:
    from hybrid_search.encoders import EncoderSet
    from hybrid_search.engine import Engine

__all__ = ["BatchGuard", "IngestConfig", "IngestSummary", "IngestProgress", "ingest", "ingest_files", "token_counter_for"]

#: Wraps each encoder batch (e.g. a lock that lets searches interleave).
BatchGuard = Callable[[], AbstractContextManager[Any]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestConfig:
    """How folders become chunks. ``root_label`` names an ingest root in the
    collection (default: the folder's name); file documents get the id
    ``<root_label>/<path relative to the root>``, records keep their own ids."""

    read: ReadOptions = field(default_factory=ReadOptions)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    selection: FileSelection = field(default_factory=FileSelection)
    batch_size: int = 64
    reader_threads: int = 2
    prefetch_files: int = 16
    root_label: str | None = None
    #: Read and chunk the next files, encode one batch and write the one
    #: before it side by side (off: one after another; the same rows either
    #: way). None: on when the encoders run on a GPU (see Engine.index).
    overlap: bool | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "reader_threads", "prefetch_files"):
            if getattr(self, name) < 1:
                raise ConfigError(f"IngestConfig.{name} must be >= 1; got {getattr(self, name)!r}")
        if self.root_label is not None and (not self.root_label or "/" in self.root_label):
            raise ConfigError("IngestConfig.root_label must be a non-empty name without '/'")


@dataclass
class IngestSummary:
    files_seen: int = 0
    files_unchanged: int = 0
    files_indexed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    documents_written: int = 0
    documents_unchanged: int = 0
    documents_removed: int = 0
    documents_restamped: int = 0
    chunks_written: int = 0
    chunks_unchanged: int = 0
    chunks_removed: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """Some file or record could not be indexed."""
        return bool(self.skipped)

    def add_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds


class IngestProgress:
    """Callbacks for a progress display; the default does nothing. They are
    called on the thread that runs the ingest, and a file is done once its
    chunks are written."""

    def files_planned(self, total: int) -> None: ...

    def file_done(self, source: str, status: Literal["indexed", "unchanged", "skipped"]) -> None: ...

    def chunks_planned(self, more: int) -> None: ...

    def chunks_written(self, count: int) -> None: ...


class _WrittenOrderProgress(IngestProgress):
    """Passes the file reader's progress on as the writes catch up with it.

    The generator that reads and chunks files runs ahead of the writes (on a
    thread of its own when the stages overlap): what it reports waits here
    until the chunks it yielded before are written, and is then passed on from
    the thread that writes, which is the caller's. So a file counts as done
    once its chunks are acknowledged, and the display is only ever called from
    one thread."""

    def __init__(self, target: IngestProgress) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._yielded = 0
        self._written = 0
        self._waiting: deque[tuple[int, Callable[[], None]]] = deque()

    def after_written(self, call: Callable[[], None], more_chunks: int = 0) -> None:
        """Run ``call`` once the chunks yielded so far are written; then count
        ``more_chunks`` more as yielded (reader side, any thread)."""
        with self._lock:
            self._waiting.append((self._yielded, call))
            self._yielded += more_chunks

    def chunks_written(self, count: int) -> None:
        self.target.chunks_written(count)
        self._written += count
        self.flush(self._written)

    def flush(self, upto: int | None = None) -> None:
        """Pass on what waited for ``upto`` chunks (all when ``None``)."""
        while True:
            with self._lock:
                if not self._waiting or (upto is not None and self._waiting[0][0] > upto):
                    return
                _, call = self._waiting.popleft()
            call()


@dataclass
class _Root:
    path: Path
    base: Path
    label: str
    files: list[Path]
    single_file: bool
    skipped: list[Skipped] = field(default_factory=list)


def _roots(paths: Sequence[Path], config: IngestConfig) -> list[_Root]:
    roots: list[_Root] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir() and (path / "corpus.jsonl").is_file():
            # A BEIR-layout folder: its corpus is the document set.
            roots.append(_Root(path, path, config.root_label or path.resolve().name, [path / "corpus.jsonl"], True))
        elif path.is_dir():
            loops: list[Skipped] = []
            files = find_files(path, config.selection, loops)
            roots.append(_Root(path, path, config.root_label or path.resolve().name, files, False, loops))
        else:
            if document_format(path) is None:
                raise InputError(f"{path}: unsupported file type (supported: pdf, docx, html, md, txt, jsonl, csv)")
            label = config.root_label or path.resolve().parent.name
            # Files of one folder named one by one form one root, so their
            # chunks share encoder batches and their reading overlaps encoding.
            same = next(
                (r for r in roots if r.single_file and r.label == label and r.base.resolve() == path.parent.resolve()),
                None,
            )
            if same is None:
                roots.append(_Root(path, path.parent, label, [path], True))
            elif all(source_for(f, same.base) != source_for(path, same.base) for f in same.files):
                same.files.append(path)
    for root in roots:
        if root.single_file:
            root.files.sort(key=lambda f: source_for(f, root.base))
    return roots


def token_counter_for(encoders: EncoderSet) -> tuple[TokenCounter, str]:
    """The chunker's token counter for a collection's encoders (their own
    tokenizer, else whitespace words) and its name for the pipeline fingerprint."""
    tokenizer = getattr(encoders.dense or encoders.sparse, "tokenizer", None)
    if tokenizer is None:
        return whitespace_token_counter, "whitespace"
    return hf_token_counter(tokenizer), str(getattr(tokenizer, "name_or_path", type(tokenizer).__name__))


def _prepare_chunks(chunks: list[Chunk], label: str, file_key: str, doc_sha: str, file_docs: int) -> list[Chunk]:
    count = len(chunks)
    return [
        replace(
            chunk,
            bookkeeping={
                **chunk.bookkeeping,
                ROOT_KEY: label,
                FILE_HASH_KEY: file_key,
                DOC_HASH_KEY: doc_sha,
                CHUNKS_KEY: count,
                FILE_DOCS_KEY: file_docs,
            },
        )
        for chunk in chunks
    ]


def ingest(
    engine: Engine,
    collection: str,
    paths: Sequence[Path],
    config: IngestConfig | None = None,
    progress: IngestProgress | None = None,
    *,
    batch_guard: BatchGuard | None = None,
) -> IngestSummary:
    """Bring ``collection`` in line with the files under ``paths``. Each
    encoder batch runs inside ``batch_guard()`` when given (see ``Engine.index``)."""
    config = config or IngestConfig()
    t0 = time.perf_counter()
    roots = _roots(paths, config)
    return _ingest_roots(engine, collection, roots, config, progress, batch_guard, scan_seconds=time.perf_counter() - t0)


def ingest_files(
    engine: Engine,
    collection: str,
    base: Path,
    files: Sequence[Path],
    config: IngestConfig | None = None,
    progress: IngestProgress | None = None,
    *,
    batch_guard: BatchGuard | None = None,
) -> IngestSummary:
    """Bring the documents of ``files`` (each under the folder ``base``) in
    line with them, as ``ingest`` does for named files: file documents get the
    id ``<root_label>/<path relative to base>`` and other files under ``base``
    are left alone. For a caller that chose the files itself (the API's jobs)."""
    config = config or IngestConfig()
    base = Path(base)
    chosen = sorted(dict.fromkeys(Path(f) for f in files), key=lambda f: source_for(f, base))
    roots = [_Root(base, base, config.root_label or base.resolve().name, chosen, True)]
    return _ingest_roots(engine, collection, roots, config, progress, batch_guard, scan_seconds=0.0)


def _ingest_roots(
    engine: Engine,
    collection: str,
    roots: list[_Root],
    config: IngestConfig,
    progress: IngestProgress | None,
    batch_guard: BatchGuard | None,
    *,
    scan_seconds: float,
) -> IngestSummary:
    progress = progress or IngestProgress()
    summary = IngestSummary()
    started = time.perf_counter() - scan_seconds
    summary.skipped.extend(skip for root in roots for skip in root.skipped)
    summary.add_stage("scan", scan_seconds)
    summary.files_seen = sum(len(r.files) for r in roots)
    progress.files_planned(summary.files_seen)

    encoders = engine.encoders(collection)
    count_tokens, counter_name = token_counter_for(encoders)
    tokenizer = getattr(encoders.dense or encoders.sparse, "tokenizer", None)
    counter_name = chunking_tokenizer_name(engine, engine.resolve(collection), tokenizer, counter_name)
    fingerprint = pipeline_fingerprint(config.read, config.chunking, counter_name)

    for root in roots:
        _ingest_root(engine, collection, root, config, fingerprint, count_tokens, progress, summary, batch_guard)
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass
class _FileWork:
    """One file read and chunked on a worker thread: its documents, each with
    its hash and its chunks (``None``: stored already, complete and unchanged;
    ``_LATER``: to be chunked when the run gets to it)."""

    source: str
    file_key: str
    documents: list[tuple[Document, str, list[Chunk] | None | _Later]]
    skipped: list[Skipped]
    read_seconds: float
    chunk_seconds: float


class _Later:
    """A document of a large record file, chunked as the run consumes it."""


_LATER = _Later()

#: A file of more documents than this (a JSONL corpus) is chunked document by
#: document as its chunks are consumed, so its first batch is encoded while
#: the rest is still being chunked, instead of after the whole file.
CHUNK_AHEAD_DOCUMENTS = 32


def _read_and_chunk(
    path: Path,
    file_key: str,
    root: _Root,
    config: IngestConfig,
    fingerprint: str,
    count_tokens: TokenCounter,
    state: SyncState,
) -> _FileWork:
    t0 = time.perf_counter()
    result = read_file(path, config.read, root=root.base)
    t1 = time.perf_counter()
    documents: list[tuple[Document, str, list[Chunk] | None | _Later]] = []
    chunk_now = len(result.documents) <= CHUNK_AHEAD_DOCUMENTS
    try:
        for doc in result.documents:
            if doc.format not in RECORD_FORMATS:
                doc = replace(doc, doc_id=f"{root.label}/{doc.source}")
            doc_sha = document_sha256(doc, fingerprint)
            if state.document_unchanged(doc.doc_id, doc_sha):
                documents.append((doc, doc_sha, None))
            else:
                documents.append((doc, doc_sha, chunk_document(doc, config.chunking, count_tokens) if chunk_now else _LATER))
    except Exception as exc:
        log.warning("chunking %s failed unexpectedly", result.source, exc_info=True)
        return _FileWork(
            result.source, file_key, [], [Skipped(result.source, "corrupt", f"chunking failed: {type(exc).__name__}: {exc}")], t1 - t0, 0.0
        )
    return _FileWork(result.source, file_key, documents, list(result.skipped), t1 - t0, time.perf_counter() - t1)


def _ingest_root(
    engine: Engine,
    collection: str,
    root: _Root,
    config: IngestConfig,
    fingerprint: str,
    count_tokens: Callable[[str], int],
    progress: IngestProgress,
    summary: IngestSummary,
    batch_guard: BatchGuard | None = None,
) -> None:
    t0 = time.perf_counter()
    state = SyncState.load(engine, collection, root.label)
    sources = {path: source_for(path, root.base) for path in root.files}
    if root.single_file:
        # Only the named files are in scope: other files of the folder stay.
        state = state.restricted_to(sources.values())
    grouped = state.by_source()
    summary.add_stage("state", time.perf_counter() - t0)

    t0 = time.perf_counter()
    to_read: list[tuple[Path, str]] = []
    for path, source in sources.items():
        try:
            file_key = f"{file_sha256(path)}:{fingerprint}"
        except OSError as error:
            summary.skipped.append(Skipped(source, "unreadable", str(error)))
            progress.file_done(source, "skipped")
            continue
        if state.file_unchanged(source, file_key, grouped):
            summary.files_unchanged += 1
            for stored in grouped[source]:
                summary.documents_unchanged += 1
                summary.chunks_unchanged += stored.expected_chunks or 0
            progress.file_done(source, "unchanged")
        else:
            to_read.append((path, file_key))
    summary.add_stage("hash", time.perf_counter() - t0)

    # Files whose documents this run takes as they are: unchanged, or not
    # hashable now. Their documents stay, and keep their ids (see below).
    reading = {sources[path] for path, _ in to_read}
    held = set(sources.values()) - reading

    live_doc_ids: set[str] = set()
    rewritten_sources: set[str] = set()
    owner: dict[str, str] = {}  # doc_id -> the file that yields it in this run
    restamp: dict[str, tuple[str, int]] = {}

    def keep(doc: Document, source: str, chunks: list[Chunk] | None) -> Skipped | None:
        """Why a document read from ``source`` is left out, if it is."""
        if doc.doc_id in owner and owner[doc.doc_id] != source:
            return Skipped(source, "duplicate_id", f"id {doc.doc_id!r} is already taken by {owner[doc.doc_id]}")
        stored = state.documents.get(doc.doc_id)
        if stored is not None and stored.source != source and stored.source in held and stored.source < source:
            # A clean run reads files in path order and the first one keeps an
            # id; the file holding it now comes first and is not re-read.
            return Skipped(source, "duplicate_id", f"id {doc.doc_id!r} is already taken by {stored.source}")
        if chunks == []:
            return Skipped(source, "no_text", f"document {doc.doc_id!r} yields no chunks")
        return None

    def documents_chunks() -> Iterator[Chunk]:
        # Reading and chunking run ahead on worker threads (parsers and the
        # Rust tokenizer release the GIL in places) while the encoder batches
        # the chunks of many files together.
        with ThreadPoolExecutor(max_workers=config.reader_threads, thread_name_prefix="ingest-read") as pool:
            pending: list[Future[_FileWork]] = []
            queue = iter(to_read)

            def top_up() -> None:
                while len(pending) < config.prefetch_files:
                    item = next(queue, None)
                    if item is None:
                        return
                    path, file_key = item
                    pending.append(
                        pool.submit(_read_and_chunk, path, file_key, root, config, fingerprint, count_tokens, state)
                    )

            try:
                top_up()
                while pending:
                    work = pending.pop(0).result()
                    top_up()
                    summary.add_stage("read", work.read_seconds)
                    summary.add_stage("chunk", work.chunk_seconds)
                    summary.skipped.extend(work.skipped)
                    if not work.documents:
                        ordered.after_written(partial(progress.file_done, work.source, "skipped"))
                        continue
                    rewritten_sources.add(work.source)
                    # What the file holds, the left-out records included: a file
                    # with bad records never looks unchanged, so it is read and
                    # its problems reported on every run, like a bad file.
                    file_docs = len(work.documents) + len(work.skipped)
                    kept = 0
                    for doc, doc_sha, chunks in work.documents:
                        if isinstance(chunks, _Later):
                            t0 = time.perf_counter()
                            try:
                                chunks = chunk_document(doc, config.chunking, count_tokens)
                            except Exception as exc:
                                # Left out like a bad record: its stored version
                                # stays, and the file is read again next run.
                                log.warning("chunking %s failed unexpectedly", doc.doc_id, exc_info=True)
                                summary.skipped.append(
                                    Skipped(work.source, "corrupt", f"document {doc.doc_id!r}: chunking failed: {type(exc).__name__}: {exc}")
                                )
                                live_doc_ids.add(doc.doc_id)
                                continue
                            finally:
                                summary.add_stage("chunk", time.perf_counter() - t0)
                        reason = keep(doc, work.source, chunks)
                        if reason is not None:
                            summary.skipped.append(reason)
                            continue
                        owner[doc.doc_id] = work.source
                        live_doc_ids.add(doc.doc_id)
                        kept += 1
                        if chunks is None:
                            summary.documents_unchanged += 1
                            summary.chunks_unchanged += state.documents[doc.doc_id].expected_chunks or 0
                            if state.needs_restamp(doc.doc_id, work.file_key, file_docs):
                                restamp[doc.doc_id] = (work.file_key, file_docs)
                            continue
                        summary.documents_written += 1
                        doc_chunks = _prepare_chunks(chunks, root.label, work.file_key, doc_sha, file_docs)
                        # The planned total is passed on as soon as the earlier
                        # chunks are written (the ETA's denominator).
                        ordered.after_written(partial(progress.chunks_planned, len(doc_chunks)), more_chunks=len(doc_chunks))
                        yield from doc_chunks
                    if not kept:
                        ordered.after_written(partial(progress.file_done, work.source, "skipped"))
                        continue
                    summary.files_indexed += 1
                    # The file is done once its own chunks are written.
                    ordered.after_written(partial(progress.file_done, work.source, "indexed"))
            finally:
                for future in pending:
                    future.cancel()

    ordered = _WrittenOrderProgress(progress)
    report = engine.index(
        collection,
        documents_chunks(),
        batch_size=config.batch_size,
        progress=ordered.chunks_written,
        batch_guard=batch_guard,
        overlap=config.overlap,
    )
    ordered.flush()  # files that yielded nothing after the last write
    summary.chunks_written += report.chunks_written
    summary.chunks_removed += report.stale_chunks_removed
    summary.add_stage("encode", report.encode_seconds)
    summary.add_stage("write", report.write_seconds)

    t0 = time.perf_counter()
    summary.documents_restamped += _restamp(engine, collection, restamp)
    summary.add_stage("restamp", time.perf_counter() - t0)

    t0 = time.perf_counter()
    stale = state.stale_documents(
        sources.values(), live_doc_ids | _unread_doc_ids(state, rewritten_sources), rewritten_sources
    )
    if stale:
        summary.chunks_removed += engine.delete_documents(collection, stale)
        summary.documents_removed += len(stale)
    summary.add_stage("delete", time.perf_counter() - t0)


def _unread_doc_ids(state: SyncState, rewritten_sources: set[str]) -> set[str]:
    """Documents of files this run did not re-read (unchanged or unreadable now)
    stay live: only a file that was read again can drop documents."""
    return {d for d, stored in state.documents.items() if stored.source not in rewritten_sources}


_RESTAMP_DOCS = 64
_RESTAMP_ROWS = 256


def _restamp(engine: Engine, collection: str, stamps: dict[str, tuple[str, int]]) -> int:
    """Give unchanged documents their file's new stamp: their rows (vectors
    included) are read back and written again with only the stamp changed.
    Returns the number of documents restamped."""
    if not stamps:
        return 0
    name = engine.resolve(collection)
    config = engine.open_collection(name)
    fields = ["id", "doc_id", "chunk_index", "text", "bm25_text", "title", "source", "page", "heading", "metadata"]
    if config.dense is not None:
        fields.append("dense")
    if config.sparse is not None:
        fields.append("sparse")
    doc_ids = sorted(stamps)
    for start in range(0, len(doc_ids), _RESTAMP_DOCS):
        group = doc_ids[start : start + _RESTAMP_DOCS]
        expression = compile_filters([FilterCondition("doc_id", "in", group)])
        # Read the whole group before writing: an upsert is a delete and an
        # insert, which an open iterator over the same rows could see twice.
        rows: list[dict[str, Any]] = []
        for row in engine.store.iterate(name, expression, fields):
            file_key, file_docs = stamps[row["doc_id"]]
            rows.append(
                {f: row[f] for f in fields if f in row}
                | {"metadata": {**(row.get("metadata") or {}), FILE_HASH_KEY: file_key, FILE_DOCS_KEY: file_docs}}
            )
        for offset in range(0, len(rows), _RESTAMP_ROWS):
            engine.check_writable(name)  # as Engine.index does: no writes while promoted
            engine.store.upsert(name, rows[offset : offset + _RESTAMP_ROWS])
    return len(doc_ids)
