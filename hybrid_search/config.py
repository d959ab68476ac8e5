"""Typed configuration. Every choice is checked when the object is built, so a
typo fails at construction with the allowed values named, not deep in a run."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from .errors import ConfigError
from .types import RETRIEVAL_PATHS

__all__ = [
    "StoreConfig",
    "DenseEncoderConfig",
    "SparseEncoderConfig",
    "AnalyzerConfig",
    "FusionConfig",
    "RerankConfig",
    "RuntimeConfig",
    "CollectionConfig",
    "DEFAULT_STORE_URI",
    "DEFAULT_DENSE_MODEL",
    "DEFAULT_RERANK_MODEL",
    "ANALYZER_VERSION",
    "Backend",
    "Quantize",
]

DEFAULT_STORE_URI = "hybrid_search.db"
DEFAULT_DENSE_MODEL = "BAAI/bge-m3"
DEFAULT_RERANK_MODEL = "BAAI/bge-reranker-v2-m3"
# The English analyzer's rules, recorded in each collection's manifest: a
# collection keeps answering with the version it was built with until it is
# re-indexed. 1: apostrophes split words ("NVIDIA's" -> nvidia, s). 2: clitics
# never become terms (see hybrid_search/analyzers.py).
ANALYZER_VERSION = 2
ANALYZER_VERSIONS = (1, 2)

DenseKind = Literal["sentence-transformers", "bge-m3"]
SparseKind = Literal["bge-m3", "splade"]
Language = Literal["en", "zh"]
FusionMethod = Literal["adaptive", "rrf", "weighted"]
Normalization = Literal["min-max", "z-score", "none"]
RerankKind = Literal["flag", "cross-encoder"]
LongPassages = Literal["truncate", "max-window"]
Device = Literal["auto", "cpu", "cuda", "mps"]
DenseIndex = Literal["auto", "FLAT", "IVF_FLAT", "HNSW", "DISKANN", "AUTOINDEX"]
# What runs a model's forward pass (hybrid_search.backends): PyTorch, or the
# model exported once to ONNX and run by ONNX Runtime or OpenVINO on the CPU.
Backend = Literal["torch", "onnx", "openvino"]
# "int8": the exported model's weights quantised to int8 (dynamic quantisation).
# "int8-smooth": int8 too, with SmoothQuant scaling and the embeddings left in
# fp32: vectors closer to fp32's at int8's speed (hybrid_search.smooth_quant).
# "bf16": OpenVINO only, the fp32 export compiled to compute in bfloat16 (its
# CPU plugin's INFERENCE_PRECISION_HINT); "none" pins float32 there, which
# OpenVINO would otherwise replace by bf16 on a CPU with AMX / AVX-512 BF16.
Quantize = Literal["none", "int8", "int8-smooth", "bf16"]


def _check_choice(owner: str, name: str, value: Any, choices_type: Any) -> None:
    choices = get_args(choices_type)
    if value not in choices:
        raise ConfigError(f"{owner}.{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def check_backend(owner: str, backend: Any, quantize: Any) -> None:
    """A backend and quantize choice that go together (ConfigError naming ``owner`` otherwise)."""
    _check_choice(owner, "backend", backend, Backend)
    _check_choice(owner, "quantize", quantize, Quantize)
    if quantize == "bf16" and backend != "openvino":
        raise ConfigError(f"{owner}.quantize='bf16' needs backend 'openvino' (its CPU plugin computes the fp32 export in bf16); got backend {backend!r}")
    if backend == "torch" and quantize != "none":
        raise ConfigError(f"{owner}.quantize={quantize!r} needs backend 'onnx' or 'openvino' (the int8 model is an export)")


def _check_positive(owner: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{owner}.{name} must be {'>= 0' if allow_zero else '> 0'}; got {value!r}")


@dataclass(frozen=True)
class StoreConfig:
    """Where Milvus is. A path (``kb.db``) is an embedded Milvus Lite file; an
    ``http(s)://host:19530`` URI is a Milvus Standalone or Distributed server."""

    uri: str = DEFAULT_STORE_URI
    token: str | None = None
    db_name: str | None = None
    timeout_s: float = 60.0
    # "auto": FLAT (exact) on a Milvus Lite file, HNSW on a server. A Milvus Lite
    # file served over TCP accepts only FLAT, IVF_FLAT and AUTOINDEX.
    dense_index: DenseIndex = "auto"

    def __post_init__(self) -> None:
        if not self.uri:
            raise ConfigError("StoreConfig.uri must not be empty")
        _check_choice("StoreConfig", "dense_index", self.dense_index, DenseIndex)
        _check_positive("StoreConfig", "timeout_s", self.timeout_s)

    @property
    def is_lite(self) -> bool:
        return "://" not in self.uri

    @property
    def display_uri(self) -> str:
        return os.path.abspath(self.uri) if self.is_lite else self.uri


