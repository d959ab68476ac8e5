"""Encoders: text in, dense vectors and learned sparse vectors out.

- ``sentence-transformers``: any dense SentenceTransformer model, with its query
  and document prompts (BGE instruction, e5 ``query: ``/``passage: ``).
- ``bge-m3``: FlagEmbedding ``BGEM3FlagModel``, dense and lexical weights in one
  forward pass when a collection uses it for both.
- ``splade``: sentence-transformers ``SparseEncoder``.

Models are named by hub id or local folder. A model that cannot be loaded fails
with ``ModelLoadError`` saying what was tried and how to point at a folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .config import DenseEncoderConfig, RuntimeConfig, SparseEncoderConfig
from .errors import ModelKindError, ModelLoadError

__all__ = [
    "SparseVector",
    "DenseEncoder",
    "SparseEncoder",
    "EncoderSet",
    "load_encoders",
    "describe_load_failure",
]

# Learned sparse vector: vocabulary id -> weight (only non-zero weights).
SparseVector = dict[int, float]


def describe_load_failure(kind: str, model: str, error: BaseException) -> ModelLoadError:
    """A ModelLoadError that says what was tried and how to fix it."""
    local = Path(os.path.expanduser(model))
    if local.exists():
        tried = f"the local folder {str(local.resolve())!r} exists but could not be loaded as a {kind} model"
        fix = "check that the folder holds a complete model (config, weights, tokenizer)"
    elif model.startswith(("/", ".", "~")):
        # Written as a path, so no hub name was meant: the folder is missing.
        tried = f"there is no model folder at {str(local.resolve())!r}"
        fix = "check the path (scripts/get-models.sh assembles the offline models into ~/.cache/hybrid-search-models)"
    else:
        tried = (
            f"no local folder at {str(local.resolve())!r}, so it was looked up on the Hugging Face hub, "
            "which failed (offline, unknown name, or no access)"
        )
        fix = (
            f"on a machine with network access run `huggingface-cli download {model} --local-dir DIR` "
            "and pass DIR as the model, or set HF_HOME to a cache that holds it"
        )
    return ModelLoadError(f"could not load {kind} model {model!r}: {tried}; {fix}. Cause: {type(error).__name__}: {error}")


def _expand(model: str) -> str:
    expanded = os.path.expanduser(model)
    return expanded if os.path.exists(expanded) else model


class DenseEncoder(Protocol):
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...


class SparseEncoder(Protocol):
    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]: ...

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]: ...


class SentenceTransformerDense:
    def __init__(self, config: DenseEncoderConfig, runtime: RuntimeConfig) -> None:
        from sentence_transformers import SentenceTransformer

        self.config = config
        self.runtime = runtime
        try:
            self.model = SentenceTransformer(_expand(config.model), device=runtime.resolved_device())
        except Exception as error:  # noqa: BLE001 - any loader failure becomes one clear error
            raise describe_load_failure("sentence-transformers dense", config.model, error) from error
        if runtime.use_fp16():
            self.model.half()
        if config.max_length is not None:
            self.model.max_seq_length = config.max_length
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise ModelLoadError(f"dense model {config.model!r} does not report an embedding dimension")
        self.dim = int(dim)
        prompts = getattr(self.model, "prompts", {}) or {}
        self.query_prompt = config.query_prompt if config.query_prompt is not None else prompts.get("query", "")
        self.document_prompt = (
            config.document_prompt if config.document_prompt is not None else prompts.get("document", "")
        )

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            prompt=prompt or None,
            batch_size=self.runtime.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.document_prompt)


def _resolve_m3_folder(model: str) -> str:
    """BGEM3FlagModel silently starts the sparse and colbert heads from random
    weights when their files are missing; find the folder and refuse that case."""
    local = os.path.expanduser(model)
    if not os.path.isdir(local):
        try:
            from huggingface_hub import snapshot_download

            local = snapshot_download(repo_id=model, ignore_patterns=["flax_model.msgpack", "rust_model.ot", "tf_model.h5", "*.onnx*"])
        except Exception as error:  # noqa: BLE001
            raise describe_load_failure("BGE-M3", model, error) from error
    missing = [name for name in ("sparse_linear.pt", "colbert_linear.pt") if not os.path.isfile(os.path.join(local, name))]
    if missing:
        raise ModelKindError(
            f"BGE-M3 model {model!r} at {local!r} has no trained {' and '.join(missing)}: its sparse head would be "
            "random. Use a real BGE-M3 checkpoint or train the head (`hybrid-search train sparse`), or use this "
            "model as kind 'sentence-transformers' for dense vectors only"
        )
    return local


class BGEM3Model:
    """One BGE-M3 model serving dense and/or lexical weights from one pass."""

    def __init__(self, model: str, runtime: RuntimeConfig, max_length: int | None) -> None:
        from FlagEmbedding import BGEM3FlagModel

        folder = _resolve_m3_folder(model)
        device = runtime.resolved_device()
        try:
            self.model = BGEM3FlagModel(
                folder,
                use_fp16=runtime.use_fp16(),
                devices=device if device != "cuda" else "cuda:0",
                batch_size=runtime.batch_size,
            )
        except Exception as error:  # noqa: BLE001
            raise describe_load_failure("BGE-M3", model, error) from error
        self.runtime = runtime
        self.max_length = max_length or 512
        self.dim = int(self.model.model.model.config.hidden_size)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def encode(self, texts: Sequence[str], *, dense: bool, sparse: bool) -> tuple[np.ndarray | None, list[SparseVector] | None]:
        if not texts:
            return (np.zeros((0, self.dim), dtype=np.float32) if dense else None, [] if sparse else None)
        output = self.model.encode(
            list(texts),
            batch_size=self.runtime.batch_size,
            max_length=self.max_length,
            return_dense=dense,
            return_sparse=sparse,
            return_colbert_vecs=False,
        )
        dense_vectors = np.asarray(output["dense_vecs"], dtype=np.float32).reshape(len(texts), -1) if dense else None
        sparse_vectors = (
            [{int(token): float(weight) for token, weight in weights.items() if weight > 0} for weights in output["lexical_weights"]]
            if sparse
            else None
        )
        return dense_vectors, sparse_vectors


class M3Dense:
    def __init__(self, m3: BGEM3Model, config: DenseEncoderConfig) -> None:
        self.m3 = m3
        self.dim = m3.dim
        self.query_prompt = config.query_prompt or ""
        self.document_prompt = config.document_prompt or ""

    @property
    def tokenizer(self) -> Any:
        return self.m3.tokenizer

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.m3.encode([self.query_prompt + t for t in texts], dense=True, sparse=False)[0]  # type: ignore[return-value]

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.m3.encode([self.document_prompt + t for t in texts], dense=True, sparse=False)[0]  # type: ignore[return-value]


class M3Sparse:
    def __init__(self, m3: BGEM3Model) -> None:
        self.m3 = m3

    @property
    def tokenizer(self) -> Any:
        return self.m3.tokenizer

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        return self.m3.encode(texts, dense=False, sparse=True)[1]  # type: ignore[return-value]

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return self.m3.encode(texts, dense=False, sparse=True)[1]  # type: ignore[return-value]


class SpladeSparse:
    def __init__(self, config: SparseEncoderConfig, runtime: RuntimeConfig) -> None:
        from sentence_transformers import SparseEncoder as STSparseEncoder

        self.runtime = runtime
        try:
            self.model = STSparseEncoder(_expand(config.model), device=runtime.resolved_device())
        except Exception as error:  # noqa: BLE001
            raise describe_load_failure("SPLADE sparse", config.model, error) from error
        if runtime.use_fp16():
            self.model.half()
        if config.max_length is not None:
            self.model.max_seq_length = config.max_length

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @staticmethod
    def _to_dicts(matrix: Any) -> list[SparseVector]:
        matrix = matrix.coalesce()
        indices = matrix.indices().cpu().numpy()
        values = matrix.values().float().cpu().numpy()
        rows: list[SparseVector] = [{} for _ in range(matrix.shape[0])]
        for row, column, value in zip(indices[0], indices[1], values):
            if value > 0:
                rows[int(row)][int(column)] = float(value)
        return rows

    def _encode(self, texts: Sequence[str], method: Callable[..., Any]) -> list[SparseVector]:
        if not texts:
            return []
        matrix = method(list(texts), batch_size=self.runtime.batch_size, convert_to_tensor=True, convert_to_sparse_tensor=True, show_progress_bar=False)
        return self._to_dicts(matrix)

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        return self._encode(texts, self.model.encode_query)

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return self._encode(texts, self.model.encode_document)


@dataclass
class EncoderSet:
    """The encoders of one collection. When dense and sparse are the same BGE-M3
    model, both come from a single forward pass."""

    dense: DenseEncoder | None
    sparse: SparseEncoder | None
    shared_m3: BGEM3Model | None = None

    def _encode(self, texts: Sequence[str], *, queries: bool) -> tuple[np.ndarray | None, list[SparseVector] | None]:
        if self.shared_m3 is not None:
            dense_encoder = self.dense
            prompt = ""
            if isinstance(dense_encoder, M3Dense):
                prompt = dense_encoder.query_prompt if queries else dense_encoder.document_prompt
            if not prompt:
                return self.shared_m3.encode(texts, dense=True, sparse=True)
            # A prompt applies to the dense side only: two passes keep sparse terms clean.
        dense_vectors = None
        sparse_vectors = None
        if self.dense is not None:
            dense_vectors = self.dense.encode_queries(texts) if queries else self.dense.encode_documents(texts)
        if self.sparse is not None:
            sparse_vectors = self.sparse.encode_queries(texts) if queries else self.sparse.encode_documents(texts)
        return dense_vectors, sparse_vectors

    def encode_queries(self, texts: Sequence[str]) -> tuple[np.ndarray | None, list[SparseVector] | None]:
        return self._encode(texts, queries=True)

    def encode_documents(self, texts: Sequence[str]) -> tuple[np.ndarray | None, list[SparseVector] | None]:
        return self._encode(texts, queries=False)

    def token_counter(self) -> Callable[[str], int] | None:
        """Counts tokens with the encoder's own tokenizer (for chunk budgets)."""
        model = self.dense or self.sparse
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None:
            return None
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def load_encoders(
    dense: DenseEncoderConfig | None,
    sparse: SparseEncoderConfig | None,
    runtime: RuntimeConfig,
) -> EncoderSet:
    shared: BGEM3Model | None = None
    if dense is not None and sparse is not None and dense.kind == "bge-m3" and sparse.kind == "bge-m3" and dense.model == sparse.model:
        shared = BGEM3Model(dense.model, runtime, dense.max_length or sparse.max_length)
    dense_encoder: DenseEncoder | None = None
    if dense is not None:
        if dense.kind == "sentence-transformers":
            dense_encoder = SentenceTransformerDense(dense, runtime)
        else:
            dense_encoder = M3Dense(shared or BGEM3Model(dense.model, runtime, dense.max_length), dense)
    sparse_encoder: SparseEncoder | None = None
    if sparse is not None:
        if sparse.kind == "splade":
            sparse_encoder = SpladeSparse(sparse, runtime)
        else:
            sparse_encoder = M3Sparse(shared or BGEM3Model(sparse.model, runtime, sparse.max_length))
    return EncoderSet(dense=dense_encoder, sparse=sparse_encoder, shared_m3=shared)
