"""The ``sparse-only`` objective: an M3 sparse head trained on the sparse score
alone, over a frozen encoder.

Why: FlagEmbedding's unified loss weights the sparse term by 0.1 (its
self-distillation by 0.3) and tunes the heads for the dense + sparse + colbert
ensemble, so a head fresh on an encoder that never had one (all-MiniLM-L6-v2)
learns little for the sparse path served alone; on nvidia_sec_10k it fell
below its untrained start. Here the loss is the sparse path's own: softmax
cross-entropy over ``relu(w.h + b)`` lexical scores, the positive against its
mined negatives and every other passage in the batch, exactly the score
``BGEM3FlagModel`` computes at search time (max weight per token id, the cls,
eos, pad and unk tokens dropped, dot product over shared ids).

With the encoder frozen, every text's token states are computed once and
cached (float16, ``texts x tokens x hidden x 2`` bytes, logged), so an epoch
costs only the head: minutes on a CPU. A dev split, when the data has one,
is scored after every epoch and the best epoch's head is kept. Each epoch
leaves a checkpoint; an interrupted run resumes from the last one.
"""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid_search.errors import HybridSearchError

from .data import EvalQuery, Example

if TYPE_CHECKING:
    import torch

    from hybrid_search.types import Chunk

    from .sparse import SparseTrainConfig

__all__ = ["TokenStates", "encode_token_states", "lexical_scores", "train_sparse_head"]

CHECKPOINTS = "head_checkpoints"
_DEV_BLOCK = 64  # dev queries scored together against the dev pool


@dataclass
class TokenStates:
    """One text's kept token ids and their frozen last hidden states."""

    ids: torch.Tensor  # (tokens,) int64
    states: torch.Tensor  # (tokens, hidden) float16


def _unused_token_ids(tokenizer: Any) -> set[int]:
    # The tokens BGEM3FlagModel drops from lexical weights.
    unused = set()
    for name in ("cls_token", "eos_token", "pad_token", "unk_token"):
        token = tokenizer.special_tokens_map.get(name)
        if token is not None:
            unused.add(int(tokenizer.convert_tokens_to_ids(token)))
    return unused


def encode_token_states(
    encoder: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int, device: str, desc: str, progress: bool
) -> list[TokenStates]:
    """Frozen-encoder token states of ``texts``, truncated as the engine truncates them."""
    import torch
    from tqdm.auto import tqdm

    unused = _unused_token_ids(tokenizer)
    encoded: list[TokenStates] = []
    bar = tqdm(total=len(texts), desc=desc, unit="text", disable=not progress)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start : start + batch_size]), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            hidden = encoder(**{k: v.to(device) for k, v in batch.items()}).last_hidden_state.float().cpu()
            for row, ids in enumerate(batch["input_ids"]):
                keep = batch["attention_mask"][row].bool() & torch.tensor([int(i) not in unused for i in ids])
                encoded.append(TokenStates(ids[keep].clone(), hidden[row][keep].to(torch.float16).clone()))
            bar.update(len(batch["input_ids"]))
    bar.close()
    return encoded


def lexical_scores(head: torch.nn.Module, queries: Sequence[TokenStates], passages: Sequence[TokenStates]) -> torch.Tensor:
    """(queries x passages) lexical matching scores: for each token id the
    maximum ``relu(head(state))`` over its occurrences, dot product over the
    ids both texts contain. Token ids are mapped onto the batch's own small
    vocabulary so the vectors stay dense and cheap."""
    import torch

    texts = [*queries, *passages]
    all_ids = torch.cat([t.ids for t in texts])
    vocabulary, local = torch.unique(all_ids, return_inverse=True)
    lengths = [len(t.ids) for t in texts]
    owner = torch.repeat_interleave(torch.arange(len(texts)), torch.tensor(lengths))
    weights = torch.relu(head(torch.cat([t.states for t in texts]).float())).squeeze(-1)
    flat = torch.zeros(len(texts) * len(vocabulary), dtype=weights.dtype)
    flat = flat.scatter_reduce(0, owner * len(vocabulary) + local, weights, reduce="amax", include_self=True)
    vectors = flat.view(len(texts), len(vocabulary))
    return vectors[: len(queries)] @ vectors[len(queries) :].T


def _dev_ndcg(head: torch.nn.Module, dev: Sequence[EvalQuery], dev_query_states: Sequence[TokenStates], pool: Sequence[Chunk], pool_states: Sequence[TokenStates]) -> float:
    import torch

    from .evaluate import rank_metrics

    rankings = {}
    with torch.no_grad():
        # Queries in blocks: the pool's weights are computed once per block, not per query.
        for start in range(0, len(dev), _DEV_BLOCK):
            block = lexical_scores(head, dev_query_states[start : start + _DEV_BLOCK], pool_states)
            for query, scores in zip(dev[start : start + _DEV_BLOCK], block, strict=True):
                order = torch.argsort(scores, descending=True, stable=True)[:10]
                rankings[query.query_id] = [pool[i].id for i in order.tolist()]
    return rank_metrics(dev, rankings, ("ndcg@10",))["ndcg@10"]