@dataclass(frozen=True)
class DenseEncoderConfig:
    """A dense embedder: any sentence-transformers model, or BGE-M3 through
    FlagEmbedding. ``query_prompt``/``document_prompt`` override the prompts the
    model ships with (e5: ``"query: "``/``"passage: "``; BGE instruction).
    ``query_adapter`` names a linear query adapter folder
    (``hybrid_search.query_adapter``) applied to query vectors only."""

    model: str = DEFAULT_DENSE_MODEL
    kind: DenseKind = "bge-m3"
    query_prompt: str | None = None
    document_prompt: str | None = None
    max_length: int | None = None
    backend: Backend = "torch"
    quantize: Quantize = "none"
    query_adapter: str | None = None

    def __post_init__(self) -> None:
        _check_choice("DenseEncoderConfig", "kind", self.kind, DenseKind)
        check_backend("DenseEncoderConfig", self.backend, self.quantize)
        if self.backend != "torch" and self.kind != "sentence-transformers":
            raise ConfigError(f"DenseEncoderConfig.backend={self.backend!r} needs kind 'sentence-transformers' (BGE-M3 runs on torch)")
        if not self.model:
            raise ConfigError("DenseEncoderConfig.model must name a hub model or a local folder")
        if self.max_length is not None:
            _check_positive("DenseEncoderConfig", "max_length", self.max_length)
        if self.query_adapter is not None and not self.query_adapter:
            raise ConfigError("DenseEncoderConfig.query_adapter must name an adapter folder (or be None)")


@dataclass(frozen=True)
class SparseEncoderConfig:
    """A learned sparse encoder: BGE-M3 lexical weights or a SPLADE model."""

    model: str = DEFAULT_DENSE_MODEL
    kind: SparseKind = "bge-m3"
    max_length: int | None = None
    backend: Backend = "torch"
    quantize: Quantize = "none"

    def __post_init__(self) -> None:
        _check_choice("SparseEncoderConfig", "kind", self.kind, SparseKind)
        check_backend("SparseEncoderConfig", self.backend, self.quantize)
        if self.backend != "torch" and self.kind != "splade":
            raise ConfigError(f"SparseEncoderConfig.backend={self.backend!r} needs kind 'splade' (BGE-M3 runs on torch)")
        if not self.model:
            raise ConfigError("SparseEncoderConfig.model must name a hub model or a local folder")
        if self.max_length is not None:
            _check_positive("SparseEncoderConfig", "max_length", self.max_length)


@dataclass(frozen=True)
class AnalyzerConfig:
    """How text becomes BM25 terms. Tokenization happens on the client (Python
    jieba or the English analyzer) and Milvus's BM25 function reads the
    space-joined tokens, so Milvus, highlighting and the rank-bm25 reference all
    see exactly the same terms, with or without a user dictionary."""

    language: Language = "en"
    user_dict: str | None = None
    stopwords: bool = True
    stem: bool = True
    version: int = ANALYZER_VERSION

    def __post_init__(self) -> None:
        _check_choice("AnalyzerConfig", "language", self.language, Language)
        if type(self.version) is not int or self.version not in ANALYZER_VERSIONS:
            raise ConfigError(
                f"AnalyzerConfig.version must be one of {', '.join(map(str, ANALYZER_VERSIONS))}; got {self.version!r} "
                "(a collection built by a newer hybrid-search needs that version to be searched)"
            )


@dataclass(frozen=True)
class FusionConfig:
    """How the paths' candidate lists become one list.

    - ``adaptive`` (the default for new collections; needs no labels): each
      path's scores min-max normalised to [0, 1], summed with per-query weights
      from each path's confidence on this query (``confidence_power``; see
      ``hybrid_search.fusion``); fused scores lie in [0, 1];
    - ``rrf``: ``sum w / (rrf_k + rank)``;
    - ``weighted``: a weighted sum of scores normalised by ``normalization``.

    ``weights`` scale each path (0 drops it); under ``adaptive`` they multiply
    the per-query confidence weights. A collection keeps the method its
    manifest records."""

    method: FusionMethod = "adaptive"
    rrf_k: int = 60
    normalization: Normalization = "min-max"
    weights: dict[str, float] = field(default_factory=lambda: {p: 1.0 for p in RETRIEVAL_PATHS})
    # adaptive: weight = prior * confidence ** power (0: equal weights, large:
    # the most confident path alone). 2 was chosen on nvidia_sec_10k's train
    # queries (benchmarks/results/fusion_study), never on test queries.
    confidence_power: float = 2.0

    def __post_init__(self) -> None:
        _check_choice("FusionConfig", "method", self.method, FusionMethod)
        _check_choice("FusionConfig", "normalization", self.normalization, Normalization)
        _check_positive("FusionConfig", "rrf_k", self.rrf_k, allow_zero=True)
        power = self.confidence_power
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0 <= power <= 16:
            raise ConfigError(f"FusionConfig.confidence_power must be a number from 0 to 16; got {power!r}")
        for path, weight in self.weights.items():
            if path not in RETRIEVAL_PATHS:
                raise ConfigError(f"FusionConfig.weights: unknown path {path!r}; paths are {', '.join(RETRIEVAL_PATHS)}")
            if not isinstance(weight, (int, float)) or weight < 0:
                raise ConfigError(f"FusionConfig.weights[{path!r}] must be a number >= 0; got {weight!r}")

    def weight(self, path: str) -> float:
        return float(self.weights.get(path, 1.0))


