"""A LlamaIndex retriever over ``Engine``: ``pip install 'hybrid-search[llamaindex]'``.

>>> retriever = HybridSearchLlamaRetriever(engine, "docs", SearchOptions(k=5))  # doctest: +SKIP
>>> nodes = retriever.retrieve("what drove data center revenue?")               # doctest: +SKIP
>>> nodes[0].score, nodes[0].node.metadata["paths"]                             # doctest: +SKIP
"""

from __future__ import annotations

from ..engine import Engine, SearchOptions
from ..errors import MissingDependencyError
from .hits import EXPLANATION_KEYS, hit_metadata

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as error:  # pragma: no cover - exercised by the missing-extra test
    raise MissingDependencyError("llama-index-core", "llamaindex", "hybrid_search.integrations.llamaindex") from error

__all__ = ["HybridSearchLlamaRetriever"]


class HybridSearchLlamaRetriever(BaseRetriever):
    """``Engine.search`` as a LlamaIndex retriever: one ``NodeWithScore`` per
    hit, in rank order, scored with the hit's final score, its node holding the
    chunk text, the chunk id and ``hit_metadata``. The ranking explanation is
    kept out of what LlamaIndex shows the LLM and embeds."""

    def __init__(self, engine: Engine, collection: str, options: SearchOptions | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.collection = collection
        self.options = options or SearchOptions()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = self.engine.search(self.collection, query_bundle.query_str, self.options)
        return [
            NodeWithScore(
                node=TextNode(
                    id_=hit.chunk_id,
                    text=hit.text,
                    metadata=hit_metadata(hit, result),
                    excluded_llm_metadata_keys=list(EXPLANATION_KEYS),
                    excluded_embed_metadata_keys=list(EXPLANATION_KEYS),
                ),
                score=hit.score,
            )
            for hit in result.hits
        ]
