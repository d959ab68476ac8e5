"""ONNX Runtime / OpenVINO backends on the tiny models: the export is made
once beside the model, reproduces torch, and a collection refuses a backend
whose vectors stray from its recorded probe."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from hybrid_search import (
    CollectionConfig,
    DenseEncoderConfig,
    Engine,
    RuntimeConfig,
    SparseEncoderConfig,
    StoreConfig,
    probe,
)
from hybrid_search.config import RerankConfig
from hybrid_search.encoders import SentenceTransformerDense, SpladeSparse
from hybrid_search.errors import ManifestMismatchError
from hybrid_search.rerank import load_reranker

pytestmark = pytest.mark.integration
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TEXTS = ["the retriever indexes documents in milvus", "bm25 fuses with dense vectors", "rerank"]
RUNTIME = RuntimeConfig(device="cpu", query_batch_size=1)


@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory):
    """Copies of the tiny models: the exports are written beside them."""
    root = tmp_path_factory.mktemp("backend-models")
    return {name: shutil.copytree(getattr(tiny_models, name), root / name) for name in ("dense", "splade", "cross_encoder")}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _sparse_cosine(a: dict[int, float], b: dict[int, float]) -> float:
    dot = sum(w * b.get(k, 0.0) for k, w in a.items())
    return dot / np.sqrt(sum(w * w for w in a.values()) * sum(w * w for w in b.values()))


def test_dense_export_is_made_once_beside_the_model_and_matches_torch(models):
    config = DenseEncoderConfig(model=str(models["dense"]), kind="sentence-transformers")
    reference = SentenceTransformerDense(config, RUNTIME).encode_queries(TEXTS)
    onnx = SentenceTransformerDense(DenseEncoderConfig(model=config.model, kind=config.kind, backend="onnx"), RUNTIME)
    exported = models["dense"] / "onnx" / "feature-extraction.onnx"
    assert onnx.exported is not None and onnx.exported.path == exported
    assert (models["dense"] / "onnx" / "feature-extraction.json").is_file()
    assert _cosines(onnx.encode_queries(TEXTS), reference).min() > 0.9999
    made = exported.stat().st_mtime_ns
    int8 = SentenceTransformerDense(DenseEncoderConfig(model=config.model, kind=config.kind, backend="onnx", quantize="int8"), RUNTIME)
    assert exported.stat().st_mtime_ns == made  # reused, not exported again
    assert int8.exported is not None and int8.exported.path.name == "feature-extraction_qint8.onnx"
    vectors = int8.encode_queries(TEXTS)
    assert vectors.shape == reference.shape and np.isfinite(vectors).all()


@pytest.mark.slow  # two more exports (~30 s each on 2 idle cores)
def test_a_changed_model_is_exported_again(models, tmp_path):
    folder = shutil.copytree(models["dense"], tmp_path / "dense")
    config = DenseEncoderConfig(model=str(folder), kind="sentence-transformers", backend="onnx")
    SentenceTransformerDense(config, RUNTIME)
    record = (folder / "onnx" / "feature-extraction.json").read_text()
    weights = next(folder.glob("*.safetensors"))
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    name = next(key for key in tensors if key.endswith("embeddings.word_embeddings.weight"))
    tensors[name] = tensors[name] * 2
    save_file(tensors, str(weights), metadata={"format": "pt"})
    changed = SentenceTransformerDense(config, RUNTIME)
    assert (folder / "onnx" / "feature-extraction.json").read_text() != record
    torch_vectors = SentenceTransformerDense(DenseEncoderConfig(model=str(folder), kind="sentence-transformers"), RUNTIME).encode_queries(TEXTS)
    assert _cosines(changed.encode_queries(TEXTS), torch_vectors).min() > 0.9999


@pytest.mark.slow  # two more exports (~15 s); the dense export test covers the shared export path
def test_splade_pools_inside_the_export_and_cross_encoder_match_torch(models):
    config = SparseEncoderConfig(model=str(models["splade"]), kind="splade")
    reference = SpladeSparse(config, RUNTIME).encode_documents(TEXTS)
    encoder = SpladeSparse(SparseEncoderConfig(model=config.model, kind="splade", backend="onnx"), RUNTIME)
    exported = models["splade"] / "onnx" / "fill-mask_splade2-max-relu.onnx"
    assert encoder.exported is not None and encoder.exported.path == exported
    record = json.loads((models["splade"] / "onnx" / "fill-mask_splade2-max-relu.json").read_text())
    assert (record["task"], record["splade_pooling"]) == ("fill-mask", ["max", "relu"])
    assert record["splade_padding"] == "filled before the output layer"  # BERT's MLM head ends in a Linear
    import onnxruntime

    # The session gives texts x vocabulary, not texts x tokens x vocabulary.
    assert len(onnxruntime.InferenceSession(str(exported)).get_outputs()[0].shape) == 2
    for queries in (False, True):
        fresh = encoder.encode_queries(TEXTS) if queries else encoder.encode_documents(TEXTS)
        expected = SpladeSparse(config, RUNTIME).encode_queries(TEXTS) if queries else reference
        assert [set(row) for row in fresh] == [set(row) for row in expected]
        assert min(_sparse_cosine(a, b) for a, b in zip(fresh, expected)) > 0.9999
    if importlib.util.find_spec("openvino") is not None:
        openvino = SpladeSparse(SparseEncoderConfig(model=config.model, kind="splade", backend="openvino"), RUNTIME)
        assert openvino.exported is not None and openvino.exported.path == exported  # the same export
        assert min(_sparse_cosine(a, b) for a, b in zip(openvino.encode_documents(TEXTS), reference)) > 0.9999
    rerank = RerankConfig(model=str(models["cross_encoder"]), kind="cross-encoder", max_length=64)
    torch_scores = load_reranker(rerank, RUNTIME).score("milvus retriever", TEXTS)
    onnx_scores = load_reranker(rerank, RuntimeConfig(device="cpu", backend="onnx")).score("milvus retriever", TEXTS)
    assert np.allclose(onnx_scores, torch_scores, atol=1e-4)


def test_openvino_runs_the_same_export_in_f32_unless_bf16_is_asked_for(models):
    openvino = pytest.importorskip("openvino")
    config = DenseEncoderConfig(model=str(models["dense"]), kind="sentence-transformers")
    reference = SentenceTransformerDense(config, RUNTIME).encode_queries(TEXTS)
    ov = SentenceTransformerDense(DenseEncoderConfig(model=config.model, kind=config.kind, backend="openvino"), RUNTIME)
    assert ov.exported is not None and ov.exported.precision == "f32"  # read back from the compiled model
    # float32 as asked: OpenVINO's default on a CPU with AMX / AVX-512 BF16 is
    # bf16, whose vectors differ from torch's by ~1e-3.
    assert np.abs(ov.encode_queries(TEXTS) - reference).max() < 1e-5
    bf16 = SentenceTransformerDense(DenseEncoderConfig(model=config.model, kind=config.kind, backend="openvino", quantize="bf16"), RUNTIME)
    assert bf16.exported is not None and bf16.exported.path == ov.exported.path  # the same file, compiled differently
    vectors = bf16.encode_queries(TEXTS)
    if "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert bf16.exported.precision == "bf16"
        assert np.abs(vectors - reference).max() > 1e-5  # it does compute in bf16
    else:  # OpenVINO has no bf16 here: f32 (with a warning, tests/unit)
        assert bf16.exported.precision == "f32"
    assert _cosines(vectors, reference).min() > 0.999


def test_a_collection_records_its_backend_and_refuses_one_beyond_tolerance(models, tmp_path, monkeypatch):
    uri = str(tmp_path / "kb.db")
    config = CollectionConfig(
        name="kb",
        dense=DenseEncoderConfig(model=str(models["dense"]), kind="sentence-transformers"),
        sparse=SparseEncoderConfig(model=str(models["splade"]), kind="splade"),
    )
    with Engine(StoreConfig(uri=uri), runtime=RUNTIME) as engine:
        engine.create_collection(config)
        manifest = engine.collection_info("kb").manifest
        assert (manifest["dense"]["backend"], manifest["sparse"]["quantize"]) == ("torch", "none")
        assert len(manifest["probe"]["texts"]) == len(probe.PROBE_TEXTS)
    onnx = RuntimeConfig(device="cpu", query_batch_size=1, backend="onnx")
    with Engine(StoreConfig(uri=uri), runtime=onnx) as engine:
        assert engine.search("kb", "milvus retriever").hits == []  # opens: the fp32 export reproduces torch
    if importlib.util.find_spec("openvino") is not None:  # bf16 stays within the probe's tolerance too
        with Engine(StoreConfig(uri=uri), runtime=RuntimeConfig(device="cpu", query_batch_size=1, backend="openvino", quantize="bf16")) as engine:
            assert engine.search("kb", "milvus retriever").hits == []
    monkeypatch.setattr(probe, "MIN_COSINE", 1.0 + 1e-9)  # no backend reproduces torch to the last bit
    with Engine(StoreConfig(uri=uri), runtime=onnx) as engine:
        with pytest.raises(ManifestMismatchError, match="built with dense backend 'torch'; backend 'onnx' gives dense vectors"):
            engine.search("kb", "milvus retriever")
    with Engine(StoreConfig(uri=uri), runtime=RUNTIME) as engine:  # its own backend: no probe check
        assert engine.search("kb", "milvus retriever").hits == []


def _forward_calls(encoder) -> list[int]:
    """Counts calls of sentence-transformers' module chain (its forward) on ``encoder``'s model."""
    calls = [0]
    forward = encoder.model.forward

    def counted(*args, **kwargs):
        calls[0] += 1
        return forward(*args, **kwargs)

    encoder.model.forward = counted
    return calls


MIXED_LENGTHS = [*TEXTS, "a much longer text about hybrid retrieval with dense and sparse vectors in milvus", "cat"]


def test_exported_sessions_are_called_directly_with_sentence_transformers_numbers(models):
    """The direct call gives what the exported session gives inside
    sentence-transformers' modules, in the caller's order, batch by batch."""
    runtime = RuntimeConfig(device="cpu", query_batch_size=1, batch_size=2)  # several batches of mixed lengths
    dense = SentenceTransformerDense(
        DenseEncoderConfig(model=str(models["dense"]), kind="sentence-transformers", backend="onnx", query_prompt="query: "), runtime
    )
    sparse = SpladeSparse(SparseEncoderConfig(model=str(models["splade"]), kind="splade", backend="onnx"), runtime)
    assert dense.direct is not None and dense.direct.pooling == "mean"
    assert sparse.direct is not None and sparse.direct.pooling == "in-graph"
    dense_calls, sparse_calls = _forward_calls(dense), _forward_calls(sparse)
    direct = dense.encode_queries(MIXED_LENGTHS), dense.encode_documents(MIXED_LENGTHS)
    direct_sparse = sparse.encode_queries(MIXED_LENGTHS), sparse.encode_documents(MIXED_LENGTHS)
    assert dense_calls == [0] and sparse_calls == [0]  # the module chain did not run
    dense.direct = sparse.direct = None
    through_modules = dense.encode_queries(MIXED_LENGTHS), dense.encode_documents(MIXED_LENGTHS)
    sparse_through_modules = sparse.encode_queries(MIXED_LENGTHS), sparse.encode_documents(MIXED_LENGTHS)
    assert dense_calls[0] > 0 and sparse_calls[0] > 0
    for fast, slow in zip(direct, through_modules, strict=True):
        assert fast.shape == slow.shape == (len(MIXED_LENGTHS), dense.dim) and fast.dtype == np.float32
        assert np.abs(fast - slow).max() < 1e-5
    assert not np.allclose(direct[0], direct[1], atol=1e-3)  # the query prompt was applied to queries only
    for fast, slow in zip(direct_sparse, sparse_through_modules, strict=True):
        assert [set(row) for row in fast] == [set(row) for row in slow]
        assert max(abs(a[token] - b[token]) for a, b in zip(fast, slow) for token in a) < 1e-5
    torch_sparse = SpladeSparse(SparseEncoderConfig(model=str(models["splade"]), kind="splade"), runtime).encode_documents(MIXED_LENGTHS)
    assert [set(row) for row in direct_sparse[1]] == [set(row) for row in torch_sparse]  # padded batches pool as torch does
    assert min(_sparse_cosine(a, b) for a, b in zip(direct_sparse[1], torch_sparse)) > 0.9999


def test_a_module_chain_the_direct_call_does_not_reproduce_keeps_sentence_transformers_path(models, tmp_path):
    """Max pooling is not done directly: the model still runs through its modules, with torch's numbers."""
    folder = shutil.copytree(models["dense"], tmp_path / "dense-max")
    pooling = next(folder.glob("*Pooling*/config.json"))
    config = json.loads(pooling.read_text())
    config["pooling_mode"] = "max"
    pooling.write_text(json.dumps(config))
    reference = SentenceTransformerDense(DenseEncoderConfig(model=str(folder), kind="sentence-transformers"), RUNTIME).encode_queries(TEXTS)
    onnx = SentenceTransformerDense(DenseEncoderConfig(model=str(folder), kind="sentence-transformers", backend="onnx"), RUNTIME)
    from hybrid_search.direct import direct_path

    assert onnx.exported is not None and onnx.direct is None
    assert "pooling mode ('max',)" in direct_path(onnx.model, onnx.exported)[1]
    calls = _forward_calls(onnx)
    assert _cosines(onnx.encode_queries(TEXTS), reference).min() > 0.9999
    assert calls[0] == 1


