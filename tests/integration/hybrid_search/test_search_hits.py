"""Hits worth reading, through the command line over Milvus Lite and tiny models:
a document that repeats a paragraph gives one hit with a folded count (every
copy with --no-collapse), and the text output shows the passage that matched."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybrid_search.cli import app

pytestmark = pytest.mark.integration

REPEATED = (
    "Blank check stock must be kept in a safe or locked file cabinet with restricted access, "
    "and the standing trustee must reconcile the account every month."
)
FILLER = [
    "Chapter thirteen plans run three to five years and pay creditors from future income.",
    "The meeting of creditors is held between twenty and fifty days after the petition.",
    "Trustees file an annual report that lists receipts, disbursements and expenses.",
    "Employees of the trustee may not hold a financial interest in any case they administer.",
]
OPENING = "Unrelated words about office furniture and lunch breaks fill this opening sentence. " * 4


def _handbook(path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Trustee Handbook"
    for number, filler in enumerate(FILLER, start=1):
        # Each copy under its own heading with its own neighbours, as in the
        # DOJ handbook that holds one paragraph four times.
        document.add_heading(f"Section {number}", level=1)
        document.add_paragraph(filler)
        document.add_paragraph(REPEATED)
    document.save(str(path))


@pytest.fixture(scope="module")
def handbook_cli(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("hits")
    folder = root / "handbooks"
    folder.mkdir()
    _handbook(folder / "handbook.docx")
    notes = root / "notes"
    notes.mkdir()
    (notes / "lunch.txt").write_text(OPENING + "The cafeteria serves soup on Fridays. " + OPENING, encoding="utf-8")
    config = root / "hs.toml"
    config.write_text(
        f'[store]\nuri = "{root / "hits.db"}"\n[runtime]\ndevice = "cpu"\n[collection]\nname = "hb"\n'
        f'dense_model = "{tiny_models.dense}"\ndense_kind = "sentence-transformers"\nno_sparse = true\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    # 100 (tiny-model) tokens: the repeated paragraph (83) fits, not with a neighbour (~40).
    indexed = runner.invoke(app, ["--config", str(config), "index", str(folder), "--max-tokens", "100", "--overlap-tokens", "0"])
    assert indexed.exit_code == 0, indexed.output
    # The notes in one long chunk, whose opening is not what matches.
    indexed = runner.invoke(app, ["--config", str(config), "index", str(notes), "--max-tokens", "512"])
    assert indexed.exit_code == 0, indexed.output

    def invoke(*args: str):
        return runner.invoke(app, ["--config", str(config), *args])

    return invoke


def _copies(hits: list[dict]) -> list[dict]:
    return [hit for hit in hits if REPEATED in hit["text"]]


def test_repeated_paragraph_is_one_hit_with_its_copies_folded(handbook_cli):
    collapsed = handbook_cli("search", "blank check stock locked cabinet", "-k", "10", "--paths", "bm25", "--json")
    assert collapsed.exit_code == 0, collapsed.output
    hits = json.loads(collapsed.stdout)["hits"]
    (kept,) = _copies(hits)
    assert kept["rank"] == 1
    folded = kept["folded"]
    assert len(folded) == 3
    assert all(copy["doc_id"] == "handbooks/handbook.docx" and copy["similarity"] == 1.0 for copy in folded)
    all_ids = {kept["chunk_id"], *(copy["chunk_id"] for copy in folded)}
    assert len(all_ids) == 4
    # The hits after the kept copy are the other chunks, not more copies.
    assert len(hits) == len({hit["chunk_id"] for hit in hits})

    every = handbook_cli("search", "blank check stock locked cabinet", "-k", "10", "--paths", "bm25", "--json", "--no-collapse")
    assert every.exit_code == 0, every.output
    copies = _copies(json.loads(every.stdout)["hits"])
    assert {hit["chunk_id"] for hit in copies} == all_ids
    assert all(hit["folded"] == [] for hit in copies)
    assert [hit["rank"] for hit in copies] == [1, 2, 3, 4]


def test_collapsing_still_fills_k(handbook_cli):
    # BM25 candidates: the four copies and the four other sections' paragraphs.
    query = "trustee creditors blank check stock"
    hits = json.loads(handbook_cli("search", query, "-k", "5", "--paths", "bm25", "--json").stdout)["hits"]
    # The copies fold into one, and later candidates fill the five places.
    assert len(hits) == 5 and len(_copies(hits)) == 1
    every = json.loads(handbook_cli("search", query, "-k", "5", "--paths", "bm25", "--json", "--no-collapse").stdout)["hits"]
    assert len(every) == 5 and len(_copies(every)) >= 2


def test_text_output_shows_the_matching_passage_and_the_folded_copies(handbook_cli):
    result = handbook_cli("search", "cafeteria soup", "-k", "3", "--paths", "bm25")
    assert result.exit_code == 0, result.output
    first_hit = result.output.split("\n1.", 1)[1].split("\n2.", 1)[0]
    # The snippet starts at the matching sentence, not at the chunk's opening.
    assert "The cafeteria serves soup on Fridays." in first_hit
    assert "…The cafeteria" in first_hit.replace("\n", "").replace("   ", "")
    assert "notes/lunch.txt" in first_hit

    folded = handbook_cli("search", "blank check stock locked cabinet", "-k", "3", "--paths", "bm25")
    assert "+3 duplicates folded: handbooks/handbook.docx#" in folded.output

