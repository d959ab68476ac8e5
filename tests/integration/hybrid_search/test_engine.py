"""Index and search end to end on Milvus Lite with tiny real models."""

import math

import pytest
from rank_bm25 import BM25Okapi

from hybrid_search import (
    Chunk,
    CollectionConfig,
    CollectionExistsError,
    CollectionNotFoundError,
    DenseEncoderConfig,
    Engine,
    FilterCondition,
    InputError,
    ManifestMismatchError,
    ModelLoadError,
    RerankConfig,
    RuntimeConfig,
    SearchOptions,
    SparseEncoderConfig,
    StoreConfig,
)
from hybrid_search.store import SCHEMA_VERSION

pytestmark = pytest.mark.integration

CORPUS = [
    ("cats", "Cats", "The cat sat on the mat and watched the dog."),
    ("dogs", "Dogs", "Dogs chase cats around the garden every morning."),
    ("milvus", "Milvus", "Milvus is a vector database for retrieval at scale."),
    ("revenue", "Revenue", "Data center revenue grew as customers bought accelerated computing."),
    ("retrieval", "Retrieval", "Hybrid retrieval fuses keyword search with dense vector search."),
    ("zh-db", "数据库", "向量数据库支持稠密向量和稀疏向量的检索。"),
    ("zh-model", "模型", "检索模型把文本变成向量。"),
    ("quotes", 'He said "hi"', 'A title with "quotes" and a back\\slash in the text.'),
]



def corpus_chunks(source="corpus.jsonl"):
    return [
        Chunk(doc_id=doc_id, chunk_index=0, text=text, title=title, source=source, page=i + 1, metadata={"lang": "zh" if doc_id.startswith("zh") else "en", "n": i})
        for i, (doc_id, title, text) in enumerate(CORPUS)
    ]


@pytest.fixture(scope="module", autouse=True)
def indexed(m3_engine, st_engine):
    m3_engine.index("m3", corpus_chunks())
    st_engine.index("st", corpus_chunks())


@pytest.mark.parametrize("engine_name, collection", [("m3_engine", "m3"), ("st_engine", "st")])
def test_every_path_returns_explained_hits(request, engine_name, collection):
    engine = request.getfixturevalue(engine_name)
    # the document's own text: identical embedding (cosine 1) and the best BM25 match
    result = engine.search(collection, CORPUS[0][2], SearchOptions(k=3))
    assert result.paths == ("bm25", "sparse", "dense")
    top = result.hits[0]
    assert top.doc_id == "cats"
    assert set(top.paths) == {"bm25", "sparse", "dense"}
    assert top.paths["bm25"].rank == 1 and top.paths["dense"].rank == 1
    assert top.paths["dense"].score == pytest.approx(1.0, abs=0.03)
    assert top.fused_score > 0 and top.rerank_score is None
    assert top.page == 1 and top.title == "Cats" and top.metadata["lang"] == "en"
    assert "cat" in top.matched_terms
    assert set(result.timings_ms) >= {"encode", "bm25", "sparse", "dense", "fusion", "total"}
    for rank, hit in enumerate(result.hits, start=1):
        assert hit.rank == rank
    assert [h.fused_score for h in result.hits] == sorted((h.fused_score for h in result.hits), reverse=True)
    # the default (adaptive) fusion: scores in [0, 1], each hit shows the query's weights
    assert result.fusion == "adaptive" and result.fusion_weights == top.fusion_weights
    assert sum(top.fusion_weights.values()) == pytest.approx(1.0)
    assert all(0.0 <= h.fused_score <= 1.0 for h in result.hits)


def test_highlight_off_returns_the_same_hits_without_matched_terms_or_snippets(m3_engine):
    query = CORPUS[0][2]
    lit = m3_engine.search("m3", query, SearchOptions(k=3, paths=("bm25",)))
    plain = m3_engine.search("m3", query, SearchOptions(k=3, paths=("bm25",), highlight=False))
    assert [h.chunk_id for h in plain.hits] == [h.chunk_id for h in lit.hits]
    assert lit.hits[0].matched_terms and all(h.matched_terms == () for h in plain.hits)
    assert all(h.snippet is not None for h in lit.hits) and all(h.snippet is None for h in plain.hits)


def test_single_path_keeps_the_path_order(m3_engine):
    for path in ("bm25", "sparse", "dense"):
        result = m3_engine.search("m3", "vector database retrieval", SearchOptions(k=5, paths=(path,)))
        assert result.fusion == "none"
        assert [h.paths[path].rank for h in result.hits] == list(range(1, len(result.hits) + 1))
        assert all(set(h.paths) == {path} for h in result.hits)


def test_chinese_query_finds_chinese_text(m3_engine):
    result = m3_engine.search("m3", "向量数据库", SearchOptions(k=2, paths=("bm25",)))
    assert result.hits[0].doc_id == "zh-db"


class MilvusIdfBM25(BM25Okapi):
    """rank-bm25 with Milvus's IDF, log(1 + (N - n + 0.5) / (n + 0.5))."""

    def _calc_idf(self, nd):
        for word, freq in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))


