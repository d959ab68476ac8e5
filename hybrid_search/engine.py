"""The Engine: the one object that indexes, searches and manages collections.

The CLI, the HTTP API, the benchmarks and training all go through it, so every
number they report measures the path users run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import __version__
from .analyzers import Analyzer
from .collapse import collapse_duplicates
from .config import (
    AnalyzerConfig,
    CollectionConfig,
    DenseEncoderConfig,
    FusionConfig,
    RerankConfig,
    RuntimeConfig,
    SparseEncoderConfig,
    StoreConfig,
    from_plain,
    to_plain,
)
from .encoders import EncoderSet, load_encoders
from .errors import (
    CollectionInUseError,
    ConfigError,
    InputError,
    ManifestMismatchError,
    PromotionInProgressError,
    StoreError,
)
from .filters import FilterCondition, compile_filters
from .fusion import fuse_explained, normalize_scores
from .rerank import Reranker, load_reranker
from .settings_store import SettingsStore
from .snippets import best_passage
from .store import (
    MANIFEST_FORMAT,
    OUTPUT_FIELDS,
    SCHEMA_VERSION,
    MilvusStore,
    heading_path_from_row,
)
from .types import (
    RETRIEVAL_PATHS,
    Chunk,
    CollectionInfo,
    FoldedCopy,
    Hit,
    IndexReport,
    PathScore,
    SearchResult,
    doc_id_problem,
)

__all__ = [
    "Engine",
    "SearchOptions",
    "check_metadata_keys",
    "combine_rerank_scores",
    "order_reranked",
    "MAX_K",
    "MAX_DEPTH",
    "MAX_QUERY_CHARS",
    "RESERVED_METADATA_PREFIX",
]

MAX_K = 1000
#: Metadata keys with this prefix are hybrid-search's own bookkeeping.
RESERVED_METADATA_PREFIX = "_"
EMBED_PREFIX_KEY = "_embed_prefix"  # embedded text = prefix + text
EMBED_TEXT_KEY = "_embed_text"  # the embedded text, when it does not end with text
WRITE_LOCK_SETTING = "write_lock"
MAX_DEPTH = 16384  # Milvus's top-k ceiling
MAX_QUERY_CHARS = 4096
_MAX_FIELD_BYTES = 65535


@dataclass(frozen=True)
class SearchOptions:
    """Per-query choices; anything left ``None`` takes the collection's default."""

    k: int = 10
    paths: tuple[str, ...] | None = None
    depth: int | Mapping[str, int] = 100
    fusion: FusionConfig | None = None
    weights: Mapping[str, float] | None = None
    filters: tuple[FilterCondition, ...] = ()
    rerank: bool | None = None
    rerank_top_n: int | None = None
    min_rerank_score: float | None = None
    # Overrides RerankConfig.first_stage_weight for this query: the head is
    # ordered by (1 - w) * rerank score + w * min-max normalised fused score.
    rerank_first_stage_weight: float | None = None
    # Matched-term highlighting re-analyses each hit's text: most of a BM25
    # query's time at k=100. Off, hits carry no matched_terms.
    highlight: bool = True
    # Fold duplicate and near-duplicate candidates into the best-ranked copy
    # (hybrid_search/collapse.py says what counts as one); off, every copy is a hit.
    collapse: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise InputError(f"k must be an integer from 1 to {MAX_K}; got {self.k!r}")
        if self.paths is not None:
            if not self.paths:
                raise InputError("paths must name at least one of bm25, sparse, dense")
            unknown = [p for p in self.paths if p not in RETRIEVAL_PATHS]
            if unknown:
                raise InputError(f"unknown path(s) {', '.join(map(repr, unknown))}; paths are {', '.join(RETRIEVAL_PATHS)}")
        depths = self.depth.values() if isinstance(self.depth, Mapping) else [self.depth]
        for value in depths:
            if not isinstance(value, int) or not 1 <= value <= MAX_DEPTH:
                raise InputError(f"depth must be an integer from 1 to {MAX_DEPTH}; got {value!r}")
        if isinstance(self.depth, Mapping):
            unknown = [p for p in self.depth if p not in RETRIEVAL_PATHS]
            if unknown:
                raise InputError(f"depth names unknown path(s) {', '.join(unknown)}")
        if self.weights is not None:
            FusionConfig(weights=dict(self.weights))  # validates paths and values
        if self.rerank_top_n is not None and not 1 <= self.rerank_top_n <= MAX_DEPTH:
            raise InputError(f"rerank_top_n must be from 1 to {MAX_DEPTH}; got {self.rerank_top_n!r}")
        if self.min_rerank_score is not None and not 0.0 <= self.min_rerank_score <= 1.0:
            raise InputError(f"min_rerank_score must lie in [0, 1]; got {self.min_rerank_score!r}")
        if not isinstance(self.collapse, bool):
            raise InputError(f"collapse must be true or false; got {self.collapse!r}")
        weight = self.rerank_first_stage_weight
        if weight is not None and (not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0):
            raise InputError(f"rerank_first_stage_weight must lie in [0, 1]; got {weight!r}")

    def depth_for(self, path: str) -> int:
        if isinstance(self.depth, Mapping):
            return int(self.depth.get(path, 100))
        return int(self.depth)


