"""Sync state: what a collection already holds for an ingest root, and what a
run must add, replace or remove to match the files on disk.

The collection itself is the manifest. Every chunk written by the pipeline
carries, in its metadata, the ingest root's label, the SHA-256 of its file's
bytes, the SHA-256 of its document (content plus pipeline settings), its
document's chunk count and the number of documents its file yields. A document
is *complete* when exactly that many chunks with matching hashes are present at
positions 0..n-1; a file is *unchanged* when its bytes hash matches and all the
documents it yields are complete. Because the state is read
back from Milvus rather than from a side file, an interrupted run can never
leave a manifest that disagrees with the index: whatever is incomplete is
simply re-indexed by the next run, which then ends exactly as a clean run.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid_search.filters import FilterCondition, compile_filters

if TYPE_CHECKING:
    from hybrid_search.engine import Engine

    from .chunks import ChunkingConfig
    from .documents import Document, ReadOptions

__all__ = [
    "ROOT_KEY",
    "FILE_HASH_KEY",
    "DOC_HASH_KEY",
    "CHUNKS_KEY",
    "FILE_DOCS_KEY",
    "StoredDocument",
    "SyncState",
    "file_sha256",
    "document_sha256",
    "pipeline_fingerprint",
    "CHUNK_TOKENIZER_SETTING",
    "tokenizer_identity",
    "chunking_tokenizer_name",
]

# A leading underscore marks bookkeeping: the engine keeps it out of hits.
ROOT_KEY = "_ingest_root"
FILE_HASH_KEY = "_ingest_file_sha256"
DOC_HASH_KEY = "_ingest_doc_sha256"
CHUNKS_KEY = "_ingest_chunks"
# How many documents the file version named by FILE_HASH_KEY holds, records
# that were left out (bad, duplicate ids) included: without it, a JSONL file
# whose run was interrupted after some of its records were written would look
# complete and the rest would never come; counting the left-out ones keeps a
# file with bad records from ever looking unchanged, so they are reported on
# every run.
FILE_DOCS_KEY = "_ingest_file_docs"
INGEST_KEYS = (ROOT_KEY, FILE_HASH_KEY, DOC_HASH_KEY, CHUNKS_KEY, FILE_DOCS_KEY)


#: Per-collection setting: the token counter the chunks were cut with, by name
#: and by what it does (see ``chunking_tokenizer_name``).
CHUNK_TOKENIZER_SETTING = "chunk_tokenizer"


def tokenizer_identity(tokenizer: Any) -> str | None:
    """A digest of what a Hugging Face tokenizer does (normaliser, pre-tokenizer,
    vocabulary), not where it was loaded from: a fine-tuned model saved with its
    base's tokenizer counts tokens exactly as the base did."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        for transient in ("truncation", "padding"):  # per-call state, not behaviour
            spec.pop(transient, None)
    elif hasattr(tokenizer, "get_vocab"):
        spec = {"class": type(tokenizer).__name__, "vocab": sorted(tokenizer.get_vocab().items())}
    else:
        return None
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()


