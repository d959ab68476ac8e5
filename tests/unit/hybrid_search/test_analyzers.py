import random

import pytest

from hybrid_search import analyzers
from hybrid_search.analyzers import Analyzer
from hybrid_search.config import AnalyzerConfig
from hybrid_search.errors import ConfigError

pytestmark = pytest.mark.unit


def test_english_lowercases_drops_stopwords_and_stems():
    analyzer = Analyzer(AnalyzerConfig(language="en"))
    assert analyzer.tokenize("The Running dogs of NVIDIA's data-centers") == ["run", "dog", "nvidia", "data", "center"]
    assert analyzer.index_text("Cats, cats!") == "cat cat"


def test_options_turn_off_stopwords_and_stemming():
    analyzer = Analyzer(AnalyzerConfig(language="en", stopwords=False, stem=False))
    assert analyzer.tokenize("The running dogs") == ["the", "running", "dogs"]


def test_spans_point_into_the_original_text():
    text = "Ｆｕｌｌ-width ＡＢＣ and Milvus"
    analyzer = Analyzer(AnalyzerConfig(language="en", stem=False))
    for term, start, end in analyzer.term_spans(text):
        assert analyzer.tokenize(text[start:end]) == [term]


def test_han_characters_in_english_mode_become_single_terms():
    assert Analyzer(AnalyzerConfig(language="en")).tokenize("Milvus向量库") == ["milvus", "向", "量", "库"]


def test_chinese_uses_jieba_search_mode():
    terms = Analyzer(AnalyzerConfig(language="zh")).tokenize("向量数据库支持全文检索。")
    assert "向量" in terms and "数据库" in terms and "数据" in terms and "检索" in terms
    assert "。" not in terms


def test_user_dictionary_keeps_domain_terms_whole(tmp_path):
    plain = Analyzer(AnalyzerConfig(language="zh")).tokenize("混合检索引擎上线")
    assert "混合检索引擎" not in plain
    user_dict = tmp_path / "dict.txt"
    user_dict.write_text("混合检索引擎 100 n\n", encoding="utf-8")
    custom = Analyzer(AnalyzerConfig(language="zh", user_dict=str(user_dict))).tokenize("混合检索引擎上线")
    assert "混合检索引擎" in custom
    # the dictionary is private to that analyzer
    assert Analyzer(AnalyzerConfig(language="zh")).tokenize("混合检索引擎上线") == plain


def test_missing_user_dictionary_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="user_dict"):
        Analyzer(AnalyzerConfig(language="zh", user_dict=str(tmp_path / "nope.txt")))


def test_matched_surfaces_reports_what_the_query_matched():
    analyzer = Analyzer(AnalyzerConfig(language="en"))
    query_terms = set(analyzer.tokenize("running cats"))
    assert analyzer.matched_surfaces("The cat runs; cats ran. RUNNING!", query_terms) == ("cat", "runs", "cats", "RUNNING")


@pytest.mark.parametrize("apostrophe", ["'", "\u2019", "\u02bc"])
def test_possessives_leave_no_s_term(apostrophe):
    analyzer = Analyzer(AnalyzerConfig(language="en"))
    text = f"NVIDIA{apostrophe}s revenue and the companies{apostrophe} U.S. sales"
    terms = analyzer.tokenize(text)
    assert terms == ["nvidia", "revenu", "compani", "u", "s", "sale"]  # the only s is U.S.'s
    assert analyzer.tokenize(f"NVIDIA{apostrophe}s") == ["nvidia"]
    # the span is the word without its clitic, so highlighting marks "NVIDIA"
    assert [text[start:end] for term, start, end in analyzer.term_spans(text) if term == "nvidia"] == ["NVIDIA"]


def test_a_possessive_query_does_not_highlight_us():
    analyzer = Analyzer(AnalyzerConfig(language="en"))
    query_terms = set(analyzer.tokenize("NVIDIA's revenue"))
    assert analyzer.matched_surfaces("NVIDIA's U.S. revenue", query_terms) == ("NVIDIA", "revenue")


