"""A LangChain retriever over ``Engine``: ``pip install 'hybrid-search[langchain]'``.

>>> retriever = HybridSearchRetriever(engine=engine, collection="docs",          # doctest: +SKIP
...                                   options=SearchOptions(k=5, rerank=True))
>>> docs = retriever.invoke("what drove data center revenue?")                  # doctest: +SKIP
>>> docs[0].metadata["paths"]["bm25"]["rank"]                                   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ..engine import Engine, SearchOptions
from ..errors import MissingDependencyError
from .hits import hit_metadata

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict
except ImportError as error:  # pragma: no cover - exercised by the missing-extra test
    raise MissingDependencyError("langchain-core", "langchain", "hybrid_search.integrations.langchain") from error

__all__ = ["HybridSearchRetriever"]


class HybridSearchRetriever(BaseRetriever):
    """``Engine.search`` as a LangChain retriever: one ``Document`` per hit, in
    rank order, with ``hit_metadata`` (scores and per-path explanation) as its
    metadata and the chunk id as its id. ``options`` chooses k, paths, fusion,
    weights, filters and rerank exactly as for ``Engine.search``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: Engine
    collection: str
    options: SearchOptions = SearchOptions()

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any) -> list[Document]:
        result = self.engine.search(self.collection, query, self.options)
        return [Document(page_content=hit.text, metadata=hit_metadata(hit, result), id=hit.chunk_id) for hit in result.hits]
