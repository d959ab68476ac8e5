"""Best-passage snippets on hand-made texts."""

import random
import re

import pytest

from hybrid_search import snippets
from hybrid_search.analyzers import Analyzer
from hybrid_search.config import AnalyzerConfig
from hybrid_search import snippets
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


def _regex_match_spans(text, surfaces):
    """The earlier match_spans, one alternation regex per call: the reference
    the str.find implementation must agree with exactly."""
    usable = sorted({s for s in surfaces if s.strip()}, key=len, reverse=True)
    if not usable:
        return []
    parts = [rf"(?<!\w){re.escape(s)}(?!\w)" if re.match(r"^\w+$", s) else re.escape(s) for s in usable]
    pattern = re.compile("|".join(parts))
    return [(m.start(), m.end(), m.group().casefold()) for m in pattern.finditer(text)]


# Word characters of several kinds (ASCII, accented, ß, CJK, a superscript
# digit, the underscore) and non-word ones (spaces, punctuation, apostrophes, a
# combining accent, a full-width full stop, a line break).
_ALPHABET = list("abAB01_ éßÉ数据库中文²") + list(" .,;-'’\u0301。\n") + ["U.S.", "ab", "a-b"]


@pytest.mark.parametrize("seed", range(40))
def test_match_spans_agrees_with_the_alternation_regex_on_generated_texts(seed):
    rng = random.Random(seed)
    for _ in range(50):
        text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 60)))
        surfaces = []
        for _ in range(rng.randint(0, 6)):
            kind = rng.random()
            if kind < 0.6 and text:
                # A piece of the text, so it occurs (often overlapping another).
                a = rng.randrange(len(text))
                surfaces.append(text[a : a + rng.randint(1, 5)])
            elif kind < 0.8 and surfaces:
                # A prefix or suffix of an earlier surface: overlapping alternatives.
                other = rng.choice(surfaces)
                surfaces.append(other[: rng.randint(1, len(other))] if rng.random() < 0.5 else other[rng.randint(0, len(other) - 1) :])
            else:
                surfaces.append("".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 3))))
        assert match_spans(text, surfaces) == _regex_match_spans(text, surfaces), (text, surfaces)


def test_match_spans_agrees_with_the_regex_on_analyzer_surfaces_of_real_sentences():
    analyzer = Analyzer(AnalyzerConfig())
    text = (
        "NVIDIA's Data Center revenue (U.S. and non-U.S.) rose; data-center GPUs didn't. "
        "数据库 and 数据 in 中文 text. Über-résumé ÉTÉ straße STRASSE _id_ x² data_center"
    )
    query = "nvidia data center revenue us didnt 数据 résumé strasse id x"
    surfaces = analyzer.matched_surfaces(text, set(analyzer.tokenize(query)))
    assert len(surfaces) > 5
    assert match_spans(text, surfaces) == _regex_match_spans(text, surfaces)


def test_the_word_boundary_predicate_match_spans_inlines_is_what_regex_backslash_w_matches():
    # match_spans checks a match's neighbours with ``ch.isalnum() or ch == "_"``
    # (inlined for speed) where the regex it replaced used \b: the two must
    # agree on every code point of the Basic Multilingual Plane and the CJK
    # extension B start.
    word = re.compile(r"\w")
    for code in [*range(0xD800), *range(0xE000, 0x10000), *range(0x20000, 0x20100)]:
        ch = chr(code)
        assert (ch.isalnum() or ch == "_") == (word.match(ch) is not None), hex(code)


def test_match_spans_hand_computed_cases():
    # Longest first where surfaces overlap at one position.
    assert match_spans("data center", ["data", "data center"]) == [(0, 11, "data center")]
    # Leftmost wins over longer: "ab-" at 0 blocks the longer "b-cd" at 1.
    assert match_spans("ab-cd", ["ab-", "b-cd"]) == [(0, 3, "ab-")]
    # All-word surfaces inside a longer word are not whole words.
    assert match_spans("abcd", ["ab", "bcd"]) == []
    # A punctuation surface matches anywhere, a word surface only as a whole word.
    assert match_spans("U.S. bus", ["U.S.", "us", "bus"]) == [(0, 4, "u.s."), (5, 8, "bus")]
    # Case-sensitive search, casefolded report; CJK characters are word characters.
    assert match_spans("Straße STRASSE", ["Straße"]) == [(0, 6, "strasse")]
    assert match_spans("数据库 数据", ["数据"]) == [(4, 6, "数据")]
    assert match_spans("a_b a b", ["a", "b"]) == [(4, 5, "a"), (6, 7, "b")]
    # Blank surfaces are ignored; repeated occurrences are all found.
    assert match_spans("go go go", ["go", " ", ""]) == [(0, 2, "go"), (3, 5, "go"), (6, 8, "go")]


def _quadratic_best_window(spans, width):
    """The earlier _best_window (a distinct-surface set per start): the reference."""
    best_key, best, j = None, (0, 0), 0
    for i in range(len(spans)):
        j = max(j, i)
        while j + 1 < len(spans) and spans[j + 1][1] - spans[i][0] <= width:
            j += 1
        key = (len({s for _, _, s in spans[i : j + 1]}), j - i + 1)
        if best_key is None or key > best_key:
            best_key, best = key, (i, j)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_the_sliding_best_window_agrees_with_the_quadratic_one(seed):
    rng = random.Random(seed)
    for _ in range(100):
        spans, position = [], 0
        for _ in range(rng.randint(1, 40)):
            position += rng.randint(0, 30)
            size = rng.randint(1, 40)  # some wider than the window
            spans.append((position, position + size, rng.choice("abcde")))
            position += size
        width = rng.randint(1, 150)
        assert snippets._best_window(spans, width) == _quadratic_best_window(spans, width)


