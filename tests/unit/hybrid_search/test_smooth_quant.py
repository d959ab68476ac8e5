"""int8-smooth's graph rewrites on small hand-made ONNX graphs: smoothing and
transpose folding keep the fp32 function, and the quantised file keeps the
embeddings in fp32 while quantising a weight read through a Transpose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybrid_search import smooth_quant
from hybrid_search.errors import ModelLoadError

pytestmark = pytest.mark.unit
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

WIDTH, VOCAB = 8, 50


def _graph(*, shared_weight: bool = False) -> object:
    """Embedding Gather -> LayerNormalization -> two MatMuls sharing that input
    (a few channels 30x larger, like BERT's outliers) -> a tied output layer
    (MatMul with the transposed embedding table)."""
    rng = np.random.default_rng(0)
    table = rng.normal(size=(VOCAB, WIDTH)).astype(np.float32)
    gamma = np.ones(WIDTH, np.float32)
    gamma[[1, 5]] = 30.0
    first = rng.normal(size=(WIDTH, WIDTH)).astype(np.float32)
    second = rng.normal(size=(WIDTH, WIDTH)).astype(np.float32)
    initializers = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(gamma, "gamma"),
        numpy_helper.from_array(np.zeros(WIDTH, np.float32), "beta"),
        numpy_helper.from_array(first, "w1"),
        numpy_helper.from_array(second, "w2"),
    ]
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["embedded"]),
        helper.make_node("LayerNormalization", ["embedded", "gamma", "beta"], ["normed"], axis=-1),
        helper.make_node("MatMul", ["normed", "w1"], ["a"]),
        helper.make_node("MatMul", ["normed", "w1" if shared_weight else "w2"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["hidden"]),
        helper.make_node("Transpose", ["table"], ["table_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["hidden", "table_t"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", VOCAB])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def _feed(ids: list[int]) -> dict[str, np.ndarray]:
    return {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, len(ids)), np.int64)}


def _run(model: object, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    return session.run(None, feed)[0]


FEEDS = [_feed([1, 2, 3, 4]), _feed([7, 9, 11, 13, 15, 17]), _feed([40, 2])]


def test_smoothing_and_folding_keep_the_fp32_function_and_scale_the_outlier_channels():
    model = _graph()
    reference = [_run(model, feed) for feed in FEEDS]
    smooth_quant._fold_constant_transposes(model)
    assert not any(node.op_type == "Transpose" for node in model.graph.node)
    smooth_quant._smooth(model, FEEDS, alpha=0.8)
    for feed, expected in zip(FEEDS, reference, strict=True):
        assert np.allclose(_run(model, feed), expected, rtol=1e-4, atol=1e-4)
    inverse = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "normed_smooth_inverse")
    # The outlier channels are divided most: their range moves into the weights.
    assert set(np.argsort(inverse)[:2]) == {1, 5}
    # One Mul per activation feeding weighted MatMuls: the LayerNorm output (shared by two) and the hidden state.
    assert sorted(node.name for node in model.graph.node if node.op_type == "Mul") == ["hidden_smooth", "normed_smooth"]


def test_a_weight_shared_with_another_op_is_not_rescaled():
    model = _graph(shared_weight=True)
    reference = [_run(model, feed) for feed in FEEDS]
    smooth_quant._fold_constant_transposes(model)
    smooth_quant._smooth(model, FEEDS, alpha=0.8)
    assert "normed_smooth" not in {node.name for node in model.graph.node}  # w1 feeds two MatMuls
    for feed, expected in zip(FEEDS, reference, strict=True):
        assert np.allclose(_run(model, feed), expected, rtol=1e-4, atol=1e-4)


def test_the_quantised_file_keeps_embeddings_fp32_and_quantises_the_tied_output_layer(tmp_path: Path):
    source, target = tmp_path / "model.onnx", tmp_path / "model_qint8_smooth.onnx"
    onnx.save(_graph(), str(source))
    texts = iter(FEEDS * 50)
    smooth_quant.smooth_quantize(source, target, lambda _text: next(texts))
    quantized = onnx.load(str(target))
    constants = {tensor.name: tensor for tensor in quantized.graph.initializer}
    gather = next(node for node in quantized.graph.node if node.op_type == "Gather")
    assert constants[gather.input[0]].data_type == TensorProto.FLOAT  # the table itself, not an int8 copy
    int8_weights = [tensor for tensor in constants.values() if tensor.data_type == TensorProto.INT8 and len(tensor.dims) == 2]  # not zero points
    assert sorted(tuple(tensor.dims) for tensor in int8_weights) == [(WIDTH, WIDTH), (WIDTH, WIDTH), (WIDTH, VOCAB)]
    assert not list(tmp_path.glob("tmp*"))  # temporaries removed
    reference = _run(_graph(), FEEDS[1])
    got = _run(quantized, FEEDS[1])
    cosine = (got * reference).sum() / np.linalg.norm(got) / np.linalg.norm(reference)
    assert cosine > 0.99


def test_a_graph_it_cannot_calibrate_is_refused_with_the_choices_left(tmp_path: Path):
    source = tmp_path / "model.onnx"
    onnx.save(_graph(), str(source))
    with pytest.raises(ModelLoadError, match="quantize='int8-smooth'.*use quantize 'int8' or 'none'"):
        smooth_quant.smooth_quantize(source, tmp_path / "out.onnx", lambda _text: {"input_ids": np.array([[1]])})
    assert not (tmp_path / "out.onnx").exists()
