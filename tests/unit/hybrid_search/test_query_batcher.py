"""QueryBatcher: the batching logic with a fake encoder (no model)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from hybrid_search.batching import QueryBatcher

pytestmark = pytest.mark.unit


class FakeEncoder:
    """Rows that name their text, so each caller can check it got its own; can
    hold a call until released, to make 'the model is busy' deterministic."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.lock = threading.Lock()
        self.active = 0
        self.overlapped = False

    def __call__(self, texts: list[str], outputs=(True, True)):
        with self.lock:
            self.active += 1
            self.overlapped |= self.active > 1
            self.calls.append(list(texts))
        self.entered.set()
        self.release.wait(10)
        with self.lock:
            self.active -= 1
        dense = np.array([[float(len(t)), float(hash(t) % 1000)] for t in texts], dtype=np.float32).reshape(len(texts), 2)
        sparse = [{len(t): 1.0} for t in texts]
        return dense, sparse


def expected_row(text: str) -> list[float]:
    return [float(len(text)), float(hash(text) % 1000)]


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


def run_in_threads(batcher: QueryBatcher, queries: list[list[str]]) -> tuple[list[threading.Thread], dict[int, object]]:
    results: dict[int, object] = {}

    def call(i: int, texts: list[str]) -> None:
        try:
            results[i] = batcher.encode(texts)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[i] = error

    threads = [threading.Thread(target=call, args=(i, texts)) for i, texts in enumerate(queries)]
    return threads, results


def test_a_lone_query_is_encoded_alone_and_gets_its_rows():
    fake = FakeEncoder()
    batcher = QueryBatcher(fake, max_batch=8, max_wait_s=0.0)
    dense, sparse = batcher.encode(["hello world"])
    assert fake.calls == [["hello world"]]
    assert dense.tolist() == [expected_row("hello world")]
    assert sparse == [{11: 1.0}]


def test_queries_arriving_while_the_model_is_busy_share_one_call():
    fake = FakeEncoder(hold_first=True)
    batcher = QueryBatcher(fake, max_batch=32, max_wait_s=0.0)
    first, _ = run_in_threads(batcher, [["first"]])
    first[0].start()
    assert fake.entered.wait(10)
    texts = [[f"query {i}" * (i + 1)] for i in range(6)]
    threads, results = run_in_threads(batcher, texts)
    for thread in threads:
        thread.start()
    wait_until(lambda: len(batcher._queue) == 6)
    fake.release.set()
    for thread in first + threads:
        thread.join(10)
    assert fake.calls[0] == ["first"]
    assert len(fake.calls) == 2 and sorted(fake.calls[1]) == sorted(t[0] for t in texts)
    for i, (query,) in enumerate(texts):
        dense, sparse = results[i]
        assert dense.tolist() == [expected_row(query)] and sparse == [{len(query): 1.0}]
    assert not fake.overlapped
    assert (batcher.batches, batcher.queries) == (2, 7)


def test_a_batch_never_holds_more_than_max_batch_texts():
    fake = FakeEncoder(hold_first=True)
    batcher = QueryBatcher(fake, max_batch=3, max_wait_s=0.0)
    first, _ = run_in_threads(batcher, [["first"]])
    first[0].start()
    assert fake.entered.wait(10)
    queries = [[f"q{i}"] for i in range(7)] + [["a", "b"], ["c", "d", "e", "f"]]
    threads, results = run_in_threads(batcher, queries)
    for thread in threads:
        thread.start()
    wait_until(lambda: len(batcher._queue) == len(queries))
    fake.release.set()
    for thread in first + threads:
        thread.join(10)
    # A caller with more texts than max_batch still goes through, alone.
    assert all(len(call) <= 3 or len(call) == 4 and call == ["c", "d", "e", "f"] for call in fake.calls)
    assert sorted(t for call in fake.calls for t in call) == sorted(["first"] + [t for q in queries for t in q])
    assert results[7][0].tolist() == [expected_row("a"), expected_row("b")]
    assert results[8][1] == [{1: 1.0}] * 4


