"""Inference backends: a sentence-transformers model's forward pass run by
ONNX Runtime or OpenVINO instead of PyTorch, optionally with int8 weights.

sentence-transformers has ``backend="onnx"|"openvino"`` itself, but it goes
through optimum (optimum-onnx / optimum-intel), and every optimum release
available pins ``transformers<4.58`` (and optimum-intel pulls another torch),
while this project runs transformers 5. So the export is done here, with
PyTorch's own exporter, and only the runtimes are optional dependencies:

- the model is loaded as usual (tokenizer, prompts, pooling, normalisation and
  the SPLADE head all stay sentence-transformers' own code), then its
  Transformer module's Hugging Face model is exported once to
  ``<model folder>/onnx/<task>.onnx`` (``torch.onnx.export(dynamo=True)``:
  the TorchScript exporter bakes transformers 5's attention-mask shapes into
  the graph and gets every other sequence length wrong) and, for
  ``quantize="int8"``, ``<task>_qint8.onnx`` (ONNX Runtime dynamic
  quantisation, int8 weights per channel) or, for ``quantize="int8-smooth"``,
  ``<task>_qint8_smooth.onnx`` (the same with SmoothQuant scaling and fp32
  embeddings: :mod:`hybrid_search.smooth_quant`); ``quantize="bf16"`` (OpenVINO
  only) runs the fp32 export computing in bfloat16 (:func:`_openvino_precision`);
- ``<task>.json`` beside it records the SHA-256 of the weights it was exported
  from; a changed model is exported again, never served from a stale export.
  A hub model (no local folder) or a read-only folder is exported to
  ``~/.cache/hybrid-search/onnx/`` instead;
- the Hugging Face model inside the Transformer module is replaced by a module
  that feeds the tokens to the ONNX Runtime or OpenVINO session and returns
  the same output tensor, so the rest of sentence-transformers runs unchanged;
- except for a SPLADE model (a fill-mask Transformer followed by
  SpladePooling): its pooling is exported into the graph too
  (``fill-mask_splade2-<strategy>-<activation>.onnx``), so the session returns
  batch x vocabulary instead of batch x tokens x vocabulary logits, and the
  SpladePooling module passes that through. For a tiny model and short
  queries, the eager pooling over tokens x 30k logits cost more than the
  forward pass (splade-tiny on 2 cores: ~10 ms against ~8 ms per query).
  For max pooling, padding is kept out of the maximum before the output layer
  (:func:`_fill_padding`), not by a mask over the tokens x 30k logits;
- a cross-encoder (sequence-classification) is exported with eager attention
  (``sequence-classification_eager.onnx``, :func:`_export_attention`), which
  OpenVINO runs as one fused kernel; ``quantize="int8"`` with calibration
  pairs runs it as static int8 (:mod:`hybrid_search.rerank_int8`).

An encoder whose module chain :mod:`hybrid_search.direct` reproduces then
calls the session itself, without that chain.

Backends other than torch run on the CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .config import Backend, Quantize, RuntimeConfig, check_backend
from .errors import ConfigError, MissingDependencyError, ModelLoadError

__all__ = ["EXPORT_FORMAT", "ExportedModel", "accelerate", "export_dir", "exported_model_path", "serving_config"]

# Bumped when the export itself changes (opset, exporter, quantisation), so
# that older exports are redone.
EXPORT_FORMAT = 1
_OPSET = 18
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
_RUNTIME_PACKAGES: dict[str, tuple[str, str]] = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino")}

logger = logging.getLogger(__name__)


def serving_config(model: Any, runtime: RuntimeConfig) -> Any:
    """``model`` (a dense, sparse or rerank config, or None) with the runtime's
    backend override applied: a backend alone resets quantize to 'none'."""
    if model is None or (runtime.backend is None and runtime.quantize is None):
        return model
    backend = runtime.backend or model.backend
    quantize = runtime.quantize or ("none" if runtime.backend is not None else model.quantize)
    return replace(model, backend=backend, quantize=quantize)



def _require(module: str, extra: str, purpose: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(module, extra, purpose) from error


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _weights_folder(hf_model: Any) -> Path:
    """The folder the Hugging Face model's weights were read from."""
    source = str(getattr(hf_model, "name_or_path", "") or "")
    local = Path(os.path.expanduser(source))
    if source and local.is_dir():
        return local
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception as error:  # noqa: BLE001 - any lookup failure: no folder to fingerprint
        raise ModelLoadError(f"cannot find the weights of model {source!r} on disk to export them: {error}") from error


