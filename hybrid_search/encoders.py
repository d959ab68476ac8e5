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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .backends import accelerate, serving_config
from .config import DenseEncoderConfig, RuntimeConfig, SparseEncoderConfig
from .direct import DirectPath, attach, chain_pooling, encode_prompt
from .errors import ModelKindError, ModelLoadError
from .packed import RowForward, choose_rows, pack_groups, packed_rows

__all__ = [
    "SparseVector",
    "EncodedTexts",
    "QueryBatcher",
    "DenseEncoder",
    "SparseEncoder",
    "EncoderSet",
    "load_encoders",
    "describe_load_failure",
    "model_device",
]

# Learned sparse vector: vocabulary id -> weight (only non-zero weights).
SparseVector = dict[int, float]
# What an EncoderSet returns for a list of texts: dense rows and sparse vectors,
# each None when the collection has no such path.
EncodedTexts = tuple[np.ndarray | None, list[SparseVector] | None]


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


# Which outputs a query asks for: (dense, sparse). Only queries asking for the
# same outputs share a model call.
Outputs = tuple[bool, bool]


class _PendingQuery:
    __slots__ = ("arrived", "done", "error", "outputs", "result", "texts")

    def __init__(self, texts: list[str], outputs: Outputs, arrived: float) -> None:
        self.texts = texts
        self.outputs = outputs
        self.arrived = arrived
        self.result: EncodedTexts | None = None
        self.error: BaseException | None = None
        self.done = False