@dataclass
class _Collection:
    """An opened collection: its config (from the manifest) and loaded models."""

    config: CollectionConfig
    manifest: dict[str, Any]
    analyzer: Analyzer
    encoders: EncoderSet | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _manifest_for(config: CollectionConfig, dense_dim: int | None) -> dict[str, Any]:
    dense = to_plain(config.dense)
    if dense is not None:
        dense["dim"] = dense_dim
    return {
        "format": MANIFEST_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created_by": f"hybrid-search {__version__}",
        "dense": dense,
        "sparse": to_plain(config.sparse),
        "analyzer": to_plain(config.analyzer),
        "bm25": {"k1": config.bm25_k1, "b": config.bm25_b},
        "fusion": to_plain(config.fusion),
        "description": config.description,
    }


def _analyzer_from_manifest(recorded: dict[str, Any]) -> AnalyzerConfig:
    # Manifests written before analyzer versions existed hold version 1's rules.
    return from_plain(AnalyzerConfig, {"version": 1, **recorded})


def _config_from_manifest(name: str, manifest: dict[str, Any]) -> CollectionConfig:
    dense = dict(manifest["dense"]) if manifest.get("dense") else None
    if dense is not None:
        dense.pop("dim", None)
    return CollectionConfig(
        name=name,
        dense=from_plain(DenseEncoderConfig, dense),
        sparse=from_plain(SparseEncoderConfig, manifest.get("sparse")),
        analyzer=_analyzer_from_manifest(manifest["analyzer"]),
        fusion=from_plain(FusionConfig, manifest["fusion"]),
        bm25_k1=manifest["bm25"]["k1"],
        bm25_b=manifest["bm25"]["b"],
        description=manifest.get("description", ""),
    )


def check_metadata_keys(metadata: Mapping[str, Any], *, where: str = "metadata") -> None:
    """Refuse user metadata keys hybrid-search reserves for itself (or that
    are not text), naming the key."""
    for key in metadata:
        if not isinstance(key, str) or not key:
            raise InputError(f"{where}: metadata keys must be non-empty text; got {key!r}")
        if key.startswith(RESERVED_METADATA_PREFIX):
            raise InputError(
                f"{where}: metadata key {key!r} starts with {RESERVED_METADATA_PREFIX!r}, which is reserved for "
                "hybrid-search's own bookkeeping; rename the key"
            )


def combine_rerank_scores(
    head: Sequence[tuple[str, float]], rerank_scores: Mapping[str, float], first_stage_weight: float
) -> dict[str, float]:
    """The score each reranked candidate is ordered by:
    ``(1 - w) * rerank_score + w * first_stage_norm``.

    ``head`` is the reranked candidates with their first-stage (fused, or the
    single path's) scores; ``first_stage_norm`` is that score min-max normalised
    over the head, so both terms lie in [0, 1]. When every head score is equal
    the first stage says nothing about the order and ``first_stage_norm`` is 1.0
    for all. With w = 0 the rerank scores come back untouched.
    """
    if first_stage_weight == 0:
        return {cid: rerank_scores[cid] for cid, _ in head}
    normalized = normalize_scores([score for _, score in head], "min-max")
    w = first_stage_weight
    return {cid: (1.0 - w) * rerank_scores[cid] + w * norm for (cid, _), norm in zip(head, normalized)}


def order_reranked(
    head: Sequence[tuple[str, float]], rerank_scores: Mapping[str, float], first_stage_weight: float
) -> tuple[list[tuple[str, float]], dict[str, float]]:
    """``head`` (in first-stage order) re-ordered as ``Engine.search`` serves it:
    by combined score (``combine_rerank_scores``), first-stage position breaking
    ties. Returns the re-ordered head and the combined scores."""
    combined = combine_rerank_scores(head, rerank_scores, first_stage_weight)
    position = {cid: i for i, (cid, _) in enumerate(head)}
    return sorted(head, key=lambda item: (-combined[item[0]], position[item[0]])), combined


