"""Hard negatives mined with the engine's own hybrid retrieval.

The train chunks (never dev or test ones) are indexed into a mining collection
with the base models, every training query is searched through
``Engine.search``, and the best-ranked chunks that are not labelled positives
become negatives, after three guards against false negatives (chunks that do
answer the query but were never labelled):

1. ``skip_top``: the first few non-positive candidates are skipped outright;
2. ``margin`` (NV-Retriever's "TopK-PercPos", Moreira et al. 2024): a candidate
   whose dense similarity to the query exceeds ``margin`` x the positive's is
   dropped as a likely positive;
3. ``cross_encoder`` (optional): a candidate the cross-encoder scores at least
   as high as the labelled positive is dropped.

How many candidates each guard dropped is saved in ``negatives.json`` and
printed by the CLI, so a run that threw away most candidates is visible.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from hybrid_search.config import (
    AnalyzerConfig,
    CollectionConfig,
    DenseEncoderConfig,
    RerankConfig,
    RuntimeConfig,
    SparseEncoderConfig,
    StoreConfig,
)
from hybrid_search.engine import Engine, SearchOptions
from hybrid_search.errors import ConfigError, InputError
from hybrid_search.types import RETRIEVAL_PATHS

from .data import Example, TrainingData, write_examples
from .runs import Device, check_choice, plain, sha256_files, write_json

__all__ = ["MiningConfig", "MiningStats", "mine_negatives", "MINED_FILE", "STATS_FILE"]

MINED_FILE = "train_negatives.jsonl"
STATS_FILE = "negatives.json"


@dataclass(frozen=True)
class MiningConfig:
    """How to mine. ``dense``/``sparse`` are the models the mining collection is
    built with (the base models); BM25 is always there."""

    dense: DenseEncoderConfig | None = None
    sparse: SparseEncoderConfig | None = None
    language: Literal["en", "zh"] = "en"
    paths: tuple[str, ...] | None = None  # None: every path the collection has (hybrid)
    depth: int = 50
    max_rank: int = 30
    skip_top: int = 0
    margin: float = 0.95
    margin_check: bool = True  # needs dense vectors: the collection gets the dense model even for bm25-only mining
    cross_encoder: RerankConfig | None = None
    num_negatives: int = 7
    pad_random: bool = True
    store_uri: str | None = None  # default: <data>/mining.db (Milvus Lite)
    collection: str = "training_mining"
    device: Device = "auto"
    batch_size: int = 32
    seed: int = 42

    def __post_init__(self) -> None:
        check_choice("MiningConfig", "language", self.language, ("en", "zh"))
        check_choice("MiningConfig", "device", self.device, ("auto", "cpu", "cuda", "mps"))
        if self.paths is not None:
            for path in self.paths:
                check_choice("MiningConfig", "paths", path, RETRIEVAL_PATHS)
        for name in ("depth", "max_rank", "num_negatives", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MiningConfig.{name} must be >= 1; got {getattr(self, name)!r}")
        if self.skip_top < 0:
            raise ConfigError("MiningConfig.skip_top must be >= 0")
        if not 0.0 < self.margin <= 1.0:
            raise ConfigError(f"MiningConfig.margin must lie in (0, 1]; got {self.margin!r}")
        if self.max_rank > self.depth:
            raise ConfigError("MiningConfig.max_rank must be <= depth")


@dataclass
class MiningStats:
    queries: int = 0
    candidates: int = 0
    labelled_positives_in_results: int = 0
    dropped_top_ranks: int = 0
    dropped_margin: int = 0
    dropped_cross_encoder: int = 0
    kept: int = 0
    padded_random: int = 0
    queries_short: int = 0
    margin_skipped_no_dense: bool = False
    kept_ranks: list[int] = field(default_factory=list)

    @property
    def likely_positives_dropped(self) -> int:
        return self.dropped_top_ranks + self.dropped_margin + self.dropped_cross_encoder

    def to_dict(self) -> dict[str, Any]:
        ranks = self.kept_ranks
        return {
            "queries": self.queries,
            "candidates": self.candidates,
            "labelled_positives_in_results": self.labelled_positives_in_results,
            "dropped_top_ranks": self.dropped_top_ranks,
            "dropped_margin": self.dropped_margin,
            "dropped_cross_encoder": self.dropped_cross_encoder,
            "likely_positives_dropped": self.likely_positives_dropped,
            "kept": self.kept,
            "padded_random": self.padded_random,
            "queries_short_of_negatives": self.queries_short,
            "margin_skipped_no_dense": self.margin_skipped_no_dense,
            "kept_rank_mean": float(np.mean(ranks)) if ranks else None,
            "kept_rank_median": float(np.median(ranks)) if ranks else None,
        }

    def summary(self) -> str:
        data = self.to_dict()
        share = f" ({100.0 * self.likely_positives_dropped / self.candidates:.1f}% of candidates)" if self.candidates else ""
        return "\n".join(
            [
                f"queries mined:                      {data['queries']}",
                f"candidates looked at:               {data['candidates']}",
                f"labelled positives among them:      {data['labelled_positives_in_results']}",
                f"dropped as likely positives:        {data['likely_positives_dropped']}{share}",
                f"  - in the skipped top ranks:       {data['dropped_top_ranks']}",
                f"  - within the margin of positive:  {data['dropped_margin']}",
                f"  - by the cross-encoder check:     {data['dropped_cross_encoder']}",
                f"negatives kept:                     {data['kept']} (median rank {data['kept_rank_median']})",
                f"padded with random train chunks:    {data['padded_random']} ({data['queries_short_of_negatives']} queries short)",
            ]
        )


def _mining_engine(config: MiningConfig, data: TrainingData) -> tuple[Engine, str]:
    """A fresh collection of the train chunks, with only the models the mining
    uses (indexing a path nobody searches would cost an encoding pass)."""
    uri = config.store_uri or str(data.folder / "mining.db")
    wanted = set(config.paths) if config.paths is not None else {"bm25", "dense", "sparse"}
    dense = config.dense if ("dense" in wanted or config.margin_check) else None
    sparse = config.sparse if "sparse" in wanted else None
    runtime = RuntimeConfig(device=config.device, batch_size=config.batch_size)
    engine = Engine(StoreConfig(uri=uri), runtime=runtime)
    if engine.store.has_collection(config.collection):
        engine.drop_collection(config.collection)  # built from other data or models: start clean
    engine.create_collection(
        CollectionConfig(
            name=config.collection,
            dense=dense,
            sparse=sparse,
            analyzer=AnalyzerConfig(language=config.language),
            description="hard-negative mining over the train split",
        )
    )
    return engine, config.collection


def _dense_vectors(engine: Engine, collection: str) -> dict[str, np.ndarray]:
    return {row["id"]: np.asarray(row["dense"], dtype=np.float32) for row in engine.store.iterate(collection, "", ["id", "dense"])}


def mine_negatives(data: TrainingData, config: MiningConfig, *, progress: bool = True, force: bool = False) -> MiningStats:
    """Mine negatives for every training example; writes ``train_negatives.jsonl``
    and ``negatives.json`` into the data folder and returns the statistics."""
    from tqdm.auto import tqdm

    stats_path = data.folder / STATS_FILE
    source = data.folder / "train.jsonl"
    data_sha = sha256_files([source])
    if not force and stats_path.is_file() and (data.folder / MINED_FILE).is_file():
        previous = json.loads(stats_path.read_text(encoding="utf-8"))
        if previous.get("config") == plain(config) and previous.get("data_sha256") == data_sha:
            stats = MiningStats(**{k: v for k, v in previous["raw"].items()})
            return stats
    examples = data.train
    train_chunks = data.chunks("train")
    if not train_chunks:
        raise InputError("the train split has no chunks to mine negatives from")
    engine, collection = _mining_engine(config, data)
    try:
        bar = tqdm(total=len(train_chunks), desc="index train chunks", unit="chunk", disable=not progress)
        engine.index(collection, train_chunks, batch_size=config.batch_size, progress=bar.update)
        bar.close()
        stats = _mine(engine, collection, examples, train_chunks, config, progress=progress)
    finally:
        engine.drop_collection(collection)
        engine.close()
    write_examples(data.folder / MINED_FILE, examples)
    write_json(
        stats_path,
        {"config": plain(config), "data_sha256": data_sha, "stats": stats.to_dict(), "raw": plain(stats)},
    )
    return stats


def _mine(
    engine: Engine,
    collection: str,
    examples: Sequence[Example],
    train_chunks: Sequence[Any],
    config: MiningConfig,
    *,
    progress: bool,
) -> MiningStats:
    from tqdm.auto import tqdm

    stats = MiningStats(queries=len(examples))
    rng = random.Random(config.seed)
    encoders = engine.encoders(collection)
    use_margin = config.margin_check and encoders.dense is not None
    stats.margin_skipped_no_dense = config.margin_check and not use_margin
    vectors = _dense_vectors(engine, collection) if use_margin else {}
    query_vectors = None
    if use_margin:
        assert encoders.dense is not None
        query_vectors = encoders.dense.encode_queries([e.query for e in examples])
    reranker = None
    if config.cross_encoder is not None:
        from hybrid_search.rerank import load_reranker

        reranker = load_reranker(config.cross_encoder, RuntimeConfig(device=config.device))
    options = SearchOptions(k=config.max_rank, paths=config.paths, depth=config.depth, rerank=False)
    all_ids = [c.id for c in train_chunks]
    text_of = {c.id: c.text for c in train_chunks}

    for index, example in enumerate(tqdm(examples, desc="mine negatives", unit="query", disable=not progress)):
        positives = set(example.pos_ids)
        given = list(zip(example.neg_ids, example.neg)) if example.neg_ids else []
        hits = engine.search(collection, example.query, options).hits
        candidates: list[tuple[int, str, str]] = []  # (rank, chunk id, text)
        for hit in hits:
            stats.candidates += 1
            if hit.chunk_id in positives:
                stats.labelled_positives_in_results += 1
                continue
            candidates.append((hit.rank, hit.chunk_id, hit.text))
        skipped, candidates = candidates[: config.skip_top], candidates[config.skip_top :]
        stats.dropped_top_ranks += len(skipped)
        if use_margin and query_vectors is not None:
            query = query_vectors[index]
            positive_scores = [float(query @ vectors[p]) for p in positives if p in vectors]
            if positive_scores:
                limit = config.margin * max(positive_scores)
                kept = [c for c in candidates if c[1] not in vectors or float(query @ vectors[c[1]]) < limit]
                stats.dropped_margin += len(candidates) - len(kept)
                candidates = kept
        if reranker is not None and candidates:
            scores = reranker.score(example.query, [example.pos[0]] + [c[2] for c in candidates])
            kept = [c for c, s in zip(candidates, scores[1:]) if s < scores[0]]
            stats.dropped_cross_encoder += len(candidates) - len(kept)
            candidates = kept
        chosen = [(cid, text) for cid, text in given if cid not in positives][: config.num_negatives]
        for rank, cid, text in candidates:
            if len(chosen) >= config.num_negatives:
                break
            if cid not in {c for c, _ in chosen}:
                chosen.append((cid, text))
                stats.kept += 1
                stats.kept_ranks.append(rank)
        if len(chosen) < config.num_negatives:
            stats.queries_short += 1
            if config.pad_random:
                # FlagEmbedding needs at least one negative per query, and a
                # group of fixed size: fill with random train chunks.
                pool = [cid for cid in all_ids if cid not in positives and cid not in {c for c, _ in chosen}]
                extra = rng.sample(pool, min(len(pool), config.num_negatives - len(chosen)))
                chosen.extend((cid, text_of[cid]) for cid in extra)
                stats.padded_random += len(extra)
        example.neg_ids = [cid for cid, _ in chosen]
        example.neg = [text for _, text in chosen]
    return stats
