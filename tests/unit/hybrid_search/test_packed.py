"""Packing query lengths into rows (packed.py): pure logic."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hybrid_search.packed import PACK_TOKENS, RowForward, pack_groups

pytestmark = pytest.mark.unit


def test_lengths_fill_rows_in_order_up_to_the_limit():
    assert pack_groups([3, 4, 2, 5, 1], limit=8) == [[0, 1], [2, 3, 4]]


def test_a_row_holds_exactly_the_limit():
    assert pack_groups([4, 4, 4], limit=8) == [[0, 1], [2]]


def test_a_length_over_the_limit_gets_a_row_of_its_own():
    assert pack_groups([2, 20, 3], limit=8) == [[0], [1], [2]]


def test_every_index_once_and_no_row_over_the_limit_unless_alone():
    lengths = [7, 1, 30, 12, 12, 5, 60, 3, 3, 3]
    groups = pack_groups(lengths, limit=24)
    assert [i for group in groups for i in group] == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in group) <= 24 or len(group) == 1 for group in groups)


def test_no_lengths_no_rows():
    assert pack_groups([]) == []


def test_typical_query_batches_fit_one_row():
    # 8 queries of ~23 tokens (cranfield's mean) are one model call.
    assert len(pack_groups([23] * 8)) == 1 and PACK_TOKENS >= 8 * 23


class _Overlap:
    """A forward that records how many threads were inside it at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self._count = threading.Lock()

    def __call__(self, *args):
        with self._count:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        time.sleep(0.01)  # long enough for the other threads to arrive
        with self._count:
            self.inside -= 1
        return len(args)


ROW_INPUTS = dict.fromkeys(("input_ids", "attention_mask", "position_ids", "token_type_ids", "owner", "text_index"))


@pytest.mark.parametrize("traced", [True, False])
def test_a_traced_forward_runs_on_one_thread_at_a_time_an_eager_one_on_several(traced):
    run = _Overlap()
    forward = RowForward(run, traced=traced)
    barrier = threading.Barrier(4)

    def call(_):
        barrier.wait()
        return forward(ROW_INPUTS)

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(call, range(4))) == [6] * 4
    assert run.most_inside == 1 if traced else run.most_inside > 1