def _fingerprint(folder: Path, previous: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """SHA-256, size and mtime of the weight files and config; a file whose size
    and mtime match ``previous`` keeps its recorded hash (a load does not
    re-read gigabytes)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not (path.suffix in _WEIGHT_SUFFIXES or path.name == "config.json"):
            continue
        stat = path.stat()
        known = previous.get(path.name) or {}
        if known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns and known.get("sha256"):
            digest = known["sha256"]
        else:
            digest = _sha256(path)
        found[path.name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    return found


def _hashes(fingerprint: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    return {name: entry["sha256"] for name, entry in fingerprint.items()}


def export_dir(weights: Path) -> Path:
    """Where a model's exports live: ``<folder>/onnx`` when the folder is the
    user's own and writable, else a per-folder directory in the user cache."""
    hub_cache = os.path.expanduser(os.environ.get("HF_HOME", "~/.cache/huggingface"))
    beside = weights / "onnx"
    if not str(weights.resolve()).startswith(os.path.realpath(hub_cache)):
        try:
            beside.mkdir(exist_ok=True)
            if os.access(beside, os.W_OK):
                return beside
        except OSError:
            pass
    key = hashlib.sha256(str(weights.resolve()).encode()).hexdigest()[:16]
    cached = Path(os.path.expanduser("~/.cache/hybrid-search/onnx")) / f"{weights.name}-{key}"
    cached.mkdir(parents=True, exist_ok=True)
    return cached


_QUANTIZED_SUFFIX: dict[str, str] = {"int8": "_qint8", "int8-smooth": "_qint8_smooth"}


def exported_model_path(directory: Path, stem: str, quantize: Quantize) -> Path:
    return directory / f"{stem}{_QUANTIZED_SUFFIX.get(quantize, '')}.onnx"


@dataclass(frozen=True)
class _Signature:
    task: str
    inputs: tuple[str, ...]
    output: str
    per_token: bool  # output has a sequence axis (token embeddings, MLM logits)
    # SPLADE (pooling strategy, activation) folded into the graph, or None.
    splade: tuple[str, str] | None = None
    # Attention exported as written out (MatMul, Softmax, MatMul) rather than
    # as the SDPA decomposition (see _export_attention); cross-encoders only.
    eager_attention: bool = False

    @property
    def stem(self) -> str:
        """The export's file name without suffix."""
        # splade2: padding filled before the output layer (_fill_padding); a
        # new name, not a new EXPORT_FORMAT, so that dense exports stay valid
        # and an older release sharing the folder keeps its own SPLADE file.
        if self.splade is not None:
            return f"{self.task}_splade2-{self.splade[0]}-{self.splade[1]}"
        return f"{self.task}_eager" if self.eager_attention else self.task


def _splade_activation(pooled: Any, activation: str) -> Any:
    """log1p(relu(x)), log1p twice for 'log1p_relu' (SpladePooling's activations)."""
    import torch

    weights = torch.log1p(torch.relu(pooled))
    return torch.log1p(weights) if activation == "log1p_relu" else weights


def _splade_pool(logits: Any, attention_mask: Any, strategy: str, activation: str) -> Any:
    """sentence-transformers' SpladePooling (eval mode) as traceable torch ops:
    the activation pooled over the tokens, padding counting as 0. For 'max' the
    maximum is taken first: the activation is monotone, so it gives the same
    numbers on batch x vocab instead of batch x tokens x vocab."""
    masked = logits * attention_mask.unsqueeze(-1).to(logits.dtype)
    if strategy == "max":
        return _splade_activation(masked.amax(dim=1), activation)
    return _splade_activation(masked, activation).sum(dim=1)


def _fill_padding(hidden: Any, attention_mask: Any) -> Any:
    """``hidden`` (batch x tokens x width) with each padding row replaced by its
    text's first real token's row: the logits of padding then repeat a real
    token's, so the max over all tokens is the max over the real ones, and the
    mask is applied to tokens x width instead of tokens x vocabulary numbers."""
    import torch

    first = attention_mask.to(hidden.dtype).argmax(dim=1)  # float: ONNX Runtime's ArgMax has no int64 kernel
    rows = hidden.gather(1, first.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1]))
    return torch.where(attention_mask.unsqueeze(-1).to(torch.bool), hidden, rows)


