"""Index batches: chunks in, rows encoded and written, batch after batch.

``Engine.index`` sends its input through three stages: *collecting* (the
caller's chunks validated and cut into batches; for the ingestion pipeline
this is where files are read and chunked), *encoding* (the models and the BM25
analysis turn a batch into rows) and *writing* (the Milvus upsert). Run
overlapped, each stage has its own thread and hands its batches on through a
queue one batch deep, so the encoder works on batch N while batch N-1 is
written and batch N+1 is collected (torch, the Rust tokenizers and the gRPC
client release the GIL); memory stays bounded by a few batches.

Either way the batches are written one at a time, in input order, and a
failure in any stage stops the stages before it; the batches ahead of the
failure are still written and then the error is raised in the caller's
thread. So an overlapped run writes exactly the rows a sequential run writes,
also when it fails, and what an interrupted run leaves is a prefix of the
batches, which the sync state (see ``indexers.sync``) completes on the next run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .types import Chunk

__all__ = ["write_batches"]

Rows = list[dict[str, Any]]

# How often a stage blocked on a queue looks whether the run was stopped.
_POLL_SECONDS = 0.05


class _End:
    """The input is exhausted: nothing follows."""


@dataclass
class _Failed:
    """A stage failed: raise ``error`` once what came before it is written."""

    error: BaseException


def _batches(chunks: Iterable[Chunk], batch_size: int, collect: Callable[[Chunk], None]) -> Iterator[list[Chunk]]:
    iterator = iter(chunks)
    try:
        batch: dict[tuple[str, int], Chunk] = {}
        for chunk in iterator:
            collect(chunk)
            batch[(chunk.doc_id, chunk.chunk_index)] = chunk  # a repeated chunk within one batch: the last one wins
            if len(batch) >= batch_size:
                items = list(batch.values())
                batch.clear()
                yield items
        if batch:
            yield list(batch.values())
    finally:
        # Close the caller's generator here, on the thread that ran it, so
        # whatever it holds (the pipeline's reader threads) ends with the run.
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def write_batches(
    chunks: Iterable[Chunk],
    *,
    batch_size: int,
    collect: Callable[[Chunk], None],
    encode: Callable[[list[Chunk]], Rows],
    write: Callable[[Rows], None],
    overlap: bool = True,
) -> None:
    """Cut ``chunks`` into batches of ``batch_size`` (``collect`` sees each chunk
    first), turn each into rows with ``encode`` and hand them to ``write``, in
    order. ``write`` runs on the caller's thread; with ``overlap``, collecting
    and encoding run on two threads of their own, one batch ahead each."""
    if not overlap or (isinstance(chunks, Sequence) and len(chunks) <= batch_size):
        # One batch has nothing to overlap with.
        for items in _batches(chunks, batch_size, collect):
            write(encode(items))
        return

    aborted = threading.Event()  # the writer failed or the caller was interrupted: all stop
    input_halted = threading.Event()  # the encoder failed: collecting stops
    to_encode: queue.Queue[list[Chunk] | _End | _Failed] = queue.Queue(maxsize=1)
    to_write: queue.Queue[Rows | _End | _Failed] = queue.Queue(maxsize=1)

    def put(target: queue.Queue[Any], item: Any, *stops: threading.Event) -> bool:
        while not any(stop.is_set() for stop in stops):
            try:
                target.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def take(source: queue.Queue[Any]) -> Any:
        while True:
            try:
                return source.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if aborted.is_set():
                    return _End()

    def collecting() -> None:
        batches = _batches(chunks, batch_size, collect)
        try:
            for items in batches:
                if not put(to_encode, items, aborted, input_halted):
                    return
            put(to_encode, _End(), aborted, input_halted)
        except BaseException as error:  # noqa: BLE001 - handed on, raised in the caller's thread
            put(to_encode, _Failed(error), aborted, input_halted)
        finally:
            batches.close()

    def encoding() -> None:
        try:
            while True:
                item = take(to_encode)
                if isinstance(item, (_End, _Failed)):
                    put(to_write, item, aborted)
                    return
                if not put(to_write, encode(item), aborted):
                    return
        except BaseException as error:  # noqa: BLE001 - handed on, raised in the caller's thread
            input_halted.set()
            put(to_write, _Failed(error), aborted)

    stages = [
        threading.Thread(target=collecting, name="index-collect", daemon=True),
        threading.Thread(target=encoding, name="index-encode", daemon=True),
    ]
    for stage in stages:
        stage.start()
    try:
        while True:
            try:
                item = to_write.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not any(stage.is_alive() for stage in stages) and to_write.empty():
                    raise RuntimeError("indexing stages ended without a result") from None
                continue
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.error
            write(item)
    finally:
        aborted.set()
        for stage in stages:
            stage.join()
