"""The ingestion pipeline: folders and files in, a collection in sync out.

Files are hashed and compared with what the collection holds (see ``sync``):
unchanged files are not even parsed; new and changed files are read and
chunked on a thread pool while the encoder works on earlier chunks, and chunks
from many files share encoder batches; documents whose files disappeared are
removed at the end. Killing a run at any point and running it again ends in the
same state as one clean run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hybrid_search.errors import ConfigError, InputError
from hybrid_search.types import Chunk

from .chunks import ChunkingConfig, chunk_document, hf_token_counter
from .documents import RECORD_FORMATS, FileReadResult, ReadOptions, Skipped, document_format, read_file, source_for
from .files import FileSelection, find_files
from .sync import (
    CHUNKS_KEY,
    DOC_HASH_KEY,
    FILE_HASH_KEY,
    ROOT_KEY,
    SyncState,
    document_sha256,
    file_sha256,
    pipeline_fingerprint,
)

if TYPE_CHECKING:
    from hybrid_search.engine import Engine

__all__ = ["IngestConfig", "IngestSummary", "IngestProgress", "ingest"]


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
    """Callbacks for a progress display; the default does nothing."""

    def files_planned(self, total: int) -> None: ...

    def file_done(self, source: str, status: Literal["indexed", "unchanged", "skipped"]) -> None: ...

    def chunks_planned(self, more: int) -> None: ...

    def chunks_written(self, count: int) -> None: ...


@dataclass
class _Root:
    path: Path
    base: Path
    label: str
    files: list[Path]
    single_file: bool


def _roots(paths: Sequence[Path], config: IngestConfig) -> list[_Root]:
    roots = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir() and (path / "corpus.jsonl").is_file():
            # A BEIR-layout folder: its corpus is the document set.
            roots.append(_Root(path, path, config.root_label or path.resolve().name, [path / "corpus.jsonl"], True))
        elif path.is_dir():
            roots.append(
                _Root(path, path, config.root_label or path.resolve().name, find_files(path, config.selection), False)
            )
        else:
            if document_format(path) is None:
                raise InputError(f"{path}: unsupported file type (supported: pdf, docx, html, md, txt, jsonl, csv)")
            roots.append(_Root(path, path.parent, config.root_label or path.resolve().parent.name, [path], True))
    return roots


def _prepare_chunks(chunks: list[Chunk], label: str, file_key: str, doc_sha: str) -> list[Chunk]:
    count = len(chunks)
    return [
        replace(
            chunk,
            metadata={
                **chunk.metadata,
                ROOT_KEY: label,
                FILE_HASH_KEY: file_key,
                DOC_HASH_KEY: doc_sha,
                CHUNKS_KEY: count,
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
) -> IngestSummary:
    """Bring ``collection`` in line with the files under ``paths``."""
    config = config or IngestConfig()
    progress = progress or IngestProgress()
    summary = IngestSummary()
    started = time.perf_counter()

    t0 = time.perf_counter()
    roots = _roots(paths, config)
    summary.add_stage("scan", time.perf_counter() - t0)
    summary.files_seen = sum(len(r.files) for r in roots)
    progress.files_planned(summary.files_seen)

    encoders = engine.encoders(collection)
    tokenizer = getattr(encoders.dense or encoders.sparse, "tokenizer", None)
    if tokenizer is not None:
        count_tokens = hf_token_counter(tokenizer)
        counter_name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    else:
        from .chunks import whitespace_token_counter

        count_tokens, counter_name = whitespace_token_counter, "whitespace"
    fingerprint = pipeline_fingerprint(config.read, config.chunking, str(counter_name))

    for root in roots:
        _ingest_root(engine, collection, root, config, fingerprint, count_tokens, progress, summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _read_and_hash(path: Path, root: _Root, read: ReadOptions) -> tuple[FileReadResult, float]:
    t0 = time.perf_counter()
    result = read_file(path, read, root=root.base)
    return result, time.perf_counter() - t0


def _ingest_root(
    engine: Engine,
    collection: str,
    root: _Root,
    config: IngestConfig,
    fingerprint: str,
    count_tokens: Callable[[str], int],
    progress: IngestProgress,
    summary: IngestSummary,
) -> None:
    t0 = time.perf_counter()
    state = SyncState.load(engine, collection, root.label)
    grouped = state.by_source()
    summary.add_stage("state", time.perf_counter() - t0)

    sources = {path: source_for(path, root.base) for path in root.files}
    if root.single_file:
        # Only the named files are in scope: other files of the folder stay.
        state.documents = {d: s for d, s in state.documents.items() if s.source in set(sources.values())}
        grouped = state.by_source()

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

    live_doc_ids: set[str] = set()
    rewritten_sources: set[str] = set()

    def documents_chunks() -> Iterator[Chunk]:
        # Reading and chunking run ahead on worker threads (parsers and
        # tokenizers release the GIL in places) while the encoder batches the
        # chunks of many files together.
        with ThreadPoolExecutor(max_workers=config.reader_threads, thread_name_prefix="ingest-read") as pool:
            pending: list[tuple[Future[tuple[FileReadResult, float]], str]] = []
            queue = iter(to_read)

            def top_up() -> None:
                while len(pending) < config.prefetch_files:
                    item = next(queue, None)
                    if item is None:
                        return
                    path, file_key = item
                    pending.append((pool.submit(_read_and_hash, path, root, config.read), file_key))

            top_up()
            while pending:
                future, file_key = pending.pop(0)
                top_up()
                result, read_seconds = future.result()
                summary.add_stage("read", read_seconds)
                summary.skipped.extend(result.skipped)
                if not result.documents:
                    progress.file_done(result.source, "skipped")
                    continue
                rewritten_sources.add(result.source)
                t_chunk = time.perf_counter()
                file_chunks: list[Chunk] = []
                for doc in result.documents:
                    if doc.format not in RECORD_FORMATS:
                        doc = replace(doc, doc_id=f"{root.label}/{doc.source}")
                    live_doc_ids.add(doc.doc_id)
                    doc_sha = document_sha256(doc, fingerprint)
                    if state.document_unchanged(doc.doc_id, doc_sha):
                        summary.documents_unchanged += 1
                        summary.chunks_unchanged += state.documents[doc.doc_id].expected_chunks or 0
                        continue
                    chunks = chunk_document(doc, config.chunking, count_tokens)
                    if not chunks:
                        summary.skipped.append(
                            Skipped(doc.source, "no_text", f"document {doc.doc_id!r} yields no chunks")
                        )
                        continue
                    summary.documents_written += 1
                    file_chunks.extend(_prepare_chunks(chunks, root.label, file_key, doc_sha))
                summary.add_stage("chunk", time.perf_counter() - t_chunk)
                summary.files_indexed += 1
                progress.chunks_planned(len(file_chunks))
                yield from file_chunks
                progress.file_done(result.source, "indexed")

    report = engine.index(
        collection, documents_chunks(), batch_size=config.batch_size, progress=progress.chunks_written
    )
    summary.chunks_written += report.chunks_written
    summary.chunks_removed += report.stale_chunks_removed
    summary.add_stage("encode", report.encode_seconds)
    summary.add_stage("write", report.write_seconds)

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
