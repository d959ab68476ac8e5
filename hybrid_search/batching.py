"""Batching of concurrent searches: query encodes share a model call
(``QueryBatcher``), and store searches of one path share a Milvus call
(``SearchBatcher``).

Store searches: when several searches run side by side (the API with query micro-batching:
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
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

__all__ = ["EncodedTexts", "Outputs", "QueryBatcher", "SearchBatcher"]

# What an encoder set returns for a list of texts: dense rows and sparse
# vectors (vocabulary id -> weight), each None when the collection has no such path.
EncodedTexts = tuple[np.ndarray | None, list[dict[int, float]] | None]

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


# Which outputs a query asks for: (dense, sparse). Only queries asking for the
# same outputs share a model call.
Outputs = tuple[bool, bool]


class _PendingQuery:
    __slots__ = ("arrived", "done", "error", "outputs", "result", "texts")

    def __init__(self, texts: list[str], outputs: Outputs, arrived: float) -> None:
        self.texts = texts
        self.outputs = outputs
        self.arrived = arrived
        self.result: EncodedTexts | None = None
        self.error: BaseException | None = None
        self.done = False


class QueryBatcher:
    """Micro-batching of query encodes, safe to call from many threads.

    Queries that arrive while the model is busy queue up; when it frees, the
    queue (up to ``max_batch`` texts, oldest first, those asking for the same
    outputs as the oldest) goes through ``encode`` in one call and each caller
    gets its own rows back. A batch starts once it is
    full or once its oldest query has waited ``max_wait_s``: no query waits
    longer than that for company (waiting for the model itself is queueing,
    which batching shortens). Nothing runs in the background: the calling
    threads take turns driving the model.

    Other model work (document batches) goes through :meth:`exclusive` or
    :meth:`in_turns`, never at the same time as a query batch (tokenizers are
    not thread-safe). While searches are active, documents get at most
    ``documents_share`` of the wall time: a document turn that took D seconds
    is followed by D * (1 - share) / share seconds in which queries have the
    model (when it is due, the next document turn goes before any waiting
    query, so indexing keeps progressing under any search load). Searches are
    active until the model has gone ``idle_grace_s`` without a query queued or
    encoded; then documents get the whole model. Checking only "does a query
    wait right now" is not enough: under load the searches spend part of
    their time outside the model (store calls, responses, the next request),
    the queue is empty each time a batch has taken it, and documents took most
    of the model time, with every search queued behind a document batch.
    """

    def __init__(
        self,
        encode: Callable[[list[str], Outputs], EncodedTexts],
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.002,
        documents_share: float = 0.2,
        idle_grace_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0; got {max_wait_s}")
        if not 0.0 < documents_share <= 1.0:
            raise ValueError(f"documents_share must lie in (0, 1]; got {documents_share}")
        if idle_grace_s < 0:
            raise ValueError(f"idle_grace_s must be >= 0; got {idle_grace_s}")
        self._encode = encode
        self._pause_per_document_second = (1.0 - documents_share) / documents_share
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.idle_grace_s = idle_grace_s
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[_PendingQuery] = deque()
        self._busy = False
        self._exclusive_waiting = 0
        # While searches are active, no document turn starts before this time.
        self._documents_due_at = float("-inf")
        # The last time a query arrived or a query batch ended.
        self._last_query_at = float("-inf")
        #: Model calls made for queries, the queries they carried, and the
        #: model seconds of queries and of other work, through this batcher
        #: (its tests read them; Engine.usage() counts in EncoderSet._encode).
        self.batches = 0
        self.queries = 0
        self.query_seconds = 0.0
        self.document_seconds = 0.0

    def encode(self, texts: Sequence[str], outputs: Outputs = (True, True)) -> EncodedTexts:
        """Encode one caller's query texts, batched with whatever else is waiting."""
        item = _PendingQuery(list(texts), outputs, self._clock())
        with self._cond:
            self._queue.append(item)
            self._last_query_at = item.arrived
            self._cond.notify_all()  # a leader gathering a batch may now have a full one
            while not item.done:
                if self._busy or (self._exclusive_waiting and self._clock() >= self._documents_due_at):
                    self._cond.wait()
                else:
                    self._lead()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _queued_texts(self, outputs: Outputs) -> int:
        return sum(max(len(q.texts), 1) for q in self._queue if q.outputs == outputs)

    def _take_batch(self) -> list[_PendingQuery]:
        """The oldest query and, in arrival order, those asking for the same outputs, up to max_batch texts."""
        first = self._queue.popleft()
        batch, size, kept = [first], max(len(first.texts), 1), deque()
        while self._queue:
            item = self._queue.popleft()
            cost = max(len(item.texts), 1)
            if item.outputs == first.outputs and size + cost <= self.max_batch:
                batch.append(item)
                size += cost
            else:
                kept.append(item)
        self._queue = kept
        return batch

    def _lead(self) -> None:
        """Holding the condition with the model free: gather, run one batch, hand out rows."""
        self._busy = True
        oldest = self._queue[0]
        deadline = oldest.arrived + self.max_wait_s
        while self._queued_texts(oldest.outputs) < self.max_batch:
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        batch = self._take_batch()
        self._cond.release()
        started = self._clock()
        try:
            self._run(batch)
        finally:
            ended = self._clock()
            self._cond.acquire()
            self._busy = False
            # Its callers come back with their next searches shortly: they count
            # as active from the batch's end, not only from their arrival.
            self._last_query_at = max(self._last_query_at, ended)
            self.batches += 1
            self.queries += len(batch)
            self.query_seconds += ended - started
            self._cond.notify_all()

    def _run(self, batch: list[_PendingQuery]) -> None:
        texts = [text for item in batch for text in item.texts]
        try:
            dense, sparse = self._encode(texts, batch[0].outputs)
        except BaseException as error:  # noqa: BLE001 - every caller of the batch sees the failure
            for item in batch:
                item.error, item.done = error, True
            return
        start = 0
        for item in batch:
            end = start + len(item.texts)
            item.result = (
                dense[start:end] if dense is not None else None,
                sparse[start:end] if sparse is not None else None,
            )
            item.done = True
            start = end

    def _documents_wait(self) -> float | None:
        """Holding the condition: 0 when a document turn may start now, else
        how long at most before looking again (None: until woken)."""
        if self._busy:
            return None
        now = self._clock()
        if now >= self._documents_due_at:
            return 0.0
        if self._queue:
            return self._documents_due_at - now
        until_idle = self._last_query_at + self.idle_grace_s - now
        if until_idle <= 0:
            return 0.0  # no one is searching: documents get the whole model
        return min(until_idle, self._documents_due_at - now)

    def exclusive(self, work: Callable[[], EncodedTexts]) -> EncodedTexts:
        """Run other model work (a document turn) with the model to itself."""
        with self._cond:
            self._exclusive_waiting += 1
            try:
                while (wait := self._documents_wait()) != 0.0:
                    self._cond.wait(wait)
            finally:
                self._exclusive_waiting -= 1
            self._busy = True
        started = self._clock()
        try:
            return work()
        finally:
            ended = self._clock()
            with self._cond:
                self._busy = False
                self.document_seconds += ended - started
                self._documents_due_at = ended + (ended - started) * self._pause_per_document_second
                self._cond.notify_all()

    def _searches_active(self) -> bool:
        """Holding the condition: a query is queued or one was within idle_grace_s."""
        return bool(self._queue) or self._clock() < self._last_query_at + self.idle_grace_s

    def in_turns(self, texts: Sequence[str], work: Callable[[list[str]], EncodedTexts], *, per_turn: int) -> EncodedTexts:
        """``work`` over ``texts`` through :meth:`exclusive`, the rows joined
        in order: while searches are active in turns of ``per_turn`` texts, so
        a search waits behind one short turn, not a whole document batch;
        otherwise the rest in one call (batching pays, on a GPU most)."""
        if per_turn < 1:
            raise ValueError(f"per_turn must be >= 1; got {per_turn}")
        if not texts:
            return self.exclusive(lambda: work([]))
        parts: list[EncodedTexts] = []
        taken = 0

        def turn() -> EncodedTexts:
            # Sized when the turn starts, not when it began to wait for it.
            nonlocal taken
            with self._cond:
                size = per_turn if self._searches_active() else len(texts) - taken
            part = list(texts[taken : taken + size])
            taken += size
            return work(part)

        while taken < len(texts):
            parts.append(self.exclusive(turn))
        dense = [p[0] for p in parts]
        sparse = [p[1] for p in parts]
        return (
            None if any(d is None for d in dense) else np.concatenate(dense, axis=0),  # type: ignore[arg-type]
            None if any(s is None for s in sparse) else [row for part in sparse for row in part],  # type: ignore[union-attr]
        )
