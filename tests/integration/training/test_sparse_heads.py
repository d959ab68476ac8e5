"""M3 heads: start folders for encoders without heads, and the collapse check
firing on a collapsed head loaded through hybrid_search's own BGE-M3 loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training.sparse import SparseTrainConfig, prepare_start_folder, sparse_collapse_report

pytestmark = pytest.mark.integration

TEXTS = ["The cat sat on the mat.", "Milvus is an open source vector database.", "Quarterly revenue grew twelve percent."] * 4


def test_start_folder_for_an_encoder_without_heads(tiny_models, tmp_path: Path) -> None:  # noqa: ANN001
    from transformers import AutoTokenizer

    start = prepare_start_folder(str(tiny_models.dense), tmp_path / "start", init_bias=0.1, init_std=0.01, seed=1)
    assert start == tmp_path / "start"
    assert {"sparse_linear.pt", "colbert_linear.pt", "config.json"} <= {p.name for p in start.iterdir()}
    tokenizer = AutoTokenizer.from_pretrained(str(start))
    assert tokenizer.eos_token == tokenizer.sep_token  # FlagEmbedding needs an eos token
    # The fresh head is servable (hybrid_search's BGE-M3 loader accepts the folder)
    # and gives every token a small positive weight, so training starts with gradients.
    report = sparse_collapse_report(start, TEXTS, SparseTrainConfig(base_model="x", device="cpu"))
    assert report.empty == 0 and report.mean_terms > 3
    # BGE-M3-style folders with heads and an eos token are used in place.
    assert prepare_start_folder(str(tiny_models.m3), tmp_path / "unused", init_bias=0.1, init_std=0.01, seed=1) == tiny_models.m3


def test_collapse_check_fires_on_a_dead_head(tiny_models, tmp_path: Path) -> None:  # noqa: ANN001
    import torch

    folder = tmp_path / "m3-dead"
    shutil.copytree(tiny_models.m3, folder)
    head = torch.nn.Linear(32, 1)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-1.0)  # relu(-1) = 0 for every token: all-zero sparse vectors
    torch.save(head.state_dict(), folder / "sparse_linear.pt")
    config = SparseTrainConfig(base_model="x", device="cpu")
    report = sparse_collapse_report(folder, TEXTS, config)
    assert report.collapsed and report.empty == len(TEXTS) and "empty" in report.reason
    with torch.no_grad():
        head.bias.fill_(0.5)  # every token weighs 0.5: a binary bag of words
    torch.save(head.state_dict(), folder / "sparse_linear.pt")
    report = sparse_collapse_report(folder, TEXTS, config)
    assert report.collapsed and report.empty == 0 and "near-uniform" in report.reason
    healthy = sparse_collapse_report(tiny_models.m3, TEXTS, config)
    assert not healthy.collapsed, healthy.reason