def test_an_idle_model_waits_up_to_max_wait_for_company():
    fake = FakeEncoder()
    batcher = QueryBatcher(fake, max_batch=32, max_wait_s=1.0)
    threads, _ = run_in_threads(batcher, [["one"], ["two"]])
    threads[0].start()
    wait_until(lambda: len(batcher._queue) == 1)
    threads[1].start()
    for thread in threads:
        thread.join(10)
    assert fake.calls == [["one", "two"]]


def test_a_full_batch_starts_without_waiting_out_max_wait():
    fake = FakeEncoder()
    batcher = QueryBatcher(fake, max_batch=2, max_wait_s=60.0)
    threads, _ = run_in_threads(batcher, [["one"], ["two"]])
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert time.monotonic() - started < 30
    assert len(fake.calls) == 1 and sorted(fake.calls[0]) == ["one", "two"]


def test_no_query_waits_longer_than_max_wait_for_company():
    fake = FakeEncoder()
    batcher = QueryBatcher(fake, max_batch=32, max_wait_s=0.05)
    started = time.monotonic()
    batcher.encode(["alone"])
    # Bounded by max_wait (plus scheduling slack), not by max_batch ever filling up.
    assert time.monotonic() - started < 5.0
    assert fake.calls == [["alone"]]


def test_an_encoder_failure_reaches_every_caller_of_the_batch_and_the_next_batch_works():
    calls = []
    gate = threading.Event()

    def failing(texts, outputs):
        calls.append(list(texts))
        if len(calls) == 1:
            gate.wait(10)
            return np.zeros((len(texts), 1), dtype=np.float32), None
        if len(calls) == 2:
            raise RuntimeError("model broke")
        return np.ones((len(texts), 1), dtype=np.float32), None

    batcher = QueryBatcher(failing, max_batch=8, max_wait_s=0.0)
    first, _ = run_in_threads(batcher, [["first"]])
    first[0].start()
    wait_until(lambda: len(calls) == 1)
    threads, results = run_in_threads(batcher, [["a"], ["b"]])
    for thread in threads:
        thread.start()
    wait_until(lambda: len(batcher._queue) == 2)
    gate.set()
    for thread in first + threads:
        thread.join(10)
    assert all(isinstance(results[i], RuntimeError) for i in (0, 1))
    dense, sparse = batcher.encode(["again"])
    assert dense.tolist() == [[1.0]] and sparse is None


