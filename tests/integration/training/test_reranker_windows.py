"""Training on long passages: each passage becomes its best-matching window."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from hybrid_search.errors import ConfigError
from training.data import Example
from training.reranker import RerankerTrainConfig, WindowPicker, windowed_examples

pytestmark = pytest.mark.integration

FILLER = "the retriever indexes documents in milvus and fuses bm25 with dense vectors . "


def test_long_positive_is_cut_to_the_window_holding_the_answer(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_models.cross_encoder))
    config = RerankerTrainConfig(base_model="x", max_length=48, window_overlap=8, long_passages="max-window")
    pick = WindowPicker(tokenizer, config)
    answer = "the cat chased the dog across the garden ."
    positive = FILLER * 5 + answer + " " + FILLER * 3
    example = Example(query="where did the cat chase the dog", pos=[positive], neg=[FILLER * 6, "short negative"])
    (cut,) = windowed_examples([example], pick)
    assert answer in cut.pos[0] and len(cut.pos[0]) < len(positive)
    assert len(cut.neg[0]) < len(FILLER * 6)
    assert cut.neg[1] == "short negative"
    assert (pick.passages, pick.windowed) == (3, 2)


def test_window_settings_are_checked():
    with pytest.raises(ConfigError, match="long_passages"):
        RerankerTrainConfig(base_model="x", long_passages="firstp")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="window_overlap"):
        RerankerTrainConfig(base_model="x", max_length=64, window_overlap=40, long_passages="max-window")
