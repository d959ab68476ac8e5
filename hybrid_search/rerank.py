"""Rerankers: (query, candidate texts) in, relevance scores in [0, 1] out.

Two backends behind one interface: FlagEmbedding ``FlagReranker`` (default
``BAAI/bge-reranker-v2-m3``) and sentence-transformers ``CrossEncoder``. Both
return sigmoid-normalised scores, so a minimum score means the same with either.

A candidate longer than the model's ``max_length`` is cut there, or, with
``long_passages="max-window"``, scored as overlapping windows cut from the
original text at token boundaries, keeping the best window (MaxP, Dai & Callan
2019): a chunk's second half is otherwise invisible to the reranker.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .config import RerankConfig, RuntimeConfig
from .backends import accelerate, serving_config
from .encoders import describe_load_failure, model_device
from .fusion import normalize_scores
from .rerank_int8 import read_calibration_pairs, static_int8_model

__all__ = ["Reranker", "combine_rerank_scores", "load_reranker", "order_reranked", "split_windows", "window_budget"]

# [CLS] query [SEP] passage [SEP] (BERT) or <s> q </s></s> p </s> (XLM-R): at most 4.
_SPECIAL_TOKENS = 4
_MIN_WINDOW_TOKENS = 32


class Reranker(Protocol):
    config: RerankConfig

    def score(self, query: str, texts: Sequence[str]) -> list[float]: ...


def _expand(model: str) -> str:
    expanded = os.path.expanduser(model)
    return expanded if os.path.exists(expanded) else model


def window_budget(tokenizer: Any, query: str, max_length: int) -> int:
    """Passage tokens that fit beside ``query`` (and the special tokens) in ``max_length``."""
    query_tokens = len(tokenizer(query, add_special_tokens=False, verbose=False)["input_ids"])
    return max(max_length - query_tokens - _SPECIAL_TOKENS, _MIN_WINDOW_TOKENS)


def split_windows(tokenizer: Any, text: str, budget: int, overlap: int) -> list[str]:
    """``text`` as substrings of at most ``budget`` tokens, ``overlap`` tokens apart.

    Windows start every ``budget - overlap`` tokens and are sliced from the
    original text by the tokenizer's character offsets, so no text is rewritten.
    A text that fits is returned whole, as the only window.
    """
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = encoded["offset_mapping"]
    total = len(offsets)
    if total <= budget:
        return [text]
    words = encoded.word_ids() if getattr(encoded, "is_fast", False) else [None] * total

    def splits_word(i: int) -> bool:  # token i continues the word of token i - 1
        return 0 < i < total and words[i] is not None and words[i] == words[i - 1]

    stride = max(budget - overlap, 1)
    windows = []
    start = 0
    while True:
        end = min(start + budget, total)
        # Cut between words, never inside one, unless a single word fills the window.
        trimmed = end
        while splits_word(trimmed) and trimmed > start + 1:
            trimmed -= 1
        end = trimmed if not splits_word(trimmed) else end
        windows.append(text[offsets[start][0] : offsets[end - 1][1]])
        if end >= total:
            return windows
        following = start + stride
        while splits_word(following) and following < end:
            following += 1
        start = min(following, end)


class _WindowedReranker:
    """Shared scoring: expand candidates into windows when asked, keep each best."""

    config: RerankConfig
    tokenizer: Any
    # One model call at a time: searches run concurrently (their query encodes
    # are batched), and a fast tokenizer used from two threads fails.
    _model_lock: threading.Lock

    def _score_pairs(self, query: str, texts: list[str]) -> list[float]:
        raise NotImplementedError

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        with self._model_lock:
            return self._score_locked(query, texts)

    def _score_locked(self, query: str, texts: Sequence[str]) -> list[float]:
        if self.config.long_passages == "truncate":
            return self._score_pairs(query, list(texts))
        budget = window_budget(self.tokenizer, query, self.config.max_length)
        owners: list[int] = []
        windows: list[str] = []
        for i, text in enumerate(texts):
            pieces = split_windows(self.tokenizer, text, budget, self.config.window_overlap)
            windows.extend(pieces)
            owners.extend([i] * len(pieces))
        best = [float("-inf")] * len(texts)
        for owner, value in zip(owners, self._score_pairs(query, windows), strict=True):
            best[owner] = max(best[owner], value)
        return best


class FlagCrossEncoder(_WindowedReranker):
    def __init__(self, config: RerankConfig, runtime: RuntimeConfig) -> None:
        from FlagEmbedding import FlagReranker

        self.config = config
        device = runtime.resolved_device()
        try:
            self.model = FlagReranker(
                _expand(config.model),
                use_fp16=runtime.use_fp16(),
                devices=device if device != "cuda" else "cuda:0",
                batch_size=config.batch_size,
                max_length=config.max_length,
            )
        except Exception as error:  # noqa: BLE001
            raise describe_load_failure("FlagEmbedding reranker", config.model, error) from error
        self.tokenizer = self.model.tokenizer
        self._model_lock = threading.Lock()

    def _score_pairs(self, query: str, texts: list[str]) -> list[float]:
        scores = self.model.compute_score(
            [[query, text] for text in texts],
            batch_size=self.config.batch_size,
            max_length=self.config.max_length,
            normalize=True,
        )
        if isinstance(scores, float):
            scores = [scores]
        return [float(s) for s in scores]


class SentenceTransformerCrossEncoder(_WindowedReranker):
    def __init__(self, config: RerankConfig, runtime: RuntimeConfig) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        self.config = config
        # Read before the model loads: a bad file fails at once.
        pairs = read_calibration_pairs(config.int8_calibration) if config.int8_calibration is not None else None
        try:
            self.model = CrossEncoder(
                _expand(config.model),
                device=model_device(config.backend, runtime),
                max_length=config.max_length,
                activation_fn=torch.nn.Sigmoid(),
            )
        except Exception as error:  # noqa: BLE001
            raise describe_load_failure("cross-encoder reranker", config.model, error) from error
        derive = None
        if pairs is not None:
            model, chosen = self.model, pairs

            def derive(plain: Path) -> Path:
                return static_int8_model(plain, chosen, model.preprocess, max_length=config.max_length)

        self.exported = accelerate(self.model, config.backend, config.quantize, derive=derive)
        if runtime.use_fp16() and self.exported is None:
            self.model.model.half()
        self.tokenizer = self.model.tokenizer
        self._model_lock = threading.Lock()

    def _score_pairs(self, query: str, texts: list[str]) -> list[float]:
        scores = self.model.predict(
            [(query, text) for text in texts], batch_size=self.config.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return [float(s) for s in scores.reshape(-1)]


def load_reranker(config: RerankConfig, runtime: RuntimeConfig) -> Reranker:
    config = serving_config(config, runtime)
    config.check_int8_calibration()
    if config.kind == "flag":
        return FlagCrossEncoder(config, runtime)
    return SentenceTransformerCrossEncoder(config, runtime)


def combine_rerank_scores(
    head: Sequence[tuple[str, float]], rerank_scores: Mapping[str, float], first_stage_weight: float
) -> dict[str, float]:
    """The score each reranked candidate is ordered by:
    ``(1 - w) * rerank_score + w * first_stage_norm``.

    ``head`` is the reranked candidates with their first-stage (fused, or the
    single path's) scores; ``first_stage_norm`` is that score min-max normalised
    over the head, so both terms lie in [0, 1]. When every head score is equal
    the first stage says nothing about the order and ``first_stage_norm`` is 1.0
    for all. With w = 0 the rerank scores come back untouched.
    """
    if first_stage_weight == 0:
        return {cid: rerank_scores[cid] for cid, _ in head}
    normalized = normalize_scores([score for _, score in head], "min-max")
    w = first_stage_weight
    return {cid: (1.0 - w) * rerank_scores[cid] + w * norm for (cid, _), norm in zip(head, normalized)}


def order_reranked(
    head: Sequence[tuple[str, float]], rerank_scores: Mapping[str, float], first_stage_weight: float
) -> tuple[list[tuple[str, float]], dict[str, float]]:
    """``head`` (in first-stage order) re-ordered as ``Engine.search`` serves it:
    by combined score (``combine_rerank_scores``), first-stage position breaking
    ties. Returns the re-ordered head and the combined scores."""
    combined = combine_rerank_scores(head, rerank_scores, first_stage_weight)
    position = {cid: i for i, (cid, _) in enumerate(head)}
    return sorted(head, key=lambda item: (-combined[item[0]], position[item[0]])), combined