def _signature(module: Any, splade: tuple[str, str] | None = None) -> _Signature:
    modality = (getattr(module, "modality_config", None) or {}).get("text") or {}
    output = modality.get("method_output_name")
    if modality.get("method") != "forward" or output not in ("last_hidden_state", "logits"):
        raise ConfigError(
            f"backend onnx/openvino supports text models whose forward pass gives last_hidden_state or logits; "
            f"this model's Transformer module calls {modality.get('method')!r} for {output!r}: use backend 'torch'"
        )
    task = str(getattr(module, "transformer_task", "") or "feature-extraction")
    given = set(module.tokenizer.model_input_names)
    # In the order of the exported forward's parameters.
    inputs = tuple(name for name in ("input_ids", "attention_mask", "token_type_ids") if name in given)
    if "input_ids" not in inputs or "attention_mask" not in inputs:
        raise ConfigError(f"backend onnx/openvino needs a tokenizer giving input_ids and attention_mask; this one gives {inputs}")
    if splade is not None and (task != "fill-mask" or output != "logits"):
        splade = None  # pooling applies to MLM logits only; anything else keeps the eager module
    classifier = task == "sequence-classification"
    return _Signature(task=task, inputs=inputs, output=output, per_token=not classifier and splade is None, splade=splade, eager_attention=classifier)


@contextlib.contextmanager
def _export_attention(hf_model: Any, signature: _Signature) -> Iterator[None]:
    """The model set to eager attention while it is exported, when the
    signature asks for it. The exporter decomposes SDPA into a graph with
    IsNaN/Select guards and extra transposes that OpenVINO does not fuse;
    eager attention (MatMul, Add mask, Softmax, MatMul) it runs as one fused
    kernel: a MiniLM-L6 cross-encoder's batch of 32 x 256 tokens 0.59 -> 0.48 s
    in bf16, 0.57 -> 0.42 s in static int8 (2 Zen 5 cores). Same numbers to
    ~1e-6; a model that cannot switch keeps its own attention."""
    before = getattr(hf_model.config, "_attn_implementation", None)
    switch = signature.eager_attention and before not in (None, "eager") and hasattr(hf_model, "set_attn_implementation")
    if switch:
        try:
            hf_model.set_attn_implementation("eager")
        except Exception as error:  # noqa: BLE001 - any refusal: export the attention it has
            logger.info("exporting with %s attention (eager refused: %s)", before, error)
            switch = False
    try:
        yield
    finally:
        if switch:
            hf_model.set_attn_implementation(before)


