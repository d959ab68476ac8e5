"""Hit assembly: the served candidates turned into typed ``Hit`` objects, with
per-path ranks and scores, rerank scores, matched terms, snippets and the
copies folded into each hit.

Only the hits shown are built: per-path ranks are looked up for them, not
materialised for every candidate of every path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .analyzers import Analyzer
from .plan import QueryPlan
from .rows import chunk_from_row, page_of, user_metadata
from .snippets import best_passage
from .store import heading_path_from_row
from .types import FoldedCopy, Hit, PathScore

__all__ = ["assemble_hits"]


def assemble_hits(
    plan: QueryPlan,
    analyzer: Analyzer,
    query_terms: Sequence[str],
    rows: Mapping[str, Mapping[str, Any]],
    ranked: Mapping[str, list[tuple[str, float]]],
    ordered: Sequence[tuple[str, float]],
    *,
    rerank_scores: Mapping[str, float],
    combined_scores: Mapping[str, float],
    folded: Mapping[str, list[tuple[str, float]]],
    fusion_weights: dict[str, float],
) -> list[Hit]:
    """The first ``plan.k`` of ``ordered`` (chunk id, fused score) as hits."""
    shown = ordered[: plan.k]
    wanted = {cid for cid, _ in shown}
    per_path: dict[str, dict[str, PathScore]] = {}
    for path, items in ranked.items():
        found: dict[str, PathScore] = {}
        for rank, (cid, score) in enumerate(items, start=1):
            if cid in wanted:
                found[cid] = PathScore(rank, score)
        per_path[path] = found
    matched_in = analyzer.surface_matcher(set(query_terms)) if plan.highlight else None
    hits = []
    for rank, (cid, fused_score) in enumerate(shown, start=1):
        # The shown fields straight from the row (rows.chunk_from_row's mapping
        # without building a Chunk: half the assembly time at k=100).
        row = rows[cid]
        text = row["text"]
        matched = matched_in(text) if matched_in is not None else ()
        hits.append(
            Hit(
                rank=rank,
                chunk_id=cid,
                doc_id=row["doc_id"],
                text=text,
                title=row.get("title", ""),
                source=row.get("source", ""),
                page=page_of(row),
                heading_path=heading_path_from_row(row.get("heading", "")),
                metadata=user_metadata(row),
                paths={path: scores[cid] for path, scores in per_path.items() if cid in scores},
                fused_score=float(fused_score),
                fusion_weights=fusion_weights,
                rerank_score=rerank_scores.get(cid),
                combined_score=combined_scores.get(cid),
                matched_terms=matched,
                snippet=best_passage(text, matched) if plan.highlight else None,
                folded=tuple(folded_copy(rows[copy], similarity) for copy, similarity in folded.get(cid, ())),
            )
        )
    return hits


def folded_copy(row: Mapping[str, Any], similarity: float) -> FoldedCopy:
    chunk = chunk_from_row(row)
    return FoldedCopy(chunk_id=chunk.id, doc_id=chunk.doc_id, source=chunk.source, page=chunk.page, similarity=similarity)
