"""Duplicate collapsing on hand-made candidate lists."""

import random
import unicodedata
from collections import Counter

import pytest

from hybrid_search import collapse
from hybrid_search.collapse import (
    _WORD,
    NEAR_DUPLICATE_JACCARD,
    _words,
    collapse_duplicates,
    shingles,
)

pytestmark = pytest.mark.unit

PARAGRAPH = (
    "The standing trustee must keep a record of every receipt and disbursement, reconcile the bank "
    "statements monthly and keep blank check stock in a locked cabinet with restricted access."
)


def _collapse(texts: dict[str, str], k: int, **kwargs):
    ranked = [(cid, 1.0 / (i + 1)) for i, cid in enumerate(texts)]
    return collapse_duplicates(ranked, texts.__getitem__, k, **kwargs)


def test_exact_copies_fold_into_the_best_ranked_one():
    texts = {"a#0": PARAGRAPH, "b#0": "Something else entirely about dogs.", "a#7": PARAGRAPH, "a#9": PARAGRAPH}
    result = _collapse(texts, k=10)
    assert [cid for cid, _ in result.kept] == ["a#0", "b#0"]
    assert result.folded["a#0"] == [("a#7", 1.0), ("a#9", 1.0)]
    assert result.folded["b#0"] == []
    assert result.folded_count == 2


def test_case_punctuation_and_spacing_do_not_make_a_copy_distinct():
    variant = "  " + PARAGRAPH.upper().replace(",", " ;").replace(" ", "\n  ") + "!!"
    result = _collapse({"x": PARAGRAPH, "y": variant}, k=5)
    assert [cid for cid, _ in result.kept] == ["x"]
    assert result.folded["x"] == [("y", 1.0)]


LONG = PARAGRAPH + " " + " ".join(f"Clause {i} binds ledger {i * 7}." for i in range(30))  # 150 words


def test_one_changed_word_in_a_long_text_folds_as_near_duplicate_with_its_similarity():
    edited = LONG.replace("monthly", "weekly", 1)
    result = _collapse({"x": LONG, "y": edited}, k=5)
    assert [cid for cid, _ in result.kept] == ["x"]
    ((copy, similarity),) = result.folded["x"]
    a, b = shingles(_words(LONG)), shingles(_words(edited))
    assert copy == "y" and similarity == pytest.approx(len(a & b) / len(a | b))
    assert NEAR_DUPLICATE_JACCARD <= similarity < 1.0


def test_texts_that_differ_in_a_name_stay_apart():
    # As the CEO's and the CFO's certifications in a 10-K (0.92 alike).
    ceo = "I, Jen-Hsun Huang, certify that: " + LONG
    cfo = "I, Colette M. Kress, certify that: " + LONG.replace("trustee", "officer", 2)
    result = _collapse({"ceo": ceo, "cfo": cfo}, k=5)
    assert [cid for cid, _ in result.kept] == ["ceo", "cfo"]


def test_overlapping_neighbours_are_not_duplicates():
    words = [f"w{i}" for i in range(120)]
    first, second = " ".join(words[:80]), " ".join(words[60:])  # 20 words of overlap
    result = _collapse({"d#0": first, "d#1": second}, k=5)
    assert [cid for cid, _ in result.kept] == ["d#0", "d#1"]
    assert result.folded_count == 0


def test_collapsing_fills_k_from_later_candidates_and_counts_copies_past_k():
    texts = {
        "a": PARAGRAPH, "a2": PARAGRAPH, "b": "cats sit on mats", "b2": "Cats sit on mats.", "c": "dogs chase cats",
        "d": "milvus stores vectors", "a3": PARAGRAPH, "a4": PARAGRAPH.upper(),
    }
    result = _collapse(texts, k=3)
    # Three distinct hits although the top four hold only two distinct texts.
    assert [cid for cid, _ in result.kept] == ["a", "b", "c"]
    # "d" found no room; the exact copy of "a" ranked after it is still
    # counted, a copy differing in case only before the last hit.
    assert result.folded["a"] == [("a2", 1.0), ("a3", 1.0)]
    assert result.folded["b"] == [("b2", 1.0)]


