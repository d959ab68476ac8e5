"""Training the linear query adapter on vectors alone (no model): it learns a
rotation the identity cannot do, keeps the best dev epoch, and a run that
cannot help keeps the identity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hybrid_search.config import DenseEncoderConfig
from hybrid_search.query_adapter import load_query_adapter
import training.adapter as train_module
from training.adapter import AdapterTrainConfig, train_query_adapter
from training.data import EvalQuery, Example

pytestmark = pytest.mark.unit

BASE = DenseEncoderConfig(model="base-model", kind="sentence-transformers")


def _world(seed: int = 0, chunks: int = 40, dim: int = 8):
    """Chunk vectors, and questions that look like a fixed rotation of their chunk."""
    rng = np.random.default_rng(seed)
    docs = rng.normal(size=(chunks, dim))
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    ids = [f"d{i}#0" for i in range(chunks)]
    text_vector: dict[str, np.ndarray] = {}
    examples, dev = [], []
    for i in range(chunks):
        for n in range(2):
            vector = rotation.T @ (docs[i] + 0.05 * rng.normal(size=dim))
            text = f"q{i}-{n}"
            text_vector[text] = vector / np.linalg.norm(vector)
            if i < 30:
                examples.append(Example(query=text, pos=["x"], pos_ids=[ids[i]], neg_ids=[ids[(i + 1) % 30]]))
            elif n == 0:
                dev.append(EvalQuery(text, text, {ids[i]: 1}))

    def encode(texts: list[str]) -> np.ndarray:
        return np.stack([text_vector[t] for t in texts]).astype(np.float32)

    return ids, docs.astype(np.float32), examples, dev, encode


def test_adapter_learns_what_the_identity_misses_and_is_saved(tmp_path: Path) -> None:
    ids, docs, examples, dev, encode = _world()
    config = AdapterTrainConfig(epochs=60, batch_size=16, learning_rate=0.05, identity_penalty=0.0)
    lines: list[str] = []
    run = train_query_adapter(
        examples=examples, dev=dev, encode_queries=encode, chunk_ids=ids, chunks=docs, base=BASE, config=config, out_dir=tmp_path / "a", log=lines.append
    )
    assert run["dev_after"] > run["dev_before"] + 0.2 and run["best_epoch"] > 0
    assert len(run["dev_by_epoch"]) == 61 and "epoch 0 (identity)" in lines[0]
    adapter = load_query_adapter(tmp_path / "a", model="base-model", dim=8)
    assert adapter.manifest["epoch"] == run["best_epoch"]
    # Resumed: a finished run with the same settings is not trained again.
    again = train_query_adapter(
        examples=examples, dev=dev, encode_queries=encode, chunk_ids=ids, chunks=docs, base=BASE, config=config, out_dir=tmp_path / "a", log=lines.append
    )
    assert again == json.loads((tmp_path / "a" / "run.json").read_text()) == run


def test_zero_epochs_keep_the_identity(tmp_path: Path) -> None:
    ids, docs, examples, dev, encode = _world(seed=1)
    run = train_query_adapter(
        examples=examples, dev=dev, encode_queries=encode, chunk_ids=ids, chunks=docs, base=BASE,
        config=AdapterTrainConfig(epochs=0), out_dir=tmp_path / "a", log=lambda _: None,
    )
    assert run["best_epoch"] == 0 and run["dev_after"] == run["dev_before"]
    np.testing.assert_array_equal(load_query_adapter(tmp_path / "a", model="base-model").matrix, np.eye(8, dtype=np.float32))


def test_dense_negatives_are_near_misses_of_train_chunks_never_positives_or_near_ties() -> None:
    import random

    ids = ["a#0", "b#0", "c#0", "d#0", "e#0"]
    chunks = np.eye(5, dtype=np.float32)
    # The question is closest to its positive a, then b (a near tie: maybe also relevant), c, d, e.
    query = np.array([[1.0, 0.97, 0.6, 0.5, 0.4]], dtype=np.float32)
    example = Example(query="q", pos=["x"], pos_ids=["a#0"])
    allowed = {"a#0", "b#0", "c#0", "e#0"}  # d is held out: never a negative
    (found,) = train_module.mine_dense_negatives(query, [example], chunks, ids, allowed, AdapterTrainConfig(num_negatives=5), random.Random(0))
    assert [ids[j] for j in found] == ["c#0", "e#0"]


def test_adapter_settings_are_checked() -> None:
    from hybrid_search.errors import ConfigError
    from training.adapt import AdaptConfig

    with pytest.raises(ConfigError):
        AdapterTrainConfig(learning_rate=0)
    with pytest.raises(ConfigError, match="candidates"):
        AdaptConfig(collection="kb", run_dir="r", candidates=("fusion", "reranker"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="each once"):
        AdaptConfig(collection="kb", run_dir="r", candidates=("fusion", "fusion"))
