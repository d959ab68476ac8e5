"""The records that flow through the engine: chunks in, hits out."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .plan import QueryPlan

__all__ = [
    "RetrievalPath",
    "RETRIEVAL_PATHS",
    "Chunk",
    "PathScore",
    "Snippet",
    "FoldedCopy",
    "Hit",
    "SearchResult",
    "IndexReport",
    "CollectionInfo",
    "EngineUsage",
    "chunk_id_for",
    "doc_key_for",
    "primary_key_for",
    "doc_id_problem",
    "MAX_DOC_ID_CHARS",
]

RetrievalPath = Literal["bm25", "sparse", "dense"]
RETRIEVAL_PATHS: tuple[RetrievalPath, ...] = ("bm25", "sparse", "dense")


# Document ids are any Unicode text up to this many characters (4 bytes each at
# most in UTF-8, well inside the store's field).
MAX_DOC_ID_CHARS = 4096


def chunk_id_for(doc_id: str, chunk_index: int) -> str:
    """Stable chunk id: the same document and position always give the same id,
    so indexing the same input twice overwrites instead of duplicating. The part
    after the last ``#`` is always the position, so any doc id (``#`` included)
    maps to exactly one chunk id and back."""
    return f"{doc_id}#{chunk_index}"


def doc_key_for(doc_id: str) -> str:
    """A digest of the document id in a safe alphabet (hex). The store looks
    documents up by it, so no user text ever has to be written into a Milvus
    expression or reach Milvus Lite's SQL (quotes, backslashes, control
    characters: none of them can be expressed safely there)."""
    return hashlib.blake2b(doc_id.encode("utf-8"), digest_size=16).hexdigest()


def primary_key_for(doc_id: str, chunk_index: int) -> str:
    """The store's primary key of a chunk: the document's digest and the zero-
    padded position, so a document's chunks sort together and in order."""
    return f"{doc_key_for(doc_id)}.{chunk_index:08d}"


def doc_id_problem(doc_id: object) -> str | None:
    """Why ``doc_id`` cannot be a document id (``None`` when it can): it must be
    1 to MAX_DOC_ID_CHARS characters of valid Unicode (no lone surrogates) with
    no NUL (the store keeps text as C strings)."""
    if not isinstance(doc_id, str) or not doc_id:
        return "must be a non-empty string"
    if len(doc_id) > MAX_DOC_ID_CHARS:
        return f"must be at most {MAX_DOC_ID_CHARS} characters (got {len(doc_id)})"
    try:
        doc_id.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    if "\x00" in doc_id:
        return "must not contain NUL characters"
    return None


@dataclass(frozen=True)
class Chunk:
    """One retrievable unit of text and where it came from.

    ``embed_text`` is what the encoders see when it differs from ``text`` (for
    example the heading path prepended); ``text`` is what is stored and shown.
    ``metadata`` is the user's (keys starting with ``_`` are refused);
    ``bookkeeping`` is hybrid-search's own per-chunk state (keys start with ``_``,
    e.g. the ingest sync hashes), stored alongside and never shown in hits.
    """

    doc_id: str
    chunk_index: int
    text: str
    title: str = ""
    source: str = ""
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    char_start: int | None = None
    char_end: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    embed_text: str | None = None
    bookkeeping: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return chunk_id_for(self.doc_id, self.chunk_index)

    @property
    def text_for_encoding(self) -> str:
        return self.embed_text if self.embed_text is not None else self.text


@dataclass(frozen=True)
class PathScore:
    """Where one retrieval path placed a chunk (rank starts at 1) and its raw score."""

    rank: int
    score: float


@dataclass(frozen=True)
class Snippet:
    """The passage of a hit's text shown to a reader: ``text`` is
    ``hit.text[start:end]``, chosen around the most query-term matches."""

    text: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class FoldedCopy:
    """A candidate folded into a better-ranked hit as its duplicate
    (``similarity`` 1.0: the same words) or near-duplicate (word 3-gram Jaccard)."""

    chunk_id: str
    doc_id: str
    source: str
    page: int | None
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "doc_id": self.doc_id, "source": self.source, "page": self.page, "similarity": self.similarity}


