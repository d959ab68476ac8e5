"""Query batches in packed rows (packed.py; SPLADE: its MLM head on each
query's own tokens) give the vectors of the padded
batch and of each query alone (tiny real models), and the packed path is
only taken where the check at load passes."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hybrid_search import DenseEncoderConfig, RuntimeConfig, SparseEncoderConfig
from hybrid_search.encoders import SentenceTransformerDense, SpladeSparse
from hybrid_search.packed import checked, packable, packed_hidden

pytestmark = pytest.mark.integration

# One word to a long sentence: a padded batch of these is mostly padding.
QUERIES = [
    "cat",
    "dogs in the garden every morning",
    "vector database",
    "profit in the fourth quarter of the year and data center revenue grew as customers bought accelerated computing",
    "what does milvus store",
    "the the the",
]


def _dense(tiny_models) -> SentenceTransformerDense:
    return SentenceTransformerDense(DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers"), RuntimeConfig(device="cpu"))


def test_dense_packed_batch_equals_padded_batch_and_each_query_alone(tiny_models):
    encoder = _dense(tiny_models)
    assert encoder._packed_pooling == "mean"  # the path under test
    packed = encoder.encode_queries(QUERIES)
    padded = encoder._encode(QUERIES, encoder.query_prompt)
    alone = np.stack([encoder.encode_queries([query])[0] for query in QUERIES])
    assert packed.dtype == np.float32 and packed.shape == padded.shape
    assert np.abs(packed - padded).max() < 1e-5
    assert np.abs(packed - alone).max() < 1e-5
    assert np.allclose(np.linalg.norm(packed, axis=1), 1.0, atol=1e-5)


def test_dense_packed_with_a_query_prompt_and_cls_pooling(tiny_models):
    encoder = _dense(tiny_models)
    encoder.query_prompt = "query: "
    encoder.model[1].pooling_mode = "cls"
    pooling = encoder._find_packed_pooling("tiny")
    assert pooling == "cls"
    packed = encoder._encode_packed(QUERIES, encoder.query_prompt, pooling)
    padded = encoder._encode(QUERIES, encoder.query_prompt)
    assert np.abs(packed - padded).max() < 1e-5
    # The prompt is really in: without it the vectors differ.
    assert np.abs(packed - encoder._encode_packed(QUERIES, "", pooling)).max() > 1e-3


def test_rows_cut_at_the_limit_give_the_same_states(tiny_models):
    encoder = _dense(tiny_models)
    body = encoder.model[0].auto_model
    features = encoder.model.preprocess(QUERIES)
    one_row = packed_hidden(body, features, limit=10_000)
    small_rows = packed_hidden(body, features, limit=8)
    lengths = features["attention_mask"].sum(dim=1).tolist()
    for state, other, length in zip(one_row, small_rows, lengths):
        assert state.shape == (length, body.config.hidden_size)
        assert float((state - other).abs().max()) < 1e-5


def test_splade_body_in_packed_rows_equals_each_query_alone(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    assert encoder._packed_head is not None and encoder._packed_rows
    batched = encoder.encode_queries(QUERIES)
    alone = [encoder._encode([query], encoder.model.encode_query, "query")[0] for query in QUERIES]
    for got, expected in zip(batched, alone):
        assert set(got) == set(expected) and expected
        assert max(abs(got[term] - weight) for term, weight in expected.items()) < 1e-4


def test_half_precision_or_another_architecture_keeps_the_padded_path(tiny_models, caplog):
    encoder = _dense(tiny_models)
    body = encoder.model[0].auto_model
    assert packable(body) is None
    body.config.model_type = "roberta"  # positions offset by the padding id: not packed
    assert "model type 'roberta'" in packable(body)
    body.config.model_type = "bert"
    body.half()
    assert "float16" in packable(body)
    with caplog.at_level(logging.DEBUG, logger="hybrid_search.packed"):
        assert encoder._find_packed_pooling("tiny dense") is None
    assert "tiny dense: query batches stay padded" in caplog.text


def test_a_packed_path_that_disagrees_on_the_probe_texts_is_not_taken(tiny_models, caplog):
    encoder = _dense(tiny_models)
    body = encoder.model[0].auto_model
    padded = lambda texts: encoder._encode(texts, "")  # noqa: E731
    shifted = lambda texts: encoder._encode_packed(texts, "", "mean") + 1e-3  # noqa: E731
    with caplog.at_level(logging.DEBUG, logger="hybrid_search.packed"):
        assert checked("tiny", body, padded, lambda texts: encoder._encode_packed(texts, "", "mean"), tolerance=1e-5)
        assert not checked("tiny", body, padded, shifted, tolerance=1e-5)
    assert "differ by 0.001" in caplog.text


def test_splade_queries_with_a_prompt_take_the_sentence_transformers_path(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    encoder.model.prompts = {"query": "query: ", "document": ""}
    assert encoder._find_packed_head() is None


def test_a_splade_model_that_keeps_only_its_top_dims_takes_the_sentence_transformers_path(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    encoder.model.max_active_dims = 4
    assert encoder._find_packed_head() is None


def test_splade_padded_body_equals_packed_rows(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    padded = encoder._pooled_packed(QUERIES).numpy()
    packed = encoder._pooled_packed(QUERIES, rows=True).numpy()
    assert np.abs(padded - packed).max() < 1e-4
    assert encoder.encode_queries([]) == []
