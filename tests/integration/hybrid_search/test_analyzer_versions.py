"""A collection keeps the analyzer version it was built with until re-indexed."""

import pytest

from hybrid_search import AnalyzerConfig, Chunk, CollectionConfig, Engine, SearchOptions, StoreConfig
from hybrid_search.config import ANALYZER_VERSION
from hybrid_search.manifest import manifest_for as _manifest_for

pytestmark = pytest.mark.integration

DOCS = [
    ("nvidia", "NVIDIA's data center revenue grew."),
    ("us", "Sales in the U.S. fell."),
    ("other", "Gaming demand was steady."),
]
QUERY = "NVIDIA's"


def _chunks(docs=DOCS):
    return [Chunk(doc_id=doc_id, chunk_index=0, text=text) for doc_id, text in docs]


def _bm25_only(name, analyzer):
    return CollectionConfig(name=name, dense=None, sparse=None, analyzer=analyzer)


def _bm25_hits(engine, name, query=QUERY):
    result = engine.search(name, query, SearchOptions(k=10, paths=("bm25",)))
    return [(hit.doc_id, hit.matched_terms) for hit in result.hits]


@pytest.fixture()
def uri(tmp_path):
    """A store with three BM25-only collections: version 1 recorded, no version
    recorded (a manifest from before versions existed), and the current one."""
    uri = str(tmp_path / "versions.db")
    engine = Engine(StoreConfig(uri=uri))
    engine.create_collection(_bm25_only("v1", AnalyzerConfig(version=1)))
    legacy = _bm25_only("legacy", AnalyzerConfig(version=1))
    manifest = _manifest_for(legacy, None)
    del manifest["analyzer"]["version"]
    engine.store.create_collection("legacy", manifest, dense_dim=None, with_sparse=False, bm25_k1=legacy.bm25_k1, bm25_b=legacy.bm25_b)
    engine.create_collection(_bm25_only("current", AnalyzerConfig()))
    for name in ("v1", "legacy", "current"):
        engine.index(name, _chunks())
    engine.close()
    return uri


def test_old_analyzer_collections_answer_with_their_own_analyzer(uri):
    engine = Engine(StoreConfig(uri=uri))  # opened afresh: the analyzer comes from the manifest
    try:
        assert engine.collection_info("legacy").manifest["analyzer"].get("version") is None
        assert engine.analyzer("legacy").config.version == 1
        assert engine.analyzer("current").config.version == ANALYZER_VERSION == 2
        old = _bm25_hits(engine, "v1")
        # version 1 made "s" a term of both the query and "U.S.": the old hits
        assert {doc for doc, _ in old} == {"nvidia", "us"}
        assert dict(old)["us"] == ("S",)
        assert _bm25_hits(engine, "legacy") == old
        # the current analyzer no longer matches U.S. for a possessive
        assert _bm25_hits(engine, "current") == [("nvidia", ("NVIDIA",))]
    finally:
        engine.close()


def test_indexing_into_an_old_collection_keeps_its_analyzer(uri):
    engine = Engine(StoreConfig(uri=uri))
    try:
        # what `hybrid-search index` does: ask for the collection with today's
        # default analyzer; the old one is accepted, not refused as a mismatch
        engine.create_collection(_bm25_only("legacy", AnalyzerConfig()), exist_ok=True)
        engine.index("legacy", _chunks([("later", "The company's U.K. office opened.")]))
        assert "later" in {doc for doc, _ in _bm25_hits(engine, "legacy")}  # matched through "s"
        assert engine.collection_info("legacy").manifest["analyzer"].get("version") is None
    finally:
        engine.close()


def test_other_analyzer_settings_still_refuse(uri):
    from hybrid_search import ManifestMismatchError

    engine = Engine(StoreConfig(uri=uri))
    try:
        with pytest.raises(ManifestMismatchError, match="analyzer"):
            engine.create_collection(_bm25_only("legacy", AnalyzerConfig(stem=False)), exist_ok=True)
    finally:
        engine.close()