class QueryBatcher:
    """Micro-batching of query encodes, safe to call from many threads.

    Queries that arrive while the model is busy queue up; when it frees, the
    queue (up to ``max_batch`` texts, oldest first, those asking for the same
    outputs as the oldest) goes through ``encode`` in one call and each caller
    gets its own rows back. A batch starts once it is
    full or once its oldest query has waited ``max_wait_s``: no query waits
    longer than that for company (waiting for the model itself is queueing,
    which batching shortens). Nothing runs in the background: the calling
    threads take turns driving the model.

    Other model work (document batches) goes through :meth:`exclusive` or
    :meth:`in_turns`, never at the same time as a query batch (tokenizers are
    not thread-safe). While searches are active, documents get at most
    ``documents_share`` of the wall time: a document turn that took D seconds
    is followed by D * (1 - share) / share seconds in which queries have the
    model (when it is due, the next document turn goes before any waiting
    query, so indexing keeps progressing under any search load). Searches are
    active until the model has gone ``idle_grace_s`` without a query queued or
    encoded; then documents get the whole model. Checking only "does a query
    wait right now" is not enough: under load the searches spend part of
    their time outside the model (store calls, responses, the next request),
    the queue is empty each time a batch has taken it, and documents took most
    of the model time, with every search queued behind a document batch.
    """

    def __init__(
        self,
        encode: Callable[[list[str], Outputs], EncodedTexts],
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.002,
        documents_share: float = 0.2,
        idle_grace_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0; got {max_wait_s}")
        if not 0.0 < documents_share <= 1.0:
            raise ValueError(f"documents_share must lie in (0, 1]; got {documents_share}")
        if idle_grace_s < 0:
            raise ValueError(f"idle_grace_s must be >= 0; got {idle_grace_s}")
        self._encode = encode
        self._pause_per_document_second = (1.0 - documents_share) / documents_share
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.idle_grace_s = idle_grace_s
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[_PendingQuery] = deque()
        self._busy = False
        self._exclusive_waiting = 0
        # While searches are active, no document turn starts before this time.
        self._documents_due_at = float("-inf")
        # The last time a query arrived or a query batch ended.
        self._last_query_at = float("-inf")
        #: Model calls made for queries, the queries they carried, and the
        #: model seconds of queries and of other work (for metrics and tests).
        self.batches = 0
        self.queries = 0
        self.query_seconds = 0.0
        self.document_seconds = 0.0

    def encode(self, texts: Sequence[str], outputs: Outputs = (True, True)) -> EncodedTexts:
        """Encode one caller's query texts, batched with whatever else is waiting."""
        item = _PendingQuery(list(texts), outputs, self._clock())
        with self._cond:
            self._queue.append(item)
            self._last_query_at = item.arrived
            self._cond.notify_all()  # a leader gathering a batch may now have a full one
            while not item.done:
                if self._busy or (self._exclusive_waiting and self._clock() >= self._documents_due_at):
                    self._cond.wait()
                else:
                    self._lead()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _queued_texts(self, outputs: Outputs) -> int:
        return sum(max(len(q.texts), 1) for q in self._queue if q.outputs == outputs)

    def _take_batch(self) -> list[_PendingQuery]:
        """The oldest query and, in arrival order, those asking for the same outputs, up to max_batch texts."""
        first = self._queue.popleft()
        batch, size, kept = [first], max(len(first.texts), 1), deque()
        while self._queue:
            item = self._queue.popleft()
            cost = max(len(item.texts), 1)
            if item.outputs == first.outputs and size + cost <= self.max_batch:
                batch.append(item)
                size += cost
            else:
                kept.append(item)
        self._queue = kept
        return batch

    def _lead(self) -> None:
        """Holding the condition with the model free: gather, run one batch, hand out rows."""
        self._busy = True
        oldest = self._queue[0]
        deadline = oldest.arrived + self.max_wait_s
        while self._queued_texts(oldest.outputs) < self.max_batch:
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        batch = self._take_batch()
        self._cond.release()
        started = self._clock()
        try:
            self._run(batch)
        finally:
            ended = self._clock()
            self._cond.acquire()
            self._busy = False
            # Its callers come back with their next searches shortly: they count
            # as active from the batch's end, not only from their arrival.
            self._last_query_at = max(self._last_query_at, ended)
            self.batches += 1
            self.queries += len(batch)
            self.query_seconds += ended - started
            self._cond.notify_all()

    def _run(self, batch: list[_PendingQuery]) -> None:
        texts = [text for item in batch for text in item.texts]
        try:
            dense, sparse = self._encode(texts, batch[0].outputs)
        except BaseException as error:  # noqa: BLE001 - every caller of the batch sees the failure
            for item in batch:
                item.error, item.done = error, True
            return
        start = 0
        for item in batch:
            end = start + len(item.texts)
            item.result = (
                dense[start:end] if dense is not None else None,
                sparse[start:end] if sparse is not None else None,
            )
            item.done = True
            start = end

    def _documents_wait(self) -> float | None:
        """Holding the condition: 0 when a document turn may start now, else
        how long at most before looking again (None: until woken)."""
        if self._busy:
            return None
        now = self._clock()
        if now >= self._documents_due_at:
            return 0.0
        if self._queue:
            return self._documents_due_at - now
        until_idle = self._last_query_at + self.idle_grace_s - now
        if until_idle <= 0:
            return 0.0  # no one is searching: documents get the whole model
        return min(until_idle, self._documents_due_at - now)

    def exclusive(self, work: Callable[[], EncodedTexts]) -> EncodedTexts:
        """Run other model work (a document turn) with the model to itself."""
        with self._cond:
            self._exclusive_waiting += 1
            try:
                while (wait := self._documents_wait()) != 0.0:
                    self._cond.wait(wait)
            finally:
                self._exclusive_waiting -= 1
            self._busy = True
        started = self._clock()
        try:
            return work()
        finally:
            ended = self._clock()
            with self._cond:
                self._busy = False
                self.document_seconds += ended - started
                self._documents_due_at = ended + (ended - started) * self._pause_per_document_second
                self._cond.notify_all()

    def _searches_active(self) -> bool:
        """Holding the condition: a query is queued or one was within idle_grace_s."""
        return bool(self._queue) or self._clock() < self._last_query_at + self.idle_grace_s

    def in_turns(self, texts: Sequence[str], work: Callable[[list[str]], EncodedTexts], *, per_turn: int) -> EncodedTexts:
        """``work`` over ``texts`` through :meth:`exclusive`, the rows joined
        in order: while searches are active in turns of ``per_turn`` texts, so
        a search waits behind one short turn, not a whole document batch;
        otherwise the rest in one call (batching pays, on a GPU most)."""
        if per_turn < 1:
            raise ValueError(f"per_turn must be >= 1; got {per_turn}")
        if not texts:
            return self.exclusive(lambda: work([]))
        parts: list[EncodedTexts] = []
        taken = 0

        def turn() -> EncodedTexts:
            # Sized when the turn starts, not when it began to wait for it.
            nonlocal taken
            with self._cond:
                size = per_turn if self._searches_active() else len(texts) - taken
            part = list(texts[taken : taken + size])
            taken += size
            return work(part)

        while taken < len(texts):
            parts.append(self.exclusive(turn))
        dense = [p[0] for p in parts]
        sparse = [p[1] for p in parts]
        return (
            None if any(d is None for d in dense) else np.concatenate(dense, axis=0),  # type: ignore[arg-type]
            None if any(s is None for s in sparse) else [row for part in sparse for row in part],  # type: ignore[union-attr]
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

    def batch_queries(self, *, max_batch: int, max_wait_s: float) -> None:
        """Encode concurrent queries together from now on (thread-safe afterwards)."""
        self.query_batcher = QueryBatcher(
            lambda texts, outputs: self._encode(texts, queries=True, dense=outputs[0], sparse=outputs[1]),
            max_batch=max_batch,
            max_wait_s=max_wait_s,
        )

    def _encode(self, texts: Sequence[str], *, queries: bool, dense: bool = True, sparse: bool = True) -> EncodedTexts:
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
