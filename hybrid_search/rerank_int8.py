"""Static int8 for a cross-encoder on OpenVINO: weights *and* activations in
int8, the activations' ranges calibrated once on (query, passage) pairs the
user supplies (NNCF post-training quantisation).

Why: a cross-encoder reranking a top 100 at 256 tokens is compute-bound in
its fully connected layers. ONNX Runtime's dynamic int8 re-quantises every
activation per call and OpenVINO's bf16 halves the float cost at best; with
the ranges known in advance, OpenVINO runs those layers and the attention
matmuls as int8 (VNNI) kernels (``RerankConfig(backend="openvino",
quantize="int8", int8_calibration=...)``; measured in
``benchmarks/results/backends/``).

The ranges come from the pairs, so they must look like what the reranker
will see: your own queries (a training or dev set, never the queries you
evaluate on) with their retrieved candidates, one JSON object per line::

    {"query": "what drove data center revenue?", "text": "Data Center revenue was up ..."}

Each pair is tokenised exactly as the CrossEncoder tokenises it when scoring
(its ``preprocess``: truncation to the loaded ``max_length``). The quantised
model is saved beside the export as ``<stem>_int8-static-<key>.xml/.bin``
with a JSON record; the key hashes the export, the pairs, ``max_length`` and
the NNCF version, so another calibration set or a changed model never reuses
a stale file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .backends import _publish, _sha256, session_feeds
from .errors import ConfigError, MissingDependencyError, ModelLoadError

__all__ = ["MIN_CALIBRATION_PAIRS", "read_calibration_pairs", "static_int8_model"]

logger = logging.getLogger(__name__)

# Bumped when the quantisation recipe changes, so older files are redone.
FORMAT = 1
# Fewer pairs give activation ranges from a handful of texts: a range that a
# served passage exceeds is clipped.
MIN_CALIBRATION_PAIRS = 32
# NNCF's own default subset; more pairs add time, not accuracy.
MAX_CALIBRATION_PAIRS = 300

Features = Callable[[list[tuple[str, str]]], Mapping[str, Any]]


def read_calibration_pairs(path: str | os.PathLike[str], *, field: str = "RerankConfig.int8_calibration") -> list[tuple[str, str]]:
    """The (query, passage) pairs of a JSONL file (see the module docstring);
    ConfigError naming ``field`` for a missing file, a malformed line or too
    few pairs."""
    source = Path(os.path.expanduser(str(path)))
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"{field}: cannot read the calibration pairs {str(source)!r}: {error.strerror or error}") from error
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise ConfigError(f"{field}: {source.name} line {number} is not JSON ({error})") from error
        query, text = (row.get("query"), row.get("text")) if isinstance(row, dict) else (None, None)
        if not isinstance(query, str) or not isinstance(text, str) or not query.strip() or not text.strip():
            raise ConfigError(f"{field}: {source.name} line {number} needs non-empty string fields 'query' and 'text'")
        pairs.append((query, text))
    if len(pairs) < MIN_CALIBRATION_PAIRS:
        raise ConfigError(
            f"{field}: {source.name} holds {len(pairs)} (query, passage) pairs; calibrating int8 needs at least "
            f"{MIN_CALIBRATION_PAIRS} (your own queries' retrieved candidates, not the queries you evaluate on)"
        )
    return pairs


def _subset(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """At most MAX_CALIBRATION_PAIRS, spread evenly over the file (its order
    is often query by query, candidates by rank)."""
    if len(pairs) <= MAX_CALIBRATION_PAIRS:
        return list(pairs)
    picks = np.linspace(0, len(pairs) - 1, MAX_CALIBRATION_PAIRS).round().astype(int)
    return [pairs[i] for i in picks]


def _key(export: Path, pairs: Sequence[tuple[str, str]], max_length: int, nncf_version: str) -> tuple[str, dict[str, Any]]:
    export_sha = _sha256(export)
    digest = hashlib.sha256()
    for query, text in pairs:
        digest.update(json.dumps([query, text], ensure_ascii=False).encode())
        digest.update(b"\n")
    record = {
        "format": FORMAT,
        "export": export.name,
        "export_sha256": export_sha,
        "pairs": len(pairs),
        "pairs_sha256": digest.hexdigest(),
        "max_length": max_length,
        "nncf": nncf_version,
    }
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    return key, record


def static_int8_model(export: Path, pairs: Sequence[tuple[str, str]], features: Features, *, max_length: int) -> Path:
    """The OpenVINO model (``.xml``) of ``export`` with int8 weights and
    activations calibrated on ``pairs`` (tokenised by ``features``, the
    CrossEncoder's ``preprocess``), made now if missing."""
    try:
        import nncf
        import openvino as ov
    except ImportError as error:
        raise MissingDependencyError("nncf", "openvino-int8", "static int8 for the cross-encoder (RerankConfig.int8_calibration)") from error
    chosen = _subset(pairs)
    key, record = _key(export, chosen, max_length, nncf.__version__)
    target = export.with_name(f"{export.stem}_int8-static-{key}.xml")
    if target.is_file() and target.with_suffix(".bin").is_file():
        return target
    core = ov.Core()
    model = core.read_model(str(export))
    inputs = [port.get_any_name() for port in model.inputs]
    # One pair per calibration item: no padding in the statistics, and every
    # pair counts once (NNCF's subset_size counts items, not texts).
    items = [session_feeds(features([pair]), inputs) for pair in chosen]
    logger.info("calibrating static int8 for %s on %d pairs (once per model and pairs)", export.name, len(items))
    quiet = logging.getLogger("nncf")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # progress bars and notes on every call
    try:
        quantized = nncf.quantize(
            model,
            nncf.Dataset(items),
            # Keeps LayerNorm, Softmax and the residual adds in float, the
            # recipe NNCF gives for transformer encoders.
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(items),
        )
    except Exception as error:  # noqa: BLE001 - any NNCF failure: one clear error, the user chose int8
        raise ModelLoadError(f"could not quantise {export.name} to static int8 ({type(error).__name__}: {error}); use quantize 'none' or 'bf16'") from error
    finally:
        quiet.setLevel(level)
    handle, temporary = tempfile.mkstemp(suffix=".xml", dir=export.parent)
    os.close(handle)
    scratch = Path(temporary)
    try:
        ov.save_model(quantized, str(scratch), compress_to_fp16=False)
        # The .xml names no weights file: OpenVINO reads <same stem>.bin, so
        # the weights go into place first and the .xml (what is checked) last.
        for suffix in (".bin", ".xml"):
            _publish(str(scratch.with_suffix(suffix)), target.with_suffix(suffix))
    finally:
        for suffix in (".bin", ".xml"):
            if scratch.with_suffix(suffix).exists():
                scratch.with_suffix(suffix).unlink()
    record["openvino"] = ov.get_version()
    target.with_suffix(".json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return target
