"""A fused search whose path searches return chunk ids only, its rows read
afterwards for the candidates used (candidate_rows.py), serves exactly the hits
of the same search with full rows from every path search: ids, order, scores,
texts, fields, highlights and folded copies (tiny real models, Milvus Lite)."""

from __future__ import annotations

import pytest

from hybrid_search import (
    Chunk,
    Engine,
    RerankConfig,
    RuntimeConfig,
    SearchOptions,
    StoreConfig,
)
from hybrid_search.filters import FilterCondition

pytestmark = pytest.mark.integration

# Ranked first by the query below, many times over: collapse walks past all
# these copies (more than two pages of k) before it has k hits.
COPIED = "The standing trustee must reconcile the bank account every month and keep blank checks locked."
TAIL = "Lunch breaks at the office cafeteria last one hour.\nSoup is served on Fridays."
FILLER = [
    "Chapter thirteen plans run three to five years and pay creditors from future income.",
    "The meeting of creditors is held between twenty and fifty days after the petition.",
    "Trustees file an annual report that lists receipts, disbursements and expenses.",
    "Employees of the trustee may not hold a financial interest in any case they administer.",
    "Milvus is a vector database for retrieval at scale.",
    "Hybrid retrieval fuses keyword search with dense vector search.",
    "The weather today is sunny with a light wind from the west.",
    "Revenue and profit rose in the fourth quarter of the year.",
    "Der Treuhänder prüft das Konto jeden Monat: «Kontrolle» ist Pflicht.",
    "受托人每月核对银行账户。",
]
QUERY = "trustee reconcile bank account blank checks"


def _chunks() -> list[Chunk]:
    chunks = []
    for i in range(14):
        # Exact copies, and copies that differ in case and punctuation only.
        text = COPIED if i % 2 else COPIED.upper().replace(" and ", ", and ")
        chunks.append(Chunk(doc_id=f"copy-{i}", chunk_index=0, text=text, title=f"Handbook {i}", source=f"hb/{i}.txt", metadata={"team": "a" if i < 7 else "b"}))
    for i, text in enumerate(FILLER):
        chunks.append(
            Chunk(
                doc_id=f"filler-{i}",
                chunk_index=i % 3,
                text=text,
                title="Notes",
                source=f"notes/{i}.md",
                page=i,
                heading_path=("Part", f"Section {i}"),
                metadata={"team": "a" if i % 2 else "b", "n": i},
            )
        )
    for i in range(4):
        chunks.append(Chunk(doc_id=f"tail-{i}", chunk_index=0, text=TAIL, source=f"tail/{i}.txt", metadata={"team": "a" if i % 2 else "b"}))
    return chunks


@pytest.fixture(scope="module")
def engine(tiny_models, tmp_path_factory):
    engine = Engine(
        StoreConfig(uri=str(tmp_path_factory.mktemp("milvus") / "late_rows.db")),
        runtime=RuntimeConfig(device="cpu"),
        reranker=RerankConfig(model=str(tiny_models.cross_encoder), kind="cross-encoder", top_n=6),
    )
    engine.create_collection(tiny_models.hybrid_collection("rows"))
    engine.index("rows", _chunks())
    yield engine
    engine.close()


def _both(engine: Engine, options: SearchOptions, query: str = QUERY):
    engine.late_rows = False
    try:
        full = engine.search("rows", query, options)
    finally:
        engine.late_rows = True
    late = engine.search("rows", query, options)
    assert "rows" in late.timings_ms and "rows" not in full.timings_ms, "the two searches took the same route"
    return full, late


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(SearchOptions(k=3), id="collapse-walks-past-the-copies"),
        pytest.param(SearchOptions(k=1), id="copies-after-the-last-hit"),
        pytest.param(SearchOptions(k=8), id="k-8"),
        pytest.param(SearchOptions(k=3, filters=(FilterCondition("metadata.team", "==", "a"),)), id="filter"),
        pytest.param(SearchOptions(k=4, collapse=False), id="no-collapse"),
        pytest.param(SearchOptions(k=3, rerank=True), id="rerank"),
        pytest.param(SearchOptions(k=3, rerank=True, collapse=False, rerank_top_n=4), id="rerank-no-collapse"),
        pytest.param(SearchOptions(k=5, paths=("bm25", "dense")), id="two-paths"),
    ],
)
def test_late_rows_serve_the_hits_of_full_rows(engine, options):
    full, late = _both(engine, options)
    assert late.hits == full.hits
    assert late.confident == full.confident
    assert len(late.hits) == min(options.k, len(full.hits)) and full.hits


def test_the_cases_cover_what_they_are_meant_to(engine):
    """The copies fill the top of the ranking: at k=3 collapse keeps its hits
    only after walking past all of them (more than two pages of k); at k=1
    every other copy ranks after the one kept hit, where collapse only checks
    for exact copies (so the case-changed copies are not folded there)."""
    _, walked = _both(engine, SearchOptions(k=3))
    assert sum(len(hit.folded) for hit in walked.hits) >= 13 > 2 * 3
    assert walked.hits[0].snippet and walked.hits[0].matched_terms, "no highlight to compare"

    full, late = _both(engine, SearchOptions(k=1))
    assert late.hits == full.hits
    top = late.hits[0]
    assert top.doc_id.startswith("copy-")
    assert len(top.folded) == 6 and all(copy.similarity == 1.0 for copy in top.folded)

    team_a = {chunk.doc_id for chunk in _chunks() if chunk.metadata["team"] == "a"}
    _, filtered = _both(engine, SearchOptions(k=3, filters=(FilterCondition("metadata.team", "==", "a"),)))
    assert {hit.doc_id for hit in filtered.hits} <= team_a
    assert {copy.doc_id for hit in filtered.hits for copy in hit.folded} <= team_a
    assert sum(len(hit.folded) for hit in filtered.hits) >= 6


def test_one_path_keeps_full_rows_from_its_search(engine):
    result = engine.search("rows", QUERY, SearchOptions(k=3, paths=("bm25",)))
    assert result.hits and "rows" not in result.timings_ms
