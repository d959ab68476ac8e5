"""FairGate: slots go to waiters in arrival order, requests before background
batches, so an indexing loop that releases and re-acquires cannot starve
waiting searches, and searches cannot starve indexing either."""

from __future__ import annotations

import threading
import time

import pytest

from hybrid_search.api.services import FairGate

pytestmark = pytest.mark.unit


def test_slots_and_timeout():
    gate = FairGate(2)
    assert gate.acquire(0) and gate.acquire(0)
    started = time.monotonic()
    assert not gate.acquire(timeout=0.05)
    assert time.monotonic() - started >= 0.04
    gate.release()
    assert gate.acquire(0)


def test_a_releasing_thread_cannot_barge_ahead_of_waiters():
    gate = FairGate(1)
    assert gate.acquire()
    order: list[str] = []
    waiting = threading.Event()

    def search() -> None:
        waiting.set()
        assert gate.acquire(timeout=5)
        order.append("search")
        gate.release()

    thread = threading.Thread(target=search)
    thread.start()
    waiting.wait(5)
    time.sleep(0.05)  # the search is queued now
    gate.release()  # the "job" releases ...
    assert gate.acquire(timeout=5)  # ... and re-acquires at once: it must queue behind the search
    order.append("job")
    gate.release()
    thread.join(5)
    assert order == ["search", "job"]


def test_fifo_among_many_waiters():
    gate = FairGate(1)
    assert gate.acquire()
    order: list[int] = []
    threads = []
    for i in range(5):
        thread = threading.Thread(target=lambda i=i: (gate.acquire(timeout=5), order.append(i), gate.release()))
        thread.start()
        threads.append(thread)
        time.sleep(0.03)  # arrive in index order
    gate.release()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_requests_go_before_background_but_background_is_not_starved():
    gate = FairGate(1, background_every=2)
    assert gate.acquire()
    order: list[str] = []

    def wait(label: str, background: bool) -> threading.Thread:
        def run() -> None:
            assert gate.acquire(timeout=5, background=background)
            order.append(label)
            gate.release()

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.03)
        return thread

    threads = [wait("index-1", True), wait("search-1", False), wait("search-2", False), wait("search-3", False), wait("index-2", True)]
    gate.release()
    for thread in threads:
        thread.join(5)
    # Two searches go ahead of the waiting batch, then the batch, then the rest.
    assert order == ["search-1", "search-2", "index-1", "search-3", "index-2"]


def test_background_timeout_leaves_the_queue():
    gate = FairGate(1)
    assert gate.acquire()
    assert not gate.acquire(timeout=0.02, background=True)
    gate.release()
    assert gate.acquire(0)