class FakeClock:
    """Model time: each query batch takes 1 s, each document batch 2 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("share, queries_between", [(0.5, 2), (0.4, 3)])
def test_document_work_never_overlaps_queries_and_gets_its_share_of_model_time(share, queries_between):
    order: list[str] = []
    clock = FakeClock()
    fake = FakeEncoder(hold_first=True)

    def encode(texts, outputs):
        order.append("queries")
        result = fake(texts)
        clock.now += 1.0
        return result

    def documents():
        with fake.lock:
            fake.overlapped |= fake.active > 0
        order.append("documents")
        clock.now += 2.0
        return np.zeros((1, 2), dtype=np.float32), None

    batcher = QueryBatcher(encode, max_batch=1, max_wait_s=0.0, documents_share=share, clock=clock)
    first, _ = run_in_threads(batcher, [["first"]])
    first[0].start()
    assert fake.entered.wait(10)
    # Nothing owed to queries yet: the waiting document batch goes right after the running query batch.
    documents_threads = [threading.Thread(target=lambda: batcher.exclusive(documents)) for _ in range(2)]
    documents_threads[0].start()
    wait_until(lambda: batcher._exclusive_waiting == 1)
    threads, _ = run_in_threads(batcher, [[f"later {i}"] for i in range(queries_between + 1)])
    for queued, thread in enumerate(threads, start=1):
        thread.start()
        wait_until(lambda queued=queued: len(batcher._queue) == queued)
    documents_threads[1].start()
    wait_until(lambda: batcher._exclusive_waiting == 2)
    fake.release.set()
    for thread in first + threads + documents_threads:
        thread.join(10)
    # 2 s of documents buy 2 * (1 - share) / share seconds of queries (1 s each) before the next document batch.
    assert order == ["queries", "documents"] + ["queries"] * queries_between + ["documents", "queries"]
    assert not fake.overlapped


def test_document_work_goes_at_once_when_no_query_waits():
    fake = FakeEncoder()
    batcher = QueryBatcher(fake, max_batch=4, max_wait_s=0.0, documents_share=0.01)
    assert batcher.exclusive(lambda: (None, [{}])) == (None, [{}])


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="max_batch"):
        QueryBatcher(FakeEncoder(), max_batch=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        QueryBatcher(FakeEncoder(), max_wait_s=-1)
    for share in (0.0, 1.5):
        with pytest.raises(ValueError, match="documents_share"):
            QueryBatcher(FakeEncoder(), documents_share=share)


def test_only_queries_asking_for_the_same_outputs_share_a_call():
    fake = FakeEncoder(hold_first=True)
    seen: list[tuple[list[str], tuple[bool, bool]]] = []

    def encode(texts, outputs):
        seen.append((list(texts), outputs))
        dense, sparse = fake(texts)
        return (dense if outputs[0] else None), (sparse if outputs[1] else None)

    batcher = QueryBatcher(encode, max_batch=32, max_wait_s=0.0)
    first, _ = run_in_threads(batcher, [["first"]])
    first[0].start()
    assert fake.entered.wait(10)
    results: dict[str, object] = {}
    asks = [("d1", (True, False)), ("s1", (False, True)), ("d2", (True, False)), ("b1", (True, True))]
    threads = [threading.Thread(target=lambda t=t, o=o: results.__setitem__(t, batcher.encode([t], o))) for t, o in asks]
    for queued, thread in enumerate(threads, start=1):
        thread.start()
        wait_until(lambda queued=queued: len(batcher._queue) == queued)  # arrival order is the list's order
    fake.release.set()
    for thread in first + threads:
        thread.join(10)
    assert seen[1:] == [(["d1", "d2"], (True, False)), (["s1"], (False, True)), (["b1"], (True, True))]
    assert results["d1"][1] is None and results["d1"][0].tolist() == [expected_row("d1")]
    assert results["s1"][0] is None and results["s1"][1] == [{2: 1.0}]


def _document_work(order: list[str], clock: FakeClock, seconds: float, label: str = "documents"):
    def work():
        order.append(label)
        clock.now += seconds
        return np.zeros((1, 2), dtype=np.float32), [{}]

    return work


def _query_encoder(order: list[str], clock: FakeClock, seconds: float = 0.1):
    fake = FakeEncoder()

    def encode(texts, outputs):
        order.append("queries")
        clock.now += seconds
        return fake(texts)

    return encode


def test_documents_keep_to_their_share_while_searches_are_active_even_with_no_query_queued():
    # Under load the searches spend part of their time outside the model: the
    # queue is empty right after each batch, yet the searches are still active.
    order: list[str] = []
    clock = FakeClock()
    batcher = QueryBatcher(_query_encoder(order, clock), max_batch=8, max_wait_s=0.0, documents_share=0.5, idle_grace_s=10.0, clock=clock)
    batcher.encode(["first"])  # t 0 -> 0.1
    batcher.exclusive(_document_work(order, clock, 0.2))  # t 0.1 -> 0.3: the next turn is due at 0.5
    second = threading.Thread(target=lambda: batcher.exclusive(_document_work(order, clock, 0.2)))
    second.start()
    wait_until(lambda: batcher._exclusive_waiting == 1)
    time.sleep(0.05)
    assert order == ["queries", "documents"]  # no query queued, but one was answered just now
    batcher.encode(["next"])  # not due yet: the query goes first
    assert order == ["queries", "documents", "queries"]
    clock.now = 0.51  # the turn is due (0.3 + 0.2 * (1 - share) / share)
    with batcher._cond:
        batcher._cond.notify_all()
    second.join(10)
    assert order == ["queries", "documents", "queries", "documents"]
    assert batcher.document_seconds == pytest.approx(0.4) and batcher.query_seconds == pytest.approx(0.2)


def test_documents_get_the_whole_model_once_searches_have_gone_quiet():
    order: list[str] = []
    clock = FakeClock()
    batcher = QueryBatcher(_query_encoder(order, clock), max_batch=8, max_wait_s=0.0, documents_share=0.01, idle_grace_s=0.5, clock=clock)
    batcher.encode(["only"])  # t 0 -> 0.1
    batcher.exclusive(_document_work(order, clock, 1.0))  # the next turn would be due 99 s later ...
    clock.now += 0.5  # ... but no query for idle_grace_s: no one is searching
    batcher.exclusive(_document_work(order, clock, 1.0))
    assert order == ["queries", "documents", "documents"]


def test_document_batches_go_in_turns_that_let_queries_in_between_and_keep_their_rows_in_order():
    order: list[str] = []
    clock = FakeClock()
    batcher = QueryBatcher(_query_encoder(order, clock), max_batch=8, max_wait_s=0.0, documents_share=0.5, idle_grace_s=100.0, clock=clock)
    entered, release = threading.Event(), threading.Event()

    def documents(texts):
        order.append("documents " + ",".join(texts))
        if texts == ["d0", "d1"]:
            entered.set()
            release.wait(10)
        clock.now += 1.0
        return np.array([[float(t[1:])] for t in texts], dtype=np.float32), [{int(t[1:]): 1.0} for t in texts]

    batcher.encode(["earlier search"])  # searches are active: documents go in turns
    result: list = []
    indexing = threading.Thread(target=lambda: result.append(batcher.in_turns(["d0", "d1", "d2", "d3", "d4"], documents, per_turn=2)))
    indexing.start()
    assert entered.wait(10)
    search = threading.Thread(target=lambda: batcher.encode(["query"]))
    search.start()
    wait_until(lambda: len(batcher._queue) == 1)
    release.set()
    search.join(10)
    wait_until(lambda: batcher._exclusive_waiting == 1)
    clock.now += 100.0
    with batcher._cond:
        batcher._cond.notify_all()
    indexing.join(10)
    # Searches went quiet (no query for idle_grace_s): the rest goes in one call.
    assert order == ["queries", "documents d0,d1", "queries", "documents d2,d3,d4"]
    dense, sparse = result[0]
    assert dense.tolist() == [[0.0], [1.0], [2.0], [3.0], [4.0]]
    assert sparse == [{0: 1.0}, {1: 1.0}, {2: 1.0}, {3: 1.0}, {4: 1.0}]
    with pytest.raises(ValueError, match="per_turn"):
        batcher.in_turns(["x"], documents, per_turn=0)


def test_with_no_search_active_a_document_batch_goes_in_one_call():
    order: list[str] = []
    clock = FakeClock()
    # share 1.0: no pause after a document turn, so only activity decides the turn size.
    batcher = QueryBatcher(_query_encoder(order, clock), max_batch=8, max_wait_s=0.0, documents_share=1.0, idle_grace_s=1.5, clock=clock)
    calls: list[list[str]] = []

    def documents(texts):
        calls.append(texts)
        clock.now += 1.0
        return np.zeros((len(texts), 1), dtype=np.float32), [{} for _ in texts]

    batcher.in_turns(["d0", "d1", "d2"], documents, per_turn=1)
    assert calls == [["d0", "d1", "d2"]]
    batcher.encode(["query"])  # t 1.0 -> 1.1: searches are active until 2.6
    calls.clear()
    dense, sparse = batcher.in_turns(["d3", "d4", "d5", "d6"], documents, per_turn=1)
    # Turns start at 1.1 and 2.1 (active: one text each), then at 3.1 (quiet: the rest at once).
    assert calls == [["d3"], ["d4"], ["d5", "d6"]]
    assert dense.shape == (4, 1) and len(sparse) == 4