_OLD_SENTENCE_END = re.compile(r"[.!?](?:[\"'”’)\]]*)(?=\s)|[。！？]|\n")


def test_the_sentence_end_pattern_matches_as_the_plain_alternation_did():
    rng = random.Random(7)
    pieces = list("ab .!?。！？\n\"'”’)]") + ["\u3000", "\t", "x.y", ".)\n"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert [m.span() for m in snippets._SENTENCE_END.finditer(text)] == [
            m.span() for m in _OLD_SENTENCE_END.finditer(text)
        ], text
        # Bounded to a window (as _cut_end reads it): the look-ahead cannot see past it.
        a, b = sorted(rng.randint(0, len(text)) for _ in range(2))
        assert [m.span() for m in snippets._SENTENCE_END.finditer(text, a, b)] == [
            m.span() for m in _OLD_SENTENCE_END.finditer(text, a, b)
        ], (text, a, b)


def test_sentence_starts_up_to_a_bound_are_those_of_the_whole_text():
    text = "intro mid-sentence. First one!  Second?\nThird line.\n\nFourth. " + FILLER
    everything = snippets._sentence_starts(text, until=len(text))
    assert sorted(set(everything))[:5] == [text.index(s) for s in ("First", "Second", "Third", "Fourth", "Nothing")]
    for until in range(len(text)):
        assert [s for s in snippets._sentence_starts(text, until) if s <= until] == [s for s in everything if s <= until]


def test_sentence_starts_from_a_point_are_those_of_the_whole_text_from_there():
    # best_passage asks only for the starts within the slack before the first
    # match; the scan then begins near that point, not at the text's start.
    rng = random.Random(11)
    pieces = [*"ab .!?。！？\n\"'”’)]", "\u3000", "\t", "x.y", ".)\n", ". ", ".\" ", "  ", "Word", "word"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        everything = snippets._sentence_starts(text, until=len(text))
        since, until = sorted(rng.randint(0, len(text)) for _ in range(2))
        expected = [s for s in everything if since <= s <= until]
        got = [s for s in snippets._sentence_starts(text, until, since=since) if s <= until]
        assert got == expected, (text, since, until)


# Long texts as hits have them: words in several cases and scripts, numbers,
# punctuation and apostrophes, sentence ends (also CJK ones), line breaks.
_WORDS = [
    "Revenue", "revenue", "REVENUE", "data", "Data", "center", "centre", "grew", "U.S.", "NVIDIA's", "don't", "the", "of",
    "数据", "数据库", "中文", "résumé", "Straße", "x²", "_id", "2023", "a", "cells", "cell", "Cell", "β-catenin", "IL-6",
]
_BREAKS = [" ", " ", " ", " ", ", ", ". ", "! ", "? ", "。", "\n", "\n\n", "; ", " (", ") ", '." ', " - "]


def _long_text(rng):
    return "".join(rng.choice(_WORDS) + rng.choice(_BREAKS) for _ in range(rng.randint(1, 400)))


@pytest.mark.parametrize("seed", range(10))
def test_best_passage_agrees_with_the_one_built_on_the_reference_spans_and_window(monkeypatch, seed):
    rng = random.Random(seed)
    analyzer = Analyzer(AnalyzerConfig())
    cases = []
    for _ in range(60):
        text = _long_text(rng)
        query = " ".join(rng.sample(_WORDS, rng.randint(1, 6)))
        surfaces = analyzer.matched_surfaces(text, set(analyzer.tokenize(query)))
        if rng.random() < 0.2:  # surfaces that are not whole words, or absent
            surfaces = (*surfaces, rng.choice(["ata", "U.S", "'s", "数", "xyz", "e"]))
        width = rng.choice([SNIPPET_CHARS, SNIPPET_CHARS, 1, 40, 120, 1000])
        cases.append((text, surfaces, width, best_passage(text, surfaces, width)))
    # The same best_passage on the earlier match_spans (one regex) and window (quadratic).
    monkeypatch.setattr(snippets, "match_spans", _regex_match_spans)
    monkeypatch.setattr(snippets, "_best_window", _quadratic_best_window)
    for text, surfaces, width, found in cases:
        assert found == best_passage(text, surfaces, width), (text, surfaces, width)


@pytest.mark.parametrize("cached", [2048, 3])
def test_match_spans_of_texts_and_surfaces_seen_before_agree_with_the_regex(monkeypatch, cached):
    # Each (text, surface) first searched, then looked up (or searched again
    # once a 3-text table started afresh): the reference's spans every time.
    monkeypatch.setattr(snippets, "_CACHED_TEXTS", cached)
    monkeypatch.setattr(snippets, "_occurrences", {})
    rng = random.Random(21)
    cases = []
    for _ in range(300):
        text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 60)))
        pieces = [text[a : a + rng.randint(1, 4)] for a in (rng.randrange(len(text)) for _ in range(rng.randint(0, 5)))] if text else []
        cases.append((text, pieces + ["ab", "数据", "_", "b\n"]))
    for _ in range(2):
        for text, surfaces in cases:
            assert match_spans(text, surfaces) == _regex_match_spans(text, surfaces), (text, surfaces)
    assert 0 < len(snippets._occurrences) <= cached