@pytest.mark.slow  # one more export (~15 s)
def test_splade_keeps_the_mask_over_the_logits_when_filling_padding_would_change_the_numbers(models, tmp_path, monkeypatch):
    """The export checks the filled-padding pooling against the masked one on a
    padded batch; a head it does not reproduce (here: a filling made wrong on
    purpose) is exported with the mask, with torch's numbers."""
    from hybrid_search import backends

    folder = shutil.copytree(models["splade"], tmp_path / "splade", ignore=shutil.ignore_patterns("onnx"))
    monkeypatch.setattr(backends, "_fill_padding", lambda hidden, mask: hidden * 2)
    encoder = SpladeSparse(SparseEncoderConfig(model=str(folder), kind="splade", backend="onnx"), RUNTIME)
    record = json.loads((folder / "onnx" / "fill-mask_splade2-max-relu.json").read_text())
    assert record["splade_padding"] == "masked over the logits"
    expected = SpladeSparse(SparseEncoderConfig(model=str(folder), kind="splade"), RUNTIME).encode_documents(TEXTS)
    assert min(_sparse_cosine(a, b) for a, b in zip(encoder.encode_documents(TEXTS), expected)) > 0.9999


def test_int8_smooth_is_made_once_from_the_export_keeps_embeddings_fp32_and_is_recorded(models, tmp_path):
    """quantize='int8-smooth': its own file beside the fp32 export, the SPLADE
    output layer (tied to the word embeddings) quantised, the embedding tables
    not; vectors near torch's, the direct path kept, the choice in the manifest."""
    import onnx

    dense_config = DenseEncoderConfig(model=str(models["dense"]), kind="sentence-transformers", backend="onnx", quantize="int8-smooth")
    sparse_config = SparseEncoderConfig(model=str(models["splade"]), kind="splade", backend="onnx", quantize="int8-smooth")
    dense, sparse = SentenceTransformerDense(dense_config, RUNTIME), SpladeSparse(sparse_config, RUNTIME)
    assert dense.exported is not None and dense.exported.path == models["dense"] / "onnx" / "feature-extraction_qint8_smooth.onnx"
    assert sparse.exported is not None and sparse.exported.path.name == "fill-mask_splade2-max-relu_qint8_smooth.onnx"
    assert dense.direct is not None and sparse.direct is not None
    made = dense.exported.path.stat().st_mtime_ns
    SentenceTransformerDense(dense_config, RUNTIME)
    assert dense.exported.path.stat().st_mtime_ns == made  # reused, not quantised again
    graph = onnx.load(str(sparse.exported.path)).graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    vocabulary = sparse.model.tokenizer.vocab_size
    int8_shapes = [tuple(t.dims) for t in constants.values() if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
    assert any(shape[-1] == vocabulary for shape in int8_shapes)  # the MLM output layer runs in int8
    gathers = [node for node in graph.node if node.op_type == "Gather" and node.input[0] in constants]
    assert gathers and all(constants[node.input[0]].data_type == onnx.TensorProto.FLOAT for node in gathers)
    reference = SentenceTransformerDense(DenseEncoderConfig(model=dense_config.model, kind=dense_config.kind), RUNTIME).encode_queries(TEXTS)
    assert _cosines(dense.encode_queries(TEXTS), reference).min() > 0.99
    torch_sparse = SpladeSparse(SparseEncoderConfig(model=sparse_config.model, kind="splade"), RUNTIME).encode_documents(TEXTS)
    assert min(_sparse_cosine(a, b) for a, b in zip(sparse.encode_documents(TEXTS), torch_sparse)) > 0.99
    uri = str(tmp_path / "kb.db")
    with Engine(StoreConfig(uri=uri), runtime=RUNTIME) as engine:
        engine.create_collection(CollectionConfig(name="kb", dense=dense_config, sparse=sparse_config))
        manifest = engine.collection_info("kb").manifest
        assert (manifest["dense"]["quantize"], manifest["sparse"]["quantize"]) == ("int8-smooth", "int8-smooth")
