"""Probe vectors: what a collection's encoders give for a few fixed texts,
recorded in its manifest when it is created, and compared when the collection
is opened with another inference backend (``RuntimeConfig.backend`` /
``quantize``). A backend whose vectors stray from the recorded ones beyond
:data:`MIN_COSINE` would search stored vectors with incompatible queries (and
write incompatible ones), so opening is refused.

A collection created before probes were recorded was built with torch (the
only backend then): its reference vectors are made by loading the recorded
models on torch once.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np

from .backends import serving_config
from .config import (
    CollectionConfig,
    DenseEncoderConfig,
    RuntimeConfig,
    SparseEncoderConfig,
)
from .encoders import EncoderSet, SparseVector, load_encoders
from .errors import ManifestMismatchError

__all__ = ["MIN_COSINE", "PROBE_TEXTS", "check_probe", "record_probe"]

PROBE_TEXTS = (
    "Hybrid search combines BM25 keyword matching with dense and learned sparse vectors.",
    "Revenue for fiscal year 2023 was $26.97 billion, up 0.2% from a year ago; data center revenue grew 41%.",
    "How do I reset my password if I no longer have access to my email account?",
)
# The lowest cosine similarity, per probe text and per path, between the
# recorded vectors and the chosen backend's. ONNX Runtime and OpenVINO in fp32
# reproduce torch to ~1e-6 (OpenVINO compiled with an explicit f32 precision
# hint: its default on a CPU with AMX / AVX-512 BF16 is bf16); OpenVINO's
# quantize="bf16" gives 0.99998 (all-MiniLM-L6-v2), 0.99999
# (multilingual-e5-small) and 0.99991 (splade-tiny) on the probe texts, so it
# serves an fp32-built collection (accepted); the int8 export of all-MiniLM-L6-v2 gives ~0.993
# (accepted), that of splade-tiny ~0.97 on the probe documents (refused: a
# torch-built SPLADE collection is not served by int8 queries; one built with
# int8 is, and kept nDCG@10 on nvidia_sec_10k, benchmarks/results/backends).
# quantize="int8-smooth" gives 0.993-0.995 (all-MiniLM-L6-v2) and 0.9991-0.9996
# (splade-tiny) on the probe texts (AMD EPYC, onnxruntime 1.32): accepted.
MIN_COSINE = 0.985


def _pack(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


def record_probe(encoders: EncoderSet) -> dict[str, Any]:
    """The probe entry of a manifest: the texts and each path's document vectors."""
    dense, sparse = encoders.encode_documents(list(PROBE_TEXTS))
    return {
        "texts": list(PROBE_TEXTS),
        "dense": [_pack(row) for row in dense] if dense is not None else None,
        "sparse": [sorted([token, round(weight, 6)] for token, weight in row.items()) for row in sparse] if sparse is not None else None,
    }


def _dense_cosines(recorded: Sequence[np.ndarray], fresh: Sequence[np.ndarray]) -> list[float]:
    if len(recorded) != len(fresh):
        return []
    found = []
    for old, new in zip(recorded, fresh):
        norm = float(np.linalg.norm(old) * np.linalg.norm(new))
        found.append(float(np.dot(old, new)) / norm if norm else 0.0)
    return found


def _sparse_cosines(recorded: Sequence[SparseVector], fresh: Sequence[SparseVector]) -> list[float]:
    if len(recorded) != len(fresh):
        return []
    found = []
    for old, new in zip(recorded, fresh):
        dot = sum(weight * new.get(token, 0.0) for token, weight in old.items())
        norm = float(np.sqrt(sum(w * w for w in old.values()) * sum(w * w for w in new.values())))
        found.append(dot / norm if norm else float(old == new))
    return found


def _label(model: DenseEncoderConfig | SparseEncoderConfig) -> str:
    return model.backend if model.quantize == "none" else f"{model.backend}/{model.quantize}"


def check_probe(
    name: str,
    manifest: dict[str, Any],
    recorded: CollectionConfig,
    encoders: EncoderSet,
    runtime: RuntimeConfig,
) -> dict[str, float]:
    """Refuse serving collection ``name`` (built as ``recorded``) with
    ``encoders`` when their backend is not the recorded one and their probe
    vectors stray beyond MIN_COSINE. Returns the lowest cosine per path
    checked. Without a recorded probe, the recorded backend's encoders are
    loaded once to make the reference vectors."""
    changed = {}
    for path, model in (("dense", recorded.dense), ("sparse", recorded.sparse)):
        serving = serving_config(model, runtime)
        if model is not None and (serving.backend, serving.quantize) != (model.backend, model.quantize):
            changed[path] = (model, serving)
    if not changed:
        return {}
    probe = manifest.get("probe")
    texts = list(probe["texts"]) if probe else list(PROBE_TEXTS)
    fresh_dense, fresh_sparse = encoders.encode_documents(texts)
    if probe:
        old_dense = [_unpack(row) for row in probe["dense"]] if probe.get("dense") else None
        old_sparse = [{int(token): float(weight) for token, weight in row} for row in probe["sparse"]] if probe.get("sparse") else None
    else:
        as_recorded = RuntimeConfig(device=runtime.device, batch_size=runtime.batch_size, query_batch_size=1)
        old_dense, old_sparse = load_encoders(recorded.dense, recorded.sparse, as_recorded).encode_documents(texts)
    lowest: dict[str, float] = {}
    for path, (model, serving) in changed.items():
        if path == "dense":
            cosines = _dense_cosines(list(old_dense) if old_dense is not None else [], list(fresh_dense) if fresh_dense is not None else [])
        else:
            cosines = _sparse_cosines(old_sparse if old_sparse is not None else [], fresh_sparse if fresh_sparse is not None else [])
        # No recorded vectors for the path (or a different count): nothing shows they match.
        lowest[path] = min(cosines) if cosines else 0.0
        if lowest[path] < MIN_COSINE:
            raise ManifestMismatchError(
                f"collection {name!r} was built with {path} backend {_label(model)!r}; backend {_label(serving)!r} gives "
                f"{path} vectors with cosine {lowest[path]:.4f} to the recorded probe vectors (tolerance: >= {MIN_COSINE}), "
                f"so its queries would not match the stored vectors. Serve it with backend {model.backend!r}"
                f"{'' if model.quantize == 'none' else ' and quantize ' + repr(model.quantize)}, or re-index into a new collection"
            )
    return lowest