def test_scores_and_order_of_kept_hits_are_untouched():
    ranked = [("p", 0.9), ("q", 0.5), ("r", 0.4)]
    texts = {"p": "alpha beta gamma delta", "q": "alpha beta gamma delta", "r": "epsilon zeta eta"}
    result = collapse_duplicates(ranked, texts.__getitem__, 10)
    assert result.kept == [("p", 0.9), ("r", 0.4)]


def test_a_copy_folds_into_the_most_similar_kept_hit():
    base = " ".join(f"w{i}" for i in range(200))
    near_base = base.replace("w100", "x100")  # one word off "base"
    texts = {"first": near_base, "second": base, "copy": base}
    # "second" is near "first" (and folds into it); "copy" equals "second"'s text
    # but "second" was folded, so "copy" folds into "first" too.
    result = _collapse(texts, k=5)
    assert [cid for cid, _ in result.kept] == ["first"]
    assert [cid for cid, _ in result.folded["first"]] == ["second", "copy"]


def test_chinese_text_collapses_by_characters():
    text = "向量数据库用于高效的相似度检索。"
    result = _collapse({"z1": text, "z2": text.replace("。", "！"), "z3": "今天天气很好。"}, k=5)
    assert [cid for cid, _ in result.kept] == ["z1", "z3"]


def test_threshold_must_be_a_fraction():
    with pytest.raises(ValueError):
        _collapse({"a": "x"}, k=1, threshold=0.0)


