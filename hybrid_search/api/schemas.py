"""Typed request and response models: the API's edge, and its OpenAPI schema.

Validation here is about shape and hard ceilings (the engine's own limits);
the operator's tighter limits (``max_k``, ``max_query_chars``, ...) are checked
in the routes against the settings, with the same error shape. Past this edge
everything is the engine's plain dataclasses.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

from ..engine import check_metadata_keys
from ..errors import FilterError
from ..filters import FilterCondition, FilterOperator, compile_filters
from ..plan import MAX_DEPTH, MAX_K, MAX_QUERY_CHARS
from ..types import MAX_DOC_ID_CHARS

__all__ = [
    "COLLECTION_NAME_PATTERN",
    "AnalyzerSpec",
    "Bm25Spec",
    "ChunkOut",
    "CollectionList",
    "CollectionOut",
    "CreateCollectionRequest",
    "DeletedOut",
    "DenseSpec",
    "DocumentList",
    "DocumentOut",
    "DroppedOut",
    "ErrorBody",
    "ErrorResponse",
    "FilterSpec",
    "FoldedOut",
    "FusionSpec",
    "HealthOut",
    "HitOut",
    "JobOut",
    "PathName",
    "PathScoreOut",
    "PathsRequest",
    "ReadyOut",
    "RecordIn",
    "RecordsRequest",
    "SearchRequest",
    "SearchResponse",
    "SkippedOut",
    "SnippetOut",
    "SparseSpec",
]

COLLECTION_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"
PathName = Literal["bm25", "sparse", "dense"]
_INT64 = 2**63 - 1


def _valid_unicode(value: str) -> str:
    # JSON lets a client send "\ud800" (a lone surrogate). Python keeps it, and the
    # first UTF-8 encode (tokenizer, gRPC) would then fail deep inside a request.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it holds an unpaired surrogate)") from None
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


#: Text from a client: valid Unicode.
Text = Annotated[str, AfterValidator(_valid_unicode)]
#: Text that will be stored: valid Unicode and no NUL (Milvus VARCHAR is C-string based).
StoredText = Annotated[str, AfterValidator(_valid_unicode), AfterValidator(_no_nul)]
Int64 = Annotated[StrictInt, Field(ge=-_INT64 - 1, le=_INT64)]
FiniteFloat = Annotated[StrictFloat, AfterValidator(_finite)]
FilterScalar = StrictBool | Int64 | FiniteFloat | Annotated[str, Field(max_length=4096), AfterValidator(_valid_unicode)]


class _Model(BaseModel):
    # extra="forbid": a typo ("filter" for "filters") is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- search -----------------------------------------------------------------------------


class FilterSpec(_Model):
    """One condition ``field op value``; conditions are ANDed. ``field`` is one of
    doc_id, source, title, heading, page, chunk_index, or ``metadata.KEY``. Values
    are always rendered as escaped literals: they can never change the expression."""

    field: Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_valid_unicode)]
    op: FilterOperator
    value: FilterScalar | Annotated[list[FilterScalar], Field(min_length=1, max_length=1024)]

    @model_validator(mode="after")
    def _check(self) -> FilterSpec:
        if self.op in ("in", "not in"):
            if not isinstance(self.value, list):
                raise ValueError(f"operator {self.op!r} needs a list of values")
            kinds = {type(v) for v in self.value}
            if kinds == {int, float}:
                # Milvus compares a JSON number list as all-int or all-float only.
                self.value = [float(v) for v in self.value]
            elif len(kinds) > 1:
                raise ValueError(f"the values of an {self.op!r} list must all have one type (strings, numbers or booleans)")
        elif isinstance(self.value, list):
            raise ValueError(f"operator {self.op!r} takes a single value, not a list")
        try:
            compile_filters([self.condition()])
        except FilterError as error:
            raise ValueError(str(error)) from None
        return self

    def condition(self) -> FilterCondition:
        return FilterCondition(field=self.field, op=self.op, value=self.value)


class SearchRequest(_Model):
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS), AfterValidator(_valid_unicode)]
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    paths: Annotated[list[PathName], Field(min_length=1, max_length=3)] | None = Field(
        None, description="retrieval paths to run; default: every path the collection has"
    )
    fusion: Literal["adaptive", "rrf", "weighted"] | None = Field(None, description="default: the collection's fusion method")
    rrf_k: Annotated[int, Field(ge=0, le=100_000)] | None = None
    normalization: Literal["min-max", "z-score", "none"] | None = None
    weights: dict[PathName, Annotated[float, Field(ge=0, le=1_000_000)]] | None = None
    depth: Annotated[int, Field(ge=1, le=MAX_DEPTH)] | dict[PathName, Annotated[int, Field(ge=1, le=MAX_DEPTH)]] | None = Field(
        None, description="candidates fetched per path before fusion (one number, or per path)"
    )
    filters: Annotated[list[FilterSpec], Field(max_length=256)] = Field(default_factory=list)
    rerank: bool | None = Field(None, description="rerank with the server's cross-encoder; default: on if one is configured")
    rerank_top_n: Annotated[int, Field(ge=1, le=MAX_DEPTH)] | None = None
    min_rerank_score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    rerank_first_stage_weight: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        None,
        description="order the reranked head by (1 - w) * rerank score + w * fused score min-max normalised over the head; "
        "0: rerank order, 1: fused order; default: the server's",
    )
    explain: bool = Field(False, description="add per-path ranks and scores, matched terms, timings and the query plan")
    collapse: bool = Field(
        True, description="fold duplicate and near-duplicate hits into the best-ranked copy (listed in its `folded`)"
    )


class PathScoreOut(BaseModel):
    rank: int
    score: float | None


class SnippetOut(BaseModel):
    text: str = Field(description="the passage around the most query-term matches: text[start:end]")
    start: int
    end: int


class FoldedOut(BaseModel):
    chunk_id: str
    doc_id: str
    source: str
    page: int | None
    similarity: float = Field(description="1.0: the same words; below: word 3-gram Jaccard similarity to this hit")


class HitOut(BaseModel):
    rank: int
    chunk_id: str
    doc_id: str
    text: str
    title: str
    source: str
    page: int | None
    heading_path: list[str]
    metadata: dict[str, Any]
    score: float | None
    snippet: SnippetOut | None = None
    folded: list[FoldedOut] = Field(default_factory=list, description="duplicates folded into this hit")
    source_url: str | None = Field(None, description="where this server serves the source file (under a document root)")
    # explain=true only:
    paths: dict[str, PathScoreOut] | None = None
    fused_score: float | None = None
    # the weight each path had in this query's fusion (adaptive: per query, summing to 1)
    fusion_weights: dict[str, float] | None = None
    rerank_score: float | None = None
    # the score the reranked head was ordered by (rerank interpolated with the fused score)
    combined_score: float | None = None
    matched_terms: list[str] | None = None


class SearchResponse(BaseModel):
    query: str
    collection: str
    paths: list[str]
    fusion: str
    reranked: bool
    # the first-stage weight the reranked head was ordered with (None when not reranked)
    rerank_first_stage_weight: float | None = None
    confident: bool
    hits: list[HitOut]
    # the weight each path had in this query's fusion (adaptive: per query, summing to 1)
    fusion_weights: dict[str, float] | None = None
    # explain=true only:
    query_terms: list[str] | None = None
    timings_ms: dict[str, float] | None = None
    # what the engine ran: the collection an alias resolved to, each path with its
    # depth and fusion weight, paths skipped and why, fusion, rerank, highlighting
    plan: dict[str, Any] | None = None


# --- collections ------------------------------------------------------------------------

_ModelName = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_valid_unicode)]
_Prompt = Annotated[str, Field(max_length=512), AfterValidator(_valid_unicode)]


class DenseSpec(_Model):
    model: _ModelName | None = Field(None, description="default: the server's dense model")
    kind: Literal["sentence-transformers", "bge-m3"] | None = None
    query_prompt: _Prompt | None = None
    document_prompt: _Prompt | None = None
    max_length: Annotated[int, Field(ge=1, le=32768)] | None = None


class SparseSpec(_Model):
    model: _ModelName | None = Field(None, description="default: the server's sparse model")
    kind: Literal["bge-m3", "splade"] | None = None
    max_length: Annotated[int, Field(ge=1, le=32768)] | None = None


class AnalyzerSpec(_Model):
    language: Literal["en", "zh"] = "en"
    stopwords: bool = True
    stem: bool = True


def _float32_readable(value: float) -> float:
    if 0 < value < 1.1754944e-38:
        raise ValueError("must be 0 or at least 1.2e-38 (Milvus reads it as a 32-bit float)")
    return value


class Bm25Spec(_Model):
    # Milvus accepts k1 in [0, 3] only, and refuses tiny values such as 1e-300
    # as "not a number" (both found by the fuzz test).
    k1: Annotated[float, Field(ge=0.01, le=3)] = 1.2
    b: Annotated[float, Field(ge=0, le=1), AfterValidator(_float32_readable)] = 0.75


class FusionSpec(_Model):
    method: Literal["adaptive", "rrf", "weighted"] = "adaptive"
    rrf_k: Annotated[int, Field(ge=0, le=100_000)] = 60
    normalization: Literal["min-max", "z-score", "none"] = "min-max"
    weights: dict[PathName, Annotated[float, Field(ge=0, le=1_000_000)]] | None = None


class CreateCollectionRequest(_Model):
    """Omit ``dense``/``sparse`` for the server's default models; give ``null``
    to build the collection without that path. BM25 is always there."""

    name: Annotated[str, Field(pattern=COLLECTION_NAME_PATTERN)]
    dense: DenseSpec | None = None
    sparse: SparseSpec | None = None
    analyzer: AnalyzerSpec = Field(default_factory=AnalyzerSpec)
    bm25: Bm25Spec = Field(default_factory=Bm25Spec)
    fusion: FusionSpec = Field(default_factory=FusionSpec)
    description: Annotated[str, Field(max_length=2048), AfterValidator(_valid_unicode)] = ""
    exist_ok: bool = Field(False, description="return the existing collection if its configuration matches")


class CollectionOut(BaseModel):
    name: str
    chunks: int
    paths: list[str]
    documents: int | None = Field(None, description="with ?documents=true only (it scans the collection)")
    manifest: dict[str, Any]


class CollectionList(BaseModel):
    collections: list[CollectionOut]


class DroppedOut(BaseModel):
    dropped: str
    aliases_dropped: list[str] = Field(default_factory=list, description="aliases that pointed at it (drop_aliases=true)")


# --- documents and jobs -------------------------------------------------------------------


class RecordIn(_Model):
    id: Annotated[str, Field(min_length=1, max_length=MAX_DOC_ID_CHARS), AfterValidator(_valid_unicode), AfterValidator(_no_nul)]
    text: Annotated[str, Field(min_length=1, max_length=4_000_000), AfterValidator(_valid_unicode), AfterValidator(_no_nul)]
    title: Annotated[str, Field(max_length=1024), AfterValidator(_valid_unicode), AfterValidator(_no_nul)] = ""
    source: Annotated[str, Field(max_length=1024), AfterValidator(_valid_unicode), AfterValidator(_no_nul)] = ""
    metadata: Annotated[dict[Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_valid_unicode)], Any], Field(max_length=64)] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _check(self) -> RecordIn:
        if not self.text.strip():
            raise ValueError("text must hold more than whitespace")
        check_metadata_keys(self.metadata)  # "_" keys are the engine's own bookkeeping
        _check_json_value(self.metadata, depth=0)
        return self


def _check_json_value(value: Any, depth: int) -> None:
    if depth > 8:
        raise ValueError("metadata nests too deeply (at most 8 levels)")
    if isinstance(value, str):
        _valid_unicode(value)
        _no_nul(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("metadata numbers must be finite")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT64:
        raise ValueError("metadata integers must fit in 64 bits")
    elif isinstance(value, dict):
        for key, item in value.items():
            _valid_unicode(str(key))
            _check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item, depth + 1)


class RecordsRequest(_Model):
    records: Annotated[list[RecordIn], Field(min_length=1, max_length=100_000)]
    chunk: bool = Field(True, description="cut long records into chunks (else one chunk per record, at most 65535 bytes)")

    @model_validator(mode="after")
    def _unique(self) -> RecordsRequest:
        seen: set[str] = set()
        for i, record in enumerate(self.records):
            if record.id in seen:
                raise ValueError(f"records.{i}.id: {record.id!r} repeats an earlier record's id")
            seen.add(record.id)
            if not self.chunk and len(record.text.encode("utf-8")) > 65535:
                raise ValueError(f"records.{i}.text: over 65535 bytes; send it with chunk=true")
        return self


class PathsRequest(_Model):
    root: Annotated[str, Field(min_length=1, max_length=256)] = Field(description="the name of a configured document root")
    paths: Annotated[list[Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_valid_unicode), AfterValidator(_no_nul)]], Field(max_length=1000)] = Field(
        default_factory=lambda: ["."], description="files or folders relative to the root; default: the whole root"
    )


class SkippedOut(BaseModel):
    source: str
    reason: str
    detail: str


class JobOut(BaseModel):
    id: str
    kind: Literal["records", "upload", "paths"]
    collection: str
    state: Literal["queued", "running", "succeeded", "failed"]
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    documents: int = 0
    documents_indexed: int = 0
    chunks_written: int = 0
    skipped: list[SkippedOut] = Field(default_factory=list)
    error: str | None = None


class ChunkOut(BaseModel):
    chunk_id: str
    chunk_index: int
    text: str
    title: str
    source: str
    page: int | None
    heading_path: list[str]
    metadata: dict[str, Any]


class DocumentOut(BaseModel):
    collection: str
    doc_id: str
    chunks: list[ChunkOut]


class DocumentList(BaseModel):
    collection: str
    documents: list[dict[str, Any]] = Field(description="[{doc_id, chunks}] sorted by doc_id")
    truncated: bool


class DeletedOut(BaseModel):
    doc_id: str
    chunks_deleted: int


# --- errors and health --------------------------------------------------------------------


class ErrorBody(BaseModel):
    status: int
    code: str = Field(description="stable machine-readable reason")
    message: str
    field: str | None = Field(None, description="the request field at fault, when one is")
    details: list[dict[str, Any]] | None = None
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    # Left out for callers without an API key when keys are configured.
    pid: int | None = None


class ReadyOut(BaseModel):
    status: Literal["ready"]
    collections: int
    # Left out for callers without an API key when keys are configured:
    # readiness needs no key, process ids and paths are nobody's business.
    pid: int | None = None
    store: str | None = None
    models_loaded: list[str] | None = None
