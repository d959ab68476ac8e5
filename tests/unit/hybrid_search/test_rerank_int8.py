"""Static int8 for the cross-encoder: the choice's checks, the calibration
file's checks, and how settings and the backends benchmark pass it on (no
model is loaded; tests/integration/hybrid_search/test_rerank_int8.py runs one)."""

from __future__ import annotations

import json

import pytest

from benchmarks.backends import STATIC_INT8, Variant, parse_variants, run_backends
from hybrid_search.config import RerankConfig, RuntimeConfig
from hybrid_search.errors import ConfigError
from hybrid_search.rerank import load_reranker
from hybrid_search.rerank_int8 import MIN_CALIBRATION_PAIRS, read_calibration_pairs
from hybrid_search.settings import LayeredSettings

pytestmark = pytest.mark.unit

CE = "cross-encoder"


def _pairs_file(path, count=MIN_CALIBRATION_PAIRS, extra=""):
    path.write_text("".join(json.dumps({"query": f"q{i}", "text": f"passage {i}"}) + "\n" for i in range(count)) + extra, encoding="utf-8")
    return path


def test_calibration_goes_with_openvino_int8_and_a_cross_encoder_only():
    ok = RerankConfig(model="m", kind=CE, backend="openvino", quantize="int8", int8_calibration="pairs.jsonl")
    assert ok.int8_calibration == "pairs.jsonl"
    for backend, quantize in (("onnx", "int8"), ("openvino", "bf16"), ("openvino", "none")):
        with pytest.raises(ConfigError, match=f"RerankConfig.int8_calibration .* got kind 'cross-encoder', backend '{backend}', quantize '{quantize}'"):
            RerankConfig(model="m", kind=CE, backend=backend, quantize=quantize, int8_calibration="pairs.jsonl")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="RerankConfig.int8_calibration must be a path"):
        RerankConfig(model="m", kind=CE, int8_calibration=" ")


def test_a_calibration_left_on_torch_is_refused_when_the_reranker_loads_not_silently_dropped():
    # torch/none is a config before the runtime's backend applies: allowed at construction...
    config = RerankConfig(model="/no/such/model", kind=CE, int8_calibration="pairs.jsonl")
    # ...refused at load when no backend override makes it openvino + int8 (before any model is read).
    with pytest.raises(ConfigError, match="RerankConfig.int8_calibration .* backend 'torch', quantize 'none'"):
        load_reranker(config, RuntimeConfig(device="cpu"))
    with pytest.raises(ConfigError, match="backend 'onnx', quantize 'int8'"):
        load_reranker(config, RuntimeConfig(device="cpu", backend="onnx", quantize="int8"))
    with pytest.raises(ConfigError, match="RerankConfig.int8_calibration .* kind 'flag'"):
        load_reranker(RerankConfig(model="/no/such/model", kind="flag", int8_calibration="pairs.jsonl"), RuntimeConfig(device="cpu"))


def test_calibration_pairs_are_read_and_refused_with_the_field_named(tmp_path):
    good = _pairs_file(tmp_path / "good.jsonl", extra="\n  \n")
    pairs = read_calibration_pairs(good)
    assert len(pairs) == MIN_CALIBRATION_PAIRS and pairs[0] == ("q0", "passage 0")
    with pytest.raises(ConfigError, match="RerankConfig.int8_calibration: cannot read the calibration pairs .*missing.jsonl"):
        read_calibration_pairs(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match=f"holds {MIN_CALIBRATION_PAIRS - 1} .* at least {MIN_CALIBRATION_PAIRS}"):
        read_calibration_pairs(_pairs_file(tmp_path / "few.jsonl", MIN_CALIBRATION_PAIRS - 1))
    with pytest.raises(ConfigError, match=f"line {MIN_CALIBRATION_PAIRS + 1} is not JSON"):
        read_calibration_pairs(_pairs_file(tmp_path / "bad.jsonl", extra="{not json\n"))
    with pytest.raises(ConfigError, match=f"line {MIN_CALIBRATION_PAIRS + 1} needs non-empty string fields 'query' and 'text'"):
        read_calibration_pairs(_pairs_file(tmp_path / "field.jsonl", extra=json.dumps({"query": "q", "passage": "p"}) + "\n"))
    with pytest.raises(ConfigError, match="line 1 needs non-empty"):
        read_calibration_pairs(_pairs_file(tmp_path / "list.jsonl", 0, extra='["q", "p"]\n'))
    with pytest.raises(ConfigError, match="^Custom.field: "):
        read_calibration_pairs(tmp_path / "missing.jsonl", field="Custom.field")


def test_settings_pass_the_calibration_file_from_the_file_and_the_environment(tmp_path, monkeypatch, no_hybrid_search_env):
    config_file = tmp_path / "hybrid-search.toml"
    config_file.write_text('[rerank]\nmodel = "m"\nkind = "cross-encoder"\nint8_calibration = "from-file.jsonl"\n', encoding="utf-8")
    assert LayeredSettings.load(config_file).rerank_config().int8_calibration == "from-file.jsonl"
    monkeypatch.setenv("HYBRID_SEARCH_RERANK_INT8_CALIBRATION", "from-env.jsonl")
    assert LayeredSettings.load().rerank_config(model="m", kind=CE).int8_calibration == "from-env.jsonl"


def test_the_server_settings_pass_the_calibration_file(monkeypatch, no_hybrid_search_env):
    from hybrid_search.api.settings import ApiSettings

    monkeypatch.setenv("HYBRID_SEARCH_RERANK_INT8_CALIBRATION", "pairs.jsonl")
    config = ApiSettings(rerank_model="m", rerank_kind=CE).rerank_config()
    assert config is not None and config.int8_calibration == "pairs.jsonl"


def test_the_benchmark_maps_int8_static_to_a_calibrated_config_and_needs_the_rerank_part(tmp_path):
    variants = parse_variants("openvino-bf16,openvino-int8-static")
    assert [v.label for v in variants] == ["torch", "openvino-bf16", f"openvino-{STATIC_INT8}"]
    config = variants[2].rerank_config("m", 256, tmp_path / "pairs.jsonl")
    assert (config.backend, config.quantize, config.int8_calibration) == ("openvino", "int8", str(tmp_path / "pairs.jsonl"))
    plain = Variant("openvino", "int8").rerank_config("m", 256, tmp_path / "pairs.jsonl")
    assert (plain.quantize, plain.int8_calibration) == ("int8", None)  # dynamic int8 stays uncalibrated
    common = dict(reranker=None, rerank_queries=1, rerank_max_length=256, cache=tmp_path, out=tmp_path)
    with pytest.raises(ValueError, match="add --parts rerank"):
        run_backends("nvidia_sec_10k", variants=variants, **common)
    with pytest.raises(ValueError, match="--parts must be one of all, rerank"):
        run_backends("nvidia_sec_10k", variants=variants, parts="encoders", **common)
    with pytest.raises(ValueError, match="OpenVINO only"):
        run_backends("nvidia_sec_10k", variants=parse_variants("onnx-int8-static"), parts="rerank", **common)
