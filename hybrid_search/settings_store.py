"""Mutable per-collection settings (tuned fusion defaults, the serving version),
kept in Milvus itself so every client of a deployment sees the same values.

A collection's manifest is written once at creation (in its description);
Milvus Lite 2.5 implements neither ``alter_collection_properties`` nor aliases,
so values that change later live in one small internal collection instead.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .errors import StoreError

if TYPE_CHECKING:
    from .store import MilvusStore

__all__ = ["SettingsStore", "SETTINGS_COLLECTION"]

SETTINGS_COLLECTION = "hybrid_search_settings"


def _key(collection: str, name: str) -> str:
    return f"{collection}/{name}"


def _key_expression(collection: str, name: str) -> str:
    escaped = _key(collection, name).replace("\\", "\\\\").replace('"', '\\"')
    return f'key == "{escaped}"'


class SettingsStore:
    def __init__(self, store: MilvusStore) -> None:
        self.store = store
        self._ready = False

    @staticmethod
    def is_internal(collection: str) -> bool:
        return collection == SETTINGS_COLLECTION

    def _ensure(self) -> None:
        if self._ready:
            return
        from pymilvus import DataType, MilvusClient

        with self.store._lock:
            client = self.store.client
            try:
                if not client.has_collection(SETTINGS_COLLECTION, timeout=self.store.timeout_s):
                    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description="hybrid-search settings")
                    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=1024)
                    schema.add_field("collection", DataType.VARCHAR, max_length=512)
                    schema.add_field("value", DataType.VARCHAR, max_length=65535)
                    # Milvus requires a vector field in every collection; this one is unused.
                    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
                    index_params = client.prepare_index_params()
                    index_params.add_index("unused", index_type="FLAT", metric_type="L2")
                    client.create_collection(SETTINGS_COLLECTION, schema=schema, index_params=index_params, timeout=self.store.timeout_s)
            except Exception as error:  # noqa: BLE001
                raise StoreError(f"Milvus failed to prepare the settings collection: {error}") from error
            finally:
                self.store.catalog_changed()
        self._ready = True

    def get(self, collection: str, name: str) -> Any:
        if not self._ready and not self.store.has_collection(SETTINGS_COLLECTION):
            return None
        self._ensure()
        rows = self.store.query(SETTINGS_COLLECTION, _key_expression(collection, name), ["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def put(self, collection: str, name: str, value: Any) -> None:
        self._ensure()
        try:
            self.store.upsert(
                SETTINGS_COLLECTION,
                [{"key": _key(collection, name), "collection": collection, "value": json.dumps(value), "unused": [0.0, 0.0]}],
            )
        finally:
            self.store.catalog_changed()

    def delete(self, collection: str, name: str) -> None:
        if not self._ready and not self.store.has_collection(SETTINGS_COLLECTION):
            return
        self._ensure()
        try:
            self.store.delete_where(SETTINGS_COLLECTION, _key_expression(collection, name))
        finally:
            self.store.catalog_changed()

    def all_named(self, name: str) -> dict[str, Any]:
        """{collection: value} for every collection that has setting ``name``."""
        if not self._ready and not self.store.has_collection(SETTINGS_COLLECTION):
            return {}
        self._ensure()
        suffix = "/" + name
        rows = self.store.query(SETTINGS_COLLECTION, "", ["key", "collection", "value"], limit=16384)
        return {row["collection"]: json.loads(row["value"]) for row in rows if row["key"].endswith(suffix)}

    def delete_all(self, collection: str) -> None:
        if not self._ready and not self.store.has_collection(SETTINGS_COLLECTION):
            return
        self._ensure()
        escaped = collection.replace("\\", "\\\\").replace('"', '\\"')
        try:
            self.store.delete_where(SETTINGS_COLLECTION, f'collection == "{escaped}"')
        finally:
            self.store.catalog_changed()