@dataclass
class Hit:
    """A search result that explains itself."""

    rank: int
    chunk_id: str
    doc_id: str
    text: str
    title: str
    source: str
    page: int | None
    heading_path: tuple[str, ...]
    metadata: dict[str, Any]
    paths: dict[str, PathScore]
    fused_score: float
    rerank_score: float | None = None
    matched_terms: tuple[str, ...] = ()
    # The weight each path had in this query's fusion (adaptive fusion: the
    # per-query weights, summing to 1; rrf / weighted: the configured ones).
    fusion_weights: dict[str, float] = field(default_factory=dict)
    # The score the reranked head was ordered by: the rerank score interpolated
    # with the normalised fused score (equal to rerank_score when the first-stage
    # weight is 0). None when not reranked, and for hits past the reranked head.
    combined_score: float | None = None
    # The passage around the most query-term matches (None when not computed).
    snippet: Snippet | None = None
    # Lower-ranked candidates with the same (or nearly the same) text, folded
    # into this hit; empty when collapsing is off or nothing was folded.
    folded: tuple[FoldedCopy, ...] = ()

    @property
    def score(self) -> float:
        """The score the hit was finally ordered by."""
        if self.combined_score is not None:
            return self.combined_score
        return self.rerank_score if self.rerank_score is not None else self.fused_score

    def to_dict(self, *, explain: bool = True) -> dict[str, Any]:
        """The one plain (JSON) form of a hit, for the CLI's ``--json`` and the
        API. ``explain`` adds how it ranked (per-path ranks and scores, fused,
        rerank and combined scores, matched terms). A non-finite score is None."""
        item: dict[str, Any] = {
            "rank": self.rank,
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "text": self.text,
            "title": self.title,
            "source": self.source,
            "page": self.page,
            "heading_path": list(self.heading_path),
            "metadata": self.metadata,
            "score": _finite(self.score),
            "snippet": self.snippet.to_dict() if self.snippet is not None else None,
            "folded": [copy.to_dict() for copy in self.folded],
        }
        if explain:
            item["paths"] = {p: {"rank": s.rank, "score": _finite(s.score)} for p, s in self.paths.items()}
            item["fused_score"] = _finite(self.fused_score)
            item["fusion_weights"] = dict(self.fusion_weights)
            item["rerank_score"] = _finite(self.rerank_score)
            item["combined_score"] = _finite(self.combined_score)
            item["matched_terms"] = list(self.matched_terms)
        return item


def _finite(value: float | None) -> float | None:
    # JSON has no inf or NaN: a score that is not a number is reported as absent.
    return value if value is not None and math.isfinite(value) else None


@dataclass
class SearchResult:
    """Hits plus what produced them. ``confident`` is False when a minimum rerank
    score was set and no candidate reached it: ``hits`` is then empty on purpose.
    ``rerank_first_stage_weight`` is the first-stage weight the reranked head was
    ordered with (None when not reranked). ``plan`` is what the engine ran."""

    query: str
    collection: str
    hits: list[Hit]
    paths: tuple[str, ...]
    fusion: str
    reranked: bool
    confident: bool = True
    query_terms: tuple[str, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    rerank_first_stage_weight: float | None = None
    # The weight each path had in the fusion of this query (see Hit.fusion_weights).
    fusion_weights: dict[str, float] = field(default_factory=dict)
    plan: QueryPlan | None = None

    def to_dict(self, *, explain: bool = True) -> dict[str, Any]:
        """The one plain (JSON) form of a result; ``explain`` adds the query
        terms, timings, the plan and each hit's explanation."""
        body: dict[str, Any] = {
            "query": self.query,
            "collection": self.collection,
            "paths": list(self.paths),
            "fusion": self.fusion,
            "reranked": self.reranked,
            "rerank_first_stage_weight": self.rerank_first_stage_weight,
            "fusion_weights": dict(self.fusion_weights),
            "confident": self.confident,
            "hits": [h.to_dict(explain=explain) for h in self.hits],
        }
        if explain:
            body["query_terms"] = list(self.query_terms)
            body["timings_ms"] = {stage: round(ms, 3) for stage, ms in self.timings_ms.items()}
            body["plan"] = self.plan.to_dict() if self.plan is not None else None
        return body


@dataclass
class IndexReport:
    """What one ``Engine.index`` call did."""

    chunks_written: int = 0
    documents: int = 0
    stale_chunks_removed: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0
    write_seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_written / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    chunks: int
    manifest: dict[str, Any]


@dataclass(frozen=True)
class EngineUsage:
    """What an engine's models and store did since it started (cumulative, so
    two readings apart give rates; the API exports them as Prometheus counters).

    ``queries_encoded / query_encode_calls`` is the mean query micro-batch;
    the encode seconds over a stretch of wall time are the share of it the
    models were busy with searches and with indexing; ``store_requests /
    store_calls`` is how many path searches or row reads shared a Milvus call."""

    query_encode_calls: int
    queries_encoded: int
    query_encode_seconds: float
    document_encode_seconds: float
    store_calls: int
    store_requests: int
