"""SearchBatcher: searches that queue behind a busy call of their key share
one call, each caller gets its own result, nothing waits when its key is
free (other keys' calls run at the same time), and a failing shared call is
retried query by query."""

from __future__ import annotations

import threading
import time

import pytest

from hybrid_search.batching import SearchBatcher

pytestmark = pytest.mark.unit


class FakeStore:
    """Answers each query with (key, query); can hold its first call until
    released, to make 'the store is busy' deterministic."""

    def __init__(self, *, hold_first: bool = False, bad: object = None) -> None:
        self.calls: list[tuple[object, list[object]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.bad = bad
        self.lock = threading.Lock()
        self.active = 0
        self.overlapped = False

    def __call__(self, key, queries):
        with self.lock:
            self.active += 1
            self.overlapped |= self.active > 1
            self.calls.append((key, list(queries)))
        self.entered.set()
        self.release.wait(10)
        with self.lock:
            self.active -= 1
        if self.bad in queries:
            raise ValueError(f"bad query {self.bad!r}")
        return [(key, q) for q in queries]


def _wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


def _search_in_threads(batcher: SearchBatcher, requests: list[tuple[object, object]]):
    results: dict[int, object] = {}

    def call(i: int, key, query) -> None:
        try:
            results[i] = batcher.search(key, query)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[i] = error

    threads = [threading.Thread(target=call, args=(i, key, query)) for i, (key, query) in enumerate(requests)]
    for thread in threads:
        thread.start()
    return threads, results


def test_a_lone_search_runs_at_once_as_one_call():
    store = FakeStore()
    batcher = SearchBatcher(store)
    assert batcher.search("bm25", "cats") == ("bm25", "cats")
    assert store.calls == [("bm25", ["cats"])]


def test_searches_queued_behind_a_busy_key_share_one_call_and_other_keys_run_at_once():
    store = FakeStore(hold_first=True)
    batcher = SearchBatcher(store, max_batch=3)
    first, first_result = _search_in_threads(batcher, [("bm25", "q0")])
    assert store.entered.wait(10)
    queued = [("bm25", "q1"), ("dense", "d1"), ("bm25", "q2"), ("bm25", "q3"), ("bm25", "q4")]
    threads, results = _search_in_threads(batcher, queued)
    # The bm25 searches wait for the bm25 call; the dense one is in the store beside it.
    _wait_until(lambda: len(batcher._queue) == 4 and len(store.calls) == 2)
    assert store.calls[1] == ("dense", ["d1"]) and store.overlapped
    store.release.set()
    for thread in [*first, *threads]:
        thread.join(10)
    assert first_result[0] == ("bm25", "q0")
    assert results == {i: request for i, request in enumerate(queued)}  # every caller its own answer
    # At most max_batch per call, arrival order kept.
    assert store.calls[2:] == [("bm25", ["q1", "q2", "q3"]), ("bm25", ["q4"])]
    assert (batcher.calls, batcher.searches) == (4, 6)


def test_one_call_per_key_at_a_time():
    store = FakeStore()
    batcher = SearchBatcher(store, max_batch=2)
    threads, results = _search_in_threads(batcher, [("bm25", f"q{i}") for i in range(12)])
    for thread in threads:
        thread.join(10)
    assert results == {i: ("bm25", f"q{i}") for i in range(12)}
    assert not store.overlapped
    assert all(len(queries) <= 2 for _, queries in store.calls)


def test_max_batch_one_makes_one_call_per_search():
    store = FakeStore(hold_first=True)
    batcher = SearchBatcher(store, max_batch=1)
    first, _ = _search_in_threads(batcher, [("bm25", "q0")])
    assert store.entered.wait(10)
    threads, results = _search_in_threads(batcher, [("bm25", "q1"), ("bm25", "q2")])
    _wait_until(lambda: len(batcher._queue) == 2)
    store.release.set()
    for thread in [*first, *threads]:
        thread.join(10)
    assert [len(queries) for _, queries in store.calls] == [1, 1, 1]
    assert results == {0: ("bm25", "q1"), 1: ("bm25", "q2")}


def test_a_failing_shared_call_is_retried_alone_so_only_the_bad_query_fails():
    store = FakeStore(hold_first=True, bad="boom")
    batcher = SearchBatcher(store)
    first, _ = _search_in_threads(batcher, [("bm25", "q0")])
    assert store.entered.wait(10)
    threads, results = _search_in_threads(batcher, [("bm25", "q1"), ("bm25", "boom"), ("bm25", "q2")])
    _wait_until(lambda: len(batcher._queue) == 3)
    store.release.set()
    for thread in [*first, *threads]:
        thread.join(10)
    assert results[0] == ("bm25", "q1") and results[2] == ("bm25", "q2")
    assert isinstance(results[1], ValueError) and "boom" in str(results[1])
    assert store.calls[1:] == [("bm25", ["q1", "boom", "q2"]), ("bm25", ["q1"]), ("bm25", ["boom"]), ("bm25", ["q2"])]


def test_a_short_answer_fails_its_callers_instead_of_hanging():
    batcher = SearchBatcher(lambda key, queries: [])
    with pytest.raises(RuntimeError, match="1 queries answered 0"):
        batcher.search("bm25", "cats")


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="max_batch"):
        SearchBatcher(lambda key, queries: [], max_batch=0)
