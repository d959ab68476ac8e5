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
