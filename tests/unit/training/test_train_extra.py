"""The `train` extra installs what evaluation imports, and a missing one names it."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from hybrid_search.errors import MissingDependencyError
from training.data import EvalQuery
from training.evaluate import rank_metrics

pytestmark = pytest.mark.unit


def test_ranx_is_in_the_train_extra():
    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(req.startswith("ranx") for req in pyproject["project"]["optional-dependencies"]["train"])


def test_evaluation_without_ranx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ranx", None)  # import ranx -> ImportError
    with pytest.raises(MissingDependencyError, match=r"hybrid-search\[train\]"):
        rank_metrics([EvalQuery("q", "text", {"d": 1})], {"q": ["d"]}, ["ndcg@10"])
