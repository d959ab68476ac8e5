"""Rerankers: (query, candidate texts) in, relevance scores in [0, 1] out.

Two backends behind one interface: FlagEmbedding ``FlagReranker`` (default
``BAAI/bge-reranker-v2-m3``) and sentence-transformers ``CrossEncoder``. Both
return sigmoid-normalised scores, so a minimum score means the same with either.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from .config import RerankConfig, RuntimeConfig
from .encoders import describe_load_failure

__all__ = ["Reranker", "load_reranker"]


class Reranker(Protocol):
    config: RerankConfig

    def score(self, query: str, texts: Sequence[str]) -> list[float]: ...


def _expand(model: str) -> str:
    expanded = os.path.expanduser(model)
    return expanded if os.path.exists(expanded) else model


class FlagCrossEncoder:
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

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        scores = self.model.compute_score(
            [[query, text] for text in texts],
            batch_size=self.config.batch_size,
            max_length=self.config.max_length,
            normalize=True,
        )
        if isinstance(scores, float):
            scores = [scores]
        return [float(s) for s in scores]


class SentenceTransformerCrossEncoder:
    def __init__(self, config: RerankConfig, runtime: RuntimeConfig) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        self.config = config
        try:
            self.model = CrossEncoder(
                _expand(config.model),
                device=runtime.resolved_device(),
                max_length=config.max_length,
                activation_fn=torch.nn.Sigmoid(),
            )
        except Exception as error:  # noqa: BLE001
            raise describe_load_failure("cross-encoder reranker", config.model, error) from error
        if runtime.use_fp16():
            self.model.model.half()

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        scores = self.model.predict(
            [(query, text) for text in texts], batch_size=self.config.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return [float(s) for s in scores.reshape(-1)]


def load_reranker(config: RerankConfig, runtime: RuntimeConfig) -> Reranker:
    if config.kind == "flag":
        return FlagCrossEncoder(config, runtime)
    return SentenceTransformerCrossEncoder(config, runtime)
