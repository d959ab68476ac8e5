"""Train a linear query adapter (``hybrid_search.query_adapter``) on a
collection's (question, chunk) pairs.

The LlamaIndex recipe: a d x d matrix W, initialised to the identity, maps
each question's embedding to ``normalise(W q)``; it is trained with a
contrastive loss against the chunk vectors *as the collection stores them*
(read from Milvus, never re-computed), with in-batch negatives (other
questions' positives; a chunk that is also this question's positive is
masked out) and hard negatives: the mined ones when the examples carry them,
else the dense path's own near misses found in the stored vectors (train
chunks only, false-negative control as in ``negatives.py``). A penalty on ``||W - I||`` keeps it
near the identity, because a few hundred questions cannot re-learn a
384-dimensional space. The epoch kept is the one with the best dense nDCG@10
on the dev questions (epoch 0 is the identity itself), so a run that does not
help leaves W = I.

Output folder (what ``DenseEncoderConfig.query_adapter`` names)::

    adapter.npy, adapter.json   the adapter (see hybrid_search.query_adapter)
    run.json                    config, dev nDCG@10 per epoch, the epoch kept
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hybrid_search.config import DenseEncoderConfig, RuntimeConfig
from hybrid_search.errors import ConfigError, InputError
from hybrid_search.evaluation import fast_ndcg
from hybrid_search.query_adapter import save_query_adapter

from .data import EvalQuery, Example
from .runs import plain, write_json

if TYPE_CHECKING:
    from hybrid_search.engine import Engine

__all__ = ["AdapterTrainConfig", "chunk_vectors", "dense_ranking_ndcg", "encoder_for_queries", "mine_dense_negatives", "train_query_adapter"]


@dataclass(frozen=True)
class AdapterTrainConfig:
    # 1e-4 and the penalty below: on nvidia_sec_10k's train questions (adapt's own dev
    # split) larger steps overfit a hundred questions within an epoch.
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-4
    num_negatives: int = 3
    # Contrastive temperature: cosine similarities times this before the softmax.
    scale: float = 20.0
    # Weight of ||W - I||^2 (per element): keeps the adapter close to the identity.
    identity_penalty: float = 10.0
    seed: int = 42

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1:
            raise ConfigError("AdapterTrainConfig: epochs must be >= 0 (0 keeps the identity) and batch_size >= 1")
        if self.num_negatives < 0 or self.learning_rate <= 0 or self.scale <= 0 or self.identity_penalty < 0:
            raise ConfigError("AdapterTrainConfig: num_negatives >= 0, learning_rate > 0, scale > 0, identity_penalty >= 0")


def chunk_vectors(engine: Engine, collection: str) -> tuple[list[str], np.ndarray]:
    """(chunk ids, their dense vectors) exactly as the collection stores them."""
    ids: list[str] = []
    vectors: list[list[float]] = []
    for row in engine.store.iterate(engine.resolve(collection), "", ["id", "dense"]):
        ids.append(str(row["id"]))
        vectors.append(row["dense"])
    if not ids:
        raise InputError(f"{collection!r} holds no chunks")
    return ids, np.asarray(vectors, dtype=np.float32)


def dense_ranking_ndcg(query_vectors: np.ndarray, chunks: np.ndarray, ids: Sequence[str], queries: Sequence[EvalQuery], k: int = 10) -> float:
    """Mean nDCG@k of exact inner-product search (what a dense path ranks)."""
    if not queries:
        return 0.0
    scores = query_vectors @ chunks.T
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean([fast_ndcg(q.relevant, [ids[j] for j in row], k) for q, row in zip(queries, top)]))


# Negatives come from the base model's top MINING_DEPTH; a candidate scoring
# within this share of the positive's score may be an unlabelled positive.
MINING_DEPTH = 30
FALSE_NEGATIVE_MARGIN = 0.95


def mine_dense_negatives(
    query_vectors: np.ndarray,
    examples: Sequence[Example],
    chunks: np.ndarray,
    chunk_ids: Sequence[str],
    allowed: set[str],
    config: AdapterTrainConfig,
    rng: random.Random,
) -> list[list[int]]:
    """Hard negatives by exact search over the stored chunk vectors: the dense
    path's own near misses, with false-negative control (labelled positives and
    candidates scoring near the positive are never negatives)."""
    position = {cid: i for i, cid in enumerate(chunk_ids)}
    scores = query_vectors @ chunks.T
    out: list[list[int]] = []
    for row, example in zip(scores, examples):
        positive_ids = {position[p] for p in example.pos_ids if p in position}
        if not positive_ids:
            out.append([])
            continue
        ceiling = FALSE_NEGATIVE_MARGIN * max(row[i] for i in positive_ids)
        pool = [
            int(j) for j in np.argsort(-row)[:MINING_DEPTH]
            if int(j) not in positive_ids and chunk_ids[int(j)] in allowed and row[int(j)] < ceiling
        ]
        out.append(sorted(rng.sample(pool, min(config.num_negatives, len(pool)))))
    return out


def train_query_adapter(
    *,
    examples: Sequence[Example],
    dev: Sequence[EvalQuery],
    encode_queries: Callable[[list[str]], np.ndarray],
    chunk_ids: Sequence[str],
    chunks: np.ndarray,
    base: DenseEncoderConfig,
    config: AdapterTrainConfig,
    out_dir: Path,
    allowed: set[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train, keep the best dev epoch, write the adapter folder; returns run.json's
    content. Examples without mined negatives get theirs from the stored vectors,
    among the ``allowed`` chunks only (the train part: no held-out chunk is
    ever trained on, not even as a negative)."""
    import torch

    out_dir = Path(out_dir)
    finished = out_dir / "run.json"
    if finished.is_file():
        previous = json.loads(finished.read_text(encoding="utf-8"))
        if previous.get("status") == "finished" and previous.get("config") == plain(config) and previous.get("base") == plain(base):
            return previous  # resumed: trained already with these settings
    started = time.monotonic()
    position = {cid: i for i, cid in enumerate(chunk_ids)}
    usable = [e for e in examples if e.pos_ids and e.pos_ids[0] in position]
    if not usable:
        raise InputError("no training example names a chunk of the collection: nothing to train a query adapter on")
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    query_array = encode_queries([e.query for e in usable])
    queries = torch.from_numpy(query_array)
    positives = torch.tensor([position[e.pos_ids[0]] for e in usable])
    if any(e.neg_ids for e in usable):
        negatives = [[position[n] for n in e.neg_ids if n in position][: config.num_negatives] for e in usable]
    else:
        negatives = mine_dense_negatives(query_array, usable, chunks, chunk_ids, allowed or set(chunk_ids), config, rng)
    doc_matrix = torch.from_numpy(chunks)
    dev_vectors = encode_queries([q.query for q in dev]) if dev else np.zeros((0, chunks.shape[1]), dtype=np.float32)
    dim = chunks.shape[1]
    if queries.shape[1] != dim:
        raise InputError(f"query vectors are {queries.shape[1]}-dimensional but the stored chunk vectors {dim}")

    weight = torch.nn.Parameter(torch.eye(dim))
    optimizer = torch.optim.AdamW([weight], lr=config.learning_rate, weight_decay=0.0)
    identity = torch.eye(dim)

    def adapted(vectors: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(vectors @ weight.T, dim=1)

    def dev_score() -> float:
        with torch.no_grad():
            return dense_ranking_ndcg(adapted(torch.from_numpy(dev_vectors)).numpy(), chunks, chunk_ids, dev)

    history = [{"epoch": 0, "dev_ndcg@10": round(dev_score(), 4), "loss": None}]
    log(f"  epoch 0 (identity): dev dense nDCG@10 {history[0]['dev_ndcg@10']:.4f}")
    best_epoch, best_score, best_matrix = 0, history[0]["dev_ndcg@10"], weight.detach().clone()
    order = list(range(len(usable)))
    for epoch in range(1, config.epochs + 1):
        rng.shuffle(order)
        losses = []
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            q = adapted(queries[batch])
            pos_index = positives[batch]
            in_batch = q @ doc_matrix[pos_index].T  # (B, B): column j is example j's positive
            # Another question of the same chunk is not a negative.
            same = pos_index[:, None] == pos_index[None, :]
            in_batch = in_batch.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool), float("-inf"))
            width = max((len(negatives[i]) for i in batch), default=0)
            if width:
                hard = torch.full((len(batch), width), float("-inf"))
                for row, i in enumerate(batch):
                    if negatives[i]:
                        hard[row, : len(negatives[i])] = (doc_matrix[negatives[i]] @ q[row])
                logits = torch.cat([in_batch, hard], dim=1)
            else:
                logits = in_batch
            loss = torch.nn.functional.cross_entropy(logits * config.scale, torch.arange(len(batch)))
            loss = loss + config.identity_penalty * ((weight - identity) ** 2).sum() / dim
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        score = round(dev_score(), 4)
        history.append({"epoch": epoch, "dev_ndcg@10": score, "loss": round(float(np.mean(losses)), 5)})
        log(f"  epoch {epoch}/{config.epochs}: loss {history[-1]['loss']:.4f}, dev dense nDCG@10 {score:.4f}")
        if score > best_score:
            best_epoch, best_score, best_matrix = epoch, score, weight.detach().clone()
    save_query_adapter(
        out_dir, best_matrix.numpy(), base_model=base.model, extra={"epoch": best_epoch, "dev_ndcg@10": best_score, "train_examples": len(usable)}
    )
    result = {
        "status": "finished",
        "config": plain(config),
        "base": plain(base),
        "train_examples": len(usable),
        "dev_queries": len(dev),
        "dev_by_epoch": history,
        "best_epoch": best_epoch,
        "dev_before": history[0]["dev_ndcg@10"],
        "dev_after": best_score,
        "seconds": round(time.monotonic() - started, 1),
    }
    write_json(finished, result)
    return result


def encoder_for_queries(base: DenseEncoderConfig, runtime: RuntimeConfig) -> Callable[[list[str]], np.ndarray]:
    """The base model's query encoding (prompt included), without any adapter."""
    from hybrid_search.encoders import load_encoders

    encoders = load_encoders(DenseEncoderConfig(**{**plain(base), "query_adapter": None}), None, runtime)
    assert encoders.dense is not None
    return lambda texts: encoders.dense.encode_queries(texts)  # type: ignore[union-attr]