def test_bm25_scores_match_rank_bm25_reference(m3_engine):
    analyzer = m3_engine.analyzer("m3")
    texts = {doc_id: text for doc_id, _, text in CORPUS}
    ids = list(texts)
    reference = MilvusIdfBM25([analyzer.tokenize(texts[i]) for i in ids], k1=1.2, b=0.75)
    for query in ("cats dog garden", "vector retrieval search", "数据库 向量", "revenue grew"):
        terms = analyzer.tokenize(query)
        expected = dict(zip(ids, reference.get_scores(terms)))
        result = m3_engine.search("m3", query, SearchOptions(k=len(ids), paths=("bm25",), depth=len(ids)))
        assert result.hits, query
        for hit in result.hits:
            # Milvus stores float32 scores: agree to 1e-4 relative
            assert hit.paths["bm25"].score == pytest.approx(expected[hit.doc_id], rel=1e-4), (query, hit.doc_id)
        returned = {h.doc_id for h in result.hits}
        assert all(expected[i] == 0 for i in ids if i not in returned)


def test_indexing_twice_leaves_one_copy_and_replaces_documents(m3_engine):
    before = m3_engine.collection_info("m3").chunks
    m3_engine.index("m3", corpus_chunks())
    assert m3_engine.collection_info("m3").chunks == before == len(CORPUS)
    # a document re-indexed with fewer chunks loses its stale tail
    m3_engine.index("m3", [Chunk("long", i, f"part {i} of a long document") for i in range(4)])
    report = m3_engine.index("m3", [Chunk("long", i, f"new part {i}") for i in range(2)])
    assert report.stale_chunks_removed == 2
    assert [c.text for c in m3_engine.get_document("m3", "long")] == ["new part 0", "new part 1"]
    assert m3_engine.delete_documents("m3", ["long"]) == 2
    assert m3_engine.get_document("m3", "long") == []
    assert m3_engine.collection_info("m3").chunks == before


def test_delete_by_document(st_engine):
    st_engine.index("st", [Chunk("temp", 0, "temporary cats document"), Chunk("temp", 1, "second temporary chunk")])
    assert dict(st_engine.list_documents("st"))["temp"] == 2
    assert st_engine.delete_documents("st", ["temp"]) == 2
    assert "temp" not in dict(st_engine.list_documents("st"))
    assert all(h.doc_id != "temp" for h in st_engine.search("st", "temporary cats", SearchOptions(k=10)).hits)


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ((FilterCondition("metadata.lang", "==", "zh"),), {"zh-db", "zh-model"}),
        ((FilterCondition("page", "<=", 2),), {"cats", "dogs"}),
        ((FilterCondition("doc_id", "in", ["milvus", "revenue"]),), {"milvus", "revenue"}),
        ((FilterCondition("title", "==", 'He said "hi"'),), {"quotes"}),
        ((FilterCondition("title", "==", '" or doc_id != "'),), set()),
        ((FilterCondition("doc_id", "==", '\\" or 1 == 1 or "\\'),), set()),
        ((FilterCondition("metadata.lang", "==", "en"), FilterCondition("metadata.n", ">=", 3)), {"revenue", "retrieval", "quotes"}),
    ],
)
def test_filters_select_exactly_and_hostile_values_match_nothing(m3_engine, conditions, expected):
    result = m3_engine.search("m3", "the data", SearchOptions(k=20, depth=20, filters=conditions))
    found = {h.doc_id for h in result.hits}
    # every path honours the filter; a path may return fewer (no shared terms)
    assert found <= expected
    dense_only = m3_engine.search("m3", "the data", SearchOptions(k=20, depth=20, paths=("dense",), filters=conditions))
    assert {h.doc_id for h in dense_only.hits} == expected


def test_mismatched_encoder_is_refused(m3_engine, tiny_models):
    other = CollectionConfig(
        name="m3",
        dense=DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers"),
        sparse=SparseEncoderConfig(model=str(tiny_models.m3), kind="bge-m3"),
    )
    with pytest.raises(ManifestMismatchError, match="dense"):
        m3_engine.open_collection("m3", expected=other)
    with pytest.raises(CollectionExistsError):
        m3_engine.create_collection(other)


def test_a_fresh_engine_reads_the_manifest(m3_engine, tiny_models):
    fresh = Engine(StoreConfig(uri=m3_engine.store_config.uri), runtime=RuntimeConfig(device="cpu"))
    config = fresh.open_collection("m3")
    assert config.dense.model == str(tiny_models.m3) and config.dense.kind == "bge-m3"
    info = fresh.collection_info("m3")
    assert info.manifest["dense"]["dim"] == 32 and info.manifest["schema_version"] == SCHEMA_VERSION == 2
    assert fresh.search("m3", "cat", SearchOptions(k=1)).hits