def _export(hf_model: Any, tokenizer: Any, signature: _Signature, target: Path) -> dict[str, Any]:
    """``hf_model``'s forward pass (token tensors in, ``signature.output`` out)
    as an ONNX file with dynamic batch and sequence axes; returns notes on the
    graph for the export's record."""
    _require("onnx", "onnx", "exporting a model to ONNX")
    _require("onnxscript", "onnx", "exporting a model to ONNX")
    import torch

    # SPLADE max pooling, when the output layer is a Linear and the numbers
    # agree (checked below): padding filled at its input (see _fill_padding),
    # and its bias added after the max (max(x + b) = max(x) + b, rounding
    # included): two passes over tokens x vocabulary fewer (splade-tiny: the
    # session's kernels 4.31 -> ~3.7 ms for a 32-token query).
    output_layer = hf_model.get_output_embeddings() if signature.splade is not None and signature.splade[0] == "max" else None
    linear = output_layer if isinstance(output_layer, torch.nn.Linear) else None
    output_bias = linear.bias if linear is not None else None
    # The layer whose input padding _Forward fills (read through the closure),
    # None once the check below finds the numbers differ.
    filled = linear

    class _Forward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf_model
            self.output_bias = output_bias

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            tokens = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                tokens["token_type_ids"] = token_type_ids
            if signature.splade is None:
                return self.model(**tokens, return_dict=True)[signature.output]
            if filled is None:
                return _splade_pool(self.model(**tokens, return_dict=True)[signature.output], attention_mask, *signature.splade)
            hook = filled.register_forward_pre_hook(lambda _layer, inputs: (_fill_padding(inputs[0], attention_mask), *inputs[1:]))
            try:
                pooled = self.model(**tokens, return_dict=True)[signature.output].amax(dim=1)
            finally:
                hook.remove()
            return _splade_activation(pooled if self.output_bias is None else pooled + self.output_bias, signature.splade[1])

    # Two texts of different lengths: a batch of one would let the exporter
    # specialise the batch axis to 1, and padding exercises the attention mask.
    sample = tokenizer(["a probe text", "a longer probe text to export the model with"], padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in signature.inputs)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    was_training = hf_model.training
    hf_model.eval()
    forward = _Forward()
    handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
    os.close(handle)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed" and similar notes
    try:
        if filled is not None:
            # A head that does more after that Linear, or feeds it something
            # other than the tokens' rows, keeps the mask over the logits.
            with torch.no_grad():
                logits = hf_model(**dict(zip(signature.inputs, args, strict=True)), return_dict=True)[signature.output]
                masked = _splade_pool(logits, sample["attention_mask"], *signature.splade)  # type: ignore[misc]
                filled.bias = None  # added by _Forward after the max; put back below
                if not torch.allclose(forward(*args), masked, rtol=1e-4, atol=1e-5):
                    filled.bias = output_bias
                    filled = None
        with torch.no_grad(), warnings.catch_warnings(), _export_attention(hf_model, signature):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                forward,
                args,
                temporary,
                input_names=list(signature.inputs),
                output_names=[signature.output],
                dynamic_shapes={name: {0: batch, 1: sequence} for name in signature.inputs},
                opset_version=_OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        _publish(temporary, target)
    except Exception as error:  # noqa: BLE001 - exporter failures of any kind become one clear error
        raise ModelLoadError(f"could not export the model to ONNX ({type(error).__name__}: {error}); use backend 'torch'") from error
    finally:
        if linear is not None:
            linear.bias = output_bias
        exporter_log.setLevel(level)
        hf_model.train(was_training)
        if os.path.exists(temporary):
            os.unlink(temporary)
    if signature.splade is None:
        return {}
    if filled is None:
        return {"splade_padding": "masked over the logits"}
    return {"splade_padding": "filled before the output layer", "splade_bias": "added after the max"}


def _publish(temporary: str, target: Path) -> None:
    """Move a finished file into place (atomic: a concurrent loader sees the old
    file or the new, never half of one), readable like any file the user makes."""
    os.chmod(temporary, 0o644)  # mkstemp makes it 0600
    os.replace(temporary, target)


