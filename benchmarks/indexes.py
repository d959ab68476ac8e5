"""Index a BEIR set once per model configuration and reuse it.

Encoding is the expensive part (minutes to an hour per model on a small CPU),
so each (dataset, models, analyzer, BM25 parameters) combination is indexed
once into its own Milvus Lite file under the cache folder (``runs/index/``,
git-ignored) and reused by every condition, tuning run and conditions check.
A ``meta.json`` written only after a complete build marks the index reusable;
an interrupted build is dropped and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid_search import Engine, SchemaVersionError
from hybrid_search.backends import EXPORT_FORMAT
from hybrid_search.config import (
    AnalyzerConfig,
    CollectionConfig,
    DenseEncoderConfig,
    RerankConfig,
    RuntimeConfig,
    SparseEncoderConfig,
    StoreConfig,
    to_plain,
)

from .beir import CHUNK_LAYOUT, BeirDataset

__all__ = ["IndexSpec", "OpenedIndex", "open_index", "DEFAULT_CACHE"]

DEFAULT_CACHE = Path("runs")
COLLECTION = "beir"


# What a (backend, quantize) pair computes, versioned: bumped when that
# changes without a new export file, so that an index cached by the older
# rule is not reused. 2: OpenVINO computes f32 unless quantize is "bf16" (it
# had chosen bf16 itself on a CPU with native bf16).
BACKEND_RULES = 2


def _encoder_key(config: Any) -> dict[str, Any] | None:
    """An encoder's part of the cache key; torch fp32 (the default backend) is
    left out, so indexes cached before backends existed keep their keys. An
    exported backend adds the export format and :data:`BACKEND_RULES`."""
    plain = to_plain(config)
    if plain is None:
        return None
    if (plain.get("backend"), plain.get("quantize")) == ("torch", "none"):
        del plain["backend"], plain["quantize"]
    elif plain.get("backend") not in (None, "torch"):
        plain["export"] = {"format": EXPORT_FORMAT, "rules": BACKEND_RULES}
    return plain


@dataclass(frozen=True)
class IndexSpec:
    dataset: BeirDataset
    dense: DenseEncoderConfig | None
    sparse: SparseEncoderConfig | None
    analyzer: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    bm25_k1: float = 1.2
    bm25_b: float = 0.75

    def describe(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.name,
            "corpus_sha256": self.dataset.fingerprint(),
            "chunk_layout": CHUNK_LAYOUT,
            "dense": _encoder_key(self.dense),
            "sparse": _encoder_key(self.sparse),
            "analyzer": to_plain(self.analyzer),
            "bm25": {"k1": self.bm25_k1, "b": self.bm25_b},
        }

    def key(self) -> str:
        blob = json.dumps(self.describe(), sort_keys=True).encode("utf-8")
        return f"{re.sub(r'[^A-Za-z0-9_]+', '_', self.dataset.name)}-{hashlib.sha1(blob).hexdigest()[:12]}"

    def collection_config(self, name: str = COLLECTION) -> CollectionConfig:
        return CollectionConfig(
            name=name,
            dense=self.dense,
            sparse=self.sparse,
            analyzer=self.analyzer,
            bm25_k1=self.bm25_k1,
            bm25_b=self.bm25_b,
            description=f"benchmark index of {self.dataset.name}",
        )


@dataclass
class OpenedIndex:
    engine: Engine
    collection: str
    spec: IndexSpec
    uri: str
    folder: Path | None
    meta: dict[str, Any]
    reused: bool


def _log_default(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_index(
    spec: IndexSpec,
    *,
    cache: Path = DEFAULT_CACHE,
    runtime: RuntimeConfig | None = None,
    reranker: RerankConfig | None = None,
    store_uri: str | None = None,
    rebuild: bool = False,
    batch_size: int = 64,
    log: Callable[[str], None] = _log_default,
) -> OpenedIndex:
    """Open the cached index for ``spec``, building it first if needed.

    With ``store_uri`` (a Milvus server) the collection lives there, named after
    the cache key, and ``meta.json`` is still kept in the cache folder."""
    key = spec.key()
    folder = Path(cache) / "index" / key
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / ("meta.json" if store_uri is None else f"meta-{hashlib.sha1(store_uri.encode()).hexdigest()[:8]}.json")
    uri = store_uri or str(folder / "milvus.db")
    collection = COLLECTION if store_uri is None else f"bench_{key.replace('-', '_')}"
    engine = Engine(StoreConfig(uri=uri), runtime=runtime or RuntimeConfig(), reranker=reranker)
    config = spec.collection_config(collection)
    expected = sum(1 for _ in spec.dataset.chunks())
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if not rebuild and meta.get("complete") and engine.store.has_collection(collection):
        count = engine.store.count(collection)
        try:
            if count == expected:
                engine.open_collection(collection, expected=config)
                log(f"[index] reusing {uri} ({count} chunks, key {key})")
                return OpenedIndex(engine, collection, spec, uri, folder, meta, reused=True)
            log(f"[index] {uri} holds {count} chunks, expected {expected}: rebuilding")
        except SchemaVersionError:
            log(f"[index] {uri} was written with an older storage schema: rebuilding")
    if engine.store.has_collection(collection):
        engine.drop_collection(collection)
    meta_path.unlink(missing_ok=True)
    engine.create_collection(config)
    log(f"[index] building {key}: {expected} chunks into {uri} (paths: {', '.join(config.paths)})")
    done = 0
    last = started = time.perf_counter()

    def progress(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.perf_counter()
        if now - last > 30 or done == expected:
            last = now
            log(f"[index] {spec.dataset.name}: {done}/{expected} chunks, {done / (now - started):.1f} chunks/s")

    report = engine.index(collection, spec.dataset.chunks(), batch_size=batch_size, progress=progress)
    from .report import environment

    meta = {
        "complete": True,
        "key": key,
        "uri": uri,
        "collection": collection,
        "spec": spec.describe(),
        "chunks": report.chunks_written,
        "skipped_empty_documents": spec.dataset.empty_documents,
        "index_report": {
            "seconds": report.seconds,
            "encode_seconds": report.encode_seconds,
            "write_seconds": report.write_seconds,
            "chunks_per_second": report.chunks_per_second,
            "batch_size": batch_size,
        },
        "runtime": to_plain(engine.runtime),
        "device": engine.runtime.resolved_device(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment(),
    }
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    log(f"[index] built {key} in {report.seconds:.0f} s ({report.chunks_per_second:.1f} chunks/s)")
    return OpenedIndex(engine, collection, spec, uri, folder, meta, reused=False)
