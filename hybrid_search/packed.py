"""Packed query batches: several queries' tokens in one row, no padding.

A micro-batch of queries (encoders.QueryBatcher) padded to its longest query
spends the model's time on padding: cranfield queries average 23 tokens and
run to 59, and the transformer's linear layers, most of the cost, run on
every padded position. Packed, the batch's tokens sit side by side in one row,
each query with its own positions (0, 1, ... again) and an attention mask that
lets a token see only its own query's tokens (block diagonal). Each token then
computes exactly what it computes in its query alone: the same vectors as one
query per call (to float rounding, as any change of batch shape), for the
cost of the real tokens plus attention across the row, which is small next to
the linear layers at query lengths (rows are cut at ``PACK_TOKENS``).

Only for what is known to work this way, checked on a model's first batch
of several queries (:func:`packable`, :func:`checked`): a BERT model (absolute positions, token types; the
multilingual-e5 and MiniLM families and splade-tiny are BERT) in float32 on
the CPU with eager or SDPA attention, which take a 4-D additive mask as it is.
The check encodes probe texts both ways and keeps the packed path only if
they agree; anything else keeps the padded path, and says why at debug level.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["PACK_TOKENS", "PROBE_QUERIES", "checked", "pack_groups", "packable", "packed_hidden"]

logger = logging.getLogger(__name__)

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


def packed_hidden(body: Any, features: dict[str, Any], limit: int = PACK_TOKENS) -> list[Any]:
    """Each text's last hidden states (its tokens x hidden, padding dropped)
    from ``features`` (a tokenizer's padded batch: input_ids, attention_mask,
    optionally token_type_ids), computed in packed rows."""
    import torch

    mask = features["attention_mask"].bool()
    lengths = mask.sum(dim=1).tolist()
    ids = features["input_ids"]
    types = features.get("token_type_ids")
    states: list[Any] = [None] * len(lengths)
    dtype = next(body.parameters()).dtype
    with torch.inference_mode():
        for group in pack_groups(lengths, limit):
            row_ids = torch.cat([ids[i][mask[i]] for i in group]).unsqueeze(0)
            positions = torch.cat([torch.arange(lengths[i]) for i in group]).unsqueeze(0)
            owner = torch.cat([torch.full((lengths[i],), n) for n, i in enumerate(group)])
            apart = owner[:, None] != owner[None, :]
            additive = torch.zeros(apart.shape, dtype=dtype).masked_fill_(apart, torch.finfo(dtype).min)
            inputs = {"input_ids": row_ids, "attention_mask": additive[None, None], "position_ids": positions}
            if types is not None:
                inputs["token_type_ids"] = torch.cat([types[i][mask[i]] for i in group]).unsqueeze(0)
            hidden = body(**inputs).last_hidden_state[0]
            start = 0
            for i in group:
                states[i] = hidden[start : start + lengths[i]]
                start += lengths[i]
    return states


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