@dataclass(frozen=True)
class RerankConfig:
    """A cross-encoder over the top ``top_n`` fused candidates. With
    ``min_score`` set, a query whose best reranked candidate scores below it gets
    an explicit "no confident result" answer. Scores are sigmoid-normalised to
    [0, 1] for both kinds so that one threshold means the same thing.

    ``first_stage_weight`` (w) orders the reranked head by
    ``(1 - w) * rerank_score + w * first_stage_norm``, where ``first_stage_norm``
    is the fused score min-max normalised over the reranked head (1.0 for every
    candidate when they all tie). 0 (the default) is pure rerank order, 1 the
    first-stage order. ``min_score`` still applies to the raw rerank score."""

    model: str = DEFAULT_RERANK_MODEL
    kind: RerankKind = "flag"
    top_n: int = 50
    min_score: float | None = None
    max_length: int = 512
    batch_size: int = 32
    # A chunk longer than the model's max_length is either cut there ("truncate")
    # or scored as overlapping windows that each fit, keeping the best window's
    # score ("max-window", MaxP): slower by the number of windows, but the answer
    # in a chunk's second half is seen.
    long_passages: LongPassages = "truncate"
    window_overlap: int = 64  # tokens shared by consecutive windows
    # A reranker weaker than the first stage on a domain (a small or freshly
    # fine-tuned one) would otherwise throw a strong fused ranking away; mixing
    # the two scores keeps some of it. Tune on held-out queries, not on the test set.
    first_stage_weight: float = 0.0
    # onnx/openvino (optionally int8) run the cross-encoder's forward pass on
    # the CPU several times faster than torch (see hybrid_search.backends).
    backend: Backend = "torch"
    quantize: Quantize = "none"
    # A JSONL file of (query, passage) pairs: with backend openvino and
    # quantize int8, the activations are quantised too, their ranges
    # calibrated on these pairs (hybrid_search.rerank_int8); without it int8
    # is ONNX Runtime's dynamic quantisation. Your own queries' candidates,
    # never the queries you evaluate on.
    int8_calibration: str | None = None

    def __post_init__(self) -> None:
        _check_choice("RerankConfig", "kind", self.kind, RerankKind)
        check_backend("RerankConfig", self.backend, self.quantize)
        if self.backend != "torch" and self.kind != "cross-encoder":
            raise ConfigError(f"RerankConfig.backend={self.backend!r} needs kind 'cross-encoder' (FlagEmbedding runs on torch)")
        if self.int8_calibration is not None:
            if not isinstance(self.int8_calibration, str) or not self.int8_calibration.strip():
                raise ConfigError(f"RerankConfig.int8_calibration must be a path to a JSONL file of pairs; got {self.int8_calibration!r}")
            # torch/none is what a config holds before the runtime's backend is
            # applied (serving_config); load_reranker refuses it if it stays.
            if self.backend != "torch" or self.quantize != "none":
                self.check_int8_calibration()
        _check_choice("RerankConfig", "long_passages", self.long_passages, LongPassages)
        _check_positive("RerankConfig", "top_n", self.top_n)
        _check_positive("RerankConfig", "max_length", self.max_length)
        _check_positive("RerankConfig", "batch_size", self.batch_size)
        if self.long_passages == "max-window" and not 0 <= self.window_overlap < self.max_length // 2:
            raise ConfigError(f"RerankConfig.window_overlap must lie in [0, max_length / 2); got {self.window_overlap!r}")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"RerankConfig.min_score must lie in [0, 1]; got {self.min_score!r}")
        if not isinstance(self.first_stage_weight, (int, float)) or not 0.0 <= self.first_stage_weight <= 1.0:
            raise ConfigError(f"RerankConfig.first_stage_weight must lie in [0, 1]; got {self.first_stage_weight!r}")

    def check_int8_calibration(self) -> None:
        """int8_calibration, when set, goes with backend openvino, quantize int8
        and a cross-encoder (ConfigError naming the field otherwise)."""
        if self.int8_calibration is None:
            return
        if (self.backend, self.quantize, self.kind) != ("openvino", "int8", "cross-encoder"):
            raise ConfigError(
                "RerankConfig.int8_calibration calibrates OpenVINO's static int8 for a cross-encoder: it needs kind "
                f"'cross-encoder', backend 'openvino' and quantize 'int8'; got kind {self.kind!r}, backend {self.backend!r}, "
                f"quantize {self.quantize!r}"
            )


