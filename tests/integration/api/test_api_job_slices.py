"""An oversized document is indexed in small batches, the model slot released
between them, so a search waiting for the slot gets it mid-document."""

from __future__ import annotations

import threading

import pytest

from hybrid_search import CollectionConfig, Engine, RuntimeConfig, StoreConfig
from hybrid_search.api import ApiSettings
from hybrid_search.api.jobs import _BATCH_CHUNKS, Job, records_work
from hybrid_search.api.services import Services

pytestmark = pytest.mark.integration


def test_a_long_document_yields_the_slot_between_batches(tmp_path):
    engine = Engine(StoreConfig(uri=str(tmp_path / "slices.db")), runtime=RuntimeConfig(device="cpu"))
    engine.create_collection(CollectionConfig(name="kb", dense=None, sparse=None))
    services = Services(ApiSettings(device="cpu", chunk_max_tokens=16, chunk_overlap_tokens=0), engine=engine)
    # one line, no sentence end: the chunker cuts it into many pieces
    text = " ".join(f"word{i}" for i in range(400))
    events: list[str] = []
    index = engine.index
    search_done = threading.Event()

    def search() -> None:
        with services.gate():
            events.append("search")
        search_done.set()

    def recording_index(name, chunks, **kwargs):
        chunks = list(chunks)
        events.append(f"index:{len(chunks)}")
        if events.count("search") == 0 and len([e for e in events if e.startswith("index")]) == 1:
            # a search arrives while the first batch holds the slot
            threading.Thread(target=search).start()
            while not services._gate._requests:
                threading.Event().wait(0.01)
        return index(name, chunks, **kwargs)

    engine.index = recording_index  # type: ignore[method-assign]
    job = Job(id="0" * 32, kind="records", collection="kb")
    records_work(services, "kb", [{"id": "long", "text": text}], chunk=True)(job, lambda: None)
    assert search_done.wait(10)

    batches = [int(e.split(":")[1]) for e in events if e.startswith("index")]
    assert len(batches) > 3 and all(size <= _BATCH_CHUNKS for size in batches)
    assert events[1] == "search"  # served right after the first batch, not after the document
    chunks = engine.get_document("kb", "long")
    assert [c.chunk_index for c in chunks] == list(range(sum(batches)))
    assert " ".join(c.text for c in chunks) == text
    assert job.chunks_written == sum(batches) and job.documents_indexed == 1

    # indexing a shorter version leaves exactly the new chunks
    engine.index = index  # type: ignore[method-assign]
    records_work(services, "kb", [{"id": "long", "text": " ".join(text.split()[:50])}], chunk=True)(job, lambda: None)
    assert " ".join(c.text for c in engine.get_document("kb", "long")) == " ".join(text.split()[:50])
    engine.close()