def _regex_words(text):
    """The words as found before the ASCII shortcut: the reference."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def test_ascii_words_are_the_regex_words():
    rng = random.Random(3)
    alphabet = [chr(code) for code in range(128)] + ["Word", "CAPS", "snake_case", "x9"]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert _words(text) == _regex_words(text), text
    for text in ("Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ", "Straße STRASSE", "数据库 ﬁle x²", "café CAFÉ"):
        assert _words(text) == _regex_words(text)


# Characters where splitting at ASCII punctuation and white space before
# NFKC's and casefold's output is read could go wrong: combining marks after
# punctuation, compatibility forms that expand (ﬁ, ½, ⑴, ㎏), Unicode white
# space, case folds that change length (ß, İ), Han, apostrophes, surrogates.
_TRICKY = [
    "e\u0301", "\u0301", "<\u0338", "=\u0338", "ß", "ẞ", "İ", "ı", "Σ", "ς", "ﬁ", "½", "⑴", "㎏", "Ｆｕｌｌ", "－", "²",
    "\u00a0", "\u2009", "\u3000", "\u2028", "\x1c", "\x85", "\u200b", "数据", "库", "’", "ʼ", "\u212a", "Å", "café",
    "\ud800", "_", "x9", "CAPS", " ", ",", "'", "-",
]


@pytest.mark.parametrize("seed", range(5))
def test_non_ascii_words_are_the_regex_words(seed):
    rng = random.Random(seed)
    alphabet = _TRICKY + [chr(code) for code in range(128)]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        assert _words(text) == _regex_words(text), ascii(text)


def test_every_basic_plane_character_splits_words_as_the_regex_does():
    for block in range(0, 0x10000, 256):
        chars = [chr(code) for code in range(block, block + 256) if not 0xD800 <= code <= 0xDFFF]
        for joiner in ("a{}B", " {}x", ",{}.", "{}"):
            text = "".join(joiner.format(ch) for ch in chars)
            assert _words(text) == _regex_words(text), hex(block)


def _indexed_collapse(ranked, text_of, k, threshold=NEAR_DUPLICATE_JACCARD):
    """The earlier collapse (an inverted index from 3-gram to kept hit,
    comparing every kept hit sharing one): the reference."""
    kept, folded, by_text, by_words, kept_grams, index, position = [], {}, {}, {}, {}, {}, {}
    for cid, score in ranked:
        text = text_of(cid)
        if text in by_text:
            folded[by_text[text]].append((cid, 1.0))
            continue
        if len(kept) >= k:
            continue
        words = tuple(_regex_words(text))
        if words in by_words:
            folded[by_words[words]].append((cid, 1.0))
            continue
        grams = shingles(words)
        shared = Counter(other for gram in grams for other in index.get(gram, ()))
        if shared:
            similarity = {o: n / (len(grams) + len(kept_grams[o]) - n) for o, n in shared.items()}
            best = max(similarity, key=lambda o: (similarity[o], -position[o]))
            if similarity[best] >= threshold:
                folded[best].append((cid, similarity[best]))
                continue
        kept.append((cid, score))
        folded[cid] = []
        by_text[text], by_words[words], kept_grams[cid], position[cid] = cid, cid, grams, len(position)
        for gram in grams:
            index.setdefault(gram, []).append(cid)
    return kept, folded


@pytest.mark.parametrize("seed", range(30))
def test_collapse_agrees_with_the_inverted_index_version(seed):
    rng = random.Random(seed)
    vocabulary = ["alpha", "beta", "gamma", "delta", "Delta", "eps", "数", "据"]
    for _ in range(20):
        bases = [[rng.choice(vocabulary) for _ in range(rng.randint(0, 60))] for _ in range(4)]
        texts = {}
        for i in range(rng.randint(1, 25)):
            words = list(rng.choice(bases))
            for _ in range(rng.choice((0, 0, 1, 2, 5))):  # copies, near copies, others
                if words:
                    words[rng.randrange(len(words))] = rng.choice(vocabulary)
            texts[f"c{i}"] = rng.choice((" ", ", ", "\n")).join(words)
        ranked = [(cid, 1.0 / (i + 1)) for i, cid in enumerate(texts)]
        k = rng.randint(1, 12)
        threshold = rng.choice((NEAR_DUPLICATE_JACCARD, 0.5, 0.8, 0.9, 1.0, 0.1))
        result = collapse_duplicates(ranked, texts.__getitem__, k, threshold=threshold)
        assert (result.kept, result.folded) == _indexed_collapse(ranked, texts.__getitem__, k, threshold)


@pytest.mark.parametrize("longer_first", [True, False])
def test_a_similarity_exactly_at_the_threshold_folds_whichever_text_is_longer(longer_first):
    # 17 of 19 3-grams shared: the shorter text's 3-grams are all in the longer one.
    short, long = " ".join(f"w{i}" for i in range(19)), " ".join(f"w{i}" for i in range(21))
    first, second = (long, short) if longer_first else (short, long)
    result = _collapse({"first": first, "second": second}, k=5, threshold=17 / 19)
    assert [cid for cid, _ in result.kept] == ["first"]
    assert result.folded["first"] == [("second", 17 / 19)]
    assert [cid for cid, _ in _collapse({"first": first, "second": second}, k=5, threshold=0.9).kept] == ["first", "second"]


@pytest.mark.parametrize("seed", range(12))
def test_collapse_agrees_with_the_inverted_index_version_on_long_texts_and_near_copies(seed):
    # A large vocabulary and long texts: unrelated texts of every 3-gram count,
    # a text repeated (few 3-grams for its length), edited copies near the threshold.
    rng = random.Random(100 + seed)
    vocabulary = [f"w{i}" for i in range(300)] + ["Data", "data", "数", "据", "the", "of"]
    for _ in range(10):
        bases = [[rng.choice(vocabulary) for _ in range(rng.randint(0, 300))] for _ in range(5)]
        bases.append(bases[0] * 2)  # a text repeated: few 3-grams for its words
        texts = {}
        for i in range(rng.randint(1, 30)):
            words = list(rng.choice(bases))
            for _ in range(rng.choice((0, 0, 1, 1, 2, 3, 8, 40))):
                if words and rng.random() < 0.5:
                    words[rng.randrange(len(words))] = rng.choice(vocabulary)
                elif rng.random() < 0.5:
                    words.insert(rng.randint(0, len(words)), rng.choice(vocabulary))
                elif words:
                    del words[rng.randrange(len(words))]
            texts[f"c{i}"] = rng.choice((" ", ", ", "\n")).join(words)
        ranked = [(cid, 1.0 / (i + 1)) for i, cid in enumerate(texts)]
        k = rng.randint(1, 15)
        threshold = rng.choice((NEAR_DUPLICATE_JACCARD, NEAR_DUPLICATE_JACCARD, 0.99, 0.9, 0.8, 1.0, 0.5))
        result = collapse_duplicates(ranked, texts.__getitem__, k, threshold=threshold)
        assert (result.kept, result.folded) == _indexed_collapse(ranked, texts.__getitem__, k, threshold)



@pytest.mark.parametrize("cached_texts, cached_pairs", [(4096, 1 << 15), (3, 2), (1, 1)])
def test_what_is_kept_per_process_never_changes_a_result(monkeypatch, cached_texts, cached_pairs):
    # The same candidate lists first seen, then seen again (texts and pairs
    # looked up), with tables small enough to start afresh mid-call: always the
    # reference's result. Chinese, accented and mixed-case near copies included.
    monkeypatch.setattr(collapse, "_CACHED_TEXTS", cached_texts)
    monkeypatch.setattr(collapse, "_CACHED_PAIRS", cached_pairs)
    monkeypatch.setattr(collapse, "_texts", {})
    monkeypatch.setattr(collapse, "_overlaps", {})
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(40)] + ["数", "据", "库", "Café", "café", "STRASSE", "straße", "ﬁle", "it’s", "x²"]
    cases = []
    for _ in range(40):
        bases = [[rng.choice(vocabulary) for _ in range(rng.randint(0, 80))] for _ in range(4)]
        texts = {}
        for i in range(rng.randint(1, 20)):
            words = list(rng.choice(bases))
            for _ in range(rng.choice((0, 0, 1, 2, 6))):
                if words:
                    words[rng.randrange(len(words))] = rng.choice(vocabulary)
            texts[f"c{i}"] = rng.choice(("", " ", ", ", "\n", "。")).join(words)
        ranked = [(cid, 1.0 / (i + 1)) for i, cid in enumerate(texts)]
        cases.append((ranked, texts, rng.randint(1, 12), rng.choice((NEAR_DUPLICATE_JACCARD, 0.5, 0.8, 1.0, 0.1))))
    folded = 0
    for _ in range(2):
        for ranked, texts, k, threshold in cases:
            result = collapse_duplicates(ranked, texts.__getitem__, k, threshold=threshold)
            assert (result.kept, result.folded) == _indexed_collapse(ranked, texts.__getitem__, k, threshold)
            folded += sum(1 for copies in result.folded.values() for _, similarity in copies if similarity < 1.0)
    assert folded > 0  # near copies were among them
    assert len(collapse._texts) <= cached_texts and len(collapse._overlaps) <= cached_pairs


def test_a_text_seen_before_is_looked_up_not_analysed_again(monkeypatch):
    monkeypatch.setattr(collapse, "_texts", {})
    monkeypatch.setattr(collapse, "_overlaps", {})
    texts = {"a": LONG, "b": LONG.replace("monthly", "weekly", 1), "c": PARAGRAPH}
    first = _collapse(texts, k=5)
    calls = []
    monkeypatch.setattr(collapse, "_words", lambda text: calls.append(text) or [])
    monkeypatch.setattr(collapse, "shingles", lambda words: calls.append(words) or frozenset())  # pairs compared before
    again = _collapse(texts, k=5)
    assert (again.kept, again.folded) == (first.kept, first.folded) and calls == []
    assert first.folded["a"][0][0] == "b"