def train_sparse_head(
    start: Path,
    examples: Sequence[Example],
    config: SparseTrainConfig,
    *,
    device: str,
    run_dir: Path,
    model_dir: Path,
    dev: Sequence[EvalQuery] = (),
    dev_pool: Sequence[Chunk] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``start``'s sparse head; write the servable folder to ``model_dir``."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(start))
    encoder = AutoModel.from_pretrained(str(start)).to(device).eval()
    head = torch.nn.Linear(int(encoder.config.hidden_size), 1)
    head.load_state_dict(torch.load(start / "sparse_linear.pt", map_location="cpu", weights_only=True))

    groups = [(e.query, e.pos[0], list(e.neg[: config.group_size - 1])) for e in examples if e.pos and len(e.neg) >= config.group_size - 1]
    if not groups:
        raise HybridSearchError(f"no training example has a positive and {config.group_size - 1} negatives (group_size {config.group_size})")
    query_texts = sorted({q for q, _, _ in groups})
    passage_texts = sorted({p for _, pos, negs in groups for p in (pos, *negs)})

    def states_of(texts: Sequence[str], max_length: int, desc: str) -> list[TokenStates]:
        return encode_token_states(
            encoder, tokenizer, texts, max_length=max_length, batch_size=config.batch_size, device=device, desc=desc, progress=progress
        )

    query_states = dict(zip(query_texts, states_of(query_texts, config.query_max_len, "token states: queries"), strict=True))
    passage_states = dict(zip(passage_texts, states_of(passage_texts, config.passage_max_len, "token states: passages"), strict=True))
    cache_bytes = sum(t.states.numel() * 2 + t.ids.numel() * 8 for t in [*query_states.values(), *passage_states.values()])
    dev_states: list[TokenStates] = []
    pool_states: list[TokenStates] = []
    if dev and dev_pool:
        dev_states = states_of([q.query for q in dev], config.query_max_len, "token states: dev queries")
        pool_states = states_of([c.text for c in dev_pool], config.passage_max_len, "token states: dev passages")

    steps_per_epoch = max(len(groups) // config.batch_size, 1)
    epochs = max(math.ceil(config.epochs), 1)
    total_steps = max(int(config.epochs * steps_per_epoch), 1)
    warmup = int(config.warmup_ratio * total_steps)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (step + 1) / max(warmup, 1) if step < warmup else max(0.0, (total_steps - step) / max(total_steps - warmup, 1))
    )

    checkpoints = Path(run_dir) / CHECKPOINTS
    checkpoints.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    first_epoch = 0
    saved = sorted(checkpoints.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    if saved:
        state = torch.load(saved[-1], map_location="cpu", weights_only=False)
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, first_epoch = state["history"], state["epoch"] + 1
        if state["best"] is not None:
            best = (state["best"][0], state["best"][1], state["best"][2])
    dev_before = _dev_ndcg(head, dev, dev_states, dev_pool, pool_states) if dev_states and not saved else None

    step = first_epoch * steps_per_epoch
    for epoch in range(first_epoch, epochs):
        order = list(range(len(groups)))
        random.Random(config.seed + epoch).shuffle(order)  # the same order on a resumed run
        losses = []
        bar = tqdm(total=steps_per_epoch, desc=f"sparse head epoch {epoch + 1}/{epochs}", unit="batch", disable=not progress)
        for batch_index in range(steps_per_epoch):
            if step >= total_steps:
                break
            batch = [groups[i] for i in order[batch_index * config.batch_size : (batch_index + 1) * config.batch_size]]
            queries = [query_states[q] for q, _, _ in batch]
            passages = [passage_states[p] for _, pos, negs in batch for p in (pos, *negs)]
            scores = lexical_scores(head, queries, passages) / config.temperature
            # Each query's positive sits at the start of its group; every other
            # passage of the batch is a negative for it.
            target = torch.arange(len(batch)) * config.group_size
            loss = torch.nn.functional.cross_entropy(scores, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        bar.close()
        record = {"epoch": epoch + 1, "loss": round(sum(losses) / max(len(losses), 1), 4)}
        if dev_states:
            record["dev_ndcg@10"] = round(_dev_ndcg(head, dev, dev_states, dev_pool, pool_states), 4)
            if best is None or record["dev_ndcg@10"] >= best[0]:
                best = (record["dev_ndcg@10"], epoch + 1, {k: v.clone() for k, v in head.state_dict().items()})
        history.append(record)
        torch.save(
            {"head": head.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "history": history, "epoch": epoch, "best": best},
            checkpoints / f"epoch-{epoch}.pt",
        )
        for old in checkpoints.glob("epoch-*.pt"):
            if int(old.stem.split("-")[1]) < epoch:
                old.unlink()
    kept_epoch = history[-1]["epoch"] if history else 0
    if best is not None:
        head.load_state_dict(best[2])
        kept_epoch = best[1]

    staging = Path(model_dir).with_name(Path(model_dir).name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(start, staging)
    torch.save(head.state_dict(), staging / "sparse_linear.pt")
    shutil.rmtree(model_dir, ignore_errors=True)
    staging.rename(model_dir)
    return {
        "objective": "sparse-only",
        "groups": len(groups),
        "examples_short_of_negatives": len(examples) - len(groups),  # left out: fewer than group_size - 1 negatives
        "cached_texts": len(query_states) + len(passage_states),
        "cache_mib": round(cache_bytes / 2**20, 1),
        "steps": step,
        "history": history,
        "dev_ndcg@10_before": dev_before,
        "kept_epoch": kept_epoch,
    }
