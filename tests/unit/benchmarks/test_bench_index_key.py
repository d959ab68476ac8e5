"""The benchmarks' index cache key: a torch fp32 index keeps the key it had
before backends existed; an exported backend's index is keyed by what the
backend computes, so an index built under an older rule is not reused."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchmarks.indexes as indexes
from benchmarks.beir import BeirDataset
from benchmarks.indexes import IndexSpec
from hybrid_search.config import DenseEncoderConfig

pytestmark = pytest.mark.unit


def _spec(tmp_path: Path, **dense: str) -> IndexSpec:
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "title": "", "text": "a text"}\n', encoding="utf-8")
    dataset = BeirDataset(name="tiny", root=tmp_path, corpus={"d1": ("", "a text")}, queries={}, qrels={})
    return IndexSpec(dataset=dataset, dense=DenseEncoderConfig(model="some/model", kind="sentence-transformers", **dense), sparse=None)


def test_torch_fp32_key_leaves_the_backend_out(tmp_path: Path) -> None:
    described = _spec(tmp_path).describe()["dense"]
    assert "backend" not in described and "quantize" not in described and "export" not in described


def test_exported_backend_key_follows_the_backend_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path, backend="openvino")
    assert spec.describe()["dense"]["export"] == {"format": indexes.EXPORT_FORMAT, "rules": indexes.BACKEND_RULES}
    before = spec.key()
    monkeypatch.setattr(indexes, "BACKEND_RULES", indexes.BACKEND_RULES + 1)
    assert spec.key() != before
    # torch fp32 is untouched by the rule
    torch_spec = _spec(tmp_path)
    torch_key = torch_spec.key()
    monkeypatch.setattr(indexes, "BACKEND_RULES", indexes.BACKEND_RULES + 1)
    assert torch_spec.key() == torch_key
