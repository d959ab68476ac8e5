"""Fine-tune a dense embedder with the sentence-transformers trainer.

MultipleNegativesRankingLoss (InfoNCE over in-batch negatives plus the mined
hard negatives of each example), or its cached (GradCache) variant when the
batch is larger than memory allows; optionally wrapped in MatryoshkaLoss so
that truncated embeddings still work. An InformationRetrievalEvaluator on the
dev split (dev queries against train + dev chunks: never test) runs before
training and after each epoch, so the log shows whether the run helps.

The saved model carries its query/document prompts, which the engine's
sentence-transformers encoder picks up by itself.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from hybrid_search.errors import ConfigError, InputError

from .data import Example, TrainingData
from .runs import Device, Precision, begin_run, check_choice, fail_run, finish_run, last_checkpoint, model_path, resolve_device

__all__ = ["DEV_METRIC", "DenseTrainConfig", "DenseKeep", "DenseLoss", "ReportTo", "train_dense", "precision_flags"]

DenseLoss = Literal["mnrl", "cached-mnrl"]
# Which epoch's weights the run saves: the last, or the one with the best dev nDCG@10.
DenseKeep = Literal["last", "best-dev"]
# The dev evaluator's nDCG@10 (name "dev", cosine), as the trainer logs it without its "eval_" prefix.
DEV_METRIC = "dev_cosine_ndcg@10"


@dataclass(frozen=True)
class DenseTrainConfig:
    base_model: str
    loss: DenseLoss = "mnrl"
    matryoshka_dims: tuple[int, ...] = ()
    epochs: float = 3.0
    batch_size: int = 32
    mini_batch_size: int = 16  # cached-mnrl: what fits in memory at once
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int | None = 256
    num_negatives: int = 3  # hard negatives per example, on top of in-batch ones
    scale: float = 20.0  # 1 / temperature of the softmax over similarities
    query_prompt: str | None = None
    document_prompt: str | None = None
    sources: tuple[str, ...] | None = None  # train only on these example sources (labels, inverse-cloze, ...)
    dev_corpus_size: int | None = 5000  # dev chunks + a sample of train chunks, to bound evaluation time
    save_total_limit: int = 2
    keep: DenseKeep = "last"
    device: Device = "auto"
    precision: Precision = "auto"
    seed: int = 42

    def __post_init__(self) -> None:
        check_choice("DenseTrainConfig", "loss", self.loss, get_args(DenseLoss))
        check_choice("DenseTrainConfig", "keep", self.keep, get_args(DenseKeep))
        check_choice("DenseTrainConfig", "device", self.device, get_args(Device))
        check_choice("DenseTrainConfig", "precision", self.precision, get_args(Precision))
        if not self.base_model:
            raise ConfigError("DenseTrainConfig.base_model must name a model")
        if self.epochs <= 0 or self.learning_rate <= 0:
            raise ConfigError("DenseTrainConfig.epochs and learning_rate must be > 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError("DenseTrainConfig.warmup_ratio must lie in [0, 1)")
        for name in ("batch_size", "mini_batch_size", "save_total_limit"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DenseTrainConfig.{name} must be >= 1")
        if self.batch_size < 2:
            raise ConfigError("DenseTrainConfig.batch_size must be >= 2: in-batch negatives need company")
        if self.num_negatives < 0:
            raise ConfigError("DenseTrainConfig.num_negatives must be >= 0")
        if any(d < 1 for d in self.matryoshka_dims) or list(self.matryoshka_dims) != sorted(set(self.matryoshka_dims), reverse=True):
            raise ConfigError("DenseTrainConfig.matryoshka_dims must be distinct positive sizes, largest first")


def precision_flags(precision: Precision, device: str) -> dict[str, bool]:
    """TrainingArguments fp16/bf16 flags: mixed precision on CUDA only."""
    if precision == "auto":
        if device != "cuda":
            return {"fp16": False, "bf16": False}
        import torch

        return {"fp16": False, "bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True, "bf16": False}
    if precision in ("fp16", "bf16") and device != "cuda":
        raise ConfigError(f"precision {precision!r} needs a CUDA device; this run is on {device}")
    return {"fp16": precision == "fp16", "bf16": precision == "bf16"}


def _columns(examples: list[Example], num_negatives: int) -> dict[str, list[str]]:
    """anchor, positive, negative_1..n. Examples with fewer negatives repeat
    theirs (a repeat only sharpens the same contrast); with none they are
    trained on in-batch negatives alone when num_negatives is 0, else refused."""
    columns: dict[str, list[str]] = {"anchor": [], "positive": []}
    for i in range(num_negatives):
        columns[f"negative_{i + 1}"] = []
    short = 0
    for example in examples:
        if num_negatives and not example.neg:
            short += 1
            continue
        columns["anchor"].append(example.query)
        columns["positive"].append(example.pos[0])
        for i in range(num_negatives):
            columns[f"negative_{i + 1}"].append(example.neg[i % len(example.neg)])
    if short == len(examples):
        raise InputError("no example has negatives: run `hybrid-search train negatives` first, or set num_negatives = 0")
    return columns


def _dev_evaluator(data: TrainingData, config: DenseTrainConfig, batch_size: int) -> Any | None:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    if not data.dev:
        return None
    dev_chunks = data.chunks("dev")
    others = data.chunks("train")
    if config.dev_corpus_size is not None and len(dev_chunks) + len(others) > config.dev_corpus_size:
        # The dev positives always stay; distractors are a fixed sample of train chunks.
        others = random.Random(config.seed).sample(others, max(0, config.dev_corpus_size - len(dev_chunks)))
    corpus = {c.id: c.text for c in dev_chunks + others}
    queries = {q.query_id: q.query for q in data.dev}
    relevant = {q.query_id: {cid for cid, grade in q.relevant.items() if grade > 0 and cid in corpus} for q in data.dev}
    return InformationRetrievalEvaluator(
        queries=queries,
        corpus=corpus,
        relevant_docs=relevant,
        name="dev",
        batch_size=batch_size,
        ndcg_at_k=[10],
        mrr_at_k=[10],
        accuracy_at_k=[1, 10],
        precision_recall_at_k=[10, 100],
        map_at_k=[100],
        query_prompt=config.query_prompt,
        corpus_prompt=config.document_prompt,
        write_csv=False,
    )


def _loss(model: Any, config: DenseTrainConfig) -> Any:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    if config.loss == "cached-mnrl":
        loss = CachedMultipleNegativesRankingLoss(model, scale=config.scale, mini_batch_size=config.mini_batch_size)
    else:
        loss = MultipleNegativesRankingLoss(model, scale=config.scale)
    if config.matryoshka_dims:
        dimension = model.get_sentence_embedding_dimension()
        dims = [d for d in config.matryoshka_dims if d <= dimension]
        if dims != list(config.matryoshka_dims):
            raise ConfigError(f"matryoshka_dims {config.matryoshka_dims} exceed the model's dimension {dimension}")
        loss = MatryoshkaLoss(model, loss, matryoshka_dims=dims)
    return loss


ReportTo = Literal["none", "tensorboard", "wandb"]


def train_dense(
    data: TrainingData,
    config: DenseTrainConfig,
    run_dir: Path,
    *,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    report_to: ReportTo = "none",
) -> dict[str, Any]:
    """Fine-tune; the model lands in ``run_dir/model``. Returns the run's metrics.
    ``callbacks`` are transformers TrainerCallbacks (console lines, a time
    budget); ``report_to`` logs to TensorBoard or W&B as well: neither changes
    the model, so neither is part of the run's config."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base import BatchSamplers

    run_dir = Path(run_dir)
    device = resolve_device(config.device)
    manifest, done = begin_run(run_dir, stage="dense", config=config, data_files=[*data.files(), data.train_file], seed=config.seed, device=device)
    if done:
        return manifest.metrics
    try:
        examples = data.training_examples()
        if config.sources is not None:
            examples = [e for e in examples if e.source in config.sources]
        if not examples:
            raise InputError("no training examples left after the sources filter")
        model = SentenceTransformer(model_path(config.base_model), device=device)
        if config.max_seq_length is not None:
            model.max_seq_length = config.max_seq_length
        if config.query_prompt is not None or config.document_prompt is not None:
            # Saved with the model, so the engine encodes with the prompts it was trained with.
            model.prompts = {**(model.prompts or {}), "query": config.query_prompt or "", "document": config.document_prompt or ""}
        train_dataset = Dataset.from_dict(_columns(examples, config.num_negatives))
        evaluator = _dev_evaluator(data, config, config.batch_size)
        best_dev = config.keep == "best-dev"
        if best_dev and evaluator is None:
            raise InputError("keep = 'best-dev' needs dev queries; the data has none (set a dev_fraction)")
        prompts = None
        if config.query_prompt or config.document_prompt:
            prompts = {column: (config.query_prompt if column == "anchor" else config.document_prompt) or "" for column in train_dataset.column_names}
        arguments = SentenceTransformerTrainingArguments(
            output_dir=str(run_dir / "checkpoints"),
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_ratio,  # transformers 5: a float below 1 is a ratio
            weight_decay=config.weight_decay,
            # Duplicate texts in one batch would be false in-batch negatives.
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            prompts=prompts,
            eval_strategy="epoch" if evaluator is not None else "no",
            save_strategy="epoch",
            save_total_limit=config.save_total_limit,
            # The trainer keeps the best checkpoint out of save_total_limit's rotation.
            load_best_model_at_end=best_dev,
            metric_for_best_model=DEV_METRIC if best_dev else None,
            greater_is_better=True if best_dev else None,
            logging_steps=10,
            seed=config.seed,
            data_seed=config.seed,
            report_to=report_to,
            disable_tqdm=not progress,
            use_cpu=device == "cpu",
            dataloader_drop_last=False,
            **precision_flags(config.precision, device),
        )
        trainer = SentenceTransformerTrainer(
            model=model,
            args=arguments,
            train_dataset=train_dataset,
            loss=_loss(model, config),
            evaluator=evaluator,
            callbacks=list(callbacks) or None,
        )
        metrics: dict[str, Any] = {"train_examples": len(train_dataset), "sources": sorted({e.source for e in examples})}
        if evaluator is not None:
            metrics["dev_before"] = {k: float(v) for k, v in evaluator(model).items()}
        resume = last_checkpoint(run_dir)
        output = trainer.train(resume_from_checkpoint=resume)
        metrics["train"] = {k: float(v) for k, v in output.metrics.items() if isinstance(v, (int, float))}
        metrics["kept"] = config.keep
        if best_dev:
            metrics["best_checkpoint"] = trainer.state.best_model_checkpoint
        if evaluator is not None:
            logged = [e for e in trainer.state.log_history if f"eval_{DEV_METRIC}" in e]
            metrics["dev_by_epoch"] = [{"epoch": float(e["epoch"]), DEV_METRIC: float(e[f"eval_{DEV_METRIC}"])} for e in logged]
            metrics["dev_after"] = {k: float(v) for k, v in evaluator(model).items()}
        model.save(str(run_dir / "model"))
        finish_run(run_dir, manifest, metrics)
        return metrics
    except BaseException as error:
        fail_run(run_dir, manifest, error)
        raise
