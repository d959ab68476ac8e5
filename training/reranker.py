"""Fine-tune a cross-encoder reranker on mined hard negatives.

Starts from an existing reranker, or from any encoder's weights (a bi-encoder
such as all-MiniLM-L6-v2 gets a new, untrained classification head), and
trains with the sentence-transformers CrossEncoder trainer:

- ``bce``: BinaryCrossEntropyLoss on (query, passage, 0/1) pairs, every mined
  negative of a query as its own pair; ``pos_weight`` = negatives per positive
  by default, so the rare positives are not drowned out;
- ``listwise``: the cross-encoder MultipleNegativesRankingLoss (softmax over
  the positive, the hard negatives and random in-batch passages), which ranks
  directly and tends to need fewer epochs.

DESIGN.md records a near-random reranker trained from all-MiniLM-L6-v2, and
the first run here repeated it (training loss flat at chance, gradient norm
~0.5). The cause is the new head, not only the data: a bi-encoder's [CLS]
pooler output is tiny (|x| ~ 0.05 per dimension for MiniLM, which was trained
with mean pooling), and a classifier initialised at std 0.02 on top of it gets
and passes on almost no gradient at the encoder's learning rate. So a new
head (and the pooler under it) trains at ``head_learning_rate`` (default 1e-3)
while the encoder keeps ``learning_rate``; an existing reranker's head does not.
Scores are turned into [0, 1] by the engine's sigmoid, so the trained model
plugs into ``RerankConfig(kind="cross-encoder", model=<run>/model)``.

Chunks longer than ``max_length`` (nvidia_sec_10k's average ~650 tokens) lose
their second half to truncation, and with it often the answer: the positive
and its negatives then show the model the same boilerplate opening and the
loss cannot fall below chance. With ``long_passages = "max-window"`` every
training passage is replaced by its window (cut as the engine cuts them at
query time) that shares the most analyzer terms with the query, and the
engine scores the trained model the same way (best window, MaxP).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from hybrid_search.analyzers import Analyzer
from hybrid_search.config import AnalyzerConfig, Language, LongPassages
from hybrid_search.errors import ConfigError, InputError
from hybrid_search.rerank import split_windows, window_budget

from .data import Example, TrainingData, read_examples
from .embedder import precision_flags
from .runs import Device, Precision, begin_run, check_choice, fail_run, finish_run, last_checkpoint, model_path, resolve_device

__all__ = ["RerankerTrainConfig", "RerankerLoss", "train_reranker"]

RerankerLoss = Literal["bce", "listwise"]


@dataclass(frozen=True)
class RerankerTrainConfig:
    base_model: str
    loss: RerankerLoss = "bce"
    num_negatives: int = 7
    pos_weight: float | None = None  # bce: default num_negatives
    epochs: float = 3.0
    batch_size: int = 32
    learning_rate: float = 3e-5
    head_learning_rate: float | None = 1e-3  # for a new head only; None: one rate for all
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 384
    long_passages: LongPassages = "truncate"
    window_overlap: int = 64
    language: Language = "en"  # analyzer that picks a long passage's training window
    sources: tuple[str, ...] | None = None
    save_total_limit: int = 2
    device: Device = "auto"
    precision: Precision = "auto"
    seed: int = 42

    def __post_init__(self) -> None:
        check_choice("RerankerTrainConfig", "loss", self.loss, get_args(RerankerLoss))
        check_choice("RerankerTrainConfig", "device", self.device, get_args(Device))
        check_choice("RerankerTrainConfig", "precision", self.precision, get_args(Precision))
        check_choice("RerankerTrainConfig", "long_passages", self.long_passages, get_args(LongPassages))
        check_choice("RerankerTrainConfig", "language", self.language, get_args(Language))
        if self.long_passages == "max-window" and not 0 <= self.window_overlap < self.max_length // 2:
            raise ConfigError("RerankerTrainConfig.window_overlap must lie in [0, max_length / 2)")
        if not self.base_model:
            raise ConfigError("RerankerTrainConfig.base_model must name a model")
        for name in ("num_negatives", "batch_size", "max_length", "save_total_limit"):
            if getattr(self, name) < 1:
                raise ConfigError(f"RerankerTrainConfig.{name} must be >= 1")
        if self.epochs <= 0 or self.learning_rate <= 0:
            raise ConfigError("RerankerTrainConfig.epochs and learning_rate must be > 0")
        if self.head_learning_rate is not None and self.head_learning_rate <= 0:
            raise ConfigError("RerankerTrainConfig.head_learning_rate must be > 0")
        if self.pos_weight is not None and self.pos_weight <= 0:
            raise ConfigError("RerankerTrainConfig.pos_weight must be > 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError("RerankerTrainConfig.warmup_ratio must lie in [0, 1)")


class WindowPicker:
    """The window of a long passage that shares the most terms with the query."""

    def __init__(self, tokenizer: Any, config: RerankerTrainConfig) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.analyzer = Analyzer(AnalyzerConfig(language=config.language))
        self.windowed = 0
        self.passages = 0

    def __call__(self, query: str, texts: list[str]) -> list[str]:
        """Each text, or its best window when it is too long; the query is analysed once."""
        budget = window_budget(self.tokenizer, query, self.config.max_length)
        query_terms: set[str] | None = None
        picked = []
        for text in texts:
            self.passages += 1
            windows = split_windows(self.tokenizer, text, budget, self.config.window_overlap)
            if len(windows) == 1:
                picked.append(text)
                continue
            self.windowed += 1
            if query_terms is None:
                query_terms = set(self.analyzer.tokenize(query))
            terms = query_terms
            # max() keeps the first of equals: the opening window wins ties.
            picked.append(max(windows, key=lambda window: len(terms.intersection(self.analyzer.tokenize(window)))))
        return picked


def windowed_examples(examples: list[Example], pick: WindowPicker) -> list[Example]:
    return [replace(example, pos=pick(example.query, example.pos), neg=pick(example.query, example.neg)) for example in examples]


def _pairs(examples: list[Example], num_negatives: int, seed: int) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {"query": [], "passage": [], "label": []}
    for example in examples:
        rows["query"].append(example.query)
        rows["passage"].append(example.pos[0])
        rows["label"].append(1.0)
        for negative in example.neg[:num_negatives]:
            rows["query"].append(example.query)
            rows["passage"].append(negative)
            rows["label"].append(0.0)
    # Shuffled once here (the trainer shuffles again per epoch, with the seed).
    order = list(range(len(rows["query"])))
    random.Random(seed).shuffle(order)
    return {key: [values[i] for i in order] for key, values in rows.items()}


def _groups(examples: list[Example], num_negatives: int) -> dict[str, list[str]]:
    columns: dict[str, list[str]] = {"query": [], "positive": []}
    for i in range(num_negatives):
        columns[f"negative_{i + 1}"] = []
    for example in examples:
        columns["query"].append(example.query)
        columns["positive"].append(example.pos[0])
        for i in range(num_negatives):
            columns[f"negative_{i + 1}"].append(example.neg[i % len(example.neg)])
    return columns


def _head_is_new(model_name: str) -> bool:
    """True unless the base already is a sequence classifier (a reranker)."""
    from transformers import AutoConfig

    architectures = AutoConfig.from_pretrained(model_path(model_name)).architectures or []
    return not any(name.endswith("ForSequenceClassification") for name in architectures)


def train_reranker(data: TrainingData, config: RerankerTrainConfig, run_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Fine-tune; the model lands in ``run_dir/model``. Returns the run's metrics."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, MultipleNegativesRankingLoss

    run_dir = Path(run_dir)
    device = resolve_device(config.device)
    manifest, done = begin_run(run_dir, stage="reranker", config=config, data_files=[*data.files(), data.train_file], seed=config.seed, device=device)
    if done:
        return manifest.metrics
    try:
        examples = [e for e in read_examples(data.train_file) if e.neg]
        if config.sources is not None:
            examples = [e for e in examples if e.source in config.sources]
        if not examples:
            raise InputError("reranker training needs mined negatives: run `hybrid-search train negatives` first")
        # num_labels=1: one relevance logit. From a bi-encoder this head is new.
        model = CrossEncoder(model_path(config.base_model), num_labels=1, max_length=config.max_length, device=device)
        window_stats = None
        if config.long_passages == "max-window":
            pick = WindowPicker(model.tokenizer, config)
            examples = windowed_examples(examples, pick)
            window_stats = {"passages": pick.passages, "cut_to_best_window": pick.windowed}
        if config.loss == "bce":
            dataset = Dataset.from_dict(_pairs(examples, config.num_negatives, config.seed))
            weight = config.pos_weight if config.pos_weight is not None else float(config.num_negatives)
            loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(weight))
        else:
            dataset = Dataset.from_dict(_groups(examples, config.num_negatives))
            loss = MultipleNegativesRankingLoss(model)
        new_head = _head_is_new(config.base_model)
        learning_rates = {}
        if new_head and config.head_learning_rate is not None:
            learning_rates = {r"(^|\.)(classifier|pooler)\.": config.head_learning_rate}
        arguments = CrossEncoderTrainingArguments(
            learning_rate_mapping=learning_rates,
            output_dir=str(run_dir / "checkpoints"),
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_ratio,  # transformers 5: a float below 1 is a ratio
            weight_decay=config.weight_decay,
            save_strategy="epoch",
            save_total_limit=config.save_total_limit,
            logging_steps=20,
            seed=config.seed,
            data_seed=config.seed,
            report_to="none",
            disable_tqdm=not progress,
            use_cpu=device == "cpu",
            **precision_flags(config.precision, device),
        )
        trainer = CrossEncoderTrainer(model=model, args=arguments, train_dataset=dataset, loss=loss)
        output = trainer.train(resume_from_checkpoint=last_checkpoint(run_dir))
        model.save(str(run_dir / "model"))
        metrics = {
            "new_head": new_head,
            "train_examples": len(examples),
            "train_rows": len(dataset),
            "windows": window_stats,
            "train": {k: float(v) for k, v in output.metrics.items() if isinstance(v, (int, float))},
        }
        finish_run(run_dir, manifest, metrics)
        return metrics
    except BaseException as error:
        fail_run(run_dir, manifest, error)
        raise
