"""Milvus storage: schema, collections, manifest, writes and per-path search.

The same code runs on embedded Milvus Lite (a local ``.db`` file) and on a
Milvus Standalone/Distributed server (``http(s)://host:19530``); only the dense
index type differs, because Milvus Lite offers FLAT/IVF_FLAT/AUTOINDEX only.

Each collection records a manifest (schema version, encoders with dims,
analyzer, BM25 parameters, fusion defaults) in its description, so that any
client, on any machine, can check it is searching with compatible models.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigError,
    ManifestMismatchError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
)
from .types import RetrievalPath, chunk_id_for, doc_key_for, primary_key_for

__all__ = ["MilvusStore", "SCHEMA_VERSION", "validate_collection_name", "OUTPUT_FIELDS"]

# 2: the primary key is a digest of (doc id, position) and documents are found
# by a digest of their id (version 1 keyed rows by "doc_id#position", which
# broke on ids holding quotes or backslashes).
SCHEMA_VERSION = 2
log = logging.getLogger("hybrid_search.store")
T = TypeVar("T")
MANIFEST_FORMAT = "hybrid-search/collection"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_MAX_TEXT = 65535
_MAX_KEY = 64
_MAX_DOC_ID_BYTES = 16384  # MAX_DOC_ID_CHARS characters of up to 4 bytes
# "id" is not stored: rows read through this class carry it, rebuilt from
# doc_id and chunk_index (the chunk id users see, "doc_id#position").
OUTPUT_FIELDS = ["id", "doc_id", "chunk_index", "text", "title", "source", "page", "heading", "metadata"]
_PK = "pk"
# Keys per fetch query: far inside Milvus's 16384-row query window, and an
# expression of some 45 KB.
_FETCH_KEYS = 1024
_HEADING_SEPARATOR = " > "
# Reads that decide a write (which chunks a document has, a write lock, a
# setting) and deletes by filter (Milvus finds the rows to delete by a query
# first) see every write acknowledged before them. Collections keep pymilvus'
# default (Bounded) for searches and for reading the rows of their hits: a
# Milvus server may answer those from a snapshot up to a few seconds old, which
# a Strong read would wait out on every search. Milvus Lite sees every write at
# once either way.
_READ_LATEST = "Strong"
# Per Milvus Lite file: how many times this process changed its catalog
# (collections created or dropped, settings written). Milvus Lite locks its
# file to one process, so an unchanged count means nothing changed at all.
_catalog_changes: dict[str, int] = {}


def validate_collection_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"collection name {name!r} is not valid: use letters, digits and underscores, "
            "starting with a letter or underscore (at most 255 characters)"
        )


def _wrap(error: Exception, action: str) -> StoreError:
    text = str(error)
    if any(marker in text.lower() for marker in ("connect", "unavailable", "deadline", "failed to connect", "fail connecting")):
        return StoreUnavailableError(f"Milvus is unreachable while trying to {action}: {text}")
    return StoreError(f"Milvus failed to {action}: {text}")


# pymilvus pings every 10 s even on an idle channel; the Milvus Lite server keeps
# gRPC's default ping policy and answers the third idle ping with GOAWAY "too many
# pings", after which every client of that file in the process fails to reconnect.
# A local socket needs no keepalive, so Lite channels send none. Servers are left
# with pymilvus's defaults (their policy allows the pings).
LITE_GRPC_OPTIONS: dict[str, int] = {
    "grpc.keepalive_time_ms": 2**31 - 1,
    "grpc.keepalive_permit_without_calls": 0,
}


class MilvusStore:
    """A thin, typed layer over ``pymilvus.MilvusClient``."""

    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        db_name: str | None = None,
        timeout_s: float = 60.0,
        dense_index: str = "auto",
    ) -> None:
        self.uri = uri
        self.is_lite = "://" not in uri
        self.dense_index = ("FLAT" if self.is_lite else "HNSW") if dense_index == "auto" else dense_index
        self._aliases_supported: bool | None = None
        self.timeout_s = timeout_s
        # Milvus Lite serves one process through one local socket; serialise calls
        # from threads (the API server) so they never interleave on it.
        self._lock = threading.RLock()
        kwargs: dict[str, Any] = {"uri": uri, "timeout": timeout_s}
        if token:
            kwargs["token"] = token
        if db_name:
            kwargs["db_name"] = db_name
        if self.is_lite:
            kwargs["grpc_options"] = LITE_GRPC_OPTIONS
        self._client_kwargs = kwargs
        # Milvus Lite supervision: restarts of the child process, and why the
        # store cannot be brought back (None while it can).
        self.restarts = 0
        self.unrecoverable: str | None = None
        try:
            self.client = self._connect()
        except Exception as error:  # noqa: BLE001
            raise StoreUnavailableError(
                f"cannot open Milvus at {uri!r}: {error}. For Milvus Lite give a writable file path ending in .db; "
                "for a server give http(s)://host:19530 and check it is running"
            ) from error
        self._socket = self._lite_server_socket()
        self._catalog_key = str(Path(uri).absolute().resolve()) if self.is_lite else None

    # --- the catalog (collections and settings) -------------------------------------

    @property
    def catalog_version(self) -> int | None:
        """A number that changes whenever the collections or settings of a Milvus
        Lite file change, so what was read from them may be kept while it stays
        the same. None on a server, which other processes change too."""
        if self._catalog_key is None:
            return None
        return _catalog_changes.get(self._catalog_key, 0)

    def catalog_changed(self) -> None:
        """Record a change to the collections or settings (see catalog_version)."""
        if self._catalog_key is not None:
            with self._lock:
                _catalog_changes[self._catalog_key] = _catalog_changes.get(self._catalog_key, 0) + 1

    # --- supervision of the Milvus Lite child process ------------------------------

    def _call(self, action: str, operation: Callable[[], T]) -> T:
        """One client call under the lock. On Milvus Lite, a failure because the
        child process serving the file died restarts it on the same file and
        tries the call once more (every call here can be repeated safely:
        reads, and writes keyed by primary key)."""
        with self._lock:
            try:
                return operation()
            except Exception as error:  # noqa: BLE001
                if not self._revive():
                    raise _wrap(error, action) from error
            try:
                return operation()
            except Exception as error:  # noqa: BLE001
                raise _wrap(error, action) from error

    def _connect(self) -> Any:
        """A client of the store. pymilvus starts a Milvus Lite child, gives it
        0.5 s, then connects once without waiting for its socket: on a busy
        machine the socket may come later. Then wait for it while the child
        lives (up to ``timeout_s``) and connect again."""
        from pymilvus import MilvusClient

        try:
            return MilvusClient(**self._client_kwargs)
        except Exception:
            server = self._lite_server()
            if server is None or server._p is None:
                raise
            socket_path = server.uds_path.removeprefix("unix:")
            deadline = time.monotonic() + self.timeout_s
            while not os.path.exists(socket_path) and server._p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if not os.path.exists(socket_path):
                raise
        return MilvusClient(**self._client_kwargs)

    def _lite_server(self) -> Any:
        if not self.is_lite:
            return None
        from milvus_lite.server_manager import server_manager_instance

        return server_manager_instance._servers.get(str(Path(self.uri).absolute().resolve()))

    def _lite_server_socket(self) -> str | None:
        server = self._lite_server()
        return server.uds_path if server is not None else None

    def _revive(self) -> bool:
        """Reconnect if the Milvus Lite child is dead (starting a new one on the
        same file) or was replaced by another client of the file. Returns
        whether it reconnected; raises StoreUnavailableError if it cannot."""
        if not self.is_lite:
            return False
        from milvus_lite.server_manager import server_manager_instance

        server = self._lite_server()
        dead = server is None or server._p is None or server._p.poll() is not None
        if not dead and server.uds_path == self._socket:
            return False  # alive and ours: the failure was something else
        if dead:
            code = None if server is None or server._p is None else server._p.returncode
            log.error("the Milvus Lite process serving %s is gone (exit status %s): starting a new one", self.uri, code)
            if server is not None:
                server_manager_instance.release_server(self.uri)
            self.restarts += 1
        try:
            self.client.close()
        except Exception:  # noqa: BLE001, S110 - the old channel is dead anyway
            pass
        try:
            self.client = self._connect()
        except Exception as error:  # noqa: BLE001
            self.unrecoverable = f"Milvus Lite could not be restarted on {self.uri}: {error}"
            raise StoreUnavailableError(self.unrecoverable) from error
        self._socket = self._lite_server_socket()
        self.unrecoverable = None
        # While no process held the file, another one may have changed it.
        self.catalog_changed()
        return True

    def supervise(self) -> str | None:
        """For a liveness probe: restart a dead Milvus Lite child now (not only
        when the next request fails). Returns why the store cannot be brought
        back, or None. Never waits long for a busy store."""
        if not self.is_lite or not self._lock.acquire(timeout=2.0):
            return self.unrecoverable
        try:
            self._revive()
        except StoreUnavailableError:
            pass
        finally:
            self._lock.release()
        return self.unrecoverable

    # --- collections -------------------------------------------------------------

    def list_collections(self) -> list[str]:
        return sorted(self._call("list collections", lambda: self.client.list_collections(timeout=self.timeout_s)))

    def has_collection(self, name: str) -> bool:
        return bool(self._call(f"check collection {name!r}", lambda: self.client.has_collection(name, timeout=self.timeout_s)))

    def create_collection(
        self,
        name: str,
        manifest: dict[str, Any],
        *,
        dense_dim: int | None,
        with_sparse: bool,
        bm25_k1: float,
        bm25_b: float,
    ) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        validate_collection_name(name)
        if self.has_collection(name):
            raise CollectionExistsError(f"collection {name!r} exists already")
        description = json.dumps(manifest, sort_keys=True, ensure_ascii=False)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=description)
        schema.add_field(_PK, DataType.VARCHAR, is_primary=True, max_length=_MAX_KEY)
        schema.add_field("doc_key", DataType.VARCHAR, max_length=_MAX_KEY)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=_MAX_DOC_ID_BYTES)
        schema.add_field("chunk_index", DataType.INT64)
        schema.add_field("text", DataType.VARCHAR, max_length=_MAX_TEXT)
        schema.add_field(
            "bm25_text", DataType.VARCHAR, max_length=_MAX_TEXT, enable_analyzer=True, analyzer_params={"tokenizer": "whitespace"}
        )
        schema.add_field("title", DataType.VARCHAR, max_length=2048)
        schema.add_field("source", DataType.VARCHAR, max_length=4096)
        # -1 stands for "no page" so that page filters stay plain integer comparisons.
        schema.add_field("page", DataType.INT64)
        schema.add_field("heading", DataType.VARCHAR, max_length=4096)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("bm25", DataType.SPARSE_FLOAT_VECTOR)
        if with_sparse:
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        if dense_dim is not None:
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dense_dim)
        schema.add_function(
            Function(name="bm25_terms", function_type=FunctionType.BM25, input_field_names=["bm25_text"], output_field_names=["bm25"])
        )
        index_params = self.client.prepare_index_params()
        index_params.add_index(
            "bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": bm25_k1, "bm25_b": bm25_b}
        )
        if with_sparse:
            index_params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        if dense_dim is not None:
            dense_params = {
                "HNSW": {"M": 16, "efConstruction": 200},
                "IVF_FLAT": {"nlist": 1024},
                "FLAT": {},
                "DISKANN": {},
                "AUTOINDEX": {},
            }[self.dense_index]
            index_params.add_index("dense", index_type=self.dense_index, metric_type="IP", params=dense_params)
        try:
            self._call(
                f"create collection {name!r}",
                lambda: self.client.create_collection(name, schema=schema, index_params=index_params, timeout=self.timeout_s),
            )
        except StoreError:
            # pymilvus creates, then indexes, then loads: a later step that
            # fails leaves a collection that takes rows but cannot be searched.
            self.discard(name)
            raise
        finally:
            self.catalog_changed()

    def discard(self, name: str) -> None:
        """Drop what a failed creation left behind (best effort: the error that
        made it fail is the one worth reporting)."""
        with self._lock:
            try:
                if self.client.has_collection(name, timeout=self.timeout_s):
                    self.client.drop_collection(name, timeout=self.timeout_s)
            except Exception:  # noqa: BLE001, S110
                pass
        self.catalog_changed()

    def is_complete(self, name: str) -> bool:
        """Whether the collection has its BM25 index (a creation that failed
        half-way, before this version cleaned up, left one without)."""
        return "bm25" in self._call(f"list indexes of {name!r}", lambda: self.client.list_indexes(name, timeout=self.timeout_s))

    def drop_collection(self, name: str) -> None:
        self.require(name)
        try:
            self._call(f"drop collection {name!r}", lambda: self.client.drop_collection(name, timeout=self.timeout_s))
        finally:
            self.catalog_changed()

    def require(self, name: str) -> None:
        """Raise CollectionNotFoundError (naming the collections there are)
        unless ``name`` is a collection here."""
        validate_collection_name(name)
        if not self.has_collection(name):
            existing = self.list_collections()
            hint = f"; collections here: {', '.join(existing)}" if existing else "; there are no collections yet"
            raise CollectionNotFoundError(f"no collection {name!r} at {self.uri}{hint}")

    def manifest(self, name: str) -> dict[str, Any]:
        self.require(name)
        description = self._call(
            f"describe collection {name!r}", lambda: self.client.describe_collection(name, timeout=self.timeout_s).get("description", "")
        )
        try:
            manifest = json.loads(description)
        except (TypeError, json.JSONDecodeError):
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ManifestMismatchError(f"collection {name!r} was not created by hybrid-search (no manifest found)")
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise SchemaVersionError(
                f"collection {name!r} has schema version {manifest.get('schema_version')}, this hybrid-search reads "
                f"version {SCHEMA_VERSION} (version 2 stores document ids so that any text works as an id): re-index "
                f"it into a new collection (`hybrid-search index ... --collection NEW`), or drop it with "
                f"`hybrid-search collections drop {name}` and index again"
            )
        return manifest

    def count(self, name: str) -> int:
        self.require(name)
        rows = self._call(
            f"count rows of {name!r}",
            lambda: self.client.query(
                name, filter="", output_fields=["count(*)"], timeout=self.timeout_s, consistency_level=_READ_LATEST
            ),
        )
        return int(rows[0]["count(*)"]) if rows else 0

    # --- rows ----------------------------------------------------------------------

    @staticmethod
    def make_row(
        chunk: Any, bm25_text: str, dense: Sequence[float] | None, sparse: dict[int, float] | None
    ) -> dict[str, Any]:
        from .types import Chunk

        assert isinstance(chunk, Chunk)
        metadata = dict(chunk.metadata)
        if chunk.char_start is not None:
            metadata["_char_start"] = chunk.char_start
            metadata["_char_end"] = chunk.char_end
        row: dict[str, Any] = {
            "doc_id": chunk.doc_id,
            "chunk_index": chunk.chunk_index,
            "text": chunk.text,
            "bm25_text": bm25_text,
            "title": chunk.title,
            "source": chunk.source,
            "page": chunk.page if chunk.page is not None else -1,
            "heading": _HEADING_SEPARATOR.join(chunk.heading_path),
            "metadata": metadata,
        }
        if dense is not None:
            row["dense"] = [float(x) for x in dense]
        if sparse is not None:
            row["sparse"] = sparse
        return row

    def upsert(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        rows = [_keyed(row) for row in rows]
        # An upsert by primary key can be repeated: retrying after a restart is safe.
        self._call(f"write {len(rows)} chunks to {name!r}", lambda: self.client.upsert(name, rows, timeout=self.timeout_s))

    def delete_where(self, name: str, expression: str) -> int:
        result = self._call(
            f"delete from {name!r}",
            lambda: self.client.delete(name, filter=expression, timeout=self.timeout_s, consistency_level=_READ_LATEST),
        )
        # Milvus Lite answers with the deleted ids, a server with a count.
        if isinstance(result, list):
            return len(result)
        if isinstance(result, dict):
            return int(result.get("delete_count", 0))
        return int(getattr(result, "delete_count", 0) or 0)

    def query(self, name: str, expression: str, fields: Sequence[str], limit: int | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "filter": expression,
            "output_fields": _stored_fields(fields),
            "timeout": self.timeout_s,
            "consistency_level": _READ_LATEST,
        }
        if limit is not None:
            kwargs["limit"] = limit
        rows = list(self._call(f"query {name!r}", lambda: self.client.query(name, **kwargs)))
        return [_with_chunk_id(row) for row in rows]

    def fetch(self, name: str, keys: Sequence[str], fields: Sequence[str] = OUTPUT_FIELDS) -> dict[str, dict[str, Any]]:
        """The rows with these primary keys (``types.primary_key_for``), as
        {key: row}; a key with no row (deleted since it was found) is absent.
        One ``pk in [...]`` query per ``_FETCH_KEYS`` keys: the keys are
        digests (hex, a dot, digits), safe to write into an expression."""
        stored = _stored_fields(fields)
        wanted = stored if _PK in stored else [*stored, _PK]
        unique = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(unique), _FETCH_KEYS):
            part = unique[start : start + _FETCH_KEYS]
            expression = f"{_PK} in [" + ",".join(f'"{key}"' for key in part) + "]"
            rows = self._call(
                f"read {len(part)} chunks of {name!r}",
                lambda expression=expression: self.client.query(name, filter=expression, output_fields=wanted, timeout=self.timeout_s),
            )
            for row in rows:
                key = row[_PK] if _PK in fields else row.pop(_PK)
                found[key] = _with_chunk_id(row)
        return found

    def iterate(self, name: str, expression: str, fields: Sequence[str], batch_size: int = 1000) -> Iterator[dict[str, Any]]:
        """All chunk rows matching ``expression``, in pages ordered by primary key
        (no 16k query-window limit).

        Paging is done here over the digest primary key, whose alphabet needs no
        escaping: pymilvus's ``query_iterator`` writes the last key it saw into
        an expression unescaped."""
        stored = _stored_fields(fields)
        wanted = stored if _PK in stored else [*stored, _PK]
        last: str | None = None
        while True:
            parts = [f"({expression})"] if expression else []
            if last is not None:
                parts.append(f'{_PK} > "{last}"')
            expression_now = " and ".join(parts)
            page = list(
                self._call(
                    f"iterate over {name!r}",
                    lambda page_filter=expression_now: self.client.query(
                        name,
                        filter=page_filter,
                        output_fields=wanted,
                        limit=batch_size,
                        timeout=self.timeout_s,
                        consistency_level=_READ_LATEST,
                    ),
                )
            )
            if not page:
                return
            page.sort(key=lambda row: row[_PK])
            last = page[-1][_PK]
            for row in page:
                if _PK not in fields:
                    row.pop(_PK, None)
                yield _with_chunk_id(row)
            if len(page) < batch_size:
                return

    def search(
        self,
        name: str,
        path: RetrievalPath,
        queries: list[Any],
        *,
        limit: int,
        expression: str = "",
        output_fields: Sequence[str] = OUTPUT_FIELDS,
    ) -> list[list[tuple[dict[str, Any], float]]]:
        """One path's candidates for each query: ([(row, score)], best first)."""
        field = {"bm25": "bm25", "sparse": "sparse", "dense": "dense"}[path]
        fields = _stored_fields([*output_fields, "id"])
        params: dict[str, Any] = {"metric_type": "BM25" if path == "bm25" else "IP", "params": {}}
        if path == "dense" and self.dense_index == "HNSW":
            params["params"] = {"ef": max(64, limit)}
        elif path == "dense" and self.dense_index == "IVF_FLAT":
            params["params"] = {"nprobe": 64}
        results = self._call(
            f"search {name!r} ({path})",
            lambda: self.client.search(
                name,
                data=queries,
                anns_field=field,
                limit=limit,
                filter=expression,
                output_fields=fields,
                search_params=params,
                timeout=self.timeout_s,
            ),
        )
        # pymilvus's Hit is a dict whose item lookup falls back to the entity on
        # a miss; plain dict lookups skip that (a tenth of a k=100 search). The
        # entity dicts are this result's own: no copy is needed.
        entity, distance = dict.__getitem__, "distance"
        return [[(_with_chunk_id(entity(hit, "entity")), float(entity(hit, distance))) for hit in hits] for hits in results]

    # --- aliases (servers only: Milvus Lite 2.5 does not implement them) ---------

    @property
    def supports_aliases(self) -> bool:
        """Milvus servers have aliases; Milvus Lite (a file, or one served over
        TCP) answers UNIMPLEMENTED. Probed once, not on every request."""
        if self._aliases_supported is None:
            if self.is_lite:
                self._aliases_supported = False
            else:
                with self._lock:
                    try:
                        self.client.list_aliases(timeout=self.timeout_s)
                        self._aliases_supported = True
                    except Exception as error:  # noqa: BLE001
                        self._aliases_supported = "UNIMPLEMENTED" not in str(error).upper()
        return self._aliases_supported

    def set_alias(self, alias: str, collection: str) -> None:
        with self._lock:
            try:
                if self.alias_target(alias) is None:
                    self.client.create_alias(collection, alias, timeout=self.timeout_s)
                else:
                    self.client.alter_alias(collection, alias, timeout=self.timeout_s)
            except Exception as error:  # noqa: BLE001
                raise _wrap(error, f"point alias {alias!r} at {collection!r}") from error

    def drop_alias(self, alias: str) -> None:
        with self._lock:
            try:
                self.client.drop_alias(alias, timeout=self.timeout_s)
            except Exception as error:  # noqa: BLE001
                raise _wrap(error, f"drop alias {alias!r}") from error

    def alias_target(self, alias: str) -> str | None:
        with self._lock:
            try:
                return self.client.describe_alias(alias, timeout=self.timeout_s).get("collection_name")
            except Exception:  # noqa: BLE001 - describe_alias raises for an unknown alias
                return None

    def list_aliases(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for name in self.list_collections():
            with self._lock:
                try:
                    aliases = self.client.list_aliases(name, timeout=self.timeout_s).get("aliases", [])
                except Exception as error:  # noqa: BLE001
                    raise _wrap(error, f"list aliases of {name!r}") from error
            found.update({alias: name for alias in aliases})
        return found

    def close(self) -> None:
        with self._lock:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


def _stored_fields(fields: Sequence[str]) -> list[str]:
    """The stored fields to read for ``fields``: the chunk id is rebuilt from
    doc_id and chunk_index, so asking for "id" reads those two."""
    stored = [f for f in fields if f != "id"]
    if "id" in fields:
        stored += [f for f in ("doc_id", "chunk_index") if f not in stored]
    return stored


def _with_chunk_id(row: dict[str, Any]) -> dict[str, Any]:
    """Chunk rows carry their chunk id whenever they hold its two parts."""
    if "doc_id" in row and "chunk_index" in row:
        row["id"] = chunk_id_for(row["doc_id"], int(row["chunk_index"]))
    return row


def _keyed(row: dict[str, Any]) -> dict[str, Any]:
    """A chunk row as stored: keys derived from (doc_id, chunk_index), the chunk
    id (read back, never stored) left out. Other rows pass unchanged."""
    if "doc_id" not in row or "chunk_index" not in row:
        return row
    keyed = {f: v for f, v in row.items() if f != "id"}
    keyed[_PK] = primary_key_for(row["doc_id"], int(row["chunk_index"]))
    keyed["doc_key"] = doc_key_for(row["doc_id"])
    return keyed


def heading_path_from_row(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(_HEADING_SEPARATOR) if part) if value else ()
