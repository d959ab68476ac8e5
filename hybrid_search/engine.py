"""The Engine: the one object that indexes, searches and manages collections.

The CLI, the HTTP API, the benchmarks and training all go through it, so every
number they report measures the path users run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from .analyzers import Analyzer
from .batching import SearchBatcher
from .candidate_rows import TEXT_FIELDS, path_fields, read_ranked, read_shown
from .collapse import collapse_duplicates
from .config import (
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
from .encoders import EncoderSet, ModelTally, load_encoders
from .errors import (
    CollectionInUseError,
    ConfigError,
    InputError,
    ManifestMismatchError,
    PromotionInProgressError,
    StoreError,
)
from .filters import FilterCondition, compile_filters
from .fusion import fuse_explained
from .hits import assemble_hits
from .index_batches import write_batches
from .manifest import config_differences, config_from_manifest, manifest_for
from .backends import serving_config
from .plan import (
    MAX_DEPTH,
    MAX_K,
    MAX_QUERY_CHARS,
    PathPlan,
    QueryPlan,
    SearchOptions,
    build_plan,
)
from .probe import check_probe, record_probe
from .rerank import Reranker, load_reranker, order_reranked
from .rows import RESERVED_METADATA_PREFIX, chunk_from_row, stored_chunk
from .settings_store import SettingsStore
from .store import OUTPUT_FIELDS, MilvusStore
from .types import (
    Chunk,
    CollectionInfo,
    EngineUsage,
    IndexReport,
    SearchResult,
    doc_id_problem,
)

__all__ = [
    "Engine",
    "SearchOptions",
    "check_metadata_keys",
    "MAX_K",
    "MAX_DEPTH",
    "MAX_QUERY_CHARS",
    "RESERVED_METADATA_PREFIX",
]

WRITE_LOCK_SETTING = "write_lock"
T = TypeVar("T")
_MAX_FIELD_BYTES = 65535


@dataclass(frozen=True)
class _Reranked:
    """What the rerank stage adds to the hits of the reranked head."""

    scores: Mapping[str, float] = field(default_factory=dict)
    combined: Mapping[str, float] = field(default_factory=dict)
    # False when a minimum rerank score was set and no candidate reached it.
    confident: bool = True


@dataclass
class _Collection:
    """An opened collection: its config (from the manifest) and loaded models."""

    config: CollectionConfig
    manifest: dict[str, Any]
    analyzer: Analyzer
    encoders: EncoderSet | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


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
        # False: the path searches of fused plans return full rows, as before
        # candidate_rows.py (the same hits; kept to compare the two).
        self.late_rows = True
        self._resolved: dict[str, tuple[int, str]] = {}  # name -> (store.catalog_version, collection)
        # Concurrent searches of one path share a Milvus call (nq > 1) when they
        # queue behind a busy store, and so do their reads of rows by primary
        # key (candidate_rows.py); query_batch_size 1 keeps one call per query.
        self.path_searches: SearchBatcher[Any] = SearchBatcher(self._store_search, max_batch=self.runtime.query_batch_size)
        # A search's paths query the store side by side (see _retrieve); the
        # threads start on first use and only ever wait on Milvus calls.
        self._path_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="hybrid-search-path")

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
        # The manifest records the backend that builds the vectors (a runtime override included).
        config = replace(config, dense=serving_config(config.dense, self.runtime), sparse=serving_config(config.sparse, self.runtime))
        encoders = self._load_encoders(config.dense, config.sparse)
        dense_dim = encoders.dense.dim if encoders.dense is not None else None
        manifest = manifest_for(config, dense_dim, record_probe(encoders))
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
        self.store.require(collection)
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
        """The collection a name refers to (itself, or the target of an alias).
        On a Milvus Lite file the answer is kept until this process changes the
        collections or settings (no other process can: the file is locked), so
        a search asks Milvus nothing before its own search call."""
        version = self.store.catalog_version
        if version is None:
            return self._resolve_now(name)
        cached = self._resolved.get(name)
        if cached is not None and cached[0] == version:
            return cached[1]
        target = self._resolve_now(name)
        if len(self._resolved) >= 4096:
            self._resolved.clear()  # names are caller-chosen: keep the memory bounded
        self._resolved[name] = (version, target)
        return target

    def _resolve_now(self, name: str) -> str:
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
        opened = self._open_resolved(name, with_encoders=False)
        if expected is not None:
            differences = config_differences(expected, opened.config)
            if differences:
                raise ManifestMismatchError(
                    f"collection {name!r} was built with a different configuration; searching it with other models "
                    f"would compare incompatible vectors. Differences: {'; '.join(differences)}. Omit the model options "
                    "to use the collection's own, or index into a new collection"
                )
        return opened.config

    def _opened(self, name: str, *, with_encoders: bool = True) -> _Collection:
        return self._open_resolved(self.resolve(name), with_encoders=with_encoders)

    def _open_resolved(self, name: str, *, with_encoders: bool) -> _Collection:
        """An opened collection by its real name (an alias already resolved):
        the manifest is read once per engine, the models loaded when first needed."""
        with self._lock:
            opened = self._collections.get(name)
        if opened is None:
            manifest = self.store.manifest(name)
            config = config_from_manifest(name, manifest)
            tuned = self.settings.get(name, "fusion")
            if tuned is not None:
                config = replace(config, fusion=from_plain(FusionConfig, tuned))
            opened = _Collection(config, manifest, Analyzer(config.analyzer))
            with self._lock:
                opened = self._collections.setdefault(name, opened)
        if with_encoders and opened.encoders is None:
            with opened.lock:
                if opened.encoders is None:
                    encoders = self._load_encoders(opened.config.dense, opened.config.sparse)
                    check_probe(name, opened.manifest, opened.config, encoders, self.runtime)  # another backend: same vectors?
                    opened.encoders = encoders
        return opened

    def list_collections(self) -> list[str]:
        """Usable collections: a half-made one (no BM25 index) is left out; it
        can still be dropped by name."""
        return [
            name for name in self.store.list_collections() if not SettingsStore.is_internal(name) and self.store.is_complete(name)
        ]

    def collection_info(self, name: str) -> CollectionInfo:
        name = self.resolve(name)
        opened = self._open_resolved(name, with_encoders=False)
        manifest = dict(opened.manifest)
        manifest["fusion"] = to_plain(opened.config.fusion)
        return CollectionInfo(name=name, chunks=self.store.count(name), manifest=manifest)

    def drop_collection(self, name: str, *, drop_aliases: bool = False) -> list[str]:
        """Drop a collection (``name`` may be an alias: the collection it serves).

        A collection an alias points at is refused, the alias named, because
        the alias would be left pointing at nothing; with ``drop_aliases`` the
        aliases go too. Returns the aliases dropped."""
        target = self.resolve(name)
        self.store.require(target)
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
        name = self.resolve(name)
        opened = self._open_resolved(name, with_encoders=False)
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
        batch_guard: Callable[[], AbstractContextManager[Any]] | None = None,
        overlap: bool | None = None,
    ) -> IndexReport:
        """Write chunks, replacing each document they belong to.

        The chunks given for a ``doc_id`` are taken as that document's complete
        content: existing chunks of it at positions beyond the new ones are
        removed. Chunk ids are stable (``doc_id#index``), so writing the same
        input again leaves exactly one copy, and a re-run after an interruption
        ends in the same state as a clean run. Each batch is encoded inside
        ``batch_guard()`` when given (the API's model gate, so searches
        interleave with a long indexing job). With ``overlap``, taking the next
        chunks, encoding a batch and writing the previous one run side by side
        (see ``index_batches``); the rows written are the same either way, and
        ``progress`` is called on the caller's thread after each write. None:
        overlap when the encoders run on a GPU.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
        name = self.resolve(name)
        opened = self._open_resolved(name, with_encoders=True)
        encoders = opened.encoders
        assert encoders is not None
        if overlap is None:
            # On a CPU the writer competes with the model for the same cores:
            # 60 scifact records on 2 cores, overlapped 0.79x and one after
            # another 0.92x the bare encoders' docs/s (ingest_throughput.md).
            has_model = encoders.dense is not None or encoders.sparse is not None
            overlap = has_model and self.runtime.resolved_device() != "cpu"
        report = IndexReport()
        started = time.perf_counter()
        chunks_per_doc: dict[str, int] = {}

        def collect(chunk: Chunk) -> None:
            self._check_chunk(chunk)
            chunks_per_doc[chunk.doc_id] = max(chunks_per_doc.get(chunk.doc_id, 0), chunk.chunk_index + 1)

        def encode(items: list[Chunk]) -> list[dict[str, Any]]:
            encode_started = time.perf_counter()
            texts = [c.text_for_encoding for c in items]
            if batch_guard is None:
                dense, sparse = encoders.encode_documents(texts)
            else:
                with batch_guard():
                    dense, sparse = encoders.encode_documents(texts)
            bm25_texts = [opened.analyzer.index_text(c.text) for c in items]
            report.encode_seconds += time.perf_counter() - encode_started
            rows = []
            for i, chunk in enumerate(items):
                if len(bm25_texts[i].encode("utf-8")) > _MAX_FIELD_BYTES:
                    raise InputError(f"chunk {chunk.id!r}: analysed text exceeds {_MAX_FIELD_BYTES} bytes; chunk it smaller")
                rows.append(
                    MilvusStore.make_row(
                        stored_chunk(chunk),
                        bm25_texts[i],
                        dense[i] if dense is not None else None,
                        sparse[i] if sparse is not None else None,
                    )
                )
            return rows

        def write(rows: list[dict[str, Any]]) -> None:
            write_started = time.perf_counter()
            # Checked right before each write, not once per call: a promotion
            # that starts while a long job runs stops the job's next batch.
            self.check_writable(name)
            self.store.upsert(name, rows)
            report.write_seconds += time.perf_counter() - write_started
            report.chunks_written += len(rows)
            if progress is not None:
                progress(len(rows))

        write_batches(chunks, batch_size=batch_size, collect=collect, encode=encode, write=write, overlap=overlap)
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
        self._open_resolved(name, with_encoders=False)
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
        self._open_resolved(name, with_encoders=False)
        if doc_id_problem(doc_id) is not None:
            return []  # no such id can have been indexed
        # doc_id filters compile to the id's digest: any text is safe here.
        rows = self.store.iterate(name, compile_filters([FilterCondition("doc_id", "==", doc_id)]), OUTPUT_FIELDS)
        # A digest collision would need 2**64 documents; checking the id costs nothing.
        return sorted((chunk_from_row(row) for row in rows if row["doc_id"] == doc_id), key=lambda c: c.chunk_index)

    def list_documents(self, name: str, *, limit: int | None = None) -> list[tuple[str, int]]:
        """(doc_id, chunk count) for every document, sorted by doc_id."""
        name = self.resolve(name)
        self._open_resolved(name, with_encoders=False)
        counts: dict[str, int] = {}
        for row in self.store.iterate(name, "", ["doc_id"]):
            counts[row["doc_id"]] = counts.get(row["doc_id"], 0) + 1
        items = sorted(counts.items())
        return items[:limit] if limit is not None else items

    # --- searching ---------------------------------------------------------------------

    def plan(self, name: str, query: str, options: SearchOptions | None = None) -> QueryPlan:
        """What ``search(name, query, options)`` would run (the alias resolved,
        paths, depths, fusion, rerank), without running it."""
        resolved = self.resolve(name)
        config = self._open_resolved(resolved, with_encoders=False).config
        return build_plan(name, config, query, options or SearchOptions(), self.rerank_config)

    def search(self, name: str, query: str, options: SearchOptions | None = None) -> SearchResult:
        """Plan, encode, retrieve, fuse, rerank, collapse, assemble: one code path per stage."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        plan = self.plan(name, query, options)
        opened = self._open_resolved(plan.collection, with_encoders=plan.runs("dense") or plan.runs("sparse"))
        query_terms = opened.analyzer.tokenize(query)
        path_queries = self._encode_query(opened, plan, query_terms, timings)
        # Fused plans' path searches return what ranking and collapse read; full
        # rows are read for the hits shown (candidate_rows.py). One path keeps one call.
        late_rows = plan.fusion is not None and self.late_rows
        rows, ranked = self._retrieve(plan, path_queries, timings, path_fields(plan.collapse) if late_rows else tuple(OUTPUT_FIELDS))
        fused, fusion_weights = self._fuse(plan, ranked, timings)
        if late_rows and not plan.collapse and plan.rerank is not None:
            # Without collapsing the searches gave ids only: the reranked head's text.
            top_n = plan.rerank.top_n
            fused = self._read_rows(plan.collection, timings, lambda fetch: read_ranked(rows, fused, top_n, TEXT_FIELDS, fetch))
        ordered, reranked = self._rerank(plan, rows, fused, timings)
        ordered, folded = self._collapse(plan, rows, ordered, timings)
        if late_rows:
            ordered, folded = self._read_rows(
                plan.collection, timings, lambda fetch: read_shown(rows, ordered, folded, plan.k, OUTPUT_FIELDS, fetch)
            )
        hits = assemble_hits(
            plan,
            opened.analyzer,
            query_terms,
            rows,
            ranked,
            ordered,
            rerank_scores=reranked.scores,
            combined_scores=reranked.combined,
            folded=folded,
            fusion_weights=fusion_weights,
        )
        timings["total"] = (time.perf_counter() - started) * 1000
        return SearchResult(
            query=query,
            collection=plan.collection,
            hits=hits,
            paths=plan.path_names,
            fusion=plan.fusion_label,
            reranked=plan.rerank is not None,
            confident=reranked.confident,
            query_terms=tuple(query_terms),
            timings_ms=timings,
            rerank_first_stage_weight=plan.rerank.first_stage_weight if plan.rerank is not None else None,
            fusion_weights=fusion_weights,
            plan=plan,
        )

    def _encode_query(self, opened: _Collection, plan: QueryPlan, query_terms: Sequence[str], timings: dict[str, float]) -> dict[str, Any]:
        """Each running path's query (None: nothing to match on, e.g. all stopwords).
        Only the encoders of running paths are called."""
        path_queries: dict[str, Any] = {}
        if plan.runs("bm25"):
            path_queries["bm25"] = " ".join(query_terms) if query_terms else None
        if plan.runs("dense") or plan.runs("sparse"):
            encoders = opened.encoders
            assert encoders is not None
            t0 = time.perf_counter()
            dense, sparse = encoders.encode_queries([plan.query], dense=plan.runs("dense"), sparse=plan.runs("sparse"))
            timings["encode"] = (time.perf_counter() - t0) * 1000
            if plan.runs("dense"):
                path_queries["dense"] = [float(x) for x in dense[0]] if dense is not None else None
            if plan.runs("sparse"):
                path_queries["sparse"] = (sparse[0] or None) if sparse is not None else None
        return path_queries

    def _retrieve(
        self, plan: QueryPlan, path_queries: Mapping[str, Any], timings: dict[str, float], fields: tuple[str, ...]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[str, float]]]]:
        """Every running path's candidates (chunk id, raw score), best first, and their rows (``fields`` of them)."""

        def search(step: PathPlan) -> list[tuple[dict[str, Any], float]]:
            t0 = time.perf_counter()
            data = path_queries.get(step.path)
            candidates = (
                [] if data is None else self._search_path(plan.collection, step.path, data, step.depth, plan.filter_expression, fields)
            )
            timings[step.path] = (time.perf_counter() - t0) * 1000
            return candidates

        # The paths' store calls run side by side: each mostly waits on Milvus.
        others = [self._path_pool.submit(search, step) for step in plan.paths[1:]]
        found = [search(plan.paths[0]), *(future.result() for future in others)] if plan.paths else []
        rows: dict[str, dict[str, Any]] = {}
        ranked: dict[str, list[tuple[str, float]]] = {}
        for step, candidates in zip(plan.paths, found):
            ranked[step.path] = []
            for row, score in candidates:
                rows.setdefault(row["id"], row)
                ranked[step.path].append((row["id"], score))
        return rows, ranked

    @staticmethod
    def _fuse(
        plan: QueryPlan, ranked: Mapping[str, list[tuple[str, float]]], timings: dict[str, float]
    ) -> tuple[list[tuple[str, float]], dict[str, float]]:
        """One ranked list, and the weight each path had in it on this query."""
        t0 = time.perf_counter()
        if plan.fusion is None:
            # One path runs unfused: its own order and raw scores.
            path = plan.paths[0].path
            fused, weights = list(ranked[path]), {path: 1.0}
        else:
            outcome = fuse_explained(ranked, plan.fusion)
            fused, weights = outcome.ranked, outcome.weights
        timings["fusion"] = (time.perf_counter() - t0) * 1000
        return fused, weights

    def _rerank(
        self, plan: QueryPlan, rows: Mapping[str, Mapping[str, Any]], fused: list[tuple[str, float]], timings: dict[str, float]
    ) -> tuple[list[tuple[str, float]], _Reranked]:
        """The candidates in served order, and the rerank scores of the reranked head."""
        step = plan.rerank
        if step is None or not fused:
            return fused, _Reranked()
        reranker = self.reranker
        assert reranker is not None  # the plan has a rerank step only when one is configured
        head = fused[: step.top_n]
        t0 = time.perf_counter()
        scores = reranker.score(plan.query, [rows[cid]["text"] for cid, _ in head])
        timings["rerank"] = (time.perf_counter() - t0) * 1000
        rerank_scores = {cid: s for (cid, _), s in zip(head, scores)}
        reranked_head, combined = order_reranked(head, rerank_scores, step.first_stage_weight)
        if step.min_score is None:
            return reranked_head + fused[step.top_n :], _Reranked(rerank_scores, combined)
        # The confidence threshold reads the raw rerank score: it means the same
        # whatever the weight, and a strong fused score cannot pass it.
        confident_head = [item for item in reranked_head if rerank_scores[item[0]] >= step.min_score]
        return confident_head, _Reranked(rerank_scores, combined, confident=bool(confident_head))

    @staticmethod
    def _collapse(
        plan: QueryPlan, rows: Mapping[str, Mapping[str, Any]], ordered: list[tuple[str, float]], timings: dict[str, float]
    ) -> tuple[list[tuple[str, float]], dict[str, list[tuple[str, float]]]]:
        """Duplicates folded into their best-ranked copy (when the plan collapses)."""
        if not plan.collapse:
            return ordered, {}
        t0 = time.perf_counter()
        collapsed = collapse_duplicates(ordered, lambda cid: rows[cid]["text"], plan.k)
        timings["collapse"] = (time.perf_counter() - t0) * 1000
        return collapsed.kept, collapsed.folded

    def _search_path(
        self, name: str, path: str, data: Any, depth: int, expression: str, fields: tuple[str, ...]
    ) -> list[tuple[dict[str, Any], float]]:
        if path == "bm25" and name not in self._holding_rows:
            # Asking first keeps an empty collection's search from failing in
            # Milvus (and pymilvus from logging the failure as an ERROR); once
            # rows were seen, only a delete makes it worth asking again.
            if self.store.count(name) == 0:
                return []
            self._holding_rows.add(name)
        try:
            return self.path_searches.search(("search", name, path, depth, expression, fields), data)
        except StoreError as error:
            # Milvus Lite's BM25 divides by the average document length, 0 in an
            # empty collection, and fails ("NaN or Inf"): an empty collection
            # simply has no hits.
            text = str(error)
            if path == "bm25" and ("NaN or Inf" in text or "isfinite" in text) and self.store.count(name) == 0:
                return []
            raise

    def _read_rows(self, name: str, timings: dict[str, float], read: Callable[[Any], T]) -> T:
        """``read(fetch)``, where fetch(primary keys, fields) reads rows of
        ``name`` through the store batcher; its time adds to timings["rows"]."""
        t0 = time.perf_counter()
        result = read(lambda keys, fields: self.path_searches.search(("fetch", name, fields), keys))
        timings["rows"] = timings.get("rows", 0.0) + (time.perf_counter() - t0) * 1000
        return result

    def _store_search(self, key: Any, queries: list[Any]) -> list[Any]:
        """One store call for queries that queued together: a path search (one
        result list per query), or a read of rows by primary key (the rows of
        all the queries' keys in one query, handed back to each)."""
        if key[0] == "fetch":
            _, name, fields = key
            found = self.store.fetch(name, [pk for keys in queries for pk in keys], fields)
            return [{pk: found[pk] for pk in keys if pk in found} for keys in queries]
        _, name, path, depth, expression, fields = key
        return self.store.search(name, path, queries, limit=depth, expression=expression, output_fields=fields)

    def usage(self) -> EngineUsage:
        """What the loaded models and the store calls did since the engine started."""
        # Not under self._lock, which is held while a model loads (seconds):
        # copying the values is one step for CPython, safe beside an insert.
        encoder_sets = list(self._encoder_cache.values())
        models = sum((encoders.usage() for encoders in encoder_sets), ModelTally())
        batcher = self.path_searches
        return EngineUsage(
            query_encode_calls=models.query_calls,
            queries_encoded=models.queries,
            query_encode_seconds=models.query_seconds,
            document_encode_seconds=models.document_seconds,
            store_calls=batcher.calls,
            store_requests=batcher.searches,
        )

    def supervise_store(self) -> str | None:
        """For a liveness probe: why the store cannot be brought back, or None
        (a dead embedded Milvus Lite is restarted first)."""
        return self.store.supervise()

    def close(self) -> None:
        self._path_pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
