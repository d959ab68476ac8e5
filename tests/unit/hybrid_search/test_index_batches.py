"""The indexing stages (collect, encode, write) with fake encode and write
steps: the overlapped run writes the batches a sequential run writes, in the
same order, also when a stage fails; the stages really overlap; the input is
read at most a few batches ahead of the writes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from hybrid_search.errors import InputError, StoreError
from hybrid_search.index_batches import write_batches
from hybrid_search.types import Chunk

pytestmark = pytest.mark.unit

BATCH = 4


def _chunks(n: int, docs: int = 5) -> list[Chunk]:
    return [Chunk(doc_id=f"d{i % docs}", chunk_index=i // docs, text=f"text {i}") for i in range(n)]


class Run:
    """Records what each stage saw; ``fail_*`` makes a stage raise at a batch."""

    def __init__(self, *, fail_encode_at: int | None = None, fail_write_at: int | None = None) -> None:
        self.collected: list[str] = []
        self.encoded: list[list[str]] = []
        self.written: list[list[str]] = []
        self.fail_encode_at, self.fail_write_at = fail_encode_at, fail_write_at
        self.threads: set[str] = set()

    def collect(self, chunk: Chunk) -> None:
        self.collected.append(chunk.id)

    def encode(self, items: list[Chunk]) -> list[dict]:
        if len(self.encoded) == self.fail_encode_at:
            raise InputError(f"encoder failed at batch {self.fail_encode_at}")
        self.encoded.append([c.id for c in items])
        return [{"id": c.id} for c in items]

    def write(self, rows: list[dict]) -> None:
        self.threads.add(threading.current_thread().name)
        if len(self.written) == self.fail_write_at:
            raise StoreError(f"write failed at batch {self.fail_write_at}")
        self.written.append([r["id"] for r in rows])

    def go(self, chunks, *, overlap: bool) -> None:
        write_batches(chunks, batch_size=BATCH, collect=self.collect, encode=self.encode, write=self.write, overlap=overlap)


def _generator(chunks: list[Chunk], taken: list[int], closed: list[bool], fail_at: int | None = None) -> Iterator[Chunk]:
    try:
        for i, chunk in enumerate(chunks):
            if i == fail_at:
                raise InputError(f"bad chunk {i}")
            taken.append(i)
            yield chunk
    finally:
        closed.append(True)


@pytest.mark.parametrize("n", [0, 1, BATCH, BATCH + 1, 10 * BATCH + 3])
def test_overlapped_writes_the_batches_of_a_sequential_run_in_order(n):
    sequential, overlapped = Run(), Run()
    sequential.go(_chunks(n), overlap=False)
    overlapped.go(iter(_chunks(n)), overlap=True)
    assert overlapped.written == sequential.written
    assert [i for batch in overlapped.written for i in batch] == [c.id for c in _chunks(n)]
    if n > BATCH:
        assert overlapped.threads == {threading.current_thread().name}, "writes run on the caller's thread"


def test_a_repeated_chunk_within_a_batch_is_written_once_the_last_one_winning():
    chunks = [Chunk("a", 0, "old"), Chunk("b", 0, "b"), Chunk("a", 0, "new")]
    written: list[list[dict]] = []
    write_batches(
        iter(chunks), batch_size=3, collect=lambda c: None, encode=lambda items: [{"text": c.text} for c in items], write=written.append
    )
    assert written == [[{"text": "new"}, {"text": "b"}]]


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("stage", ["encode", "write"])
def test_a_failing_stage_stops_the_run_after_the_batches_before_it(overlap, stage):
    run = Run(fail_encode_at=3) if stage == "encode" else Run(fail_write_at=3)
    taken: list[int] = []
    closed: list[bool] = []
    error = InputError if stage == "encode" else StoreError
    with pytest.raises(error, match="failed at batch 3"):
        run.go(_generator(_chunks(40 * BATCH), taken, closed), overlap=overlap)
    assert run.written == [[c.id for c in _chunks(40 * BATCH)[b * BATCH : (b + 1) * BATCH]] for b in range(3)]
    assert closed == [True], "the input generator is closed by the time the error is raised"
    # The input stops a few batches past the failure, not at its end.
    assert len(taken) <= 8 * BATCH


@pytest.mark.parametrize("overlap", [False, True])
def test_a_failing_input_is_raised_after_the_full_batches_before_it_are_written(overlap):
    run = Run()
    closed: list[bool] = []
    with pytest.raises(InputError, match="bad chunk 10"):
        run.go(_generator(_chunks(20), [], closed, fail_at=10), overlap=overlap)
    # As in a sequential run: the two full batches, not the partial third one.
    assert run.written == [[c.id for c in _chunks(20)[b * BATCH : (b + 1) * BATCH]] for b in range(2)]
    assert closed == [True]


def test_encoding_overlaps_writing_and_collecting_runs_ahead():
    """The first write waits until the encoder has finished the second batch:
    a sequential run would deadlock here (the timeout fails the test)."""
    second_encoded = threading.Event()
    encoded: list[int] = []

    def encode(items: list[Chunk]) -> list[dict]:
        encoded.append(len(encoded))
        if len(encoded) == 2:
            second_encoded.set()
        return [{"id": c.id} for c in items]

    written: list[int] = []

    def write(rows: list[dict]) -> None:
        if not written:
            assert second_encoded.wait(timeout=10), "batch 2 was not encoded while batch 1 was being written"
        written.append(len(rows))

    write_batches(iter(_chunks(5 * BATCH)), batch_size=BATCH, collect=lambda c: None, encode=encode, write=write)
    assert written == [BATCH] * 5


def test_memory_stays_bounded_while_the_writer_is_slow():
    """With the writer held on its first batch, the input is read a few
    batches ahead and then waits."""
    taken: list[int] = []
    release = threading.Event()
    held: list[int] = []

    def write(rows: list[dict]) -> None:
        if not held:
            held.append(len(taken))
            release.wait(timeout=0.5)  # the other stages fill their queues meanwhile
            held.append(len(taken))

    write_batches(
        _generator(_chunks(100 * BATCH), taken, []),
        batch_size=BATCH,
        collect=lambda c: None,
        encode=lambda items: [{"id": c.id} for c in items],
        write=write,
    )
    # Being written: 1; encoded, queued: 1; being encoded or waiting: 1;
    # collected, queued: 1; being collected: 1 -> at most 5 batches taken.
    assert held[1] <= 5 * BATCH
    assert len(taken) == 100 * BATCH


def test_an_interrupt_in_the_caller_stops_the_stages():
    taken: list[int] = []
    closed: list[bool] = []

    def write(rows: list[dict]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_batches(
            _generator(_chunks(100 * BATCH), taken, closed),
            batch_size=BATCH,
            collect=lambda c: None,
            encode=lambda items: [{"id": c.id} for c in items],
            write=write,
        )
    assert closed == [True] and len(taken) <= 5 * BATCH
    assert not [t for t in threading.enumerate() if t.name.startswith("index-")], "the stage threads ended"
