"""Sanity checks: each tiny model loads through the library class production
uses and produces outputs of the expected shape and type."""

from __future__ import annotations

import numpy as np
import pytest

try:  # same resolution order as tests/conftest.py, so both see one module
    from tests.tiny_models import build_tiny_models
except ModuleNotFoundError:
    from tiny_models import build_tiny_models  # type: ignore[no-redef]

pytestmark = pytest.mark.unit

HIDDEN = 32
PAIRS = [["what is milvus", "Milvus is a vector database."], ["猫", "数据检索模型"]]


def test_tokenizer_and_build_layout(tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_models.tokenizer_dir))
    assert tok.pad_token_id == 0
    assert 1000 <= len(tok) <= 2000
    for word in ["cat", "dog", "milvus", "retrieval", "revenue"]:
        assert tok.tokenize(word.upper()) == [word]  # lowercasing, whole-word piece
    assert tok.tokenize("数据检索模型") == list("数据检索模型")  # one token per CJK char
    assert tok.unk_token_id not in tok("The cat sat, 检索! Hello (world)？")["input_ids"]

    m3_tok = AutoTokenizer.from_pretrained(str(tiny_models.m3))
    assert m3_tok.eos_token == m3_tok.sep_token == "[SEP]"

    # Idempotent: a second call on the same root reuses the build.
    root = tiny_models.dense.parent
    before = (root / "dense" / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_models(root) == tiny_models
    assert (root / "dense" / "model.safetensors").stat().st_mtime_ns == before


@pytest.mark.parametrize("kind", ["dense", "m3", "splade", "cross_encoder"])
def test_model_loads_and_encodes(tiny_models, kind):
    texts = ["the cat sat", "混合检索 with milvus"]

    if kind == "dense":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(tiny_models.dense), device="cpu")
        emb = model.encode(texts)
        assert emb.shape == (2, HIDDEN)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)

    elif kind == "m3":
        from FlagEmbedding import BGEM3FlagModel

        model = BGEM3FlagModel(str(tiny_models.m3), use_fp16=False, devices="cpu")
        # The heads must come from the .pt files, not FlagEmbedding's silent
        # random init (which would leave the bias far from 1.0).
        assert model.model.sparse_linear.bias.item() == pytest.approx(1.0)
        out = model.encode(texts, return_dense=True, return_sparse=True, return_colbert_vecs=True)
        assert out["dense_vecs"].shape == (2, HIDDEN)
        assert len(out["lexical_weights"]) == 2
        special = {str(i) for i in model.tokenizer.all_special_ids}
        for weights in out["lexical_weights"]:
            assert weights and not special & set(weights)
            assert all(w > 0 for w in weights.values())
        assert out["colbert_vecs"][0].shape[1] == HIDDEN

    elif kind == "splade":
        from sentence_transformers import SparseEncoder

        model = SparseEncoder(str(tiny_models.splade), device="cpu")
        emb = model.encode_document(texts)
        vocab_size = model.get_embedding_dimension()
        assert emb.shape == (2, vocab_size) and vocab_size >= 1000
        assert emb.is_sparse
        nnz = (emb.to_dense() > 0).sum(dim=1).tolist()
        assert all(0 < n < 200 for n in nnz), nnz  # sparse, not ~whole vocab
        assert "cat" in dict(model.decode(emb[0], top_k=10))  # lexical by construction

    elif kind == "cross_encoder":
        from FlagEmbedding import FlagReranker
        from sentence_transformers import CrossEncoder

        scores = CrossEncoder(str(tiny_models.cross_encoder), device="cpu").predict(PAIRS)
        assert np.asarray(scores).shape == (2,)
        assert all(isinstance(float(s), float) for s in scores)

        reranker = FlagReranker(str(tiny_models.cross_encoder), use_fp16=False, devices="cpu")
        flag_scores = reranker.compute_score(PAIRS, normalize=True)
        assert len(flag_scores) == 2
        assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in flag_scores)
