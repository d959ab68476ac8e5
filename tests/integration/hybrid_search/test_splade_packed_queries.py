"""SPLADE query vectors with the MLM head on each query's own tokens (no
padding) are the vectors sentence-transformers gives for each query alone
(tiny real model)."""

from __future__ import annotations

import pytest

from hybrid_search import RuntimeConfig, SparseEncoderConfig
from hybrid_search.encoders import SpladeSparse

pytestmark = pytest.mark.integration

# Lengths from one word to a long sentence, so a batch has much padding.
QUERIES = [
    "cat",
    "dogs in the garden every morning",
    "vector database",
    "profit in the fourth quarter of the year and data center revenue grew as customers bought accelerated computing",
    "what does milvus store",
    "the the the",  # stopwords only: still a vector
]


def test_packed_query_vectors_match_each_query_alone(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    assert encoder._packed_head is not None  # the fast path is the one under test
    batched = encoder.encode_queries(QUERIES)
    alone = [encoder._encode([query], encoder.model.encode_query, "query")[0] for query in QUERIES]
    assert len(batched) == len(QUERIES)
    for got, expected in zip(batched, alone):
        assert set(got) == set(expected) and expected
        assert max(abs(got[term] - weight) for term, weight in expected.items()) < 1e-4
    assert encoder.encode_queries([]) == []


def test_queries_with_a_prompt_take_the_sentence_transformers_path(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    encoder.model.prompts = {"query": "query: ", "document": ""}
    assert encoder._find_packed_head() is None


def test_a_model_that_keeps_only_its_top_dims_takes_the_sentence_transformers_path(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    encoder.model.max_active_dims = 4
    assert encoder._find_packed_head() is None
