"""The sparse-only objective end to end on tiny models: its training score is
the score the engine serves, it trains a servable head that the collapse check
passes, and an interrupted run resumes to the same head as a clean one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.data import DataConfig, build_training_data
from training.negatives import MiningConfig, mine_negatives
from training.pseudo_queries import PseudoQueryConfig
from training.sparse import SparseTrainConfig, train_sparse

pytestmark = pytest.mark.integration

TEXTS = ["The cat sat on the mat.", "Milvus is an open source vector database.", "Quarterly revenue grew twelve percent, the cat said."]


def test_training_scores_equal_the_served_lexical_scores(tiny_models) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from hybrid_search.config import RuntimeConfig
    from hybrid_search.encoders import BGEM3Model
    from training.sparse_head import encode_token_states, lexical_scores

    folder = tiny_models.m3
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    encoder = AutoModel.from_pretrained(str(folder)).eval()
    head = torch.nn.Linear(int(encoder.config.hidden_size), 1)
    head.load_state_dict(torch.load(folder / "sparse_linear.pt", weights_only=True))
    states = encode_token_states(encoder, tokenizer, TEXTS, max_length=64, batch_size=2, device="cpu", desc="", progress=False)
    with torch.no_grad():
        trained_view = lexical_scores(head, states, states)

    _, served = BGEM3Model(str(folder), RuntimeConfig(device="cpu"), 64).encode(TEXTS, dense=False, sparse=True)
    assert served is not None
    for i, left in enumerate(served):
        for j, right in enumerate(served):
            expected = sum(weight * right[token] for token, weight in left.items() if token in right)
            # The cache holds float16 states: agreement to float16 precision.
            assert float(trained_view[i, j]) == pytest.approx(expected, rel=2e-2, abs=1e-4)
    assert float(trained_view.max()) > 0


@pytest.fixture()
def mined_data(tiny_models, tiny_beir: Path, tmp_path: Path):
    from hybrid_search.config import DenseEncoderConfig

    data = build_training_data(
        DataConfig(
            source="beir",
            path=str(tiny_beir),
            pseudo=PseudoQueryConfig(kinds=("inverse-cloze",), per_chunk=1, min_sentence_words=3, min_rest_words=5),
            dev_fraction=0.2,
        ),
        tmp_path / "data",
        progress=False,
    )
    dense = DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers")
    mine_negatives(data, MiningConfig(dense=dense, num_negatives=3, depth=20, max_rank=10, device="cpu"), progress=False)
    from training.data import load_training_data

    return load_training_data(tmp_path / "data")


def test_sparse_only_trains_a_servable_head_and_resumes_to_the_same_result(tiny_models, mined_data, tmp_path: Path, monkeypatch) -> None:
    import torch

    from training import sparse_head

    config = SparseTrainConfig(
        base_model=str(tiny_models.dense),  # no M3 heads: the sparse head starts untrained
        objective="sparse-only",
        train_encoder=False,
        epochs=3,
        batch_size=4,
        group_size=3,
        query_max_len=16,
        passage_max_len=64,
        learning_rate=1e-2,
        device="cpu",
        collapse_min_spread=0.0,
    )
    clean = tmp_path / "clean"
    metrics = train_sparse(mined_data, config, clean, progress=False)
    assert metrics["objective"] == "sparse-only" and metrics["steps"] > 0
    assert [r["epoch"] for r in metrics["history"]] == [1, 2, 3]
    assert all("dev_ndcg@10" in r for r in metrics["history"]) and metrics["dev_ndcg@10_before"] is not None
    assert json.loads((clean / "collapse_check.json").read_text())["collapsed"] is False
    start = torch.load(clean / "start" / "sparse_linear.pt", weights_only=True)
    trained = torch.load(clean / "model" / "sparse_linear.pt", weights_only=True)
    assert not torch.equal(start["weight"], trained["weight"])  # the head learned
    assert {"colbert_linear.pt", "config.json"} <= {p.name for p in (clean / "model").iterdir()}
    # A finished run with the same config and data is not trained again.
    assert train_sparse(mined_data, config, clean, progress=False) == json.loads((clean / "run.json").read_text())["metrics"]

    # Interrupt after the first epoch's checkpoint (at the second epoch's dev score),
    # then run again: it resumes and ends with the clean run's head.
    calls = {"n": 0}
    real_dev = sparse_head._dev_ndcg

    def interrupting_dev(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # before training, after epoch 1, after epoch 2
            raise KeyboardInterrupt
        return real_dev(*args, **kwargs)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(sparse_head, "_dev_ndcg", interrupting_dev)
    with pytest.raises(KeyboardInterrupt):
        train_sparse(mined_data, config, resumed, progress=False)
    assert [p.name for p in (resumed / sparse_head.CHECKPOINTS).iterdir()] == ["epoch-0.pt"]
    assert not (resumed / "model").exists()
    monkeypatch.setattr(sparse_head, "_dev_ndcg", real_dev)
    again = train_sparse(mined_data, config, resumed, progress=False)
    assert again["history"] == metrics["history"] and again["kept_epoch"] == metrics["kept_epoch"]
    for name, tensor in torch.load(resumed / "model" / "sparse_linear.pt", weights_only=True).items():
        assert torch.allclose(tensor, trained[name], atol=1e-6), name

