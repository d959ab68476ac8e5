"""The cross-encoder's export (eager attention) and its static int8 on
OpenVINO, on the tiny cross-encoder: calibrated once on the pairs given, kept
beside the export, redone for other pairs, and scoring close to torch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hybrid_search.config import RerankConfig, RuntimeConfig
from hybrid_search.rerank import load_reranker
from hybrid_search.rerank_int8 import MIN_CALIBRATION_PAIRS
from tests.tiny_models import CORPUS

pytestmark = pytest.mark.integration
pytest.importorskip("onnxscript")

RUNTIME = RuntimeConfig(device="cpu", query_batch_size=1)
QUERY = "milvus retriever"
HEAD_SCALE = 2000.0


@pytest.fixture(scope="module")
def cross_encoder(tiny_models, tmp_path_factory):
    """A copy of the tiny cross-encoder (the exports are written beside it)
    whose head is scaled up: the random one's logits are ~0.004, where a
    broken quantisation would score near 0.5 too."""
    import torch
    from sentence_transformers import CrossEncoder

    folder = shutil.copytree(tiny_models.cross_encoder, tmp_path_factory.mktemp("rerank-int8") / "cross_encoder")
    model = CrossEncoder(str(folder))
    with torch.no_grad():
        model.model.classifier.weight.mul_(HEAD_SCALE)
    model.save(str(folder))
    return folder


def _pairs(path, queries):
    rows = [{"query": query, "text": text} for query in queries for text in CORPUS[:16]]
    assert len(rows) >= MIN_CALIBRATION_PAIRS
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _config(model, **extra):
    return RerankConfig(model=str(model), kind="cross-encoder", max_length=64, **extra)


def test_the_cross_encoder_is_exported_with_eager_attention_and_matches_torch(cross_encoder):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    reference = load_reranker(_config(cross_encoder), RUNTIME)
    assert reference.model.model.config._attn_implementation == "sdpa"  # the test means something only then
    exported = load_reranker(_config(cross_encoder, backend="onnx"), RUNTIME)
    assert exported.exported.path == cross_encoder / "onnx" / "sequence-classification_eager.onnx"
    ops = {node.op_type for node in onnx.load(str(exported.exported.path)).graph.node}
    # SDPA's decomposition guards fully masked rows with IsNaN/Where; eager attention has no such guard.
    assert "Softmax" in ops and "IsNaN" not in ops
    texts = list(CORPUS[:12])
    assert np.allclose(exported.score(QUERY, texts), reference.score(QUERY, texts), atol=1e-5)


def test_static_int8_is_calibrated_once_on_the_pairs_given_and_scores_close_to_torch(cross_encoder, tmp_path):
    openvino = pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    pairs = _pairs(tmp_path / "pairs.jsonl", ["milvus", "revenue growth"])
    config = _config(cross_encoder, backend="openvino", quantize="int8", int8_calibration=str(pairs))
    reranker = load_reranker(config, RUNTIME)
    path = reranker.exported.path
    assert path.parent == cross_encoder / "onnx" and path.name.startswith("sequence-classification_eager_int8-static-") and path.suffix == ".xml"
    record = json.loads(path.with_suffix(".json").read_text())
    assert (record["pairs"], record["max_length"], record["export"]) == (32, 64, "sequence-classification_eager.onnx")
    # The activations are int8 too: the model holds FakeQuantize nodes, not only int8 weights.
    ops = {op.get_type_name() for op in openvino.Core().read_model(str(path)).get_ops()}
    assert "FakeQuantize" in ops
    native_bf16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert reranker.exported.precision == ("bf16" if native_bf16 else "f32")
    texts = list(CORPUS[:20])
    scores, reference = np.array(reranker.score(QUERY, texts)), np.array(load_reranker(_config(cross_encoder), RUNTIME).score(QUERY, texts))
    # The random model's pairs differ by less than int8's rounding, so no
    # ranking is compared here (benchmarks/results/backends does, with a
    # trained reranker): the logits (~8.6 with the scaled head) must stay
    # within 10% of torch's, which a wrong scale or range would break.
    logit = lambda s: np.log(s / (1 - s))  # noqa: E731
    assert np.abs(logit(scores) / logit(reference) - 1).max() < 0.1

    stamp = path.stat().st_mtime_ns
    assert load_reranker(config, RUNTIME).exported.path == path and path.stat().st_mtime_ns == stamp  # reused, not redone
    other = _pairs(tmp_path / "other.jsonl", ["cat", "dog"])
    again = load_reranker(_config(cross_encoder, backend="openvino", quantize="int8", int8_calibration=str(other)), RUNTIME)
    assert again.exported.path != path and path.is_file()  # other pairs: their own file, the first one kept
