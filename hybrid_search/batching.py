"""Store-search batching: concurrent searches of one path share a Milvus call.

When several searches run side by side (the API with query micro-batching:
their query encodes come back together), each path's Milvus search of each
query would be a call of its own. Instead, searches that queue while a call
of their kind (key: collection, path, depth, filter, fields) is running go
together in its next call: one ``MilvusClient.search`` with all their
vectors (nq > 1). Calls of different keys run at the same time (a search's
three paths, a read of rows), each mostly waiting on Milvus. A search whose
key is free runs at once: nothing ever waits for company.

Results are the same as one call per query (Milvus answers each query of a
multi-query search on its own). If a shared call fails, each of its searches
is retried alone, so one bad query cannot fail the others.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["SearchBatcher"]

R = TypeVar("R")


class _Pending(Generic[R]):
    __slots__ = ("done", "error", "key", "query", "result")

    def __init__(self, key: Hashable, query: Any) -> None:
        self.key = key
        self.query = query
        self.result: R | None = None
        self.error: BaseException | None = None
        self.done = False


class SearchBatcher(Generic[R]):
    """``search(key, query)`` from many threads; ``run(key, queries)`` is called
    with the queries of one key that queued together (at most ``max_batch``)
    and returns one result per query, in order. One call per key runs at a
    time, in a calling thread; nothing runs in the background."""

    def __init__(self, run: Callable[[Hashable, list[Any]], Sequence[R]], *, max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        self._run_batch = run
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: deque[_Pending[R]] = deque()
        self._busy_keys: set[Hashable] = set()
        #: Calls made and the searches they carried (for tests and metrics).
        self.calls = 0
        self.searches = 0

    def search(self, key: Hashable, query: Any) -> R:
        item: _Pending[R] = _Pending(key, query)
        with self._cond:
            self._queue.append(item)
            while not item.done:
                if item.key in self._busy_keys:
                    self._cond.wait()
                else:
                    self._lead(item.key)
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    def _take_batch(self, key: Hashable) -> list[_Pending[R]]:
        """The queued searches with ``key``, oldest first, up to max_batch."""
        batch: list[_Pending[R]] = []
        kept: deque[_Pending[R]] = deque()
        while self._queue:
            item = self._queue.popleft()
            if item.key == key and len(batch) < self.max_batch:
                batch.append(item)
            else:
                kept.append(item)
        self._queue = kept
        return batch

    def _lead(self, key: Hashable) -> None:
        """Holding the condition with no call of ``key`` running: run one, hand out results."""
        self._busy_keys.add(key)
        batch = self._take_batch(key)
        self._cond.release()
        try:
            self._run(batch)
        finally:
            self._cond.acquire()
            self._busy_keys.discard(key)
            self.calls += 1
            self.searches += len(batch)
            self._cond.notify_all()

    def _run(self, batch: list[_Pending[R]]) -> None:
        try:
            results = self._run_batch(batch[0].key, [item.query for item in batch])
        except BaseException as error:  # noqa: BLE001 - handed to the callers below
            if len(batch) == 1:
                batch[0].error, batch[0].done = error, True
                return
            for item in batch:  # one call each: a failure is then the failing query's own
                self._run([item])
            return
        if len(results) != len(batch):
            error = RuntimeError(f"a store search of {len(batch)} queries answered {len(results)}")
            for item in batch:
                item.error, item.done = error, True
            return
        for item, result in zip(batch, results):
            item.result, item.done = result, True
