"""LangChain and LlamaIndex retrievals against a Milvus Lite collection with tiny models."""

import sys

import pytest

from hybrid_search import Chunk, Engine, FilterCondition, RerankConfig, RuntimeConfig, SearchOptions, StoreConfig
from hybrid_search.errors import MissingDependencyError

pytestmark = pytest.mark.integration

DOCS = [
    ("cats", "The cat sat on the mat and watched the dog.", "pets"),
    ("dogs", "Dogs chase cats around the garden every morning.", "pets"),
    ("milvus", "Milvus is a vector database for retrieval at scale.", "eng"),
    ("hybrid", "Hybrid retrieval fuses keyword search with dense vector search.", "eng"),
]


@pytest.fixture(scope="module")
def engine(st_engine, tiny_models, tmp_path_factory):
    st_engine.index("st", [Chunk(doc_id=d, chunk_index=0, text=t, title=d.title(), source=f"{d}.md", metadata={"dept": dept}) for d, t, dept in DOCS])
    # the same store, with a (tiny) reranker for the rerank case
    reranking = Engine(
        StoreConfig(uri=st_engine.store_config.uri),
        runtime=RuntimeConfig(device="cpu"),
        reranker=RerankConfig(model=str(tiny_models.cross_encoder), kind="cross-encoder", top_n=4),
    )
    yield st_engine, reranking
    reranking.close()


def _check_explained(metadata, collection="st"):
    assert metadata["collection"] == collection
    assert set(metadata["paths"]) <= {"bm25", "sparse", "dense"} and metadata["paths"]
    for path in metadata["paths"].values():
        assert path["rank"] >= 1 and isinstance(path["score"], float)
    assert metadata["score"] is not None and metadata["fused_score"] > 0


def test_langchain_retriever_returns_explained_documents(engine):
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from hybrid_search.integrations.langchain import HybridSearchRetriever

    plain, _ = engine
    retriever = HybridSearchRetriever(engine=plain, collection="st", options=SearchOptions(k=2))
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("the cat sat on the mat")
    expected = plain.search("st", "the cat sat on the mat", SearchOptions(k=2))
    assert [d.metadata["chunk_id"] for d in docs] == [h.chunk_id for h in expected.hits]
    assert all(isinstance(d, Document) for d in docs) and len(docs) == 2
    top = docs[0]
    assert top.page_content == DOCS[0][1] and top.metadata["doc_id"] == "cats" and top.id == top.metadata["chunk_id"]
    assert top.metadata["metadata"] == {"dept": "pets"} and top.metadata["source"] == "cats.md"
    assert "cat" in top.metadata["matched_terms"]
    _check_explained(top.metadata)
    assert top.metadata["rerank_score"] is None and top.metadata["reranked"] is False


def test_langchain_filters_paths_and_rerank(engine):
    from hybrid_search.integrations.langchain import HybridSearchRetriever

    plain, reranking = engine
    only_eng = HybridSearchRetriever(
        engine=plain, collection="st", options=SearchOptions(k=4, paths=("bm25", "dense"), filters=(FilterCondition("metadata.dept", "==", "eng"),))
    )
    docs = only_eng.invoke("cats and vector search")
    assert docs and {d.metadata["doc_id"] for d in docs} <= {"milvus", "hybrid"}
    assert all(set(d.metadata["paths"]) <= {"bm25", "dense"} for d in docs)
    reranked = HybridSearchRetriever(engine=reranking, collection="st", options=SearchOptions(k=3, rerank=True)).invoke("vector database")
    assert reranked and all(d.metadata["reranked"] and d.metadata["rerank_score"] is not None for d in reranked)
    assert [d.metadata["score"] for d in reranked] == sorted((d.metadata["score"] for d in reranked), reverse=True)


def test_llamaindex_retriever_returns_scored_nodes(engine):
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.schema import MetadataMode

    from hybrid_search.integrations.llamaindex import HybridSearchLlamaRetriever

    plain, reranking = engine
    retriever = HybridSearchLlamaRetriever(plain, "st", SearchOptions(k=3, filters=(FilterCondition("metadata.dept", "==", "pets"),)))
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve("dogs chase cats in the garden")
    assert [n.node.metadata["doc_id"] for n in nodes][0] == "dogs"
    assert {n.node.metadata["doc_id"] for n in nodes} <= {"cats", "dogs"}
    top = nodes[0]
    assert top.node.node_id == top.node.metadata["chunk_id"] and top.node.get_content() == DOCS[1][1]
    assert top.score == pytest.approx(top.node.metadata["score"])
    _check_explained(top.node.metadata)
    # the ranking explanation is not shown to the LLM; the source is
    shown = top.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "dogs.md" in shown and "fused_score" not in shown
    reranked = HybridSearchLlamaRetriever(reranking, "st", SearchOptions(k=2, rerank=True)).retrieve("vector database")
    assert reranked and all(n.node.metadata["rerank_score"] is not None for n in reranked)


@pytest.mark.parametrize(
    "module, package, extra",
    [("hybrid_search.integrations.langchain", "langchain_core", "langchain"), ("hybrid_search.integrations.llamaindex", "llama_index", "llamaindex")],
)
def test_a_missing_framework_names_the_extra(monkeypatch, module, package, extra):
    for name in [m for m in sys.modules if m == module or m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=rf"hybrid-search\[{extra}\]"):
        __import__(module)