def test_bad_queries_and_options_are_refused(m3_engine):
    with pytest.raises(InputError, match="non-empty"):
        m3_engine.search("m3", "   ")
    with pytest.raises(InputError, match="longer"):
        m3_engine.search("m3", "x" * 5000)
    with pytest.raises(InputError, match="k must be"):
        SearchOptions(k=0)
    with pytest.raises(InputError, match="unknown path"):
        SearchOptions(paths=("colbert",))
    with pytest.raises(InputError, match="depth"):
        SearchOptions(depth=10**6)
    with pytest.raises(CollectionNotFoundError, match="no collection 'nope'"):
        m3_engine.search("nope", "cat")
    with pytest.raises(InputError, match="no text"):
        m3_engine.index("m3", [Chunk("empty", 0, "  ")])


def test_stopword_only_query_returns_dense_results_only(m3_engine):
    result = m3_engine.search("m3", "the of and", SearchOptions(k=3))
    assert result.query_terms == ()
    assert all("bm25" not in h.paths for h in result.hits)
    assert result.hits


@pytest.mark.parametrize("kind", ["flag", "cross-encoder"])
def test_rerank_reorders_top_candidates_and_can_refuse(tiny_models, m3_engine, kind):
    engine = Engine(
        StoreConfig(uri=m3_engine.store_config.uri),
        runtime=RuntimeConfig(device="cpu"),
        reranker=RerankConfig(model=str(tiny_models.cross_encoder), kind=kind, top_n=5),
    )
    result = engine.search("m3", "cat and dog", SearchOptions(k=5))
    assert result.reranked
    scores = [h.rerank_score for h in result.hits]
    assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert all(h.fused_score > 0 for h in result.hits)
    refused = engine.search("m3", "cat and dog", SearchOptions(k=5, min_rerank_score=1.0))
    assert not refused.confident and refused.hits == []
    plain = engine.search("m3", "cat and dog", SearchOptions(k=5, rerank=False))
    assert not plain.reranked and all(h.rerank_score is None for h in plain.hits)


def test_rerank_without_a_model_is_an_input_error(m3_engine):
    with pytest.raises(InputError, match="no reranker"):
        m3_engine.search("m3", "cat", SearchOptions(rerank=True))


def test_model_that_cannot_be_loaded_says_what_was_tried(tmp_path):
    engine = Engine(StoreConfig(uri=str(tmp_path / "x.db")), runtime=RuntimeConfig(device="cpu"))
    with pytest.raises(ModelLoadError, match="no local folder .* Hugging Face hub"):
        engine.create_collection(
            CollectionConfig(name="x", dense=DenseEncoderConfig(model="no-such-org/no-such-model", kind="sentence-transformers"), sparse=None)
        )


def test_m3_folder_without_trained_heads_is_refused(tiny_models, tmp_path):
    import shutil

    folder = tmp_path / "m3-no-heads"
    shutil.copytree(tiny_models.m3, folder)
    (folder / "sparse_linear.pt").unlink()
    engine = Engine(StoreConfig(uri=str(tmp_path / "y.db")), runtime=RuntimeConfig(device="cpu"))
    with pytest.raises(ModelLoadError, match="sparse_linear.pt"):
        engine.create_collection(CollectionConfig(name="y", dense=None, sparse=SparseEncoderConfig(model=str(folder), kind="bge-m3")))


def test_alias_switch_serves_the_new_collection(tiny_models, tmp_path):
    engine = Engine(StoreConfig(uri=str(tmp_path / "alias.db")), runtime=RuntimeConfig(device="cpu"))
    for name, text in (("kb_v1", "old version about cats"), ("kb_v2", "new version about cats")):
        engine.create_collection(CollectionConfig(name=name, dense=None, sparse=None))
        engine.index(name, [Chunk("doc", 0, text)])
    assert engine.switch_alias("kb", "kb_v1") is None
    assert engine.search("kb", "cats").hits[0].text == "old version about cats"
    assert engine.switch_alias("kb", "kb_v2") == "kb_v1"
    assert engine.search("kb", "cats").hits[0].text == "new version about cats"
    assert engine.list_aliases() == {"kb": "kb_v2"}
    assert "hybrid_search_settings" not in engine.list_collections()


def test_tuned_fusion_defaults_persist(m3_engine):
    from hybrid_search import FusionConfig

    tuned = FusionConfig(method="weighted", normalization="z-score", weights={"bm25": 2.0, "sparse": 0.0, "dense": 1.0})
    m3_engine.set_fusion_defaults("m3", tuned)
    fresh = Engine(StoreConfig(uri=m3_engine.store_config.uri), runtime=RuntimeConfig(device="cpu"))
    assert fresh.open_collection("m3").fusion == tuned
    assert fresh.search("m3", "cat dog").fusion == "weighted"
    m3_engine.set_fusion_defaults("m3", FusionConfig())


def test_empty_collection_searches_to_no_hits(tmp_path):
    engine = Engine(StoreConfig(uri=str(tmp_path / "empty.db")), runtime=RuntimeConfig(device="cpu"))
    engine.create_collection(CollectionConfig(name="empty", dense=None, sparse=None))
    assert engine.search("empty", "anything at all").hits == []
