"""The sparse collapse check on synthetic vectors."""

from __future__ import annotations

import pytest

from hybrid_search.errors import InputError
from training.sparse import check_collapse

pytestmark = pytest.mark.unit


def test_healthy_vectors_pass() -> None:
    vectors = [{1: 0.9, 2: 0.2, 3: 0.05, 4: 0.4}, {5: 1.3, 6: 0.1, 7: 0.6}, {1: 0.3, 8: 0.8, 9: 0.02}]
    report = check_collapse(vectors)
    assert not report.collapsed and report.reason == "ok" and report.empty == 0


def test_empty_vectors_are_a_collapse() -> None:
    report = check_collapse([{}, {}, {1: 0.5, 2: 0.1, 3: 0.9}, {}])
    assert report.collapsed and "empty" in report.reason and report.empty == 3


def test_near_uniform_weights_are_a_collapse() -> None:
    report = check_collapse([{i: 0.1 + 1e-5 * (i % 2) for i in range(20)} for _ in range(5)])
    assert report.collapsed and "near-uniform" in report.reason


def test_no_vectors_is_an_input_error() -> None:
    with pytest.raises(InputError):
        check_collapse([])