def _differences(expected: CollectionConfig, actual: CollectionConfig) -> list[str]:
    found = []
    for label in ("dense", "sparse", "analyzer"):
        want, have = getattr(expected, label), getattr(actual, label)
        if label == "analyzer":
            # The analyzer version is not the caller's choice: an existing
            # collection keeps the rules it was built with until re-indexed.
            want = replace(want, version=have.version)
        if want != have:
            found.append(f"{label}: collection has {to_plain(have)}, given {to_plain(want)}")
    if (expected.bm25_k1, expected.bm25_b) != (actual.bm25_k1, actual.bm25_b):
        found.append(f"bm25: collection has k1={actual.bm25_k1} b={actual.bm25_b}, given k1={expected.bm25_k1} b={expected.bm25_b}")
    return found


class Engine:
    """Index, search and manage hybrid collections in one Milvus deployment.

    >>> engine = Engine(StoreConfig(uri="kb.db"))                       # doctest: +SKIP
    >>> engine.create_collection(CollectionConfig(name="docs"))         # doctest: +SKIP
    >>> engine.index("docs", chunks)                                    # doctest: +SKIP
    >>> engine.search("docs", "what is milvus?").hits[0].paths          # doctest: +SKIP
    """

    def __init__(
        self,
        store: StoreConfig | None = None,
        *,
        runtime: RuntimeConfig | None = None,
        reranker: RerankConfig | None = None,
    ) -> None:
        self.store_config = store or StoreConfig()
        self.runtime = runtime or RuntimeConfig()
        self.rerank_config = reranker
        self.store = MilvusStore(
            self.store_config.uri,
            token=self.store_config.token,
            db_name=self.store_config.db_name,
            timeout_s=self.store_config.timeout_s,
            dense_index=self.store_config.dense_index,
        )
        self.settings = SettingsStore(self.store)
        self._collections: dict[str, _Collection] = {}
        self._encoder_cache: dict[tuple[Any, Any], EncoderSet] = {}
        self._reranker: Reranker | None = None
        self._lock = threading.RLock()
        self._holding_rows: set[str] = set()  # collections seen with rows (see _search_path)

    # --- models --------------------------------------------------------------------

    def _load_encoders(self, dense: DenseEncoderConfig | None, sparse: SparseEncoderConfig | None) -> EncoderSet:
        key = (dense, sparse)
        with self._lock:
            if key not in self._encoder_cache:
                self._encoder_cache[key] = load_encoders(dense, sparse, self.runtime)
            return self._encoder_cache[key]

    @property
    def reranker(self) -> Reranker | None:
        if self.rerank_config is None:
            return None
        with self._lock:
            if self._reranker is None:
                self._reranker = load_reranker(self.rerank_config, self.runtime)
            return self._reranker

    # --- collections -----------------------------------------------------------------

    def create_collection(self, config: CollectionConfig, *, exist_ok: bool = False) -> CollectionInfo:
        """Create a collection. With ``exist_ok``, an existing collection is opened
        instead, and refused if it was built with another encoder or analyzer."""
        if self.store.has_collection(config.name):
            from .errors import CollectionExistsError

            if not self.store.is_complete(config.name):
                raise CollectionExistsError(
                    f"collection {config.name!r} exists but is incomplete (an earlier creation failed half-way): "
                    "drop it and create it again"
                )
            if not exist_ok:
                raise CollectionExistsError(f"collection {config.name!r} exists already (drop it first, or reuse it)")
            self.open_collection(config.name, expected=config)
            return self.collection_info(config.name)
        analyzer = Analyzer(config.analyzer)  # fails early on a missing user dictionary
        encoders = self._load_encoders(config.dense, config.sparse)
        dense_dim = encoders.dense.dim if encoders.dense is not None else None
        manifest = _manifest_for(config, dense_dim)
        self.store.create_collection(
            config.name,
            manifest,
            dense_dim=dense_dim,
            with_sparse=config.sparse is not None,
            bm25_k1=config.bm25_k1,
            bm25_b=config.bm25_b,
        )
        with self._lock:
            self._collections[config.name] = _Collection(config, manifest, analyzer, encoders)
        return self.collection_info(config.name)

    # --- aliases (a stable name served by one versioned collection) ---------------

    def switch_alias(self, alias: str, collection: str) -> str | None:
        """Point ``alias`` at ``collection`` in one atomic step; returns the
        collection it pointed at before. Searches by alias follow at once; the
        collection served before becomes read-only (writes go through the
        alias) until an alias serves it again.

        On a Milvus server this is a real Milvus alias (``alter_alias``); Milvus
        Lite has no aliases (also when served over TCP), so there the pointer is
        one row in the settings collection, written by a single upsert."""
        from .store import validate_collection_name

        validate_collection_name(alias)
        self.store._require(collection)
        if self.store.has_collection(alias):
            raise ConfigError(f"alias {alias!r} would hide the collection of the same name")
        previous = self.resolve(alias)
        previous = previous if previous != alias else None
        if self.store.supports_aliases:
            self.store.set_alias(alias, collection)
        else:
            self.settings.put(alias, "alias", collection)
        lock = self.write_lock(collection)
        if lock is not None and lock.get("reason") == "replaced":
            self.unlock_writes(collection)  # a rollback: the version served again takes writes again
        if previous is not None and previous != collection:
            # Writers that resolved the alias before the switch (an API job
            # submitted earlier) must not land in a version nothing serves.
            self.lock_writes(previous, {"reason": "replaced", "alias": alias, "target": collection})
        return previous

    # --- write locks (promotion) ---------------------------------------------------------

    def lock_writes(self, collection: str, lock: Mapping[str, Any]) -> None:
        """Refuse writes to ``collection`` (``Engine.index``, ``delete_documents``)
        with PromotionInProgressError until ``unlock_writes``. The lock lives
        in the settings collection, so every process writing to the deployment
        (CLI runs, API workers) sees it. ``lock``: {"reason": "promoting" or
        "replaced", "alias": ..., "target": ...}."""
        self.settings.put(collection, WRITE_LOCK_SETTING, dict(lock))

    def unlock_writes(self, collection: str) -> None:
        self.settings.delete(collection, WRITE_LOCK_SETTING)

    def write_lock(self, collection: str) -> dict[str, Any] | None:
        lock = self.settings.get(collection, WRITE_LOCK_SETTING)
        return dict(lock) if lock else None

    def check_writable(self, collection: str) -> None:
        """Raise PromotionInProgressError if ``collection`` (a collection, not
        an alias) takes no writes now."""
        lock = self.write_lock(collection)
        if lock is None:
            return
        alias, target = lock.get("alias"), lock.get("target")
        if lock.get("reason") == "replaced":
            raise PromotionInProgressError(
                f"collection {collection!r} was promoted to {target!r} behind alias {alias!r} and is kept read-only "
                f"(for rollback): write through the alias {alias!r}"
            )
        raise PromotionInProgressError(
            f"collection {collection!r} is being promoted (alias {alias!r} will switch to {target!r}): writes are "
            "refused until the promotion finishes; retry then, through the alias. An interrupted promotion is "
            "finished by running it again"
        )

    def resolve(self, name: str) -> str:
        """The collection a name refers to (itself, or the target of an alias)."""
        if not self.store.supports_aliases:
            target = self.settings.get(name, "alias")
            if target is not None and not self.store.has_collection(name):
                return str(target)
            return name
        return self.store.alias_target(name) or name

    def list_aliases(self) -> dict[str, str]:
        if not self.store.supports_aliases:
            return self.settings.all_named("alias")
        return self.store.list_aliases()

    def open_collection(self, name: str, *, expected: CollectionConfig | None = None) -> CollectionConfig:
        """The collection's configuration as recorded in its manifest. With
        ``expected``, refuse if its encoders, analyzer or BM25 parameters differ."""
        name = self.resolve(name)
        with self._lock:
            opened = self._collections.get(name)
        if opened is None:
            manifest = self.store.manifest(name)
            config = _config_from_manifest(name, manifest)
            tuned = self.settings.get(name, "fusion")
            if tuned is not None:
                config = replace(config, fusion=from_plain(FusionConfig, tuned))
            opened = _Collection(config, manifest, Analyzer(config.analyzer))
            with self._lock:
                opened = self._collections.setdefault(name, opened)
        if expected is not None:
            differences = _differences(expected, opened.config)
            if differences:
                raise ManifestMismatchError(
                    f"collection {name!r} was built with a different configuration; searching it with other models "
                    f"would compare incompatible vectors. Differences: {'; '.join(differences)}. Omit the model options "
                    "to use the collection's own, or index into a new collection"
                )
        return opened.config

    def _opened(self, name: str, *, with_encoders: bool = True) -> _Collection:
        name = self.resolve(name)
        self.open_collection(name)
        opened = self._collections[name]
        if with_encoders and opened.encoders is None:
            with opened.lock:
                if opened.encoders is None:
                    opened.encoders = self._load_encoders(opened.config.dense, opened.config.sparse)
        return opened

    def list_collections(self) -> list[str]:
        """Usable collections: a half-made one (no BM25 index) is left out; it
        can still be dropped by name."""
        return [
            name for name in self.store.list_collections() if not SettingsStore.is_internal(name) and self.store.is_complete(name)
        ]

    def collection_info(self, name: str) -> CollectionInfo:
        name = self.resolve(name)
        opened = self._opened(name, with_encoders=False)
        manifest = dict(opened.manifest)
        manifest["fusion"] = to_plain(opened.config.fusion)
        return CollectionInfo(name=name, chunks=self.store.count(name), manifest=manifest)

    def drop_collection(self, name: str, *, drop_aliases: bool = False) -> list[str]:
        """Drop a collection (``name`` may be an alias: the collection it serves).

        A collection an alias points at is refused, the alias named, because
        the alias would be left pointing at nothing; with ``drop_aliases`` the
        aliases go too. Returns the aliases dropped."""
        target = self.resolve(name)
        self.store._require(target)
        aliases = sorted(alias for alias, collection in self.list_aliases().items() if collection == target)
        if aliases and not drop_aliases:
            named = ", ".join(map(repr, aliases))
            raise CollectionInUseError(
                f"collection {target!r} is served by alias {named}: dropping it would leave the alias pointing at "
                "nothing. Point the alias at another collection first, or drop both (CLI --with-aliases, "
                "API ?drop_aliases=true)"
            )
        for alias in aliases:
            if self.store.supports_aliases:
                self.store.drop_alias(alias)
            self.settings.delete_all(alias)
        self.store.drop_collection(target)
        self.settings.delete_all(target)
        with self._lock:
            self._collections.pop(target, None)
            self._holding_rows.discard(target)
        return aliases

    def set_fusion_defaults(self, name: str, fusion: FusionConfig) -> None:
        """Store tuned fusion defaults for a collection (used when a query names none)."""
        opened = self._opened(name, with_encoders=False)
        self.settings.put(name, "fusion", to_plain(fusion))
        opened.config = replace(opened.config, fusion=fusion)

    def analyzer(self, name: str) -> Analyzer:
        return self._opened(name, with_encoders=False).analyzer

    def encoders(self, name: str) -> EncoderSet:
        encoders = self._opened(name).encoders
        assert encoders is not None
        return encoders

    def token_counter(self, name: str) -> Callable[[str], int] | None:
        """Counts tokens with the collection's encoder tokenizer (for chunking)."""
        return self.encoders(name).token_counter()

    # --- writing ---------------------------------------------------------------------

    def index(
        self,
        name: str,
        chunks: Iterable[Chunk],
        *,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> IndexReport:
        """Write chunks, replacing each document they belong to.

        The chunks given for a ``doc_id`` are taken as that document's complete
        content: existing chunks of it at positions beyond the new ones are
        removed. Chunk ids are stable (``doc_id#index``), so writing the same
        input again leaves exactly one copy, and a re-run after an interruption
        ends in the same state as a clean run.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
        name = self.resolve(name)
        opened = self._opened(name)
        encoders = opened.encoders
        assert encoders is not None
        report = IndexReport()
        started = time.perf_counter()
        chunks_per_doc: dict[str, int] = {}
        batch: dict[tuple[str, int], Chunk] = {}

        def flush() -> None:
            if not batch:
                return
            items = list(batch.values())
            encode_started = time.perf_counter()
            dense, sparse = encoders.encode_documents([c.text_for_encoding for c in items])
            bm25_texts = [opened.analyzer.index_text(c.text) for c in items]
            report.encode_seconds += time.perf_counter() - encode_started
            rows = []
            for i, chunk in enumerate(items):
                if len(bm25_texts[i].encode("utf-8")) > _MAX_FIELD_BYTES:
                    raise InputError(f"chunk {chunk.id!r}: analysed text exceeds {_MAX_FIELD_BYTES} bytes; chunk it smaller")
                rows.append(
                    MilvusStore.make_row(
                        _stored_chunk(chunk),
                        bm25_texts[i],
                        dense[i] if dense is not None else None,
                        sparse[i] if sparse is not None else None,
                    )
                )
            write_started = time.perf_counter()
            # Checked right before each write, not once per call: a promotion
            # that starts while a long job runs stops the job's next batch.
            self.check_writable(name)
            self.store.upsert(name, rows)
            report.write_seconds += time.perf_counter() - write_started
            report.chunks_written += len(rows)
            if progress is not None:
                progress(len(rows))
            batch.clear()

        for chunk in chunks:
            self._check_chunk(chunk)
            chunks_per_doc[chunk.doc_id] = max(chunks_per_doc.get(chunk.doc_id, 0), chunk.chunk_index + 1)
            batch[(chunk.doc_id, chunk.chunk_index)] = chunk  # a repeated chunk within one call: the last one wins
            if len(batch) >= batch_size:
                flush()
        flush()
        report.stale_chunks_removed = self._remove_stale_chunks(name, chunks_per_doc)
        report.documents = len(chunks_per_doc)
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _check_chunk(chunk: Chunk) -> None:
        if not isinstance(chunk, Chunk):
            raise InputError(f"index() takes Chunk objects; got {type(chunk).__name__}")
        problem = doc_id_problem(chunk.doc_id)
        if problem is not None:
            raise InputError(f"chunk doc_id {str(chunk.doc_id)[:80]!r} {problem}")
        if chunk.chunk_index < 0:
            raise InputError(f"chunk {chunk.id!r}: chunk_index must be >= 0")
        if not chunk.text.strip():
            raise InputError(f"chunk {chunk.id!r} has no text")
        if len(chunk.text.encode("utf-8")) > _MAX_FIELD_BYTES:
            raise InputError(f"chunk {chunk.id!r} text exceeds {_MAX_FIELD_BYTES} bytes; chunk it smaller")
        check_metadata_keys(chunk.metadata, where=f"chunk {chunk.id!r}")
        internal = [key for key in chunk.bookkeeping if not str(key).startswith(RESERVED_METADATA_PREFIX)]
        if internal:
            raise InputError(f"chunk {chunk.id!r}: bookkeeping keys must start with {RESERVED_METADATA_PREFIX!r}; got {internal[0]!r}")

    def _remove_stale_chunks(self, name: str, chunks_per_doc: Mapping[str, int]) -> int:
        by_count: dict[int, list[str]] = {}
        for doc_id, count in chunks_per_doc.items():
            by_count.setdefault(count, []).append(doc_id)
        removed = 0
        for count, doc_ids in by_count.items():
            for start in range(0, len(doc_ids), 512):
                expression = compile_filters(
                    [
                        FilterCondition("doc_id", "in", doc_ids[start : start + 512]),
                        FilterCondition("chunk_index", ">=", count),
                    ]
                )
                removed += self.store.delete_where(name, expression)
        return removed

    def delete_documents(self, name: str, doc_ids: Sequence[str]) -> int:
        """Remove every chunk of the given documents; returns the chunks removed."""
        name = self.resolve(name)
        self._opened(name, with_encoders=False)
        self.check_writable(name)
        removed = 0
        ids = [doc_id for doc_id in dict.fromkeys(doc_ids) if doc_id_problem(doc_id) is None]  # others were never indexed
        for start in range(0, len(ids), 512):
            removed += self.store.delete_where(name, compile_filters([FilterCondition("doc_id", "in", ids[start : start + 512])]))
        self._holding_rows.discard(name)
        return removed

    def get_document(self, name: str, doc_id: str) -> list[Chunk]:
        """A document's chunks in order (empty if it is not indexed)."""
        name = self.resolve(name)
        self._opened(name, with_encoders=False)
        if doc_id_problem(doc_id) is not None:
            return []  # no such id can have been indexed
        # doc_id filters compile to the id's digest: any text is safe here.
        rows = self.store.iterate(name, compile_filters([FilterCondition("doc_id", "==", doc_id)]), OUTPUT_FIELDS)
        # A digest collision would need 2**64 documents; checking the id costs nothing.
        return sorted((_chunk_from_row(row) for row in rows if row["doc_id"] == doc_id), key=lambda c: c.chunk_index)

    def list_documents(self, name: str, *, limit: int | None = None) -> list[tuple[str, int]]:
        """(doc_id, chunk count) for every document, sorted by doc_id."""
        name = self.resolve(name)
        self._opened(name, with_encoders=False)
        counts: dict[str, int] = {}
        for row in self.store.iterate(name, "", ["doc_id"]):
            counts[row["doc_id"]] = counts.get(row["doc_id"], 0) + 1
        items = sorted(counts.items())
        return items[:limit] if limit is not None else items

    # --- searching ---------------------------------------------------------------------

    def search(self, name: str, query: str, options: SearchOptions | None = None) -> SearchResult:
        options = options or SearchOptions()
        name = self.resolve(name)
        if not isinstance(query, str) or not query.strip():
            raise InputError("query must be a non-empty string")
        if len(query) > MAX_QUERY_CHARS:
            raise InputError(f"query is longer than {MAX_QUERY_CHARS} characters")
        opened = self._opened(name, with_encoders=False)  # models load only if a path needs them
        config = opened.config
        available = config.paths
        paths = tuple(options.paths) if options.paths is not None else available
        missing = [p for p in paths if p not in available]
        if missing:
            raise InputError(
                f"collection {name!r} has no {', '.join(missing)} path (it was built with: {', '.join(available)})"
            )
        fusion = options.fusion or config.fusion
        reranker = self._reranker_for(options)
        expression = compile_filters(options.filters)
        timings: dict[str, float] = {}
        started = time.perf_counter()

        query_terms = opened.analyzer.tokenize(query)
        dense_query = sparse_query = None
        if "dense" in paths or "sparse" in paths:
            encoders = self._opened(name).encoders
            assert encoders is not None
            t0 = time.perf_counter()
            dense_vectors, sparse_vectors = encoders.encode_queries([query])
            timings["encode"] = (time.perf_counter() - t0) * 1000
            dense_query = dense_vectors[0] if dense_vectors is not None and "dense" in paths else None
            sparse_query = sparse_vectors[0] if sparse_vectors is not None and "sparse" in paths else None

        rows: dict[str, dict[str, Any]] = {}
        ranked: dict[str, list[tuple[str, float]]] = {}
        for path in paths:
            if path == "bm25":
                data: Any = " ".join(query_terms) if query_terms else None
            elif path == "sparse":
                data = sparse_query if sparse_query else None
            else:
                data = [float(x) for x in dense_query] if dense_query is not None else None
            t0 = time.perf_counter()
            if data is None:
                # Nothing to match on this path (all stopwords, no sparse terms).
                ranked[path] = []
            else:
                candidates = self._search_path(name, path, data, options.depth_for(path), expression)
                ranked[path] = []
                for row, score in candidates:
                    rows.setdefault(row["id"], row)
                    ranked[path].append((row["id"], score))
            timings[path] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        fusion_weights = {paths[0]: 1.0}
        if len(paths) == 1:
            fused = list(ranked[paths[0]])
        else:
            outcome = fuse_explained(ranked, fusion, options.weights)
            fused, fusion_weights = outcome.ranked, outcome.weights
        timings["fusion"] = (time.perf_counter() - t0) * 1000
        per_path = {path: {cid: PathScore(rank, score) for rank, (cid, score) in enumerate(items, start=1)} for path, items in ranked.items()}

        rerank_scores: dict[str, float] = {}
        combined_scores: dict[str, float] = {}
        first_stage_weight: float | None = None
        if reranker is not None:
            first_stage_weight = (
                options.rerank_first_stage_weight
                if options.rerank_first_stage_weight is not None
                else reranker.config.first_stage_weight
            )
        confident = True
        ordered = fused
        if reranker is not None and first_stage_weight is not None and fused:
            top_n = options.rerank_top_n or reranker.config.top_n
            head = fused[:top_n]
            t0 = time.perf_counter()
            scores = reranker.score(query, [rows[cid]["text"] for cid, _ in head])
            timings["rerank"] = (time.perf_counter() - t0) * 1000
            rerank_scores = {cid: s for (cid, _), s in zip(head, scores)}
            reranked_head, combined_scores = order_reranked(head, rerank_scores, first_stage_weight)
            # The confidence threshold reads the raw rerank score: it means the
            # same whatever the weight, and a strong fused score cannot pass it.
            minimum = options.min_rerank_score if options.min_rerank_score is not None else reranker.config.min_score
            if minimum is not None:
                reranked_head = [item for item in reranked_head if rerank_scores[item[0]] >= minimum]
                confident = bool(reranked_head)
                ordered = reranked_head
            else:
                ordered = reranked_head + fused[top_n:]

        query_term_set = set(query_terms)
        folded: dict[str, list[tuple[str, float]]] = {}
        if options.collapse:
            t0 = time.perf_counter()
            collapsed = collapse_duplicates(ordered, lambda cid: rows[cid]["text"], options.k)
            ordered, folded = collapsed.kept, collapsed.folded
            timings["collapse"] = (time.perf_counter() - t0) * 1000
        hits = []
        for rank, (cid, fused_score) in enumerate(ordered[: options.k], start=1):
            row = rows[cid]
            chunk = _chunk_from_row(row)
            matched = opened.analyzer.matched_surfaces(chunk.text, query_term_set) if options.highlight else ()
            hits.append(
                Hit(
                    rank=rank,
                    chunk_id=cid,
                    doc_id=chunk.doc_id,
                    text=chunk.text,
                    title=chunk.title,
                    source=chunk.source,
                    page=chunk.page,
                    heading_path=chunk.heading_path,
                    metadata=chunk.metadata,
                    paths={path: per_path[path][cid] for path in paths if cid in per_path[path]},
                    fused_score=float(fused_score),
                    fusion_weights=fusion_weights,
                    rerank_score=rerank_scores.get(cid),
                    combined_score=combined_scores.get(cid),
                    matched_terms=matched,
                    snippet=best_passage(chunk.text, matched),
                    folded=tuple(_folded_copy(rows[copy], similarity) for copy, similarity in folded.get(cid, ())),
                )
            )
        timings["total"] = (time.perf_counter() - started) * 1000
        return SearchResult(
            query=query,
            collection=name,
            hits=hits,
            paths=paths,
            fusion="none" if len(paths) == 1 else fusion.method,
            reranked=reranker is not None,
            confident=confident,
            query_terms=tuple(query_terms),
            timings_ms=timings,
            rerank_first_stage_weight=first_stage_weight,
            fusion_weights=fusion_weights,
        )

    def _search_path(self, name: str, path: str, data: Any, depth: int, expression: str) -> list[tuple[dict[str, Any], float]]:
        if path == "bm25" and name not in self._holding_rows:
            # Asking first keeps an empty collection's search from failing in
            # Milvus (and pymilvus from logging the failure as an ERROR); once
            # rows were seen, only a delete makes it worth asking again.
            if self.store.count(name) == 0:
                return []
            self._holding_rows.add(name)
        try:
            return self.store.search(name, path, [data], limit=depth, expression=expression)[0]  # type: ignore[arg-type]
        except StoreError as error:
            # Milvus Lite's BM25 divides by the average document length, 0 in an
            # empty collection, and fails ("NaN or Inf"): an empty collection
            # simply has no hits.
            text = str(error)
            if path == "bm25" and ("NaN or Inf" in text or "isfinite" in text) and self.store.count(name) == 0:
                return []
            raise

    def _reranker_for(self, options: SearchOptions) -> Reranker | None:
        wanted = options.rerank if options.rerank is not None else self.rerank_config is not None
        if not wanted:
            return None
        if self.rerank_config is None:
            raise InputError("reranking was asked for but no reranker is configured (set a rerank model)")
        return self.reranker

    def supervise_store(self) -> str | None:
        """For a liveness probe: why the store cannot be brought back, or None
        (a dead embedded Milvus Lite is restarted first)."""
        return self.store.supervise()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _folded_copy(row: Mapping[str, Any], similarity: float) -> FoldedCopy:
    chunk = _chunk_from_row(row)
    return FoldedCopy(chunk_id=chunk.id, doc_id=chunk.doc_id, source=chunk.source, page=chunk.page, similarity=similarity)


def _stored_chunk(chunk: Chunk) -> Chunk:
    """``chunk`` with its bookkeeping merged into the metadata Milvus stores,
    including what rebuilds the exact text the encoders saw: the prefix before
    ``text`` (title and heading path), so a later re-embedding (promotion of a
    new model) embeds what the evaluated model embedded."""
    extra = {k: v for k, v in chunk.bookkeeping.items() if k not in (EMBED_PREFIX_KEY, EMBED_TEXT_KEY)}
    embedded = chunk.embed_text
    if embedded is not None and embedded != chunk.text:
        if chunk.text and embedded.endswith(chunk.text):
            extra[EMBED_PREFIX_KEY] = embedded[: len(embedded) - len(chunk.text)]
        else:
            extra[EMBED_TEXT_KEY] = embedded
    if not extra:
        return chunk
    return replace(chunk, metadata={**chunk.metadata, **extra})


def _chunk_from_row(row: Mapping[str, Any]) -> Chunk:
    stored = dict(row.get("metadata") or {})
    char_start = stored.pop("_char_start", None)
    char_end = stored.pop("_char_end", None)
    # Keys starting with "_" are bookkeeping (e.g. the ingest sync hashes);
    # user metadata cannot use them (refused on the way in).
    metadata = {key: value for key, value in stored.items() if not key.startswith(RESERVED_METADATA_PREFIX)}
    bookkeeping = {key: value for key, value in stored.items() if key.startswith(RESERVED_METADATA_PREFIX)}
    text = row["text"]
    embed_text = bookkeeping.get(EMBED_TEXT_KEY)
    if embed_text is None and bookkeeping.get(EMBED_PREFIX_KEY) is not None:
        embed_text = bookkeeping[EMBED_PREFIX_KEY] + text
    page = row.get("page", -1)
    return Chunk(
        doc_id=row["doc_id"],
        chunk_index=int(row["chunk_index"]),
        text=text,
        title=row.get("title", ""),
        source=row.get("source", ""),
        page=None if page is None or page < 0 else int(page),
        heading_path=heading_path_from_row(row.get("heading", "")),
        char_start=char_start,
        char_end=char_end,
        metadata=metadata,
        embed_text=embed_text,
        bookkeeping=bookkeeping,
    )
