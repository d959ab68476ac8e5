"""A hit as framework-neutral document metadata: where it comes from, and why
it ranked where it did (final score, fused and rerank scores, per-path rank and score)."""

from __future__ import annotations

from typing import Any

from ..types import Hit, SearchResult

__all__ = ["EXPLANATION_KEYS", "hit_metadata"]

# The keys that explain the ranking, as opposed to describing the source: a
# framework that shows metadata to an LLM can leave these out.
EXPLANATION_KEYS = ("rank", "score", "fused_score", "rerank_score", "combined_score", "paths", "matched_terms", "reranked", "collection")


def hit_metadata(hit: Hit, result: SearchResult) -> dict[str, Any]:
    """Plain JSON-able metadata for one hit of ``result``. The chunk's own
    metadata sits under ``"metadata"`` so that its keys never clash with these."""
    return {
        "chunk_id": hit.chunk_id,
        "doc_id": hit.doc_id,
        "source": hit.source,
        "title": hit.title,
        "page": hit.page,
        "heading_path": list(hit.heading_path),
        "metadata": dict(hit.metadata),
        "rank": hit.rank,
        "score": hit.score,
        "fused_score": hit.fused_score,
        "rerank_score": hit.rerank_score,
        "combined_score": hit.combined_score,
        "paths": {path: {"rank": score.rank, "score": score.score} for path, score in hit.paths.items()},
        "matched_terms": list(hit.matched_terms),
        "reranked": result.reranked,
        "collection": result.collection,
    }
