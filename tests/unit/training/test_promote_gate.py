"""What `train promote` serves: the encoder configuration the evaluation
measured (kind, prompts, max_length), and a gate that compares all of it."""

from __future__ import annotations

import pytest

from hybrid_search.config import DenseEncoderConfig, SparseEncoderConfig, to_plain
from hybrid_search.errors import ConfigError
from tests.training_fixtures import gate_report
from training.evaluate import EvaluationReport
from training.promote import PromotionRefused, _gate, promoted_encoders

pytestmark = pytest.mark.unit

MEASURED = DenseEncoderConfig(model="runs/dense/model", kind="sentence-transformers", query_prompt="query: ", document_prompt="passage: ", max_length=512)
MEASURED_SPARSE = SparseEncoderConfig(model="runs/sparse/model", kind="bge-m3", max_length=256)


def _report(better: bool = True) -> EvaluationReport:
    return gate_report({"dense": to_plain(MEASURED), "sparse": to_plain(MEASURED_SPARSE)}, better=better)


def test_the_served_configuration_is_the_evaluated_one():
    dense, sparse = promoted_encoders(_report(), dense="runs/dense/model", sparse="runs/sparse/model")
    assert dense == MEASURED and sparse == MEASURED_SPARSE
    assert _gate(_report(), False, dense, sparse) == pytest.approx(0.1)


def test_a_model_the_evaluation_did_not_measure_gets_defaults_and_is_refused():
    dense, sparse = promoted_encoders(_report(), dense="other/model", sparse=None)
    assert dense == DenseEncoderConfig(model="other/model", kind="sentence-transformers") and sparse is None
    with pytest.raises(PromotionRefused, match="model 'runs/dense/model' \\(evaluated\\) vs 'other/model'"):
        _gate(_report(), False, dense, None)
    assert _gate(_report(), True, dense, None) == pytest.approx(0.1)  # forced


def test_an_override_that_departs_from_the_evaluation_is_refused():
    dense, _ = promoted_encoders(_report(), dense="runs/dense/model", sparse=None, dense_overrides={"query_prompt": "q: ", "kind": None})
    assert dense.query_prompt == "q: " and dense.max_length == 512
    with pytest.raises(PromotionRefused, match="query_prompt 'query: ' \\(evaluated\\) vs 'q: '"):
        _gate(_report(), False, dense, None)
    with pytest.raises(ConfigError, match="kind"):
        promoted_encoders(_report(), dense="runs/dense/model", sparse=None, dense_overrides={"kind": "bert"})


def test_without_an_evaluation_the_flags_alone_decide():
    dense, sparse = promoted_encoders(None, dense="m", sparse="s", dense_overrides={"document_prompt": "doc: "}, sparse_overrides={"kind": "splade"})
    assert dense == DenseEncoderConfig(model="m", kind="sentence-transformers", document_prompt="doc: ")
    assert sparse == SparseEncoderConfig(model="s", kind="splade")
    with pytest.raises(PromotionRefused, match="no evaluation"):
        _gate(None, False, dense, sparse)
    with pytest.raises(PromotionRefused, match="not better"):
        _gate(_report(better=False), False, MEASURED, None)