@dataclass(frozen=True)
class RuntimeConfig:
    """How models run (not what they are): device, batch size, half precision."""

    device: Device = "auto"
    batch_size: int = 32
    fp16: bool | None = None  # None: fp16 on CUDA, fp32 on CPU
    # Micro-batching of query encodes (encoders.QueryBatcher): queries that
    # arrive while the model is busy are encoded together, at most
    # query_batch_size texts per model call; a query waits at most
    # query_batch_wait_ms for company before its batch starts. 1 turns it off
    # (each query encoded alone, the caller serialises model work).
    query_batch_size: int = 32
    query_batch_wait_ms: float = 2.0
    # Overrides every model's backend/quantize (None: as configured, for a
    # collection as its manifest records). A collection whose recorded probe
    # vectors the chosen backend does not reproduce within tolerance is refused.
    backend: Backend | None = None
    quantize: Quantize | None = None

    def __post_init__(self) -> None:
        _check_choice("RuntimeConfig", "device", self.device, Device)
        if self.backend is not None:
            _check_choice("RuntimeConfig", "backend", self.backend, Backend)
        if self.quantize is not None:
            _check_choice("RuntimeConfig", "quantize", self.quantize, Quantize)
        if self.backend is not None and self.quantize is not None:
            check_backend("RuntimeConfig", self.backend, self.quantize)
        _check_positive("RuntimeConfig", "batch_size", self.batch_size)
        _check_positive("RuntimeConfig", "query_batch_size", self.query_batch_size)
        _check_positive("RuntimeConfig", "query_batch_wait_ms", self.query_batch_wait_ms, allow_zero=True)
        if self.query_batch_wait_ms > 1000:
            raise ConfigError(f"RuntimeConfig.query_batch_wait_ms must be at most 1000; got {self.query_batch_wait_ms!r}")

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        if torch.cuda.is_available():
            return "cuda"
        return "cpu"

    def use_fp16(self) -> bool:
        return self.fp16 if self.fp16 is not None else self.resolved_device() == "cuda"


_FLOAT32_MIN_NORMAL = 1.1754944e-38


@dataclass(frozen=True)
class CollectionConfig:
    """What a collection is built from. Recorded in the collection's manifest;
    opening the collection with a different encoder or analyzer is refused."""

    name: str
    dense: DenseEncoderConfig | None = field(default_factory=DenseEncoderConfig)
    sparse: SparseEncoderConfig | None = field(default_factory=SparseEncoderConfig)
    analyzer: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    description: str = ""

    def __post_init__(self) -> None:
        from .store import validate_collection_name

        validate_collection_name(self.name)
        # Milvus accepts k1 in [0, 3]; below 0.01 the term-frequency part degenerates.
        if not 0.01 <= self.bm25_k1 <= 3.0:
            raise ConfigError(f"CollectionConfig.bm25_k1 must lie in [0.01, 3]; got {self.bm25_k1!r}")
        if not 0.0 <= self.bm25_b <= 1.0:
            raise ConfigError(f"CollectionConfig.bm25_b must lie in [0, 1]; got {self.bm25_b!r}")
        if 0.0 < self.bm25_b < _FLOAT32_MIN_NORMAL:
            # Milvus reads index parameters as 32-bit floats and refuses what underflows.
            raise ConfigError(f"CollectionConfig.bm25_b must be 0 or at least 1.2e-38 (a 32-bit float); got {self.bm25_b!r}")

    @property
    def paths(self) -> tuple[str, ...]:
        available = ["bm25"]
        if self.sparse is not None:
            available.append("sparse")
        if self.dense is not None:
            available.append("dense")
        return tuple(available)


def _unset_later_settings_left_out(items: list[tuple[str, Any]]) -> dict[str, Any]:
    # A setting added after collections and caches were keyed by their plain
    # form is left out while unset, so those manifests and keys stay the same.
    return {key: value for key, value in items if not (key in LATER_SETTINGS and value is None)}


LATER_SETTINGS = frozenset({"query_adapter"})


def to_plain(obj: Any) -> Any:
    """A config dataclass as plain JSON-able data."""
    return asdict(obj, dict_factory=_unset_later_settings_left_out) if obj is not None else None


def from_plain(cls: type, data: dict[str, Any] | None) -> Any:
    """Build a config dataclass from plain data, refusing unknown keys."""
    if data is None:
        return None
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown setting(s) {', '.join(sorted(unknown))}")
    return cls(**data)
