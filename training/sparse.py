"""BGE-M3-style fine-tuning of the learned-sparse head: ``objective="unified"``
(dense + learned sparse, colbert optional) through FlagEmbedding's
``encoder_only.m3`` runner, or ``"sparse-only"``: the sparse head alone on the
sparse path's own loss over a frozen encoder (``sparse_head.py``).

Works for BGE-M3 itself and for any encoder without M3 heads (all-MiniLM-L6-v2,
multilingual-e5-small): such a model gets a start folder with the encoder, a
tokenizer that has an eos token (FlagEmbedding's sparse code crashes on BERT
tokenizers without one, see DESIGN.md) and freshly initialised heads. The
sparse head starts near-uniform and slightly positive (every token active with
a small weight) rather than random, because a randomly initialised
``relu(w.h + b)`` can start all-zero and then never receives a gradient.

After training, the model folder holds ``sparse_linear.pt`` and
``colbert_linear.pt`` (so hybrid_search's BGE-M3 loader accepts it), and a
collapse check encodes sample texts through that loader and fails the run if
the sparse vectors are mostly empty or their weights near-uniform (the head
learned nothing beyond "every token counts the same").

Memory: in training the sparse head materialises batch x group x seq x vocab
floats; keep ``passage_max_len`` and ``group_size`` modest on CPU.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from hybrid_search.errors import ConfigError, HybridSearchError, InputError

from .data import TrainingData, read_examples
from .embedder import precision_flags
from .runs import (
    Device,
    Precision,
    begin_run,
    check_choice,
    fail_run,
    finish_run,
    last_checkpoint,
    resolve_device,
    write_json,
)

__all__ = [
    "CollapseReport",
    "SparseCollapseError",
    "SparseTrainConfig",
    "check_collapse",
    "prepare_start_folder",
    "sparse_collapse_report",
    "train_sparse",
]

RunMode = Literal["in-process", "subprocess"]
# "unified": FlagEmbedding's dense + sparse (+ colbert) loss; "sparse-only": the
# sparse head alone on the sparse path's own loss, encoder frozen (sparse_head.py).
SparseObjective = Literal["unified", "sparse-only"]
HEAD_FILES = ("sparse_linear.pt", "colbert_linear.pt")


class SparseCollapseError(HybridSearchError):
    """The trained sparse head produces empty or near-uniform vectors."""


@dataclass(frozen=True)
class SparseTrainConfig:
    base_model: str
    epochs: float = 2.0
    batch_size: int = 8
    group_size: int = 4  # 1 positive + group_size - 1 negatives per query
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    query_max_len: int = 64
    passage_max_len: int = 256
    temperature: float = 0.02
    colbert: bool = True
    train_encoder: bool = True  # False: only the heads learn (FlagEmbedding's fix_encoder)
    self_distill: bool = False
    query_instruction: str | None = None
    init_bias: float = 0.1  # start weight of every token in an untrained sparse head
    init_std: float = 0.01
    mode: RunMode = "in-process"
    objective: SparseObjective = "unified"
    collapse_max_empty: float = 0.2  # share of texts allowed to get an empty vector
    collapse_min_spread: float = 0.05  # median coefficient of variation of a vector's weights
    save_total_limit: int = 2
    device: Device = "auto"
    precision: Precision = "auto"
    seed: int = 42

    def __post_init__(self) -> None:
        check_choice("SparseTrainConfig", "mode", self.mode, get_args(RunMode))
        check_choice("SparseTrainConfig", "objective", self.objective, get_args(SparseObjective))
        check_choice("SparseTrainConfig", "device", self.device, get_args(Device))
        check_choice("SparseTrainConfig", "precision", self.precision, get_args(Precision))
        if not self.base_model:
            raise ConfigError("SparseTrainConfig.base_model must name a model")
        for name in ("batch_size", "query_max_len", "passage_max_len", "save_total_limit"):
            if getattr(self, name) < 1:
                raise ConfigError(f"SparseTrainConfig.{name} must be >= 1")
        if self.group_size < 2:
            raise ConfigError("SparseTrainConfig.group_size must be >= 2 (a positive and at least one negative)")
        if self.epochs <= 0 or self.learning_rate <= 0 or self.temperature <= 0:
            raise ConfigError("SparseTrainConfig.epochs, learning_rate and temperature must be > 0")
        if not 0.0 <= self.collapse_max_empty <= 1.0 or self.collapse_min_spread < 0:
            raise ConfigError("SparseTrainConfig collapse thresholds are out of range")
        if not self.colbert and self.mode == "subprocess":
            raise ConfigError("SparseTrainConfig.colbert=False needs mode='in-process' (it replaces the colbert score)")
        if self.objective == "sparse-only":
            if self.train_encoder:
                raise ConfigError("SparseTrainConfig.objective='sparse-only' trains the sparse head on a frozen encoder: set train_encoder = false")
            if self.query_instruction is not None:
                raise ConfigError("SparseTrainConfig.query_instruction is not used by objective='sparse-only' (the engine's M3 sparse path encodes queries as they are)")


# --- the collapse check ----------------------------------------------------------------


@dataclass(frozen=True)
class CollapseReport:
    texts: int
    empty: int
    mean_terms: float
    median_spread: float  # coefficient of variation of the weights within a vector
    collapsed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "empty": self.empty,
            "mean_terms": self.mean_terms,
            "median_spread": self.median_spread,
            "collapsed": self.collapsed,
            "reason": self.reason,
        }


def check_collapse(vectors: Sequence[dict[int, float]], *, max_empty: float = 0.2, min_spread: float = 0.05) -> CollapseReport:
    """Collapsed: too many empty vectors, or weights that barely differ within a
    vector (a head that gives every token the same weight is no better than a
    binary bag of words)."""
    if not vectors:
        raise InputError("the collapse check needs at least one vector")
    empty = sum(1 for v in vectors if not v)
    spreads = []
    for vector in vectors:
        weights = [w for w in vector.values() if w > 0]
        if len(weights) >= 3:
            mean = statistics.fmean(weights)
            spreads.append(statistics.pstdev(weights) / mean if mean > 0 else 0.0)
    median_spread = statistics.median(spreads) if spreads else 0.0
    mean_terms = statistics.fmean(len(v) for v in vectors)
    reasons = []
    if empty / len(vectors) > max_empty:
        reasons.append(f"{empty} of {len(vectors)} texts got an empty sparse vector (allowed: {max_empty:.0%})")
    if median_spread < min_spread:
        reasons.append(f"weights are near-uniform (median coefficient of variation {median_spread:.4f} < {min_spread})")
    return CollapseReport(len(vectors), empty, mean_terms, median_spread, bool(reasons), "; ".join(reasons) or "ok")


def sparse_collapse_report(model_dir: Path, texts: Sequence[str], config: SparseTrainConfig) -> CollapseReport:
    """Encode ``texts`` through hybrid_search's own BGE-M3 loader (which also
    proves the folder is servable) and check the vectors."""
    from hybrid_search.config import RuntimeConfig
    from hybrid_search.encoders import BGEM3Model

    m3 = BGEM3Model(str(model_dir), RuntimeConfig(device=config.device, batch_size=16), config.passage_max_len)
    _, vectors = m3.encode(list(texts), dense=False, sparse=True)
    assert vectors is not None
    return check_collapse(vectors, max_empty=config.collapse_max_empty, min_spread=config.collapse_min_spread)


# --- start folder ---------------------------------------------------------------------------


def _local_folder(model: str) -> Path:
    path = Path(model).expanduser()
    if not path.is_dir():
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(repo_id=model, ignore_patterns=["flax_model.msgpack", "rust_model.ot", "tf_model.h5", "*.onnx*"]))
    modules = path / "modules.json"
    if modules.is_file():
        # A sentence-transformers folder: the transformer is its first module.
        first = json.loads(modules.read_text(encoding="utf-8"))[0].get("path", "")
        if first:
            path = path / first
    return path


def prepare_start_folder(base_model: str, start_dir: Path, *, init_bias: float, init_std: float, seed: int) -> Path:
    """The folder FlagEmbedding trains from. BGE-M3 with an eos-bearing tokenizer
    is used in place; anything else is copied with an eos token and heads."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = _local_folder(base_model)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    has_heads = all((source / name).is_file() for name in HEAD_FILES)
    if has_heads and tokenizer.eos_token is not None:
        return source
    start_dir = Path(start_dir)
    if start_dir.is_dir() and all((start_dir / name).is_file() for name in HEAD_FILES) and (start_dir / "config.json").is_file():
        return start_dir  # prepared by an earlier (interrupted) run
    staging = start_dir.with_name(start_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model = AutoModel.from_pretrained(str(source))
    model.save_pretrained(str(staging))
    if tokenizer.eos_token is None:
        # FlagEmbedding zeroes the eos token's weight and crashes when there is none;
        # BERT's [SEP] plays the part of XLM-R's </s> in real BGE-M3.
        tokenizer.eos_token = tokenizer.sep_token
    tokenizer.save_pretrained(str(staging))
    if has_heads:
        for name in HEAD_FILES:
            shutil.copy2(source / name, staging / name)
    else:
        hidden = int(model.config.hidden_size)
        generator = torch.Generator().manual_seed(seed)
        sparse = torch.nn.Linear(hidden, 1)
        colbert = torch.nn.Linear(hidden, hidden)
        with torch.no_grad():
            sparse.weight.normal_(0.0, init_std, generator=generator)
            sparse.bias.fill_(init_bias)
            # Identity plus noise: colbert vectors start as the token states themselves.
            colbert.weight.copy_(torch.eye(hidden) + torch.randn(hidden, hidden, generator=generator) * init_std)
            colbert.bias.zero_()
        torch.save(sparse.state_dict(), staging / "sparse_linear.pt")
        torch.save(colbert.state_dict(), staging / "colbert_linear.pt")
    shutil.rmtree(start_dir, ignore_errors=True)
    staging.rename(start_dir)
    return start_dir


# --- training -------------------------------------------------------------------------------


def _flag_arguments(config: SparseTrainConfig, start: Path, train_file: Path, output_dir: Path, device: str, resume: str | None, progress: bool) -> dict[str, Any]:
    """One dict of FlagEmbedding arguments, used in-process and on the command line alike."""
    arguments: dict[str, Any] = {
        "model_name_or_path": str(start),
        "train_data": [str(train_file)],
        "train_group_size": config.group_size,
        "query_max_len": config.query_max_len,
        "passage_max_len": config.passage_max_len,
        "output_dir": str(output_dir),
        "num_train_epochs": config.epochs,
        "per_device_train_batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "warmup_steps": config.warmup_ratio,  # transformers 5: a float below 1 is a ratio
        "weight_decay": config.weight_decay,
        "temperature": config.temperature,
        "unified_finetuning": True,
        "use_self_distill": config.self_distill,
        "fix_encoder": not config.train_encoder,
        "sentence_pooling_method": "cls",  # what BGEM3FlagModel uses at inference
        "normalize_embeddings": True,
        "save_strategy": "epoch",
        "save_total_limit": config.save_total_limit,
        "logging_steps": 10,
        "seed": config.seed,
        "report_to": "none",
        "dataloader_drop_last": True,
        "disable_tqdm": not progress,
        "use_cpu": device == "cpu",
        **precision_flags(config.precision, device),
    }
    if config.query_instruction is not None:
        arguments["query_instruction_for_retrieval"] = config.query_instruction
    if resume is not None:
        arguments["resume_from_checkpoint"] = resume
    return arguments


def _to_argv(arguments: dict[str, Any]) -> list[str]:
    argv = []
    for name, value in arguments.items():
        argv.append(f"--{name}")
        if isinstance(value, list):
            argv.extend(str(v) for v in value)
        else:
            argv.append(str(value))
    return argv


def _run_in_process(arguments: dict[str, Any], colbert: bool) -> None:
    import torch
    from FlagEmbedding.finetune.embedder.encoder_only.m3 import (
        EncoderOnlyEmbedderM3DataArguments,
        EncoderOnlyEmbedderM3ModelArguments,
        EncoderOnlyEmbedderM3Runner,
        EncoderOnlyEmbedderM3TrainingArguments,
    )
    from transformers import HfArgumentParser

    parser = HfArgumentParser((EncoderOnlyEmbedderM3ModelArguments, EncoderOnlyEmbedderM3DataArguments, EncoderOnlyEmbedderM3TrainingArguments))
    model_args, data_args, training_args = parser.parse_dict(arguments)
    runner = EncoderOnlyEmbedderM3Runner(model_args=model_args, data_args=data_args, training_args=training_args)
    if not colbert:
        # A constant colbert score: its loss term is constant (no gradient) and
        # the ensemble reduces to dense + 0.3 x sparse.
        def no_colbert(q_reps: Any, p_reps: Any, q_mask: Any = None) -> Any:
            return torch.zeros(q_reps.size(0), p_reps.size(0), device=q_reps.device, dtype=q_reps.dtype)

        runner.model.compute_colbert_score = no_colbert  # type: ignore[method-assign]
    runner.run()


def _run_subprocess(arguments: dict[str, Any], log_file: Path) -> None:
    command = [sys.executable, "-m", "FlagEmbedding.finetune.embedder.encoder_only.m3", *_to_argv(arguments)]
    with log_file.open("a", encoding="utf-8") as log:
        completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise HybridSearchError(f"M3 fine-tuning failed (exit {completed.returncode}); log {log_file}:\n{tail}")


def _collect_model(output_dir: Path, model_dir: Path) -> None:
    """The final save sits at the top of the trainer's output folder, beside
    the checkpoint-N folders: copy those files into a clean model folder."""
    staging = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for item in output_dir.iterdir():
        if item.is_file() and item.name != "training_args.bin":
            shutil.copy2(item, staging / item.name)
    missing = [name for name in HEAD_FILES if not (staging / name).is_file()]
    if missing:
        raise HybridSearchError(f"M3 fine-tuning wrote no {', '.join(missing)} in {output_dir}")
    shutil.rmtree(model_dir, ignore_errors=True)
    staging.rename(model_dir)


def train_sparse(data: TrainingData, config: SparseTrainConfig, run_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Fine-tune; the model lands in ``run_dir/model``. Raises SparseCollapseError
    (and marks the run failed) when the sparse head collapsed."""
    run_dir = Path(run_dir)
    device = resolve_device(config.device)
    manifest, done = begin_run(run_dir, stage="sparse", config=config, data_files=[*data.files(), data.train_file], seed=config.seed, device=device)
    if done:
        return manifest.metrics
    try:
        examples = [e for e in read_examples(data.train_file) if e.neg]
        if not examples:
            raise InputError("M3 fine-tuning needs negatives: run `hybrid-search train negatives` first")
        train_file = run_dir / "train_data" / "train.jsonl"
        train_file.parent.mkdir(parents=True, exist_ok=True)
        with train_file.open("w", encoding="utf-8") as handle:
            for example in examples:  # FlagEmbedding's own format, nothing else
                handle.write(json.dumps({"query": example.query, "pos": example.pos, "neg": example.neg}, ensure_ascii=False) + "\n")
        start = prepare_start_folder(config.base_model, run_dir / "start", init_bias=config.init_bias, init_std=config.init_std, seed=config.seed)
        model_dir = run_dir / "model"
        if config.objective == "sparse-only":
            from .sparse_head import train_sparse_head

            trained = train_sparse_head(
                start, examples, config, device=device, run_dir=run_dir, model_dir=model_dir, dev=data.dev, dev_pool=data.chunks("dev"), progress=progress
            )
            return _check_and_finish(run_dir, manifest, model_dir, examples, config, {"start_folder": str(start), **trained})
        output_dir = run_dir / "checkpoints"
        resume = last_checkpoint(run_dir)
        if resume is None and output_dir.exists():
            shutil.rmtree(output_dir)  # nothing to resume from; FlagEmbedding refuses a non-empty folder
        arguments = _flag_arguments(config, start, train_file, output_dir, device, resume, progress)
        if config.mode == "in-process":
            _run_in_process(arguments, config.colbert)
        else:
            _run_subprocess(arguments, run_dir / "train.log")
        _collect_model(output_dir, model_dir)
        return _check_and_finish(run_dir, manifest, model_dir, examples, config, {"start_folder": str(start)})
    except BaseException as error:
        fail_run(run_dir, manifest, error)
        raise


def _check_and_finish(run_dir: Path, manifest: Any, model_dir: Path, examples: Sequence[Any], config: SparseTrainConfig, metrics: dict[str, Any]) -> dict[str, Any]:
    sample = [e.pos[0] for e in examples[:48]] + [e.query for e in examples[:16]]
    report = sparse_collapse_report(model_dir, sample, config)
    write_json(run_dir / "collapse_check.json", report.to_dict())
    metrics = {"train_examples": len(examples), **metrics, "collapse_check": report.to_dict()}
    if report.collapsed:
        shutil.rmtree(model_dir.with_name("model.collapsed"), ignore_errors=True)
        model_dir.rename(model_dir.with_name("model.collapsed"))
        raise SparseCollapseError(f"the sparse head collapsed: {report.reason}; the model is kept in {run_dir / 'model.collapsed'} for inspection")
    finish_run(run_dir, manifest, metrics)
    return metrics
