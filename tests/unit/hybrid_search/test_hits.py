"""Hit assembly: the shown candidates as typed hits, built straight from the
stored rows (the same fields rows.chunk_from_row reads), per-path ranks looked
up for the shown hits only."""

import pytest

from hybrid_search import SearchOptions
from hybrid_search.analyzers import Analyzer
from hybrid_search.config import AnalyzerConfig, CollectionConfig
from hybrid_search.hits import assemble_hits
from hybrid_search.plan import build_plan
from hybrid_search.rows import chunk_from_row
from hybrid_search.types import PathScore

pytestmark = pytest.mark.unit


def _row(doc_id: str, position: int, text: str, **extra) -> dict:
    row = {
        "id": f"{doc_id}#{position}",
        "doc_id": doc_id,
        "chunk_index": position,
        "text": text,
        "title": "",
        "source": "",
        "page": -1,
        "heading": "",
        "metadata": {},
    }
    row.update(extra)
    return row


ROWS = {
    "a#0": _row("a", 0, "Cats sit on mats.", title="Pets", page=3, heading="Animals > Cats", metadata={"team": "x", "_sync": "h", "_char_start": 4, "_char_end": 21}),
    "b#0": _row("b", 0, "Dogs chase cats around."),
    "c#1": _row("c", 1, "Birds sing."),
}


def _assemble(options: SearchOptions, ordered, ranked, **kwargs):
    plan = build_plan("kb", CollectionConfig(name="kb"), "cats", options, None)
    analyzer = Analyzer(AnalyzerConfig())
    defaults = {"rerank_scores": {}, "combined_scores": {}, "folded": {}, "fusion_weights": {"bm25": 0.5, "dense": 0.5}}
    defaults.update(kwargs)
    return assemble_hits(plan, analyzer, analyzer.tokenize("cats"), ROWS, ranked, ordered, **defaults)


def test_hits_carry_the_fields_a_chunk_read_back_carries():
    ranked = {"bm25": [("a#0", 2.0), ("b#0", 1.0)], "dense": [("b#0", 0.9), ("c#1", 0.5), ("a#0", 0.1)]}
    ordered = [("b#0", 0.03), ("a#0", 0.02), ("c#1", 0.01)]
    hits = _assemble(SearchOptions(k=2, highlight=False), ordered, ranked)
    assert [h.chunk_id for h in hits] == ["b#0", "a#0"] and [h.rank for h in hits] == [1, 2]
    a = hits[1]
    chunk = chunk_from_row(ROWS["a#0"])
    assert (a.doc_id, a.text, a.title, a.source, a.page, a.heading_path, a.metadata) == (
        chunk.doc_id, chunk.text, chunk.title, chunk.source, chunk.page, chunk.heading_path, chunk.metadata,
    )
    assert a.metadata == {"team": "x"} and a.page == 3 and a.heading_path == ("Animals", "Cats")
    assert hits[0].page is None  # stored as -1
    # Each shown hit's place in every path that found it.
    assert a.paths == {"bm25": PathScore(1, 2.0), "dense": PathScore(3, 0.1)}
    assert hits[0].paths == {"bm25": PathScore(2, 1.0), "dense": PathScore(1, 0.9)}
    assert a.fused_score == 0.02 and a.fusion_weights == {"bm25": 0.5, "dense": 0.5}
    assert a.matched_terms == () and a.snippet is None  # highlighting off


def test_highlighting_rerank_scores_and_folded_copies():
    ranked = {"bm25": [("a#0", 2.0), ("b#0", 1.0)]}
    ordered = [("a#0", 2.0), ("b#0", 1.0)]
    hits = _assemble(
        SearchOptions(k=10),
        ordered,
        ranked,
        rerank_scores={"a#0": 0.7},
        combined_scores={"a#0": 0.6},
        folded={"a#0": [("c#1", 0.96)]},
    )
    assert len(hits) == 2
    assert hits[0].matched_terms == ("Cats",) and hits[0].snippet is not None and hits[0].snippet.text == "Cats sit on mats."
    assert hits[1].matched_terms == ("cats",)
    assert hits[0].rerank_score == 0.7 and hits[0].combined_score == 0.6 and hits[1].rerank_score is None
    (copy,) = hits[0].folded
    assert (copy.chunk_id, copy.doc_id, copy.similarity) == ("c#1", "c", 0.96)
    assert hits[1].folded == ()