def chunking_tokenizer_name(engine: Engine, collection: str, tokenizer: Any, counter_name: str) -> str:
    """The token counter name that goes into the pipeline fingerprint.

    A promoted version (training.promote) copies the rows and this record of
    the collection it replaces; when its new model's tokenizer does exactly
    what the old one did, the chunks are still the same and the old name is
    kept, so the next sync run finds every file unchanged. Otherwise the new
    name is recorded (and a changed tokenizer re-chunks, as it must)."""
    identity = tokenizer_identity(tokenizer) if tokenizer is not None else None
    recorded = engine.settings.get(collection, CHUNK_TOKENIZER_SETTING)
    if identity is not None and isinstance(recorded, dict) and recorded.get("identity") == identity:
        return str(recorded["name"])
    if identity is not None and recorded != {"name": counter_name, "identity": identity}:
        engine.settings.put(collection, CHUNK_TOKENIZER_SETTING, {"name": counter_name, "identity": identity})
    return counter_name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pipeline_fingerprint(read: ReadOptions, chunking: ChunkingConfig, token_counter_name: str) -> str:
    """Settings that change the chunks a file yields: changing any re-indexes.
    The PDF text extractor (library version and layout method) is one of them."""
    from .pdf_blocks import PDF_EXTRACTOR

    payload = json.dumps(
        {"read": asdict(read), "chunking": asdict(chunking), "tokens": token_counter_name, "extractors": {"pdf": PDF_EXTRACTOR}},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def document_sha256(doc: Document, fingerprint: str) -> str:
    payload = json.dumps(
        {
            # The source too: a record that moves to another file must be
            # rewritten, or its chunks would keep naming the old file.
            "source": doc.source,
            "title": doc.title,
            "text": doc.text,
            "metadata": doc.metadata,
            "blocks": [(b.kind, b.page, b.heading_path) for b in doc.blocks],
            "pipeline": fingerprint,
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class StoredDocument:
    """One document as the collection holds it, pieced together from its rows.

    The document's content is identified by (``doc_sha256``, ``expected_chunks``):
    rows that disagree on it come from two versions (an interrupted write) and
    make the document incomplete. The file stamp (``file_sha256``,
    ``file_docs``) says which file version the rows were written or re-stamped
    for; rows that disagree on it (an interrupted re-stamp) leave it ``None``,
    so the file is read again, but the content is still good.
    """

    doc_id: str
    source: str
    file_sha256: str | None = None
    doc_sha256: str | None = None
    expected_chunks: int | None = None
    file_docs: int | None = None
    positions: set[int] = field(default_factory=set)
    consistent: bool = True

    def add_row(self, chunk_index: int, metadata: dict[str, Any]) -> None:
        content = (metadata.get(DOC_HASH_KEY), metadata.get(CHUNKS_KEY))
        stamp = (metadata.get(FILE_HASH_KEY), metadata.get(FILE_DOCS_KEY))
        if not self.positions:
            self.doc_sha256, self.expected_chunks = content
            self.file_sha256, self.file_docs = stamp
        else:
            if content != (self.doc_sha256, self.expected_chunks):
                self.consistent = False  # chunks from two versions: an interrupted write
            if stamp != (self.file_sha256, self.file_docs):
                self.file_sha256 = self.file_docs = None
        self.positions.add(chunk_index)

    @property
    def complete(self) -> bool:
        return (
            self.consistent and self.expected_chunks is not None and self.positions == set(range(self.expected_chunks))
        )


@dataclass
class SyncState:
    """The documents a collection holds for one ingest root, by source file."""

    root_label: str
    documents: dict[str, StoredDocument]

    @classmethod
    def load(cls, engine: Engine, collection: str, root_label: str) -> SyncState:
        expression = compile_filters([FilterCondition(f"metadata.{ROOT_KEY}", "==", root_label)])
        documents: dict[str, StoredDocument] = {}
        name = engine.resolve(collection)
        for row in engine.store.iterate(name, expression, ["doc_id", "chunk_index", "source", "metadata"]):
            stored = documents.setdefault(row["doc_id"], StoredDocument(row["doc_id"], row["source"]))
            stored.add_row(int(row["chunk_index"]), row.get("metadata") or {})
        return cls(root_label, documents)

    def restricted_to(self, sources: Iterable[str]) -> SyncState:
        """Only the documents of these files: a run given single files leaves
        the other files of their folder alone."""
        named = set(sources)
        return SyncState(self.root_label, {d: s for d, s in self.documents.items() if s.source in named})

    def by_source(self) -> dict[str, list[StoredDocument]]:
        grouped: dict[str, list[StoredDocument]] = defaultdict(list)
        for stored in self.documents.values():
            grouped[stored.source].append(stored)
        return grouped

    def file_unchanged(self, source: str, file_key: str, grouped: dict[str, list[StoredDocument]]) -> bool:
        """All documents of the file are complete, were stamped with these bytes
        and settings (``file_key`` = bytes hash + pipeline fingerprint), and are
        as many as that file version yields: the file need not even be parsed."""
        stored = grouped.get(source, [])
        return bool(stored) and all(
            d.complete and d.file_sha256 == file_key and d.file_docs == len(stored) for d in stored
        )

    def needs_restamp(self, doc_id: str, file_key: str, file_docs: int) -> bool:
        """An unchanged document of a changed file still carries another file
        version's stamp (a record file where other records changed)."""
        stored = self.documents[doc_id]
        return (stored.file_sha256, stored.file_docs) != (file_key, file_docs)

    def document_unchanged(self, doc_id: str, doc_sha: str) -> bool:
        stored = self.documents.get(doc_id)
        return stored is not None and stored.complete and stored.doc_sha256 == doc_sha

    def stale_documents(
        self, live_sources: Iterable[str], live_doc_ids: Iterable[str], rewritten_sources: Iterable[str]
    ) -> list[str]:
        """Documents to delete: their file is gone, or their (re-read) file no
        longer produces them (a record removed from a JSONL file)."""
        live_sources = set(live_sources)
        live_doc_ids = set(live_doc_ids)
        rewritten = set(rewritten_sources)
        stale = []
        for doc_id, stored in self.documents.items():
            if stored.source not in live_sources or stored.source in rewritten and doc_id not in live_doc_ids:
                stale.append(doc_id)
        return sorted(stale)
