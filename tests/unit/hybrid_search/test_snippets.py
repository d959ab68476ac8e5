"""Best-passage snippets on hand-made texts."""

import pytest

from hybrid_search.analyzers import Analyzer
from hybrid_search.config import AnalyzerConfig
from hybrid_search.snippets import SNIPPET_CHARS, best_passage, match_spans

pytestmark = pytest.mark.unit

FILLER = "Nothing in this sentence is of interest to anyone at all. " * 6  # 6 x 58 characters
MATCH = "Revenue from the Data Center segment grew strongly in fiscal 2023. "
TEXT = "location. " + FILLER + MATCH + FILLER


def test_the_window_holds_the_matches_and_opens_at_their_sentence():
    snippet = best_passage(TEXT, ["Revenue", "Data", "Center"], width=120)
    assert snippet.text.startswith("Revenue from the Data Center segment")
    assert TEXT[snippet.start : snippet.end] == snippet.text
    assert len(snippet.text) <= 120
    # Cut at a sentence end or a space, never inside a word.
    assert snippet.text.endswith(".") or TEXT[snippet.end] == " "


def test_the_window_with_most_distinct_terms_wins_over_an_earlier_one():
    early = "The revenue figure. " + FILLER
    text = early + "Revenue and gross margin by segment: revenue rose, margin held. " + FILLER
    snippet = best_passage(text, ["revenue", "Revenue", "margin"], width=100)
    assert "margin" in snippet.text and snippet.start > len(early) - 1


def test_short_text_is_the_whole_text():
    assert best_passage("  A short chunk.\n", ["chunk"]).text == "A short chunk."


def test_without_matches_a_chunk_opening_mid_sentence_starts_at_its_first_sentence():
    snippet = best_passage(TEXT, [], width=150)
    assert snippet.text.startswith("Nothing in this sentence")
    assert snippet.text.endswith(".")


def test_without_matches_a_chunk_opening_with_a_sentence_starts_at_zero():
    text = "Opening sentence here. " + FILLER
    assert best_passage(text, [], width=100).start == 0


def test_a_match_far_into_a_long_sentence_gets_a_lead_in_cut_at_a_word():
    words = " ".join(f"word{i}" for i in range(200))
    text = words + " target " + words
    snippet = best_passage(text, ["target"], width=90)
    assert "target" in snippet.text
    assert 0 < snippet.text.index("target") < 60
    assert snippet.text.split()[0].startswith("word") and text[snippet.start - 1] == " "


def test_surfaces_match_exactly_and_as_whole_words():
    text = "U.S. sales and s-curve; cats"
    spans = match_spans(text, ["s", "cats"])
    # Not the S of U.S. (another surface), not inside "sales" or "cats".
    assert [(text[a:b], a) for a, b, _ in spans] == [("s", text.index("s-curve")), ("cats", text.index("cats"))]


def test_default_width_and_analyzer_surfaces_on_a_long_table_text():
    analyzer = Analyzer(AnalyzerConfig())
    rows = "\n".join(f"Line item {i} | $ {i * 3} | {i}%" for i in range(40))
    text = rows + "\nData Center revenue was $15,005 million, up 41% from a year ago.\n" + rows
    surfaces = analyzer.matched_surfaces(text, set(analyzer.tokenize("data center revenue")))
    snippet = best_passage(text, surfaces)
    assert len(snippet.text) <= SNIPPET_CHARS
    assert snippet.text.startswith("Data Center revenue was $15,005 million")


def test_width_must_be_positive():
    with pytest.raises(ValueError):
        best_passage("text", [], width=0)
