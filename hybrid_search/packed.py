"""Packed rows: several texts' tokens in one row, no padding.

A micro-batch of queries (encoders.QueryBatcher) padded to its longest query
spends the model's time on padding: cranfield queries average 23 tokens and
run to 59, and the transformer's linear layers, most of the cost, run on
every padded position. Packed, the batch's tokens sit side by side in one row,
each text with its own positions (0, 1, ... again) and an attention mask that
lets a token see only its own text's tokens (block diagonal). Each token then
computes exactly what it computes in its text alone: the same vectors as one
text per call (to float rounding, as any change of batch shape), for the
cost of the real tokens plus attention across the row, which is small next to
the linear layers at these lengths (rows are cut at ``PACK_TOKENS``; a longer
text has a row of its own). Pooling (mean, first token, SPLADE's max over
the MLM head) runs inside the row's forward. Documents take the same path.

Only for what is known to work this way, checked on a model's first texts
(:func:`packable`, :func:`choose_rows`): a BERT model (absolute positions, token types; the
multilingual-e5 and MiniLM families and splade-tiny are BERT) in float32 on
the CPU with eager or SDPA attention, which take a 4-D additive mask as it is.
The check encodes probe texts both ways and keeps the packed path only if
they agree; anything else keeps the padded path, and says why at debug level.

A row runs as one TorchScript call where it can (:func:`traced_rows`). An
eager forward gives up Python's GIL around each of its few hundred torch
operations and waits to get it back; in a server, the threads reading
Milvus results and building responses hold it meanwhile, and one MiniLM
query went from 10 ms alone to 137 ms beside one busy Python thread (traced:
7 ms and 16 ms). The trace is checked like the packed path and, where it
does not agree, the eager forward is used.

A traced forward runs on one thread at a time. TorchScript's executor
profiles a function's first runs and re-optimises it when input shapes
change (packed rows change length with every batch), and its profiling
record has known data races when one function runs on several threads at
once (pytorch/pytorch#58446); unbatched callers (``query_batch_size = 1``)
and several engines in one process would otherwise meet there. Tracing
itself registers the new module in TorchScript's process-wide compilation
unit, so models are traced one at a time too. With query batching (the
default) model calls are already one at a time, and the lock is uncontended.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "PACK_TOKENS",
    "PROBE_QUERIES",
    "RowForward",
    "checked",
    "choose_rows",
    "eager_rows",
    "pack_groups",
    "packable",
    "packed_rows",
    "traced_rows",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowForward:
    """A packed row's inputs (:func:`_row_inputs`) -> its texts' pooled
    outputs (texts x output), eager or traced."""

    run: Callable[..., Any]
    traced: bool
    # Held around each traced call (see the module docstring).
    _one_at_a_time: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __call__(self, inputs: dict[str, Any]) -> Any:
        if not self.traced:
            return self.run(*_row_args(inputs))
        with self._one_at_a_time:
            return self.run(*_row_args(inputs))


# Tracing adds to TorchScript's process-wide compilation unit: one at a time.
_TRACING = threading.Lock()


#: Most tokens in one packed row: attention across the row costs
#: rows x rows per layer, so past a few hundred tokens it eats what packing
#: saves (MiniLM-L6: at 256 tokens attention is ~10% of the linear layers'
#: work, at 1024 ~50%). A query longer than this gets a row of its own.
PACK_TOKENS = 256

#: Texts of different lengths whose packed and padded vectors must agree
#: before a model's packed path is used.
PROBE_QUERIES = (
    "what is the revenue recognition policy",
    "hybrid retrieval fuses lexical and dense scores of the same chunk",
    "why",
    "how did gross margin and operating expenses change between the two fiscal years, and what drove the change",
)


def pack_groups(lengths: Sequence[int], limit: int = PACK_TOKENS) -> list[list[int]]:
    """Indices of ``lengths`` in rows of at most ``limit`` tokens, in order
    (a length over the limit alone in its row)."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, length in enumerate(lengths):
        if current and total + length > limit:
            groups.append(current)
            current, total = [], 0
        current.append(index)
        total += length
    if current:
        groups.append(current)
    return groups


