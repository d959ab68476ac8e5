"""Concurrent searches, their query encodes micro-batched and their Milvus
searches sharing calls (nq > 1), give the hits that the same searches give one
after another (tiny real models, Milvus Lite)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from hybrid_search import (
    Chunk,
    CollectionConfig,
    DenseEncoderConfig,
    Engine,
    RuntimeConfig,
    SearchOptions,
    SparseEncoderConfig,
    StoreConfig,
)

pytestmark = pytest.mark.integration

TEXTS = [
    "The cat sat on the mat and watched the dog.",
    "Dogs chase cats around the garden every morning.",
    "Milvus is a vector database for retrieval at scale.",
    "Data center revenue grew as customers bought accelerated computing.",
    "Hybrid retrieval fuses keyword search with dense vector search.",
    "The weather today is sunny with a light wind from the west.",
    "A vector database stores dense and sparse vectors for search.",
    "Revenue and profit rose in the fourth quarter of the year.",
]
QUERIES = [
    "cat on a mat",
    "dogs in the garden",
    "vector database",
    "revenue growth",
    "hybrid keyword and dense search",
    "sunny weather",
    "sparse vectors",
    "profit in the fourth quarter of the year and data center revenue",
    "what does milvus store",
    "morning",
]


@pytest.fixture(scope="module")
def engine(tiny_models, tmp_path_factory):
    # A long wait for company, so concurrent queries do end up in shared batches.
    runtime = RuntimeConfig(device="cpu", query_batch_size=8, query_batch_wait_ms=50.0)
    engine = Engine(StoreConfig(uri=str(tmp_path_factory.mktemp("milvus") / "batching.db")), runtime=runtime)
    engine.create_collection(
        CollectionConfig(
            name="docs",
            dense=DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers"),
            sparse=SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"),
        )
    )
    engine.index("docs", [Chunk(doc_id=f"d{i}", chunk_index=0, text=text) for i, text in enumerate(TEXTS)])
    yield engine
    engine.close()


def hit_list(result):
    return [(hit.chunk_id, {path: score.rank for path, score in hit.paths.items()}) for hit in result.hits]


def test_concurrent_searches_give_exactly_the_sequential_hits(engine):
    options = SearchOptions(k=5)
    batcher = engine.encoders("docs").query_batcher
    assert batcher is not None
    sequential = {query: engine.search("docs", query, options) for query in QUERIES}
    assert batcher.batches == batcher.queries == len(QUERIES)  # one after another: each alone

    store_calls, store_searches = engine.path_searches.calls, engine.path_searches.searches
    # One after another, each query alone: a Milvus call per path, then one
    # reading the rows of its hits (candidate_rows.py).
    store_calls_per_query = 3 + 1
    assert store_calls == store_searches == store_calls_per_query * len(QUERIES)

    workload = QUERIES * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda q: (q, engine.search("docs", q, options)), workload))

    shared_calls = batcher.batches - len(QUERIES)
    assert shared_calls < len(workload), "no two concurrent queries were encoded together"
    # Each path's Milvus search took the vectors of the searches queued behind a
    # busy store in one call (nq > 1), and each read of rows their keys.
    assert engine.path_searches.searches - store_searches == store_calls_per_query * len(workload)
    assert engine.path_searches.calls - store_calls < store_calls_per_query * len(workload), "no two concurrent searches shared a Milvus call"
    for query, result in concurrent:
        expected = sequential[query]
        assert hit_list(result) == hit_list(expected), query
        for got, want in zip(result.hits, expected.hits):
            assert got.fused_score == pytest.approx(want.fused_score, abs=1e-6)
            for path in want.paths:
                assert got.paths[path].score == pytest.approx(want.paths[path].score, rel=1e-4, abs=1e-5)


def test_indexing_while_searching_keeps_both_correct(engine):
    """Document batches and query batches share the model without overlapping."""
    extra = [Chunk(doc_id=f"extra{i}", chunk_index=0, text=f"{TEXTS[i % len(TEXTS)]} number {i}") for i in range(24)]
    options = SearchOptions(k=3, paths=("dense", "sparse"))
    expected = engine.search("docs", QUERIES[0], options)

    def index() -> int:
        return sum(engine.index("docs", extra[start : start + 4]).chunks_written for start in range(0, len(extra), 4))

    with ThreadPoolExecutor(max_workers=6) as pool:
        written = pool.submit(index)
        results = list(pool.map(lambda q: engine.search("docs", q, options), [QUERIES[0]] * 20))
        assert written.result() == len(extra)
    assert all(r.hits for r in results)
    after = engine.search("docs", TEXTS[2] + " number 2", SearchOptions(k=1, paths=("dense",)))
    assert after.hits[0].doc_id == "extra2"
    assert expected.hits


def test_usage_counts_model_calls_queries_and_shared_store_calls(engine):
    batcher = engine.encoders("docs").query_batcher
    before = engine.usage()
    assert before.document_encode_seconds > 0, "the fixture's documents went through the model"
    assert (before.query_encode_calls, before.queries_encoded) == (batcher.batches, batcher.queries)
    workload = QUERIES * 2
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda q: engine.search("docs", q, SearchOptions(k=5)), workload))
    after = engine.usage()
    assert after.queries_encoded - before.queries_encoded == len(workload)
    assert 0 < after.query_encode_calls - before.query_encode_calls < len(workload), "the 50 ms wait formed batches"
    assert after.query_encode_seconds > before.query_encode_seconds
    # Three paths and a read of rows per search, some of them sharing a call.
    assert after.store_requests - before.store_requests == 4 * len(workload)
    assert after.store_calls - before.store_calls < 4 * len(workload)


def test_usage_without_batching_counts_one_call_per_query(tiny_models, tmp_path):
    runtime = RuntimeConfig(device="cpu", query_batch_size=1)
    with Engine(StoreConfig(uri=str(tmp_path / "alone.db")), runtime=runtime) as engine:
        engine.create_collection(
            CollectionConfig(
                name="docs",
                dense=DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers"),
                sparse=None,
            )
        )
        created = engine.usage()  # creating probes the model with a text
        engine.index("docs", [Chunk(doc_id=f"d{i}", chunk_index=0, text=text) for i, text in enumerate(TEXTS)])
        indexed = engine.usage()
        assert indexed.document_encode_seconds > created.document_encode_seconds and indexed.query_encode_calls == 0
        for query in QUERIES[:3]:
            engine.search("docs", query, SearchOptions(k=3))
        usage = engine.usage()
        assert (usage.query_encode_calls, usage.queries_encoded) == (3, 3)
        assert usage.query_encode_seconds > 0
        assert usage.document_encode_seconds == indexed.document_encode_seconds
        # bm25 and dense per search, then its rows: one call each, nothing shared.
        assert usage.store_calls == usage.store_requests == 3 * 3
