"""Calling an exported model's session directly: sentence-transformers'
tokenisation in, pooled numpy rows out, without its module chain.

With a model exported by :mod:`hybrid_search.backends`, ``encode`` still runs
sentence-transformers' Python around the ONNX Runtime / OpenVINO call: the
module chain, feature dicts, numpy -> torch -> numpy of every output, and for
SPLADE a batch x 30k vocabulary tensor built, stacked and copied. For one short
query the session call is most of the model time only on an idle machine; the
Python around it grows with the load (splade-tiny on 2 shared cores: ~22 ms
per query, of which the session ~8 ms and tokenising ~1.5 ms).

:class:`DirectPath` keeps what decides the numbers in sentence-transformers'
hands (prompt resolution, ``preprocess``: prompts, truncation to
``max_seq_length``, per-task lengths; the same length-sorted batches) and
replaces only the rest, for the module chains it understands exactly:

- SPLADE: the Transformer and the pooling folded into the export, nothing
  after it, no ``max_active_dims``;
- dense: the Transformer, a Pooling of mode 'mean' or 'cls' that keeps prompt
  tokens, and optionally Normalize.

Anything else (another pooling mode, a Dense layer, a Router, query
expansion, ``truncate_dim``...) keeps sentence-transformers' own path:
:func:`direct_path` says why, and nothing the user asked for changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .backends import session_feeds

__all__ = ["DirectPath", "chain_pooling", "direct_path", "encode_prompt"]

logger = logging.getLogger(__name__)

Pooling = Literal["in-graph", "mean", "cls"]


@dataclass(frozen=True)
class DirectPath:
    """One exported model's session called on its tokens (see the module docstring)."""

    model: Any  # the SentenceTransformer or SparseEncoder the session was exported from
    run: Callable[[dict[str, np.ndarray]], np.ndarray]
    inputs: tuple[str, ...]
    pooling: Pooling

    def prompt(self, *, explicit: str | None = None, task: str | None = None) -> str | None:
        """The prompt sentence-transformers would prepend: ``explicit`` (dense
        ``encode(prompt=...)``), else for a SPLADE task the prompt its
        ``encode_query`` / ``encode_document`` picks, else the default prompt."""
        return encode_prompt(self.model, explicit=explicit, task=task)

    def rows(self, texts: Sequence[str], *, prompt: str | None, task: str | None, batch_size: int, normalize: bool) -> np.ndarray:
        """texts x output float32 rows, in the order of ``texts``."""
        texts = list(texts)
        # sentence-transformers' own order: longest first, batches of similar
        # lengths (padding changes the floats slightly), rows put back after.
        order = np.argsort([-self.model._input_length(text) for text in texts])
        parts = []
        extra = {} if task is None else {"task": task}
        for start in range(0, len(texts), batch_size):
            features = self.model.preprocess([texts[i] for i in order[start : start + batch_size]], prompt=prompt, **extra)
            feeds = session_feeds(features, self.inputs)
            parts.append(self._pool(np.asarray(self.run(feeds), dtype=np.float32), feeds["attention_mask"]))
        pooled = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        if normalize:
            # torch.nn.functional.normalize: x / max(||x||, 1e-12)
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        rows = np.empty_like(pooled)
        rows[order] = pooled
        return rows

    def _pool(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.pooling == "in-graph":
            return output
        if self.pooling == "cls":
            # The first unmasked token (left padding puts it further in).
            first = mask.argmax(axis=1)
            return output[np.arange(len(output)), first]
        weights = mask[:, :, None].astype(output.dtype)
        return (output * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _chain_problem(model: Any, sparse: bool) -> tuple[Pooling | None, str | None]:
    """The pooling the direct path does for ``model``'s modules after the
    Transformer, or why it cannot reproduce them."""
    modules = list(model)[1:]
    if sparse:
        if len(modules) != 1 or not getattr(modules[0], "folded_into_export", False):
            return None, "its modules after the Transformer are not exactly the SPLADE pooling folded into the export"
        if getattr(model, "max_active_dims", None) is not None:
            return None, "it sets max_active_dims"
        return "in-graph", None
    from sentence_transformers.base.modules import Normalize
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

    if not modules or type(modules[0]) is not STPooling:
        return None, "its Transformer is not followed by a Pooling module"
    pooling, rest = modules[0], modules[1:]
    if [type(module) for module in rest] not in ([], [Normalize]):
        return None, f"modules after Pooling: {[type(module).__name__ for module in rest]}"
    modes = (pooling.pooling_mode,) if isinstance(pooling.pooling_mode, str) else tuple(pooling.pooling_mode)
    if modes not in (("mean",), ("cls",)):
        return None, f"pooling mode {modes} (only 'mean' or 'cls' is done directly)"
    if not pooling.include_prompt:
        return None, "its Pooling excludes prompt tokens"
    if getattr(model, "truncate_dim", None) is not None:
        return None, "it sets truncate_dim"
    return modes[0], None  # type: ignore[return-value]


def direct_path(model: Any, exported: Any) -> tuple[DirectPath | None, str]:
    """The direct path for ``model`` (loaded, then accelerated into
    ``exported``), or None and why sentence-transformers' path stays."""
    from .backends import ExportedModel

    if not isinstance(exported, ExportedModel):
        return None, "the model runs on torch"
    signature = exported.signature
    sparse = signature.splade is not None
    if not sparse and signature.output != "last_hidden_state":
        return None, f"its export gives {signature.output!r}, not token embeddings"
    pooling, problem = chain_pooling(model, sparse=sparse)
    if pooling is None:
        return None, str(problem)
    return DirectPath(model=model, run=exported.runner, inputs=signature.inputs, pooling=pooling), "direct"


def chain_pooling(model: Any, *, sparse: bool) -> tuple[Pooling | None, str | None]:
    """The pooling that reproduces ``model``'s encode from its Transformer's
    token outputs and sentence-transformers' own tokenisation, or why it
    cannot (also used by :mod:`hybrid_search.packed` for torch dense models)."""
    transformer = model[0]
    if not all(hasattr(model, name) for name in ("preprocess", "_resolve_prompt", "_input_length", "prompts")):
        return None, "this sentence-transformers version has no preprocess/_resolve_prompt to tokenise as encode does"
    if getattr(transformer, "query_expansion", None) is not None:
        return None, "its Transformer expands queries"
    can_flatten = getattr(model, "_can_flatten_inputs", None)
    if can_flatten is not None and can_flatten():
        return None, "its Transformer flattens inputs"
    if getattr(model, "_distributed_inference", None) is not None:
        return None, "it runs distributed inference"
    if not sparse and getattr(transformer, "module_output_name", "") != "token_embeddings":
        return None, "its Transformer does not give token embeddings"
    return _chain_problem(model, sparse)


def attach(model: Any, exported: Any, label: str) -> DirectPath | None:
    """:func:`direct_path`, logging which path runs and why."""
    path, reason = direct_path(model, exported)
    if exported is not None:
        if path is None:
            logger.info("%s: the exported session runs inside sentence-transformers' modules (%s)", label, reason)
        else:
            logger.debug("%s: the exported session is called directly", label)
    return path


def encode_prompt(model: Any, *, explicit: str | None = None, task: str | None = None) -> str | None:
    """The prompt ``model``'s sentence-transformers encode would prepend:
    ``explicit`` (dense ``encode(prompt=...)``), else for a SPLADE task the
    prompt its ``encode_query`` / ``encode_document`` picks (document: the
    first of document/passage/corpus it has), else the default prompt."""
    name = None
    if explicit is None and task is not None:
        candidates = ("query",) if task == "query" else ("document", "passage", "corpus")
        name = next((candidate for candidate in candidates if candidate in (model.prompts or {})), None)
    return model._resolve_prompt(explicit, name)