def packable(body: Any) -> str | None:
    """None when ``body`` (a transformers model) can run packed rows, else why not."""
    config = getattr(body, "config", None)
    if config is None:
        return "it has no transformers config"
    if getattr(config, "model_type", None) != "bert":
        return f"model type {getattr(config, 'model_type', None)!r} (packing is done for BERT only)"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return "its position embeddings are not absolute"
    if getattr(config, "_attn_implementation", None) not in ("eager", "sdpa"):
        return f"attention implementation {getattr(config, '_attn_implementation', None)!r}"
    try:
        parameter = next(body.parameters())
    except (StopIteration, AttributeError):
        return "it has no parameters"
    import torch

    if parameter.dtype != torch.float32 or parameter.device.type != "cpu":
        return f"it runs in {parameter.dtype} on {parameter.device.type} (packing is done for float32 on the CPU)"
    return None


Pooling = Literal["mean", "cls", "splade"]


def _row_module(body: Any, pooling: Pooling, head: Any = None) -> Any:
    """A module computing one packed row's pooled outputs, texts x output:
    the body, then per text (``owner`` says which text each token is of,
    ``text_index`` is 0..texts-1) the mean of its tokens, its first token,
    or for SPLADE log1p(relu(max over its tokens of the MLM head)). Pooling
    sits inside so that a traced row is one call from tokens to vectors."""
    import torch

    class _Row(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.head = body, head

        def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, token_type_ids: Any, owner: Any, text_index: Any) -> Any:
            hidden = self.body(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, token_type_ids=token_type_ids
            ).last_hidden_state[0]
            if pooling == "cls":
                return hidden[position_ids[0] == 0]
            if pooling == "mean":
                members = (owner[None, :] == text_index[:, None]).to(hidden.dtype)
                return (members @ hidden) / members.sum(dim=1, keepdim=True)
            logits = self.head(hidden)
            # Max over each text's tokens, from 0: max(0, x) is relu's, and
            # log1p(relu(.)) is monotone, so it commutes with the max.
            peaks = torch.zeros(text_index.size(0), logits.size(1), dtype=logits.dtype)
            peaks = peaks.scatter_reduce(0, owner[:, None].expand(-1, logits.size(1)), logits, reduce="amax")
            return torch.log1p(peaks)

    return _Row()


def eager_rows(body: Any, pooling: Pooling, head: Any = None) -> RowForward:
    """The packed-row forward in eager PyTorch."""
    return RowForward(_row_module(body, pooling, head), traced=False)


def traced_rows(body: Any, pooling: Pooling, head: Any = None) -> RowForward | None:
    """The same forward traced with TorchScript: one call that runs without the
    GIL. None, with the reason at debug level, where tracing fails. Traced on
    a row of two texts, so the trace keeps the masked attention path (with a
    mask given, BERT's attention takes no shape-dependent branch; the tracer's
    warning about ``is_causal`` concerns a value that is False either way)."""
    import warnings

    import numpy as np
    import torch

    lengths = [3, 4]
    example = _row_inputs(np.full(sum(lengths), 100, dtype=np.int64), None, lengths, next(body.parameters()).dtype)
    try:
        with _TRACING, torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(_row_module(body, pooling, head), _row_args(example), check_trace=False)
    except Exception as error:  # noqa: BLE001 - any failure keeps the eager forward
        logger.debug("tracing %s failed (%s: %s)", type(body).__name__, type(error).__name__, error)
        return None
    return RowForward(traced, traced=True)