def _quantize(source: Path, target: Path, op_types: Sequence[str] | None = None) -> None:
    """int8 weights, activations quantised on the fly (dynamic quantisation);
    ``op_types``: only ops of these types (ONNX Runtime's default set when None)."""
    _require("onnxruntime", "onnx", "quantising a model to int8")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
    os.close(handle)
    try:
        quiet = logging.getLogger()  # quantize_dynamic advises "pre-processing" on the root logger
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            quantize_dynamic(source, temporary, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=op_types)
        finally:
            quiet.setLevel(level)
        _publish(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _calibration_feeds(tokenizer: Any, signature: _Signature, max_length: int | None) -> Callable[[str], dict[str, np.ndarray]]:
    """A text's session feeds, tokenised as the model is served (for int8-smooth's calibration)."""

    def tokenize(text: str) -> dict[str, np.ndarray]:
        features = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
        return session_feeds(features, signature.inputs)

    return tokenize


def _ensure_export(hf_model: Any, tokenizer: Any, signature: _Signature, quantize: Quantize, max_length: int | None = None) -> Path:
    """The exported (and quantised) model file, made now if missing or stale."""
    weights = _weights_folder(hf_model)
    directory = export_dir(weights)
    record_path = directory / f"{signature.stem}.json"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    fingerprint = _fingerprint(weights, record.get("source", {}) if record.get("format") == EXPORT_FORMAT else {})
    plain = exported_model_path(directory, signature.stem, "none")
    current = (
        record.get("format") == EXPORT_FORMAT
        and _hashes(record.get("source", {})) == _hashes(fingerprint)
        and record.get("inputs") == list(signature.inputs)
        and plain.is_file()
    )
    if not current:
        import torch

        logger.info("exporting %s to %s (once per model)", weights, plain)
        notes = _export(hf_model, tokenizer, signature, plain)
        for derived in _QUANTIZED_SUFFIX:
            stale = exported_model_path(directory, signature.stem, derived)  # type: ignore[arg-type]
            if stale.exists():
                stale.unlink()
        record = {
            "format": EXPORT_FORMAT,
            "task": signature.task,
            "splade_pooling": list(signature.splade) if signature.splade else None,
            **notes,
            "inputs": list(signature.inputs),
            "output": signature.output,
            "opset": _OPSET,
            "exported_with": {"torch": torch.__version__},
            "source": fingerprint,
        }
        record_path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    elif record.get("source") != fingerprint:
        record["source"] = fingerprint  # same hashes, newer mtimes: remember them
        record_path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    if quantize not in _QUANTIZED_SUFFIX:  # bf16 is a compile option of the plain export, not a file
        return plain
    quantized = exported_model_path(directory, signature.stem, quantize)
    if not quantized.is_file():
        if quantize == "int8":
            _quantize(plain, quantized)
        else:
            from .smooth_quant import smooth_quantize

            logger.info("quantising %s to %s (int8-smooth, once per model)", plain, quantized)
            smooth_quantize(plain, quantized, _calibration_feeds(tokenizer, signature, max_length))
    return quantized


def _threads() -> int:
    import torch

    return max(int(torch.get_num_threads()), 1)


def _onnxruntime_runner(path: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    ort = _require("onnxruntime", "onnx", "backend 'onnx'")
    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.inter_op_num_threads = 1
    # Idle threads must not spin: torch, Milvus Lite and other requests share the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)[0]


def _openvino_precision(quantize: Quantize, capabilities: Collection[str]) -> str:
    """The INFERENCE_PRECISION_HINT to compile with: 'bf16' only when asked for.

    OpenVINO's CPU plugin computes a float32 model in bf16 by default on a CPU
    with native bf16 (AMX, AVX-512 BF16: vectors ~1e-3 from torch's instead
    of ~1e-7), so f32 is asked for explicitly otherwise. The plugin lists BF16
    in OPTIMIZATION_CAPABILITIES only with native bf16 (AVX-512 BF16 or
    AVX2-VNNI-2); without it, a bf16 hint is either ignored without a word (no
    AVX-512) or emulated on AVX-512, which its documentation calls much slower
    than f32. So bf16 asked for there compiles f32, with a warning."""
    if quantize != "bf16":
        return "f32"
    if "BF16" not in capabilities:
        logger.warning(
            "quantize='bf16': this CPU has no native bf16 for OpenVINO (its capabilities: %s); running float32 instead",
            ", ".join(capabilities) or "none",
        )
        return "f32"
    return "bf16"


def _openvino_runner(path: Path, quantize: Quantize, *, bf16_where_native: bool = False) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], str]:
    """The session call and the precision the compiled model computes in, as
    OpenVINO reports it back. ``bf16_where_native``: the layers a statically
    quantised model keeps in float compute in bf16 where the CPU has it."""
    ov = _require("openvino", "openvino", "backend 'openvino'")
    core = ov.Core()
    capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    precision = "bf16" if bf16_where_native and "BF16" in capabilities else _openvino_precision(quantize, capabilities)
    properties = {"INFERENCE_NUM_THREADS": _threads(), "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", properties)

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        # One infer request per call: requests are not shared between threads.
        return compiled.create_infer_request().infer(feeds)[0]

    computes = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # an ov.Type: 'f32', 'bf16'
    if computes != precision:
        logger.warning("OpenVINO compiled %s to compute in %s, not the %s asked for", path.name, computes, precision)
    return run, computes


def session_feeds(features: Mapping[str, Any], inputs: Sequence[str]) -> dict[str, np.ndarray]:
    """The session's int64 inputs from a tokenizer's torch tensors; a model
    whose tokenizer gives no token_type_ids gets zeros, as its forward would."""
    feeds: dict[str, np.ndarray] = {}
    for name in inputs:
        value = features.get(name)
        if value is None and name == "token_type_ids":
            value = features["input_ids"].new_zeros(features["input_ids"].shape)
        feeds[name] = value.detach().cpu().numpy().astype(np.int64, copy=False)
    return feeds


def _make_module_class() -> type:
    import torch

    class _Exported(torch.nn.Module):
        """Stands in for the Hugging Face model inside a Transformer module."""

        def __init__(self, config: Any, name_or_path: str, runner: Callable[[dict[str, np.ndarray]], np.ndarray], signature: _Signature) -> None:
            super().__init__()
            self.config = config
            self.name_or_path = name_or_path
            self._runner = runner
            self._signature = signature

        def forward(self, **features: Any) -> dict[str, torch.Tensor]:
            feeds = session_feeds(features, self._signature.inputs)
            return {self._signature.output: torch.from_numpy(np.ascontiguousarray(self._runner(feeds)))}

    return _Exported


