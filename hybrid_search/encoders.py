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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .backends import accelerate, serving_config
from .batching import EncodedTexts, QueryBatcher
from .config import DenseEncoderConfig, RuntimeConfig, SparseEncoderConfig
from .direct import DirectPath, attach, chain_pooling, encode_prompt
from .errors import ModelKindError, ModelLoadError
from .packed import RowForward, choose_rows, pack_groups, packed_rows

__all__ = [
    "SparseVector",
    "DenseEncoder",
    "SparseEncoder",
    "EncoderSet",
    "ModelTally",
    "load_encoders",
    "describe_load_failure",
    "model_device",
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


def model_device(backend: str, runtime: RuntimeConfig) -> str:
    """Where a model loads: onnx and openvino run on the CPU (the export is made from CPU weights)."""
    return runtime.resolved_device() if backend == "torch" else "cpu"


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
            self.model = SentenceTransformer(_expand(config.model), device=model_device(config.backend, runtime))
        except Exception as error:  # noqa: BLE001 - any loader failure becomes one clear error
            raise describe_load_failure("sentence-transformers dense", config.model, error) from error
        self.exported = accelerate(self.model, config.backend, config.quantize)
        if runtime.use_fp16() and self.exported is None:
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
        # An exported model's session called without sentence-transformers'
        # module chain, when that chain is one hybrid_search.direct reproduces.
        self.direct: DirectPath | None = attach(self.model, self.exported, f"dense model {config.model!r}")

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @cached_property
    def _packed(self) -> RowForward | None:
        """The row forward for texts in packed rows (packed.py), or None:
        padded batches. Checked on first use (a query or a document batch),
        not at load."""
        return self._find_packed(f"dense model {self.config.model!r}")

    def _find_packed(self, label: str) -> RowForward | None:
        if self.exported is not None:
            return None
        pooling, _ = chain_pooling(self.model, sparse=False)
        if pooling not in ("mean", "cls"):
            return None
        body = getattr(self.model[0], "auto_model", None)
        padded = lambda texts: self._encode(texts, self.query_prompt)  # noqa: E731
        packed = lambda forward: lambda texts: self._encode_packed(texts, self.query_prompt, forward)  # noqa: E731
        return choose_rows(label, body, pooling, padded, packed, tolerance=1e-5)

    def _encode_packed(self, texts: Sequence[str], prompt: str, forward: RowForward) -> np.ndarray:
        """``_encode``'s vectors for ``texts`` (queries or documents), computed in packed rows."""
        features = self.model.preprocess(list(texts), prompt=self.model._resolve_prompt(prompt or None, None))
        pooled = packed_rows(features, forward, next(self.model.parameters()).dtype).numpy().astype(np.float32, copy=False)
        # torch.nn.functional.normalize's x / max(||x||, 1e-12), in numpy (see packed.py on the GIL).
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        if self.direct is not None and texts:
            resolved = self.direct.prompt(explicit=prompt or None)
            return self.direct.rows(texts, prompt=resolved, task=None, batch_size=self.runtime.batch_size, normalize=True)
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
        if texts and self._packed is not None:
            return self._encode_packed(texts, self.query_prompt, self._packed)
        return self._encode(texts, self.query_prompt)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        # Packed rows too (the forward checked on queries; a prompt is only
        # text): no padding, and a traced row runs without the GIL. 64
        # cranfield documents: MiniLM 3.7 -> 2.6 s, multilingual-e5-small
        # 15.1 -> 7.2 s, vectors within 1.3e-7.
        if texts and self._packed is not None:
            return self._encode_packed(texts, self.document_prompt, self._packed)
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


# Texts per sentence-transformers call in SpladeSparse: their dense output rows
# (texts x 30k vocabulary floats) stay under ~64 MB.
_SPARSE_ROWS_PER_CALL = 512


class SpladeSparse:
    def __init__(self, config: SparseEncoderConfig, runtime: RuntimeConfig) -> None:
        from sentence_transformers import SparseEncoder as STSparseEncoder

        self.runtime = runtime
        try:
            self.model = STSparseEncoder(_expand(config.model), device=model_device(config.backend, runtime))
        except Exception as error:  # noqa: BLE001
            raise describe_load_failure("SPLADE sparse", config.model, error) from error
        self.exported = accelerate(self.model, config.backend, config.quantize)
        if runtime.use_fp16() and self.exported is None:
            self.model.half()
        if config.max_length is not None:
            self.model.max_seq_length = config.max_length
        self.direct: DirectPath | None = attach(self.model, self.exported, f"SPLADE model {config.model!r}")
        self._packed_head = self._find_packed_head()
        self._label = f"SPLADE model {config.model!r}"

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @cached_property
    def _packed_rows(self) -> RowForward | None:
        """The row forward (body and head) for texts in packed rows
        (packed.py), checked on first use as for dense models; None: the body
        runs padded batches under the head."""
        if self._packed_head is None:
            return None
        body, head = self._packed_head
        padded = lambda texts: self._pooled_packed(texts).numpy()  # noqa: E731
        packed = lambda forward: lambda texts: self._pooled_packed(texts, rows=forward).numpy()  # noqa: E731
        return choose_rows(self._label, body, "splade", padded, packed, tolerance=1e-4, head=head)

    @staticmethod
    def _to_dicts(matrix: Any) -> list[SparseVector]:
        """Rows of a dense (texts x vocabulary) tensor or array as {token: weight}, positive weights only."""
        rows = matrix if isinstance(matrix, np.ndarray) else matrix.float().cpu().numpy()
        vectors: list[SparseVector] = []
        for row in rows:
            columns = np.flatnonzero(row > 0)
            vectors.append(dict(zip(columns.tolist(), row[columns].tolist(), strict=True)))
        return vectors

    def _encode(self, texts: Sequence[str], method: Callable[..., Any], task: str) -> list[SparseVector]:
        # Dense rows read with numpy, not sentence-transformers' sparse tensors
        # (to_sparse per row, stack, coalesce, then a Python loop per weight):
        # less fixed cost per query. Slices bound the dense rows' memory.
        vectors: list[SparseVector] = []
        prompt = self.direct.prompt(task=task) if self.direct is not None else None
        for start in range(0, len(texts), _SPARSE_ROWS_PER_CALL):
            part = list(texts[start : start + _SPARSE_ROWS_PER_CALL])
            if self.direct is not None:
                matrix = self.direct.rows(part, prompt=prompt, task=task, batch_size=self.runtime.batch_size, normalize=False)
            else:
                matrix = method(part, batch_size=self.runtime.batch_size, convert_to_tensor=True, convert_to_sparse_tensor=False, show_progress_bar=False)
            vectors.extend(self._to_dicts(matrix))
        return vectors

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        if self._head_path("query") and texts:
            return self._encode_packed(texts)
        return self._encode(texts, self.model.encode_query, "query")

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        if self._head_path("document") and texts:
            return self._encode_documents_by_head(texts)
        return self._encode(texts, self.model.encode_document, "document")

    def _head_path(self, task: str) -> bool:
        """Whether ``task``'s texts go through the MLM head here rather than
        sentence-transformers' encode: a plain SPLADE model whose encode would
        add no prompt for the task (encode_document takes the first of
        document/passage/corpus that the model has, else the default prompt)."""
        return self._packed_head is not None and not encode_prompt(self.model, task=task)

    def _encode_documents_by_head(self, texts: Sequence[str]) -> list[SparseVector]:
        """Document vectors with the MLM head run on each text's own tokens:
        sentence-transformers runs it on the padded (texts x longest x 30k)
        tensor, 1 GB for 32 texts of 256 tokens. 64 cranfield documents: 4.5 s
        there, 2.4 s with the padded body here (the same vectors), 1.6 s in
        packed rows (within 5e-6). Batches of the configured size bound the
        (texts x 30k) output; padded, texts go longest first, as
        sentence-transformers sorts them, so little is padding."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors: list[SparseVector] = [{}] * len(texts)
        step = max(self.runtime.batch_size, 1)
        for start in range(0, len(order), step):
            part = order[start : start + step]
            pooled = self._pooled_packed([texts[i] for i in part], rows=self._packed_rows)
            for index, vector in zip(part, self._to_dicts(pooled), strict=True):
                vectors[index] = vector
        return vectors

    def _find_packed_head(self) -> tuple[Any, Any] | None:
        """(body, MLM head) of a torch BERT/RoBERTa-style MLM under SPLADE max
        pooling with relu, else None (then texts take sentence-transformers'
        own path; :meth:`_head_path` also checks the task's prompt)."""
        from sentence_transformers.sparse_encoder.modules import SpladePooling

        if self.exported is not None or len(self.model) != 2:
            return None
        if getattr(self.model, "max_active_dims", None) is not None:
            return None  # encode keeps only the top dims; this path would not
        pooling, mlm = self.model[1], getattr(self.model[0], "auto_model", None)
        if not isinstance(pooling, SpladePooling) or (pooling.pooling_strategy, pooling.activation_function) != ("max", "relu"):
            return None
        head = getattr(mlm, "cls", None)
        if head is None:
            head = getattr(mlm, "lm_head", None)
        body = getattr(mlm, "base_model", None)
        if head is None or body is None or body is mlm or not hasattr(self.model[0], "preprocess"):
            return None
        return body, head

    def _encode_packed(self, texts: Sequence[str]) -> list[SparseVector]:
        """SPLADE query vectors with the MLM head run on each query's own tokens only.

        sentence-transformers runs the vocabulary-wide head on every position
        of the padded batch and pools a (queries x longest x 30k) tensor: for
        splade-tiny that head and tensor are most of the cost, so a query batch
        cost about as much as its queries one by one (8 cranfield queries:
        42 ms padded, 22 ms here; on another machine, running the head on
        the batch's tokens at once then took 70 -> 38 ms). Max pooling commutes with log1p(relu(.))
        (both monotone, padding adds zeros), so the head's max over a query's
        tokens gives the same vector (same terms; weights within float
        rounding, 3e-6 on weights of ~1, as any change of batch shape)."""
        return self._to_dicts(self._pooled_packed(texts, rows=self._packed_rows))

    def _pooled_packed(self, texts: Sequence[str], *, rows: RowForward | None = None) -> Any:
        """texts x vocabulary pooled weights; ``rows``: the forward (body and
        head) of packed rows (no padding), else the padded batch's body."""
        import torch

        body, head = self._packed_head  # type: ignore[misc]
        features = self.model[0].preprocess(list(texts))
        if rows is not None:
            return packed_rows(features, rows, next(body.parameters()).dtype)
        device = next(body.parameters()).device
        inputs = {
            name: features[name].to(device) for name in ("input_ids", "attention_mask", "token_type_ids") if name in features
        }
        with torch.inference_mode():
            mask = inputs["attention_mask"].bool()
            hidden = body(**inputs).last_hidden_state
            states = [hidden[i][mask[i]] for i in range(len(texts))]
            # The head on several queries' tokens at once: one pass over its
            # vocabulary-wide weights serves them all (8 queries: 38 -> 19 ms
            # for splade-tiny's head), in groups of at most PACK_TOKENS tokens
            # so the (tokens x vocabulary) logits stay small (~31 MB).
            lengths = [len(state) for state in states]
            peaks = []
            for group in pack_groups(lengths):
                logits = head(torch.cat([states[i] for i in group]))
                peaks.extend(part.max(dim=0).values for part in logits.split([lengths[i] for i in group]))
            return torch.log1p(torch.relu(torch.stack(peaks)))


@dataclass(frozen=True)
class ModelTally:
    """Model calls made for queries, the queries they carried, and the wall
    seconds of query calls and of other (document) work; cumulative."""

    query_calls: int = 0
    queries: int = 0
    query_seconds: float = 0.0
    document_seconds: float = 0.0

    def __add__(self, other: ModelTally) -> ModelTally:
        return ModelTally(
            self.query_calls + other.query_calls,
            self.queries + other.queries,
            self.query_seconds + other.query_seconds,
            self.document_seconds + other.document_seconds,
        )


@dataclass
class EncoderSet:
    """The encoders of one collection. When dense and sparse are the same BGE-M3
    model, both come from a single forward pass."""

    dense: DenseEncoder | None
    sparse: SparseEncoder | None
    shared_m3: BGEM3Model | None = None
    # When set, queries from concurrent callers are encoded together and all
    # model work is serialised through it (see QueryBatcher).
    query_batcher: QueryBatcher | None = field(default=None, repr=False, compare=False)

    #: Texts per document turn on the model when queries are batched (see QueryBatcher.in_turns).
    document_turn_texts: int = field(default=1, repr=False, compare=False)
    # The model work done so far (usage()), counted in _encode.
    _used: ModelTally = field(default_factory=ModelTally, init=False, repr=False, compare=False)
    _tally_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def batch_queries(self, *, max_batch: int, max_wait_s: float) -> None:
        """Encode concurrent queries together from now on (thread-safe afterwards)."""
        self.query_batcher = QueryBatcher(
            lambda texts, outputs: self._encode(texts, queries=True, dense=outputs[0], sparse=outputs[1]),
            max_batch=max_batch,
            max_wait_s=max_wait_s,
        )

    def _encode(self, texts: Sequence[str], *, queries: bool, dense: bool = True, sparse: bool = True) -> EncodedTexts:
        """One model call. Every call goes through here, whether a QueryBatcher
        runs it (a micro-batch, a document turn) or the caller does: the one
        place model work is counted for usage()."""
        started = time.perf_counter()
        try:
            return self._run_models(texts, queries=queries, dense=dense, sparse=sparse)
        finally:
            seconds = time.perf_counter() - started
            work = ModelTally(query_calls=1, queries=len(texts), query_seconds=seconds) if queries else ModelTally(document_seconds=seconds)
            with self._tally_lock:
                self._used = self._used + work

    def _run_models(self, texts: Sequence[str], *, queries: bool, dense: bool, sparse: bool) -> EncodedTexts:
        want_dense = dense and self.dense is not None
        want_sparse = sparse and self.sparse is not None
        if self.shared_m3 is not None and want_dense and want_sparse:
            adapter = self.dense.adapter if isinstance(self.dense, AdaptedQueryDense) and queries else None
            dense_encoder = self.dense.base if isinstance(self.dense, AdaptedQueryDense) else self.dense
            prompt = ""
            if isinstance(dense_encoder, M3Dense):
                prompt = dense_encoder.query_prompt if queries else dense_encoder.document_prompt
            if not prompt:
                both = self.shared_m3.encode(texts, dense=True, sparse=True)
                return (adapter.apply(both[0]) if adapter is not None and both[0] is not None else both[0]), both[1]
            # A prompt applies to the dense side only: two passes keep sparse terms clean.
        dense_vectors = None
        sparse_vectors = None
        if want_dense:
            assert self.dense is not None
            dense_vectors = self.dense.encode_queries(texts) if queries else self.dense.encode_documents(texts)
        if want_sparse:
            assert self.sparse is not None
            sparse_vectors = self.sparse.encode_queries(texts) if queries else self.sparse.encode_documents(texts)
        return dense_vectors, sparse_vectors

    def encode_queries(self, texts: Sequence[str], *, dense: bool = True, sparse: bool = True) -> EncodedTexts:
        """Query vectors from the encoders asked for (both by default); an
        output not asked for comes back as None. Batched with concurrent
        callers' queries when a QueryBatcher is set."""
        if self.query_batcher is not None:
            return self.query_batcher.encode(texts, (dense, sparse))
        return self._encode(texts, queries=True, dense=dense, sparse=sparse)

    def encode_documents(self, texts: Sequence[str]) -> EncodedTexts:
        if self.query_batcher is not None:
            return self.query_batcher.in_turns(texts, lambda part: self._encode(part, queries=False), per_turn=self.document_turn_texts)
        return self._encode(texts, queries=False)

    def usage(self) -> ModelTally:
        """The model work done for queries and documents since loading."""
        with self._tally_lock:
            return self._used

    def token_counter(self) -> Callable[[str], int] | None:
        """Counts tokens with the encoder's own tokenizer (for chunk budgets)."""
        model = self.dense or self.sparse
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None:
            return None
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


class AdaptedQueryDense:
    """A dense encoder whose query vectors pass through a linear query adapter
    (``hybrid_search.query_adapter``); document vectors are the base model's."""

    def __init__(self, base: DenseEncoder, config: DenseEncoderConfig) -> None:
        from .query_adapter import load_query_adapter

        self.base = base
        self.dim = int(base.dim)
        self.adapter = load_query_adapter(str(config.query_adapter), model=config.model, dim=self.dim)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.base, "tokenizer", None)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.adapter.apply(self.base.encode_queries(texts))

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.base.encode_documents(texts)


def load_encoders(
    dense: DenseEncoderConfig | None,
    sparse: SparseEncoderConfig | None,
    runtime: RuntimeConfig,
) -> EncoderSet:
    dense, sparse = serving_config(dense, runtime), serving_config(sparse, runtime)
    shared: BGEM3Model | None = None
    if dense is not None and sparse is not None and dense.kind == "bge-m3" and sparse.kind == "bge-m3" and dense.model == sparse.model:
        shared = BGEM3Model(dense.model, runtime, dense.max_length or sparse.max_length)
    dense_encoder: DenseEncoder | None = None
    if dense is not None:
        if dense.kind == "sentence-transformers":
            dense_encoder = SentenceTransformerDense(dense, runtime)
        else:
            dense_encoder = M3Dense(shared or BGEM3Model(dense.model, runtime, dense.max_length), dense)
    if dense_encoder is not None and dense is not None and dense.query_adapter is not None:
        dense_encoder = AdaptedQueryDense(dense_encoder, dense)
    sparse_encoder: SparseEncoder | None = None
    if sparse is not None:
        if sparse.kind == "splade":
            sparse_encoder = SpladeSparse(sparse, runtime)
        else:
            sparse_encoder = M3Sparse(shared or BGEM3Model(sparse.model, runtime, sparse.max_length))
    encoders = EncoderSet(dense=dense_encoder, sparse=sparse_encoder, shared_m3=shared)
    if runtime.query_batch_size > 1:
        encoders.batch_queries(max_batch=runtime.query_batch_size, max_wait_s=runtime.query_batch_wait_ms / 1000.0)
    return encoders