@pytest.mark.parametrize(
    "text, terms",
    [
        ("we'll", ["we"]),
        ("I'm", ["i"]),
        ("we've they'd", ["we"]),  # "they" is a stopword
        ("it's", []),  # it + possessive-like 's: the stopword "it" only
        ("don't can't won't", ["dont", "cant", "wont"]),
        ("O'Brien", ["obrien"]),
        ("'quoted'", ["quot"]),
    ],
)
def test_clitics_are_dropped_and_other_apostrophes_join_the_word(text, terms):
    analyzer = Analyzer(AnalyzerConfig(language="en"))
    assert analyzer.tokenize(text) == terms
    fragments = {"s", "t", "ll", "re", "ve", "d", "m"}
    assert not fragments & set(analyzer.tokenize(text))


def test_query_without_the_apostrophe_matches_the_contraction():
    analyzer = Analyzer(AnalyzerConfig(language="en"))
    assert analyzer.tokenize("dont") == analyzer.tokenize("don't")


def test_chinese_mode_drops_clitic_fragments_of_english_words():
    terms = Analyzer(AnalyzerConfig(language="zh")).tokenize("NVIDIA's 数据库 don't we'll")
    assert "nvidia" in terms and "数据库" in terms
    assert not {"s", "t", "ll"} & set(terms)
    assert "s" in Analyzer(AnalyzerConfig(language="zh", version=1)).tokenize("NVIDIA's")


def test_version_1_keeps_its_rules():
    analyzer = Analyzer(AnalyzerConfig(language="en", version=1))
    assert analyzer.tokenize("NVIDIA's don't") == ["nvidia", "s", "don", "t"]


@pytest.mark.parametrize("version", [0, 3, True, "2"])
def test_unknown_analyzer_versions_are_refused(version):
    with pytest.raises(ConfigError, match="version"):
        AnalyzerConfig(version=version)


# Words, clitics and apostrophes of all three kinds, stopwords, Han, full-width
# and accented letters, digits, a word longer than a term may be, separators.
_PIECES = [
    "NVIDIA", "nvidia", "Data", "the", "THE", "running", "runs", "'s", "'ll", "n't", "'", "\u2019", "\u02bc",
    "don", "O", "Brien", "向", "量", "库", "Ｆｕｌｌ", "ÉTÉ", "x²", "_id", "2023", "a" * 70, " ", " ", ", ", ".", "-", "\n",
]


@pytest.mark.parametrize(
    "config",
    [
        AnalyzerConfig(),
        AnalyzerConfig(stopwords=False, stem=False),
        AnalyzerConfig(version=1),
    ],
    ids=["v2", "v2-plain", "v1"],
)
def test_distinct_surface_pairs_are_those_of_the_term_spans(config):
    analyzer = Analyzer(config)
    rng = random.Random(11)
    for _ in range(1500):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 25)))
        expected = tuple(dict.fromkeys((term, text[start:end]) for term, start, end in analyzer.term_spans(text)))
        assert analyzer._distinct_surface_pairs(text) == expected, text
        query = {term for term, _ in expected if rng.random() < 0.5}
        assert analyzer.matched_surfaces(text, query) == tuple(
            dict.fromkeys(surface for term, surface in expected if term in query)
        )



# Where reading the words between blanked ASCII punctuation and Unicode white
# space could part from the word pattern: white space of all kinds, combining
# marks, apostrophes next to punctuation and non-ASCII letters, lone surrogates.
_TRICKY_PIECES = _PIECES + [
    "\u00a0", "\u2009", "\u3000", "\u2028", "\x1c", "\x85", "\u200b", "e\u0301", "\u0301", "ß", "İ", "ﬁ", "½", "café",
    "O'Brien", "'quoted'", "rock'n'roll", "it’s", "\ud800", "''", "'\u2019", "数'据",
]


@pytest.mark.parametrize("config", [AnalyzerConfig(), AnalyzerConfig(version=1)], ids=["v2", "v1"])
@pytest.mark.parametrize("seed", range(3))
def test_distinct_surface_pairs_on_mixed_scripts_are_those_of_the_term_spans(config, seed):
    analyzer = Analyzer(config)
    rng = random.Random(seed)
    for _ in range(1500):
        text = "".join(rng.choice(_TRICKY_PIECES) for _ in range(rng.randint(1, 25)))
        expected = tuple(dict.fromkeys((term, text[start:end]) for term, start, end in analyzer.term_spans(text)))
        assert analyzer._distinct_surface_pairs(text) == expected, ascii(text)
        query = {term for term, _ in expected if rng.random() < 0.5} | {"absent"}
        assert analyzer.matched_surfaces(text, query) == _matched_reference(analyzer, text, query), ascii(text)