@dataclass(frozen=True)
class ExportedModel:
    """What :func:`accelerate` put in place: the file and how it runs."""

    backend: Backend
    quantize: Quantize
    path: Path
    # The session call (token arrays in, output array out) and what it takes
    # and gives, for hybrid_search.direct.
    runner: Callable[[dict[str, np.ndarray]], np.ndarray] = field(repr=False, compare=False)
    signature: _Signature = field(repr=False, compare=False)
    # What OpenVINO's compiled model computes in ('f32', 'bf16'); None for ONNX Runtime.
    precision: str | None = None


def accelerate(st_model: Any, backend: Backend, quantize: Quantize, *, derive: Callable[[Path], Path] | None = None) -> ExportedModel | None:
    """Run ``st_model``'s (a SentenceTransformer, SparseEncoder or CrossEncoder
    on the CPU) transformer through ``backend``; None for torch.

    ``derive`` (OpenVINO only) maps the plain export to the model file to run
    instead: a cross-encoder's statically quantised int8 model
    (:mod:`hybrid_search.rerank_int8`), its float layers in bf16 where the CPU
    has native bf16."""
    check_backend("accelerate", backend, quantize)  # the configs' own check, for direct callers
    if derive is not None and backend != "openvino":
        raise ConfigError(f"accelerate: a derived model runs on backend 'openvino'; got {backend!r}")
    if backend == "torch":
        return None
    module_name, extra = _RUNTIME_PACKAGES[backend]
    _require(module_name, extra, f"backend {backend!r}")
    module = st_model[0]
    hf_model = getattr(module, "model", None)
    if hf_model is None or not hasattr(hf_model, "config"):
        raise ConfigError(f"backend {backend!r} needs a Transformer first module; this model starts with {type(module).__name__}")
    pooling = _splade_pooling(st_model)
    signature = _signature(module, None if pooling is None else (pooling.pooling_strategy, pooling.activation_function))
    # A derived model is made from the plain export, and quantize names what it became.
    exported_as = "none" if derive is not None else quantize
    path = _ensure_export(hf_model, module.tokenizer, signature, exported_as, getattr(module, "max_seq_length", None))
    if derive is not None:
        path = derive(path)
    if backend == "onnx":
        runner, precision = _onnxruntime_runner(path), None
    else:
        # A derived (statically quantised) model's float layers (LayerNorm,
        # Softmax, residual adds) in bf16 where native: 12% faster on Zen 5,
        # scores as far from torch's as with f32 (MiniLM-L6 stand-in, top 100:
        # 0.0014 against 0.0015 at most).
        runner, precision = _openvino_runner(path, exported_as, bf16_where_native=derive is not None)
    module.model = _make_module_class()(hf_model.config, str(getattr(hf_model, "name_or_path", "")), runner, signature)
    if signature.splade is not None:
        assert pooling is not None
        st_model._modules[_module_name(st_model, 1)] = _pooled_in_graph(pooling)
    return ExportedModel(backend=backend, quantize=quantize, path=path, runner=runner, signature=signature, precision=precision)


def _splade_pooling(st_model: Any) -> Any:
    """The SpladePooling module right after the Transformer, or None."""
    if len(st_model) < 2:
        return None
    try:
        from sentence_transformers.sparse_encoder.modules import SpladePooling
    except ImportError:
        return None
    candidate = st_model[1]
    # Exactly SpladePooling: a subclass may pool differently.
    return candidate if type(candidate) is SpladePooling else None


def _module_name(st_model: Any, index: int) -> str:
    return list(st_model._modules)[index]


def _pooled_in_graph(pooling: Any) -> Any:
    """A SpladePooling (same config, so saving and dimension queries behave)
    whose pooling the exported graph has already done."""
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    class PooledInGraph(SpladePooling):
        # Read by hybrid_search.direct: the session's output is the pooled row.
        folded_into_export = True

        def forward(self, features: dict[str, Any]) -> dict[str, Any]:
            pooled = features["token_embeddings"]
            if self.embedding_dimension is None:
                self.embedding_dimension = pooled.shape[1]
            features["sentence_embedding"] = pooled
            return features

    return PooledInGraph(
        pooling_strategy=pooling.pooling_strategy,
        activation_function=pooling.activation_function,
        embedding_dimension=pooling.embedding_dimension,
    )
