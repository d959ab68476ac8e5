"""Backend choices: configuration checks, the runtime override, the missing
extra's message, and the probe check (with fake encoders)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hybrid_search import probe
from hybrid_search.backends import (
    _openvino_precision,
    accelerate,
    exported_model_path,
    serving_config,
)
from hybrid_search.config import (
    CollectionConfig,
    DenseEncoderConfig,
    RerankConfig,
    RuntimeConfig,
    SparseEncoderConfig,
)
from hybrid_search.encoders import EncoderSet
from hybrid_search.errors import (
    ConfigError,
    ManifestMismatchError,
    MissingDependencyError,
)
from hybrid_search.manifest import config_differences
from hybrid_search.settings import LayeredSettings

pytestmark = pytest.mark.unit

ST = "sentence-transformers"


def test_choices_are_checked_on_construction():
    with pytest.raises(ConfigError, match="backend must be one of 'torch', 'onnx', 'openvino'; got 'tensorrt'"):
        DenseEncoderConfig(model="m", kind=ST, backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="quantize='int8' needs backend 'onnx' or 'openvino'"):
        SparseEncoderConfig(model="m", kind="splade", quantize="int8")
    with pytest.raises(ConfigError, match="needs kind 'sentence-transformers'"):
        DenseEncoderConfig(model="m", kind="bge-m3", backend="onnx")
    with pytest.raises(ConfigError, match="needs kind 'cross-encoder'"):
        RerankConfig(model="m", kind="flag", backend="openvino")
    with pytest.raises(ConfigError, match="RuntimeConfig.quantize"):
        RuntimeConfig(quantize="int4")  # type: ignore[arg-type]
    assert RerankConfig(model="m", kind="cross-encoder", backend="onnx", quantize="int8").quantize == "int8"


def test_runtime_override_applies_to_every_model_and_a_backend_alone_resets_quantize():
    dense = DenseEncoderConfig(model="m", kind=ST, backend="onnx", quantize="int8")
    assert serving_config(dense, RuntimeConfig()) is dense
    assert serving_config(None, RuntimeConfig(backend="onnx")) is None
    assert (serving_config(dense, RuntimeConfig(backend="openvino")).backend, serving_config(dense, RuntimeConfig(backend="openvino")).quantize) == (
        "openvino",
        "none",
    )
    assert serving_config(dense, RuntimeConfig(quantize="none")).backend == "onnx"
    with pytest.raises(ConfigError, match="needs backend 'onnx' or 'openvino'"):
        serving_config(DenseEncoderConfig(model="m", kind=ST), RuntimeConfig(quantize="int8"))


def test_bf16_is_an_openvino_opt_in_and_reads_the_plain_export():
    for backend in ("torch", "onnx"):
        with pytest.raises(ConfigError, match=f"DenseEncoderConfig.quantize='bf16' needs backend 'openvino'.*got backend '{backend}'"):
            DenseEncoderConfig(model="m", kind=ST, backend=backend, quantize="bf16")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="RuntimeConfig.quantize='bf16' needs backend 'openvino'"):
        RuntimeConfig(backend="onnx", quantize="bf16")
    with pytest.raises(ConfigError, match="RerankConfig.quantize='bf16' needs backend 'openvino'"):
        serving_config(RerankConfig(model="m", kind="cross-encoder", backend="onnx"), RuntimeConfig(quantize="bf16"))
    with pytest.raises(ConfigError, match="quantize='bf16' needs backend 'openvino'"):
        accelerate(object(), "onnx", "bf16")
    sparse = serving_config(SparseEncoderConfig(model="m", kind="splade"), RuntimeConfig(backend="openvino", quantize="bf16"))
    assert (sparse.backend, sparse.quantize) == ("openvino", "bf16")
    assert exported_model_path(Path("d"), "feature-extraction", "bf16") == exported_model_path(Path("d"), "feature-extraction", "none")


def test_int8_smooth_is_an_export_choice_for_either_runtime_with_its_own_file(monkeypatch, no_hybrid_search_env):
    for backend in ("onnx", "openvino"):
        assert DenseEncoderConfig(model="m", kind=ST, backend=backend, quantize="int8-smooth").quantize == "int8-smooth"  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="SparseEncoderConfig.quantize='int8-smooth' needs backend 'onnx' or 'openvino'"):
        SparseEncoderConfig(model="m", kind="splade", quantize="int8-smooth")
    with pytest.raises(ConfigError, match="quantize must be one of 'none', 'int8', 'int8-smooth', 'bf16'; got 'int4'"):
        DenseEncoderConfig(model="m", kind=ST, backend="onnx", quantize="int4")  # type: ignore[arg-type]
    paths = {q: exported_model_path(Path("d"), "feature-extraction", q).name for q in ("none", "int8", "int8-smooth")}  # type: ignore[arg-type]
    assert paths == {"none": "feature-extraction.onnx", "int8": "feature-extraction_qint8.onnx", "int8-smooth": "feature-extraction_qint8_smooth.onnx"}
    assert _openvino_precision("int8-smooth", ["BF16", "FP32", "INT8"]) == "f32"
    monkeypatch.setenv("HYBRID_SEARCH_QUANTIZE", "int8-smooth")
    assert LayeredSettings.load(backend="openvino").runtime_config().quantize == "int8-smooth"


def test_openvino_computes_in_f32_unless_bf16_is_asked_for_and_says_when_it_cannot(caplog):
    native = ["WINOGRAD", "FP32", "BF16", "INT8"]  # what OpenVINO lists on a CPU with AMX / AVX-512 BF16
    # OpenVINO's own default there is bf16: every other choice pins f32.
    assert [_openvino_precision(q, native) for q in ("none", "int8", "bf16")] == ["f32", "f32", "bf16"]
    assert not caplog.records
    # No native bf16 (OpenVINO would ignore the hint or emulate bf16): f32, with a warning.
    assert _openvino_precision("bf16", ["WINOGRAD", "FP32", "INT8"]) == "f32"
    assert "no native bf16" in caplog.text and "running float32 instead" in caplog.text


def test_backend_differences_are_left_to_the_probe_not_the_manifest_comparison():
    built = CollectionConfig(name="c", dense=DenseEncoderConfig(model="m", kind=ST), sparse=None)
    asked = CollectionConfig(name="c", dense=DenseEncoderConfig(model="m", kind=ST, backend="onnx", quantize="int8"), sparse=None)
    assert config_differences(asked, built) == []
    other = CollectionConfig(name="c", dense=DenseEncoderConfig(model="other", kind=ST, backend="onnx"), sparse=None)
    assert config_differences(other, built)


def test_a_missing_runtime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'hybrid-search\[onnx\]'"):
        accelerate(object(), "onnx", "none")
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(MissingDependencyError, match=r"hybrid-search\[openvino\]"):
        accelerate(object(), "openvino", "int8")


def test_settings_read_backend_from_flags_and_environment(monkeypatch, no_hybrid_search_env):
    monkeypatch.setenv("HYBRID_SEARCH_BACKEND", "openvino")
    monkeypatch.setenv("HYBRID_SEARCH_QUANTIZE", "int8")
    runtime = LayeredSettings.load().runtime_config()
    assert (runtime.backend, runtime.quantize) == ("openvino", "int8")
    assert LayeredSettings.load(backend="onnx", quantize="none").runtime_config().backend == "onnx"
    assert LayeredSettings.load(backend="openvino", quantize="bf16").runtime_config().quantize == "bf16"
    with pytest.raises(ConfigError, match="needs backend 'openvino'"):
        LayeredSettings.load(backend="onnx", quantize="bf16").runtime_config()
    monkeypatch.setenv("HYBRID_SEARCH_BACKEND", "tpu")
    with pytest.raises(ConfigError, match="HYBRID_SEARCH_BACKEND"):
        LayeredSettings.load().runtime_config()


class _FakeDense:
    """Unit-test stand-in: fixed vectors for the probe texts, optionally bent."""

    dim = 4

    def __init__(self, bend: float = 0.0) -> None:
        self.bend = bend

    def encode_documents(self, texts):
        rows = np.array([[1.0, 0.5, 0.2, 0.1 + i] for i, _ in enumerate(texts)], dtype=np.float32)
        rows[:, 0] += self.bend * 10
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    encode_queries = encode_documents


class _FakeSparse:
    def __init__(self, drop: bool = False) -> None:
        self.drop = drop

    def encode_documents(self, texts):
        return [{1: 1.0, 7: 0.5} if self.drop else {1: 1.0, 7: 0.5, 9 + i: 2.0} for i, _ in enumerate(texts)]

    encode_queries = encode_documents


def _recorded(dense_bend: float = 0.0):
    config = CollectionConfig(
        name="c", dense=DenseEncoderConfig(model="m", kind=ST), sparse=SparseEncoderConfig(model="s", kind="splade")
    )
    manifest = {"probe": probe.record_probe(EncoderSet(dense=_FakeDense(dense_bend), sparse=_FakeSparse()))}
    return config, manifest


def test_probe_passes_a_backend_that_reproduces_the_vectors():
    config, manifest = _recorded()
    lowest = probe.check_probe("c", manifest, config, EncoderSet(dense=_FakeDense(), sparse=_FakeSparse()), RuntimeConfig(backend="onnx"))
    assert lowest == {"dense": pytest.approx(1.0, abs=1e-6), "sparse": pytest.approx(1.0)}


def test_probe_refuses_a_backend_whose_vectors_stray_and_says_why():
    config, manifest = _recorded()
    strayed = EncoderSet(dense=_FakeDense(bend=0.3), sparse=_FakeSparse())
    with pytest.raises(ManifestMismatchError, match=r"built with dense backend 'torch'; backend 'onnx/int8' gives dense vectors with cosine 0\.\d+"):
        probe.check_probe("c", manifest, config, strayed, RuntimeConfig(backend="onnx", quantize="int8"))
    with pytest.raises(ManifestMismatchError, match="sparse backend 'torch'"):
        probe.check_probe("c", manifest, config, EncoderSet(dense=_FakeDense(), sparse=_FakeSparse(drop=True)), RuntimeConfig(backend="onnx"))


def test_probe_is_not_computed_when_the_backend_is_the_recorded_one():
    config, manifest = _recorded()
    strayed = EncoderSet(dense=_FakeDense(bend=0.3), sparse=_FakeSparse(drop=True))
    assert probe.check_probe("c", manifest, config, strayed, RuntimeConfig()) == {}
    assert probe.check_probe("c", manifest, config, strayed, RuntimeConfig(backend="torch")) == {}


def test_a_collection_without_a_recorded_probe_is_compared_with_its_recorded_backend(monkeypatch):
    config, _ = _recorded()
    loaded = []

    def as_recorded(dense, sparse, runtime):
        loaded.append((dense.backend, sparse.backend, runtime.backend))
        return EncoderSet(dense=_FakeDense(), sparse=_FakeSparse())

    monkeypatch.setattr(probe, "load_encoders", as_recorded)
    serving = EncoderSet(dense=_FakeDense(bend=0.3), sparse=_FakeSparse())
    with pytest.raises(ManifestMismatchError, match="dense backend 'torch'"):
        probe.check_probe("c", {}, config, serving, RuntimeConfig(backend="openvino"))
    assert loaded == [("torch", "torch", None)]


@pytest.mark.parametrize("strategy", ["max", "sum"])
@pytest.mark.parametrize("activation", ["relu", "log1p_relu"])
def test_splade_pooling_in_the_graph_gives_sentence_transformers_numbers(strategy, activation):
    torch = pytest.importorskip("torch")
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    from hybrid_search.backends import _splade_pool

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 50, generator=generator) * 3
    mask = torch.ones(3, 7, dtype=torch.int64)
    mask[1, 4:] = 0  # padding: must count as 0, whatever its logits
    mask[2, 1:] = 0
    logits[1, 4:] = 100.0
    expected = SpladePooling(pooling_strategy=strategy, activation_function=activation).eval()(
        {"token_embeddings": logits.clone(), "attention_mask": mask}
    )["sentence_embedding"]
    pooled = _splade_pool(logits, mask, strategy, activation)
    assert pooled.shape == (3, 50)
    assert torch.allclose(pooled, expected, atol=1e-6)
    assert (pooled[1] < 50).all()  # the padded 100s did not leak in


def test_sparse_rows_keep_positive_weights_with_their_token_ids():
    torch = pytest.importorskip("torch")
    from hybrid_search.encoders import SpladeSparse

    matrix = torch.tensor([[0.0, 1.5, 0.0, 0.25], [0.0, 0.0, 0.0, 0.0], [2.0, -1.0, 0.0, 0.5]])
    rows = SpladeSparse._to_dicts(matrix)
    assert rows == [{1: 1.5, 3: 0.25}, {}, {0: 2.0, 3: 0.5}]
    assert all(type(token) is int and type(weight) is float for row in rows for token, weight in row.items())
    assert SpladeSparse._to_dicts(matrix.half()) == rows  # fp16 output of a GPU model


@pytest.mark.parametrize("mode", ["mean", "cls"])
def test_direct_pooling_gives_sentence_transformers_numbers(mode):
    torch = pytest.importorskip("torch")
    from sentence_transformers.sentence_transformer.modules import Pooling

    from hybrid_search.direct import DirectPath

    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 6, 8, generator=generator)
    mask = torch.ones(3, 6, dtype=torch.int64)
    mask[1, 3:] = 0  # right padding
    mask[2, :2] = 0  # left padding: the first real token is the third
    tokens[1, 3:] = 100.0  # padding must not count, whatever its values
    tokens[2, :2] = 100.0
    expected = Pooling(embedding_dimension=8, pooling_mode=mode)({"token_embeddings": tokens, "attention_mask": mask})["sentence_embedding"]
    path = DirectPath(model=None, run=lambda feeds: feeds["x"], inputs=("input_ids", "attention_mask"), pooling=mode)
    pooled = path._pool(tokens.numpy(), mask.numpy())
    assert pooled.shape == (3, 8)
    assert np.allclose(pooled, expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "log1p_relu"])
def test_filling_padding_before_the_output_layer_gives_max_pooling_numbers(activation):
    """SPLADE max pooling without a mask over tokens x vocabulary: padded rows
    repeat the first real token's, so they never add a maximum of their own."""
    torch = pytest.importorskip("torch")
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    from hybrid_search.backends import _fill_padding, _splade_activation

    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 7, 16, generator=generator)
    output_layer = torch.nn.Linear(16, 50)
    torch.nn.init.normal_(output_layer.bias, std=3.0, generator=generator)  # biases of both signs
    mask = torch.ones(3, 7, dtype=torch.int64)
    mask[1, 4:] = 0  # right padding
    mask[2, :3] = 0  # left padding: the first real token is the fourth
    hidden[1, 4:] = 50.0  # padded rows that would win every maximum if they counted
    hidden[2, :3] = 50.0
    with torch.no_grad():
        expected = SpladePooling(pooling_strategy="max", activation_function=activation).eval()(
            {"token_embeddings": output_layer(hidden), "attention_mask": mask}
        )["sentence_embedding"]
        pooled = _splade_activation(output_layer(_fill_padding(hidden, mask)).amax(dim=1), activation)
    assert torch.allclose(pooled, expected, atol=1e-6)
    assert (expected[0] > 0).any() and (expected[0] == 0).any()  # both sides of the relu are exercised
