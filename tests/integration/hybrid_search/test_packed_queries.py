"""Texts in packed rows (packed.py; SPLADE: its MLM head on each text's own
tokens) give the vectors of the padded batch and of each text alone (tiny
real models), traced or eager, and each path is only taken where its check
passes."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hybrid_search import DenseEncoderConfig, RuntimeConfig, SparseEncoderConfig
from hybrid_search.encoders import SentenceTransformerDense, SpladeSparse
from hybrid_search import packed as packed_module
from hybrid_search.packed import checked, eager_rows, packable, packed_rows

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
    assert encoder._packed is not None and encoder._packed.traced  # the path under test
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
    forward = encoder._find_packed("tiny")
    assert forward is not None
    packed = encoder._encode_packed(QUERIES, encoder.query_prompt, forward)
    padded = encoder._encode(QUERIES, encoder.query_prompt)
    assert np.abs(packed - padded).max() < 1e-5
    # The prompt is really in: without it the vectors differ.
    assert np.abs(packed - encoder._encode_packed(QUERIES, "", forward)).max() > 1e-3


def test_dense_documents_in_packed_rows_equal_sentence_transformers_encode(tiny_models):
    encoder = _dense(tiny_models)
    encoder.document_prompt = "passage: "
    documents = [*QUERIES, " ".join(QUERIES * 30)]  # the last runs past max_seq_length (512): truncated the same way
    by_rows = encoder.encode_documents(documents)
    assert encoder._packed is not None  # the path under test
    reference = encoder._encode(documents, encoder.document_prompt)
    assert by_rows.shape == reference.shape
    assert np.abs(by_rows - reference).max() < 1e-5


def test_traced_rows_equal_eager_rows_for_each_pooling(tiny_models):
    encoder = _dense(tiny_models)
    body = encoder.model[0].auto_model
    features = encoder.model.preprocess(QUERIES)
    for pooling in ("mean", "cls"):
        traced = packed_module.traced_rows(body, pooling)
        assert traced is not None and traced.traced
        eager = eager_rows(body, pooling)
        for limit in (8, 64, 10_000):  # a row per text, a few texts a row, one row
            expected = packed_rows(features, eager, body.dtype, limit=limit)
            assert expected.shape == (len(QUERIES), body.config.hidden_size)
            assert float((packed_rows(features, traced, body.dtype, limit=limit) - expected).abs().max()) < 1e-5
    splade = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    body, head = splade._packed_head
    features = splade.model[0].preprocess(QUERIES)
    traced, eager = packed_module.traced_rows(body, "splade", head), eager_rows(body, "splade", head)
    assert traced is not None
    expected = packed_rows(features, eager, body.dtype, limit=64)
    assert float((packed_rows(features, traced, body.dtype, limit=64) - expected).abs().max()) < 1e-5


def test_a_trace_that_fails_or_disagrees_leaves_the_eager_rows(tiny_models, monkeypatch, caplog):
    def failing_trace(*args, **kwargs):
        raise RuntimeError("cannot trace")

    import torch

    monkeypatch.setattr(torch.jit, "trace", failing_trace)
    with caplog.at_level(logging.DEBUG, logger="hybrid_search.packed"):
        forward = _dense(tiny_models)._find_packed("tiny")
    assert forward is not None and not forward.traced
    assert "cannot trace" in caplog.text
    monkeypatch.undo()

    real = packed_module.traced_rows

    def shifted(body, pooling, head=None):
        traced = real(body, pooling, head)
        return packed_module.RowForward(lambda *args: traced.run(*args) + 1e-3, traced=True)

    monkeypatch.setattr(packed_module, "traced_rows", shifted)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="hybrid_search.packed"):
        forward = _dense(tiny_models)._find_packed("tiny")
    assert forward is not None and not forward.traced
    assert "tiny (traced): query batches stay padded" in caplog.text


def test_rows_cut_at_the_limit_give_the_vectors_of_each_text_alone(tiny_models):
    encoder = _dense(tiny_models)
    body = encoder.model[0].auto_model
    forward = eager_rows(body, "mean")
    features = encoder.model.preprocess(QUERIES)
    one_row = packed_rows(features, forward, body.dtype, limit=10_000)
    small_rows = packed_rows(features, forward, body.dtype, limit=8)
    alone = [packed_rows(encoder.model.preprocess([query]), forward, body.dtype)[0] for query in QUERIES]
    assert one_row.shape == (len(QUERIES), body.config.hidden_size)
    for row, other, single in zip(one_row, small_rows, alone):
        assert float((row - other).abs().max()) < 1e-5
        assert float((row - single).abs().max()) < 1e-5


def test_splade_body_in_packed_rows_equals_each_query_alone(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    assert encoder._packed_head is not None and encoder._packed_rows is not None and encoder._packed_rows.traced
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
        assert encoder._find_packed("tiny dense") is None
    assert "tiny dense: query batches stay padded" in caplog.text


def test_a_packed_path_that_disagrees_on_the_probe_texts_is_not_taken(tiny_models, caplog):
    encoder = _dense(tiny_models)
    body = encoder.model[0].auto_model
    forward = eager_rows(body, "mean")
    padded = lambda texts: encoder._encode(texts, "")  # noqa: E731
    shifted = lambda texts: encoder._encode_packed(texts, "", forward) + 1e-3  # noqa: E731
    with caplog.at_level(logging.DEBUG, logger="hybrid_search.packed"):
        assert checked("tiny", body, padded, lambda texts: encoder._encode_packed(texts, "", forward), tolerance=1e-5)
        assert not checked("tiny", body, padded, shifted, tolerance=1e-5)
    assert "differ by 0.001" in caplog.text


def test_splade_texts_with_a_prompt_take_the_sentence_transformers_path(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    assert encoder._head_path("query") and encoder._head_path("document")
    encoder.model.prompts = {"query": "query: ", "document": ""}
    assert not encoder._head_path("query") and encoder._head_path("document")
    # encode_document takes a "passage" prompt when the model has no "document" one.
    encoder.model.prompts = {"query": "", "passage": "passage: "}
    assert encoder._head_path("query") and not encoder._head_path("document")
    encoder.model.prompts = {"query": "query: "}
    encoder.model.default_prompt_name = "query"  # then documents get it too
    assert not encoder._head_path("query") and not encoder._head_path("document")


def test_splade_documents_by_head_equal_sentence_transformers_encode(tiny_models):
    encoder = SpladeSparse(
        SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu", batch_size=2)
    )
    documents = [*QUERIES, " ".join(QUERIES * 30)]  # the last runs past max_seq_length (512): truncated the same way
    by_head = encoder.encode_documents(documents)
    reference = encoder._encode(documents, encoder.model.encode_document, "document")
    assert len(by_head) == len(documents)
    for got, expected in zip(by_head, reference):
        assert set(got) == set(expected) and expected
        assert max(abs(got[term] - weight) for term, weight in expected.items()) < 1e-5
    assert encoder.encode_documents([]) == []


def test_a_splade_model_that_keeps_only_its_top_dims_takes_the_sentence_transformers_path(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    encoder.model.max_active_dims = 4
    assert encoder._find_packed_head() is None


def test_splade_padded_body_equals_packed_rows(tiny_models):
    encoder = SpladeSparse(SparseEncoderConfig(model=str(tiny_models.splade), kind="splade"), RuntimeConfig(device="cpu"))
    padded = encoder._pooled_packed(QUERIES).numpy()
    packed = encoder._pooled_packed(QUERIES, rows=encoder._packed_rows).numpy()
    assert np.abs(padded - packed).max() < 1e-4
    assert encoder.encode_queries([]) == []
