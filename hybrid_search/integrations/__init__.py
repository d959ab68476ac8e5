"""Retrievers for the frameworks RAG applications are written in, over ``Engine``.

- ``hybrid_search.integrations.langchain.HybridSearchRetriever``: a LangChain
  ``BaseRetriever`` (``pip install 'hybrid-search[langchain]'``).
- ``hybrid_search.integrations.llamaindex.HybridSearchLlamaRetriever``: a
  LlamaIndex retriever (``pip install 'hybrid-search[llamaindex]'``).

Both run ``Engine.search`` (every path, fusion, filters, rerank as the
``SearchOptions`` say) and put each hit's scores and per-path ranks in the
documents' metadata (``hit_metadata``). This package imports neither framework;
each module imports its own and names the extra when it is missing.
"""

from .hits import hit_metadata

__all__ = ["hit_metadata"]
