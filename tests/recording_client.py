"""A stand-in for the store's MilvusClient that passes every call on and
records it, for tests that check which Milvus calls a search or a write makes."""

from __future__ import annotations

from typing import Any, NamedTuple


class MilvusCall(NamedTuple):
    method: str
    kwargs: dict[str, Any]


class RecordingClient:
    """Wraps a MilvusClient (``engine.store.client = RecordingClient(...)``)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[MilvusCall] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(MilvusCall(name, kwargs))
            return attribute(*args, **kwargs)

        return call

    @property
    def methods(self) -> list[str]:
        return [call.method for call in self.calls]
