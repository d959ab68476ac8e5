"""Long candidates scored as windows (MaxP) against the reranker's own scores."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from hybrid_search.config import RerankConfig, RuntimeConfig
from hybrid_search.rerank import load_reranker, split_windows, window_budget

pytestmark = pytest.mark.integration

FILLER = "the retriever indexes documents in milvus and fuses bm25 with dense vectors . "


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    return AutoTokenizer.from_pretrained(str(tiny_models.cross_encoder))


def _tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_windows_fit_overlap_cover_the_text_and_cut_between_words(tokenizer):
    text = " ".join(f"{word}{i}" for i, word in enumerate(["retrievers", "rerank", "chunks"] * 60))
    query = "which chunks rerank"
    windows = split_windows(tokenizer, text, window_budget(tokenizer, query, max_length=64), overlap=8)
    budget = 64 - _tokens(tokenizer, query) - 4
    assert len(windows) > 3
    assert all(_tokens(tokenizer, w) <= budget for w in windows)
    words = text.split()
    # every window is a run of whole words, and together they cover every word
    covered: set[int] = set()
    for window in windows:
        pieces = window.split()
        start = words.index(pieces[0])
        assert words[start : start + len(pieces)] == pieces
        covered.update(range(start, start + len(pieces)))
    assert covered == set(range(len(words)))
    # consecutive windows share words (the overlap)
    assert all(set(a.split()) & set(b.split()) for a, b in zip(windows, windows[1:]))


def test_short_text_is_its_own_only_window(tokenizer):
    assert split_windows(tokenizer, "a short passage", window_budget(tokenizer, "query", 64), overlap=8) == ["a short passage"]


@pytest.mark.parametrize("kind", ["cross-encoder", "flag"])
def test_max_window_score_is_the_best_window_score(tiny_models, kind):
    runtime = RuntimeConfig(device="cpu")
    common = dict(model=str(tiny_models.cross_encoder), kind=kind, max_length=48, window_overlap=8)
    windowed = load_reranker(RerankConfig(long_passages="max-window", **common), runtime)
    truncating = load_reranker(RerankConfig(**common), runtime)
    query = "cat and dog"
    long_text = FILLER * 6 + "the cat chased the dog across the garden . " + FILLER * 3
    short_text = "a cat sat"
    windows = split_windows(windowed.tokenizer, long_text, window_budget(windowed.tokenizer, query, 48), 8)
    assert len(windows) > 2
    expected_long = max(truncating.score(query, windows))
    got_long, got_short = windowed.score(query, [long_text, short_text])
    assert got_long == pytest.approx(expected_long, abs=1e-5)
    assert got_short == pytest.approx(truncating.score(query, [short_text])[0], abs=1e-5)
    # truncation alone never sees the part of the text past max_length
    assert truncating.score(query, [long_text])[0] == pytest.approx(truncating.score(query, [windows[0]])[0], abs=1e-5)


def test_config_checks_window_settings():
    from hybrid_search.errors import ConfigError

    with pytest.raises(ConfigError, match="long_passages must be one of"):
        RerankConfig(long_passages="maxp")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="window_overlap"):
        RerankConfig(max_length=64, window_overlap=40, long_passages="max-window")
