"""The sparse-only objective's score: hand-computed lexical matching, and a
gradient that reaches the head."""

from __future__ import annotations

import pytest

from training.sparse import SparseTrainConfig

pytestmark = pytest.mark.unit

torch = pytest.importorskip("torch")


def _head() -> torch.nn.Linear:
    # weight (1, 0), bias 0: a token's weight is the first coordinate of its state.
    head = torch.nn.Linear(2, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0]]))
        head.bias.zero_()
    return head


def _text(ids: list[int], firsts: list[float]):
    from training.sparse_head import TokenStates

    states = torch.tensor([[value, 0.0] for value in firsts], dtype=torch.float16)
    return TokenStates(torch.tensor(ids, dtype=torch.int64), states)


def test_lexical_scores_match_hand_computed_values() -> None:
    from training.sparse_head import lexical_scores

    # Query: token 5 twice (max 0.75 kept), token 7 at 0.25, token 9 at -0.5 (relu -> 0).
    query = _text([5, 5, 7, 9], [0.5, 0.75, 0.25, -0.5])
    first = _text([5, 8, 9], [0.5, 1.0, 2.0])  # shares 5 (0.5) and 9 (query weight 0)
    second = _text([7, 7, 3], [0.125, 0.375, 4.0])  # shares 7 (max 0.375)
    third = _text([1, 2], [1.0, 1.0])  # shares nothing
    scores = lexical_scores(_head(), [query], [first, second, third])
    expected = [0.75 * 0.5, 0.25 * 0.375, 0.0]
    assert scores.shape == (1, 3)
    assert scores[0].tolist() == pytest.approx(expected, abs=1e-9)


def test_the_contrastive_loss_reaches_the_head() -> None:
    from training.sparse_head import lexical_scores

    head = _head()
    query = _text([5, 7], [0.5, 0.25])
    positive, negative = _text([7], [0.5]), _text([5], [0.5])
    scores = lexical_scores(head, [query], [positive, negative]) / 0.02
    loss = torch.nn.functional.cross_entropy(scores, torch.tensor([0]))
    loss.backward()
    assert head.weight.grad is not None and float(head.weight.grad.abs().sum()) > 0


def test_sparse_only_config_is_checked() -> None:
    from hybrid_search.errors import ConfigError

    with pytest.raises(ConfigError, match="frozen encoder"):
        SparseTrainConfig(base_model="m", objective="sparse-only")  # train_encoder defaults to True
    with pytest.raises(ConfigError, match="query_instruction"):
        SparseTrainConfig(base_model="m", objective="sparse-only", train_encoder=False, query_instruction="q: ")
    with pytest.raises(ConfigError, match="objective"):
        SparseTrainConfig(base_model="m", objective="sparse")  # type: ignore[arg-type]
    assert SparseTrainConfig(base_model="m", objective="sparse-only", train_encoder=False).objective == "sparse-only"
