"""Fixtures shared by tests/unit/training and tests/integration/training
(imported by both conftest.py files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.training.beir_fixture import make_beir


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared CPU run many times faster on one thread (no
    OpenMP spin-waiting against other processes); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tiny_beir(tmp_path: Path) -> Path:
    return make_beir(tmp_path / "beir")


def gate_report(tuned: dict, *, better: bool):
    """An evaluation report whose gate compares a base system with ``tuned``
    (its systems entry: name "tuned" plus its evaluated encoder configs) on
    the hybrid row: 0.5 -> 0.6 when ``better``, else 0.5 -> 0.4."""
    from training.evaluate import EvaluationReport

    return EvaluationReport(
        config={"systems": [{"name": "base"}, {"name": "tuned", **tuned}]},
        queries=10,
        corpus_chunks=6,
        results={},
        collections={},
        seconds={},
        decision={
            "metric": "ndcg@10",
            "baseline": {"system": "base", "row": "hybrid", "value": 0.5},
            "candidate": {"system": "tuned", "row": "hybrid", "value": 0.6 if better else 0.4},
            "gain": 0.1 if better else -0.1,
            "min_gain": 0.0,
            "better": better,
        },
    )


@pytest.fixture(autouse=True)
def release_milvus_lite_servers(tmp_path: Path):
    """Each test opens several Milvus Lite files (serving, mining); their servers
    would live until the test process exits, so stop them when the test ends."""
    yield
    from milvus_lite.server_manager import server_manager_instance

    root = str(tmp_path.resolve())
    for db in [path for path in server_manager_instance._servers if path.startswith(root)]:
        from tests.processes import release_milvus_lite

        release_milvus_lite(Path(db))