def _row_args(inputs: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(inputs[name] for name in ("input_ids", "attention_mask", "position_ids", "token_type_ids", "owner", "text_index"))


def _row_inputs(row_ids: Any, row_types: Any, lengths: Sequence[int], dtype: Any) -> dict[str, Any]:
    """A packed row's model inputs (numpy in, torch out): per-text positions,
    a block-diagonal additive mask, and which text each token is of. Built
    with numpy: each torch operation would give up the GIL and wait for it."""
    import numpy as np
    import torch

    owner = np.repeat(np.arange(len(lengths)), lengths)
    positions = np.concatenate([np.arange(length) for length in lengths])
    additive = np.where(owner[:, None] != owner[None, :], torch.finfo(dtype).min, 0.0).astype(np.float32)
    return {
        "input_ids": torch.from_numpy(row_ids[None]),
        "attention_mask": torch.from_numpy(additive[None, None]).to(dtype),
        "position_ids": torch.from_numpy(positions[None]),
        "token_type_ids": torch.from_numpy(np.zeros_like(row_ids) if row_types is None else row_types)[None],
        "owner": torch.from_numpy(owner),
        "text_index": torch.arange(len(lengths)),
    }


def packed_rows(features: dict[str, Any], forward: RowForward, dtype: Any, limit: int = PACK_TOKENS) -> Any:
    """Each text's pooled output (texts x output tensor, in order) from
    ``features`` (a tokenizer's padded batch: input_ids, attention_mask,
    optionally token_type_ids), computed in packed rows by ``forward``."""
    import numpy as np
    import torch

    mask = features["attention_mask"].numpy().astype(bool)
    lengths = mask.sum(axis=1).tolist()
    ids = features["input_ids"].numpy()
    types = features.get("token_type_ids")
    types = None if types is None else types.numpy()
    parts = []
    with torch.inference_mode():
        for group in pack_groups(lengths, limit):  # consecutive texts: the rows' outputs stack in order
            row_ids = np.concatenate([ids[i][mask[i]] for i in group])
            row_types = None if types is None else np.concatenate([types[i][mask[i]] for i in group])
            parts.append(forward(_row_inputs(row_ids, row_types, [lengths[i] for i in group], dtype)))
        return torch.cat(parts) if len(parts) > 1 else parts[0]


def checked(label: str, body: Any, padded: Callable[[list[str]], Any], packed: Callable[[list[str]], Any], *, tolerance: float) -> bool:
    """Whether ``packed`` may serve ``body``'s query batches: it can run packed
    rows, and on :data:`PROBE_QUERIES` its output (an array of rows) agrees
    with ``padded``'s to within ``tolerance`` (largest absolute difference)."""
    import numpy as np

    problem = packable(body)
    if problem is None:
        try:
            expected = np.asarray(padded(list(PROBE_QUERIES)), dtype=np.float64)
            got = np.asarray(packed(list(PROBE_QUERIES)), dtype=np.float64)
        except Exception as error:  # noqa: BLE001 - any failure keeps the padded path
            problem = f"the packed forward failed ({type(error).__name__}: {error})"
        else:
            difference = float(np.abs(expected - got).max()) if expected.shape == got.shape else float("inf")
            if not difference <= tolerance:
                problem = f"packed and padded vectors differ by {difference:.3g} on the probe texts (tolerance {tolerance:g})"
    if problem is not None:
        logger.debug("%s: query batches stay padded: %s", label, problem)
        return False
    logger.debug("%s: query batches run packed", label)
    return True


def choose_rows(
    label: str,
    body: Any,
    pooling: Pooling,
    padded: Callable[[list[str]], Any],
    packed: Callable[[RowForward], Callable[[list[str]], Any]],
    *,
    tolerance: float,
    head: Any = None,
) -> RowForward | None:
    """The forward that ``body``'s queries run in packed rows: traced where
    its output agrees with ``padded`` on the probe texts, else eager where
    that agrees, else None (padded batches). ``packed(forward)`` encodes
    texts through ``forward``."""
    if packable(body) is None:
        traced = traced_rows(body, pooling, head)
        if traced is not None and checked(f"{label} (traced)", body, padded, packed(traced), tolerance=tolerance):
            return traced
    eager = eager_rows(body, pooling, head)
    return eager if checked(label, body, padded, packed(eager), tolerance=tolerance) else None