def _matched_reference(analyzer, text, query_terms):
    """The surfaces of the query's terms in text order, straight from term_spans."""
    return tuple(dict.fromkeys(text[start:end] for term, start, end in analyzer.term_spans(text) if term in query_terms))


def test_matched_surfaces_stay_right_when_the_word_index_starts_afresh(monkeypatch):
    monkeypatch.setattr(analyzers, "_KNOWN_WORDS", 5)
    analyzer = Analyzer(AnalyzerConfig())
    rng = random.Random(5)
    for _ in range(300):
        text = "".join(rng.choice(_TRICKY_PIECES) for _ in range(rng.randint(1, 25)))
        query = {term for term in analyzer.tokenize(text) if rng.random() < 0.6}
        assert analyzer.matched_surfaces(text, query) == _matched_reference(analyzer, text, query), ascii(text)
    assert len(analyzer._surface_index.known) < 5 + 25


@pytest.mark.parametrize("config", [AnalyzerConfig(stem=False, stopwords=False), AnalyzerConfig(stem=False, version=1)], ids=["v2", "v1"])
def test_every_basic_plane_character_separates_words_as_the_term_spans_do(config):
    analyzer = Analyzer(config)
    for block in range(0, 0x10000, 256):
        chars = [chr(code) for code in range(block, block + 256) if not 0xD800 <= code <= 0xDFFF]
        for joiner in ("a{}B", " {}x", "'{}'s", ",{}."):
            text = "".join(joiner.format(ch) for ch in chars)
            expected = tuple(dict.fromkeys((term, text[start:end]) for term, start, end in analyzer.term_spans(text)))
            assert analyzer._distinct_surface_pairs(text) == expected, hex(block)


@pytest.mark.parametrize("known_words", [5, 1 << 18])
def test_a_query_matcher_finds_what_matched_surfaces_finds_while_other_queries_file_words(monkeypatch, known_words):
    monkeypatch.setattr(analyzers, "_KNOWN_WORDS", known_words)
    analyzer = Analyzer(AnalyzerConfig())
    rng = random.Random(9)
    texts = ["".join(rng.choice(_TRICKY_PIECES) for _ in range(rng.randint(1, 25))) for _ in range(200)]
    queries = [{term for term in analyzer.tokenize(rng.choice(texts) + " " + rng.choice(texts)) if rng.random() < 0.6} for _ in range(3)]
    matchers = [analyzer.surface_matcher(query) for query in queries]
    for text in texts:
        # Another query's matcher reads a new text first: words it files must
        # still reach this query's matcher.
        for query, matcher in rng.sample(list(zip(queries, matchers)), len(matchers)):
            assert matcher(text) == _matched_reference(analyzer, text, query), ascii(text)


@pytest.mark.parametrize("cached_texts", [2048, 2])
def test_matched_surfaces_of_texts_seen_before_are_those_of_the_term_spans(monkeypatch, cached_texts):
    # Each text first seen, then looked up (or, with a 2-text cache, analysed
    # again): the same surfaces in the same order, and a cached text's words
    # are the copies the word index holds (one copy of a word for all texts).
    monkeypatch.setattr(analyzers, "_CACHED_TEXTS", cached_texts)
    analyzer = Analyzer(AnalyzerConfig())
    rng = random.Random(11)
    texts = ["".join(rng.choice(_TRICKY_PIECES + ["Data ", "data ", "数据库", "Café "]) for _ in range(rng.randint(1, 30))) for _ in range(60)]
    queries = [{term for term in analyzer.tokenize(rng.choice(texts)) if rng.random() < 0.7} for _ in range(4)]
    for _ in range(2):
        for query in queries:
            matcher = analyzer.surface_matcher(query)
            for text in texts:
                assert matcher(text) == _matched_reference(analyzer, text, query), ascii(text)
    if cached_texts > len(texts):
        index = analyzer._surface_index
        for text in texts:
            if analyzers._has_apostrophe(text):
                continue  # matched by its (term, surface) pairs instead
            entry = analyzer._text_words(text)
            assert entry.index is index and all(index.known[word] is word for word in entry.words)
