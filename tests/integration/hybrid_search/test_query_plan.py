"""What Engine.search runs is what its plan says: only the paths that count are
encoded and searched, and the collection name is resolved once per query."""

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from hybrid_search import Chunk, CollectionConfig, Engine, FusionConfig, RuntimeConfig, SearchOptions, StoreConfig

pytestmark = pytest.mark.integration

TEXTS = [
    ("cats", "The cat sat on the mat and watched the dog."),
    ("dogs", "Dogs chase cats around the garden every morning."),
    ("milvus", "Milvus is a vector database for retrieval at scale."),
    ("revenue", "Data center revenue grew as customers bought accelerated computing."),
    ("retrieval", "Hybrid retrieval fuses keyword search with dense vector search."),
    ("weather", "The weather today is sunny with a light wind from the west."),
]


@pytest.fixture(scope="module", autouse=True)
def indexed(m3_engine, st_engine):
    chunks = [Chunk(doc_id=d, chunk_index=0, text=t) for d, t in TEXTS]
    m3_engine.index("m3", chunks)
    st_engine.index("st", chunks)


def record_calls(monkeypatch: pytest.MonkeyPatch, target: Any, method: str) -> list[tuple[tuple, dict]]:
    """Replace ``target.method`` by a wrapper that records each call's arguments."""
    calls: list[tuple[tuple, dict]] = []
    original: Callable[..., Any] = getattr(target, method)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(target, method, recorded)
    return calls


@pytest.mark.parametrize(
    "paths, encoded",
    [
        (("dense",), {"dense": 1, "sparse": 0}),
        (("sparse",), {"dense": 0, "sparse": 1}),
        (("bm25",), {"dense": 0, "sparse": 0}),
        (("bm25", "dense"), {"dense": 1, "sparse": 0}),
        (None, {"dense": 1, "sparse": 1}),
    ],
)
def test_only_the_running_paths_encoders_are_called(st_engine, monkeypatch, paths, encoded):
    encoders = st_engine.encoders("st")
    calls = {name: record_calls(monkeypatch, getattr(encoders, name), "encode_queries") for name in ("dense", "sparse")}
    result = st_engine.search("st", "cat garden", SearchOptions(k=3, paths=paths))
    assert {name: len(made) for name, made in calls.items()} == encoded
    assert result.paths == (paths or ("bm25", "sparse", "dense"))
    assert ("encode" in result.timings_ms) == any(encoded.values())


@pytest.mark.parametrize("paths, heads", [(("sparse",), (False, True)), (("dense",), (True, False)), (None, (True, True))])
def test_one_bge_m3_pass_serves_what_the_query_needs(m3_engine, monkeypatch, paths, heads):
    # Dense and sparse come from one BGE-M3 model: one forward pass either way,
    # asking only for the output heads of the paths that run.
    m3 = m3_engine.encoders("m3").shared_m3
    assert m3 is not None
    calls = record_calls(monkeypatch, m3, "encode")
    m3_engine.search("m3", "vector database", SearchOptions(k=3, paths=paths))
    assert [(kwargs["dense"], kwargs["sparse"]) for _, kwargs in calls] == [heads]


def test_zero_weight_paths_are_not_encoded_searched_or_fused(st_engine, monkeypatch):
    # The case: a tuned default keeps BM25 and gives the dropped paths
    # weight 0; run anyway, weighted fusion let their candidates in at the floor.
    query = "cats dog garden"
    bm25 = st_engine.search("st", query, SearchOptions(k=50, paths=("bm25",), rerank=False))
    dense_alone = st_engine.search("st", query, SearchOptions(k=50, paths=("dense",), rerank=False))
    bm25_ids = [hit.chunk_id for hit in bm25.hits]
    assert {hit.chunk_id for hit in dense_alone.hits} - set(bm25_ids)  # dense would add candidates

    st_engine.set_fusion_defaults("st", FusionConfig(method="weighted", weights={"bm25": 1.0, "sparse": 0.0, "dense": 0.0}))
    try:
        encoders = st_engine.encoders("st")
        encoder_calls = [record_calls(monkeypatch, encoders.dense, "encode_queries"), record_calls(monkeypatch, encoders.sparse, "encode_queries")]
        searches = record_calls(monkeypatch, st_engine.store, "search")
        result = st_engine.search("st", query, SearchOptions(k=50))
        # The same through an explicit request of two paths, one given weight 0 by the query.
        asked = st_engine.search("st", query, SearchOptions(k=50, paths=("bm25", "dense"), fusion_method="weighted", weights={"dense": 0.0}))
    finally:
        st_engine.set_fusion_defaults("st", FusionConfig())
    assert encoder_calls == [[], []]
    assert [args[1] for args, _ in searches] == ["bm25", "bm25"]
    for served in (result, asked):
        assert served.paths == ("bm25",) and served.fusion == "none"
        assert [hit.chunk_id for hit in served.hits] == bm25_ids
        assert all(set(hit.paths) == {"bm25"} for hit in served.hits)
    assert result.plan is not None and dict(result.plan.skipped) == {"sparse": "fusion weight 0", "dense": "fusion weight 0"}
    assert asked.plan is not None and dict(asked.plan.skipped) == {"dense": "fusion weight 0"}


def test_the_alias_is_resolved_once_per_query(tiny_models, tmp_path, monkeypatch):
    engine = Engine(StoreConfig(uri=str(tmp_path / "alias.db")), runtime=RuntimeConfig(device="cpu"))
    try:
        engine.create_collection(CollectionConfig(name="kb_v1", dense=None, sparse=None))
        engine.index("kb_v1", [Chunk("doc", 0, "a note about cats")])
        engine.switch_alias("kb", "kb_v1")
        engine.search("kb", "cats")  # opens the collection (manifest, tuned fusion) once per engine
        store_calls: Counter[str] = Counter()
        for method in ("query", "has_collection", "alias_target", "manifest", "count", "search"):
            original = getattr(engine.store, method)
            monkeypatch.setattr(engine.store, method, lambda *a, _m=method, _o=original, **k: (store_calls.update([_m]), _o(*a, **k))[1])
        resolves = record_calls(monkeypatch, engine, "resolve")
        result = engine.search("kb", "cats")
    finally:
        engine.close()
    assert result.collection == "kb_v1" and result.hits
    assert result.plan is not None and (result.plan.requested, result.plan.collection) == ("kb", "kb_v1")
    assert len(resolves) == 1
    # Milvus Lite has no aliases (a settings row says where one points), but its
    # file is this process's alone: the alias resolved by the first query holds
    # until the catalog changes, so the one bm25 search is all that is asked;
    # no manifest read after the first query.
    assert store_calls == Counter({"search": 1})
