"""Adapt a collection in one call: the collection's chunks -> training data ->
hard negatives -> dense fine-tuning -> served before/after on held-out
questions -> promotion only when the gate passes.

Orchestration only: every stage is the training package's own (data.py,
negatives.py, embedder.py, evaluate.py, promote.py), each resumable, so an
interrupted ``adapt`` re-run with the same settings picks up where it stopped.
The run folder::

    <run>/adapt.json          config, the served configuration it started from,
                              stage timings, the decision, status
    <run>/data/               training data + mined negatives (data.py)
    <run>/dense/              the fine-tuned model and its run.json (embedder.py)
    <run>/evaluation/         before/after report, paired test (evaluate.py)
    <run>/training_curve.png  dev nDCG@10 per epoch (with matplotlib installed)

The baseline is what the collection serves when the run starts (its dense and
sparse models and fusion), recorded in adapt.json, so a resumed run compares
against the same thing even after it promoted.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from hybrid_search.config import (
    DenseEncoderConfig,
    FusionConfig,
    RuntimeConfig,
    SparseEncoderConfig,
    to_plain,
)
from hybrid_search.errors import ConfigError, InputError

from .adapter import (
    AdapterTrainConfig,
    chunk_vectors,
    encoder_for_queries,
    mine_dense_negatives,
    train_query_adapter,
)
from .data import (
    DataConfig,
    TrainingData,
    build_training_data,
    load_training_data,
    write_examples,
)
from .embedder import DEV_METRIC, DenseTrainConfig, ReportTo, train_dense
from .evaluate import EvalConfig, EvaluationReport, System, evaluate_systems
from .llm_questions import LLMConfig
from .negatives import MiningConfig, mine_negatives
from .promote import PromotionRefused, promote
from .pseudo_queries import PseudoQueryConfig
from .runs import Device, check_choice, config_from_plain, plain, write_json
from .served_choice import Candidate as ServedCandidate
from .served_choice import gate, path_lists, tune_fusion

if TYPE_CHECKING:
    from hybrid_search.engine import Engine

__all__ = ["AdaptConfig", "AdaptResult", "parse_budget", "run_adapt"]

ADAPT_MANIFEST = "adapt.json"
Candidate = Literal["fusion", "adapter", "dense"]
# Share of the budget the trainer may use; the rest is for mining and the before/after evaluation.
TRAIN_SHARE = 0.6


def parse_budget(text: str) -> float:
    """'15m', '900s', '1h', '90' (seconds) -> seconds."""
    value = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(value[-1:], None)
    number = value[:-1] if scale is not None else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        raise ConfigError(f"budget must look like 15m, 900s or 1h; got {text!r}") from None
    if seconds <= 0:
        raise ConfigError(f"budget must be > 0; got {text!r}")
    return seconds


@dataclass(frozen=True)
class AdaptConfig:
    """One adaptation run. Without ``questions`` and ``llm`` the training and
    held-out questions are offline pseudo-queries of the collection's own
    chunks (label-free); the gate then judges on pseudo-queries too."""

    collection: str
    run_dir: str
    questions: str | None = None
    llm: LLMConfig | None = None
    pseudo: PseudoQueryConfig = field(default_factory=PseudoQueryConfig)
    alias: str | None = None  # promote here when ``collection`` is a collection, not an alias
    promote: bool = True
    budget_s: float = 900.0
    test_fraction: float = 0.2
    dev_fraction: float = 0.1
    epochs: float = 3.0
    batch_size: int = 32
    learning_rate: float = 2e-5
    num_negatives: int = 3
    max_seq_length: int | None = 256
    depth: int = 50  # mining and evaluation depth
    k: int = 100
    max_eval_queries: int | None = None
    min_gain: float = 0.0
    max_p_value: float | None = 0.05
    report_to: ReportTo = "none"
    device: Device = "auto"
    seed: int = 42
    # What may change in the served configuration (chosen by dev score, then gated):
    # "fusion" re-tuned on dev, "adapter" a linear query adapter (no re-embedding);
    # "dense" fine-tunes the dense model (re-embeds the corpus when promoted). Alone,
    # "dense" runs the evaluation that re-indexes the corpus for before and after.
    candidates: tuple[Candidate, ...] = ("fusion", "adapter")
    adapter: AdapterTrainConfig = field(default_factory=AdapterTrainConfig)

    def __post_init__(self) -> None:
        for candidate in self.candidates:
            check_choice("AdaptConfig", "candidates", candidate, get_args(Candidate))
        if not self.candidates or len(set(self.candidates)) != len(self.candidates):
            raise ConfigError("AdaptConfig.candidates must name fusion, adapter and/or dense, each once")
        check_choice("AdaptConfig", "report_to", self.report_to, get_args(ReportTo))
        check_choice("AdaptConfig", "device", self.device, get_args(Device))
        if not self.collection:
            raise ConfigError("AdaptConfig.collection must name a collection or alias")
        if self.budget_s <= 0:
            raise ConfigError("AdaptConfig.budget_s must be > 0")
        if self.report_to != "none" and importlib.util.find_spec(self.report_to) is None:
            package = "tensorboard" if self.report_to == "tensorboard" else "wandb"
            raise ConfigError(f"report_to = {self.report_to!r} needs the {package} package: pip install {package}")
        for name in ("batch_size", "depth", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"AdaptConfig.{name} must be >= 1")

    def data_config(self) -> DataConfig:
        labelled = self.questions is not None
        return DataConfig(
            source="collection",
            collection=self.collection,
            questions=self.questions,
            use_labels=labelled,
            pseudo=None if labelled or self.llm is not None else self.pseudo,
            llm=None if labelled else self.llm,
            split="random",
            test_fraction=self.test_fraction,
            dev_fraction=self.dev_fraction,
            seed=self.seed,
        )


@dataclass(frozen=True)
class AdaptResult:
    promoted: bool
    reason: str
    decision: dict[str, Any]
    run_dir: Path
    promotion: dict[str, Any] | None = None


# --- console -------------------------------------------------------------------------


class _Console:
    """Stage banners with elapsed time and what is left of the budget."""

    def __init__(self, stages: tuple[str, ...], budget_s: float, progress: bool) -> None:
        self.stages, self.budget_s, self.progress = stages, budget_s, progress
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self, text: str) -> None:
        if self.progress:
            print(text, flush=True)

    def stage(self, name: str, note: str = "") -> _StageTimer:
        number = self.stages.index(name) + 1
        left = max(0.0, self.budget_s - self.elapsed())
        self.line(f"\n[{number}/{len(self.stages)}] {name}{' ' + note if note else ''}  (elapsed {_clock(self.elapsed())}, budget left {_clock(left)})")
        return _StageTimer(self, name)


class _StageTimer:
    def __init__(self, console: _Console, name: str) -> None:
        self.console, self.name = console, name

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc_info: object) -> None:
        self.console.seconds[self.name] = round(time.monotonic() - self.started, 1)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _trainer_callbacks(console: _Console, deadline: float) -> list[Any]:
    """Per-epoch dev scores with the trainer's ETA, and a stop at the budget."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started, self.first_step = time.monotonic(), state.global_step

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
            score = (metrics or {}).get(f"eval_{DEV_METRIC}")
            done = state.global_step - self.first_step
            rate = (time.monotonic() - self.started) / done if done else 0.0
            eta = rate * max(0, state.max_steps - state.global_step)
            shown = f"{score:.4f}" if score is not None else "n/a"
            console.line(f"  epoch {state.epoch:.2f}: dev nDCG@10 {shown}  (step {state.global_step}/{state.max_steps}, training ETA {_clock(eta)})")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if time.monotonic() > deadline:
                console.line(f"  budget reached at step {state.global_step}/{state.max_steps}: training stops here")
                control.should_training_stop = True
                control.should_evaluate = True
                control.should_save = True

    return [Progress()]


# --- the run ------------------------------------------------------------------------


def _served_before(engine: Engine, collection: str) -> dict[str, Any]:
    """The configuration the collection serves now, as plain data."""
    config = engine._opened(collection, with_encoders=False).config
    return {"collection": engine.resolve(collection), "dense": plain(config.dense), "sparse": plain(config.sparse), "fusion": plain(config.fusion)}


def _start(engine: Engine, config: AdaptConfig, run_dir: Path) -> dict[str, Any]:
    """Open (or resume) the run folder; refuses a folder holding another run."""
    path = run_dir / ADAPT_MANIFEST
    if path.is_file():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("config") != plain(config):
            raise ConfigError(
                f"{run_dir} holds an adapt run with other settings; use a new --run-dir (or delete this one) "
                "so a folder never mixes two runs"
            )
        return manifest
    base = _served_before(engine, config.collection)  # a wrong name fails here, before the folder exists
    manifest = {"format": "hybrid-search-adapt/1", "config": plain(config), "base": base, "status": "running"}
    write_json(path, manifest)
    return manifest


def _curve(run_dir: Path, dense: dict[str, Any], console: _Console, title: str = "dense fine-tuning") -> str | None:
    """training_curve.png: dev nDCG@10 before training and after each epoch."""
    points = [(0.0, dense["dev_before"].get(DEV_METRIC))] if dense.get("dev_before") else []
    points += [(e["epoch"], e[DEV_METRIC]) for e in dense.get("dev_by_epoch", [])]
    points = [(x, y) for x, y in points if y is not None]
    if not points:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        console.line("  training curve not drawn: matplotlib is missing (pip install 'hybrid-search[bench]')")
        return None
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot([x for x, _ in points], [y for _, y in points], marker="o")
    axis.set_xlabel("epoch")
    axis.set_ylabel("dev nDCG@10")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    out = run_dir / "training_curve.png"
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return str(out)


def _promotion_target(engine: Engine, config: AdaptConfig) -> tuple[str, str | None]:
    """(alias, source): promote behind the alias the user searches, or make
    ``--alias`` serve the new version of a plain collection."""
    if engine.resolve(config.collection) != config.collection:
        return config.collection, None
    if config.alias is None:
        raise ConfigError(
            f"{config.collection!r} is a collection, not an alias: pass --alias NAME to serve the adapted version "
            "under that alias (search the alias from then on), or --no-promote to measure only"
        )
    return config.alias, config.collection


def run_adapt(engine: Engine, config: AdaptConfig, *, progress: bool = True) -> AdaptResult:
    """Run (or resume) one adaptation; see the module docstring."""
    run_dir = Path(config.run_dir)
    manifest = _start(engine, config, run_dir)
    if manifest["status"] == "finished":
        result = manifest["result"]
        print(f"{run_dir} already finished: {result['reason']}")
        return AdaptResult(result["promoted"], result["reason"], result["decision"], run_dir, result.get("promotion"))
    base = manifest["base"]
    base_dense = config_from_plain(DenseEncoderConfig, base["dense"]) if base["dense"] else None
    base_sparse = config_from_plain(SparseEncoderConfig, base["sparse"]) if base["sparse"] else None
    fusion = config_from_plain(FusionConfig, base["fusion"]) if base["fusion"] else FusionConfig()
    wants_dense = config.candidates != ("fusion",)
    if base_dense is None and wants_dense:
        raise ConfigError(f"{config.collection!r} has no dense model: only --candidates fusion can adapt it")
    if config.promote:
        _promotion_target(engine, config)  # refuse before hours of work, not after
    if config.candidates == ("dense",):
        stages: tuple[str, ...] = ("data", "negatives", "dense", "evaluate", "promote")
    else:
        # The adapter mines its negatives from the stored vectors (seconds), not with the miner's own index.
        trained = tuple(c for c in ("adapter", "dense") if c in config.candidates)
        stages = ("data", *trained, "choose", "promote")
    console = _Console(stages, config.budget_s, progress)

    data_config = config.data_config()
    with console.stage("data", "(labelled questions)" if config.questions else "(LLM questions)" if config.llm else "(pseudo-queries, no labels)"):
        previous = run_dir / "data" / "manifest.json"
        if previous.is_file() and json.loads(previous.read_text(encoding="utf-8")).get("config") == plain(data_config):
            data: TrainingData = load_training_data(run_dir / "data")
        else:
            data = build_training_data(data_config, run_dir / "data", engine=engine, progress=progress)
        stats = data.manifest["stats"]
        console.line(f"  {len(data.corpus)} chunks; documents {stats['documents']}; {stats['train_examples']} training examples, "
                     f"{stats['dev_queries']} dev and {stats['test_queries']} test questions")
        if not data.dev or not data.test:
            raise InputError("the collection is too small to hold out dev and test questions; adapt needs more documents")

    if "negatives" in stages:
        assert base_dense is not None
        with console.stage("negatives", "(false-negative control: positives, and candidates scoring near the positive, are never negatives)"):
            mining = MiningConfig(
                dense=base_dense,
                sparse=base_sparse,
                depth=config.depth,
                max_rank=min(30, config.depth),
                num_negatives=config.num_negatives, device=config.device,
                seed=config.seed,
            )
            mined = mine_negatives(data, mining, progress=progress)
            console.line("  " + mined.summary().replace("\n", "\n  "))

    if config.candidates == ("dense",):
        assert base_dense is not None
        outcome = _adapt_dense(engine, config, data, console, base_dense, base_sparse, fusion, progress)
    else:
        outcome = _adapt_served(engine, config, data, console, manifest, base_dense, fusion, progress)
    promoted, reason, decision, promotion, curve = outcome
    manifest.update(
        status="finished",
        seconds=console.seconds,
        curve=curve,
        result={"promoted": promoted, "reason": reason, "decision": decision, "promotion": promotion},
    )
    write_json(run_dir / ADAPT_MANIFEST, manifest)
    return AdaptResult(promoted, reason, decision, run_dir, promotion)


Outcome = tuple[bool, str, dict[str, Any], dict[str, Any] | None, str | None]


def _adapt_served(
    engine: Engine,
    config: AdaptConfig,
    data: TrainingData,
    console: _Console,
    manifest: dict[str, Any],
    base_dense: DenseEncoderConfig | None,
    fusion: FusionConfig,
    progress: bool,
) -> Outcome:
    """Fusion and/or a query adapter: no re-embedding, measured on the live collection."""
    run_dir = Path(config.run_dir)
    served = manifest["base"]["collection"]
    available = list(engine.open_collection(served).paths)
    runtime = RuntimeConfig(device=config.device)
    adapted_dense: DenseEncoderConfig | None = None
    curve = None
    if "adapter" in config.candidates:
        assert base_dense is not None
        with console.stage("adapter", "(linear adapter on query vectors; the stored chunk vectors stay as they are)"):
            ids, vectors = chunk_vectors(engine, served)
            folder = run_dir / "adapter"
            trained = train_query_adapter(
                examples=data.training_examples(),
                dev=data.dev,
                encode_queries=encoder_for_queries(base_dense, runtime),
                chunk_ids=ids,
                chunks=vectors,
                base=base_dense,
                config=config.adapter,
                out_dir=folder,
                allowed={c.id for c in data.chunks("train")},
                log=console.line,
            )
            console.line(f"  dev dense nDCG@10 {trained['dev_before']:.4f} -> {trained['dev_after']:.4f} (kept epoch {trained['best_epoch']})")
            adapted_dense = replace(base_dense, query_adapter=str(folder.resolve()))
            curve = _curve(run_dir, {"dev_before": {DEV_METRIC: trained["dev_before"]},
                                     "dev_by_epoch": [{"epoch": e["epoch"], DEV_METRIC: e["dev_ndcg@10"]} for e in trained["dev_by_epoch"][1:]]},
                           console, title="query adapter")

    tuned_dense: DenseEncoderConfig | None = None
    if "dense" in config.candidates:
        assert base_dense is not None
        tuned_dense, dense_curve = _fine_tune_dense(engine, served, config, data, console, base_dense, runtime, progress)
        curve = dense_curve or curve

    labelled = config.questions is not None or config.llm is not None
    with console.stage("choose", f"(each candidate's fusion tuned on {len(data.dev)} dev questions; the best on dev is gated on {len(data.test)} test questions)"):
        held_out = [*data.dev, *data.test]
        base_lists = path_lists(engine, served, held_out, available, depth=config.k)
        before = ServedCandidate("before", base_lists, fusion, _dev_score(base_lists, data, fusion, available), "the served configuration")
        options: list[ServedCandidate] = []
        # Pseudo-queries are sentences of their own chunk: fusion weights tuned on them
        # favour BM25 and do not carry over to real questions, so only labels re-tune fusion.
        retune = "fusion" in config.candidates and labelled
        if "fusion" in config.candidates and not labelled:
            console.line("  fusion not re-tuned: without labelled questions the dev questions are pseudo-queries, which favour BM25")
        if retune:
            tuned, score, described = tune_fusion(base_lists, data.dev, available, fusion)
            options.append(ServedCandidate("fusion", base_lists, tuned, score, f"fusion re-tuned: {described}"))
        if adapted_dense is not None:
            adapted_lists = {**base_lists, **path_lists(engine, served, held_out, ["dense"], depth=config.k,
                                                        dense_encode=encoder_for_queries(adapted_dense, runtime))}
            options.append(ServedCandidate("adapter", adapted_lists, fusion, _dev_score(adapted_lists, data, fusion, available),
                                           "query adapter, fusion in service"))
            if retune:
                tuned, score, described = tune_fusion(adapted_lists, data.dev, available, fusion)
                options.append(ServedCandidate("adapter+fusion", adapted_lists, tuned, score, f"query adapter, fusion re-tuned: {described}"))
        if tuned_dense is not None:
            dense_lists = {**base_lists, "dense": _exact_dense_lists(data, held_out, tuned_dense, runtime, config.k)}
            options.append(ServedCandidate("dense", dense_lists, fusion, _dev_score(dense_lists, data, fusion, available),
                                           "fine-tuned dense model, fusion in service"))
            if retune:
                tuned, score, described = tune_fusion(dense_lists, data.dev, available, fusion)
                options.append(ServedCandidate("dense+fusion", dense_lists, tuned, score, f"fine-tuned dense model, fusion re-tuned: {described}"))
        console.line(f"  dev nDCG@10 (served): before {before.dev:.4f}; " + "; ".join(f"{o.name} {o.dev:.4f}" for o in options))
        chosen = max(options, key=lambda o: o.dev, default=before)
        decision = gate(before, chosen, data.test, available, min_gain=config.min_gain, max_p_value=config.max_p_value)
        decision["dev"] = {"before": before.dev, **{o.name: o.dev for o in options}}
        decision["chosen"] = chosen.to_dict()
        # The choice must beat the served configuration on dev too (by min_gain when
        # that is negative: a gate set to accept losses accepts them here as well).
        if chosen is before or chosen.dev - before.dev <= min(config.min_gain, 0.0):
            decision["better"] = False
            decision["refused_on_dev"] = True
        new_dense = {"adapter": adapted_dense, "dense": tuned_dense}.get(chosen.name.split("+")[0])
        report = _served_report(config, data, before, chosen, base_dense, new_dense or base_dense, decision)
        write_json(run_dir / "evaluation" / "evaluation.json", report.to_dict())
        console.line(f"  chose {chosen.name} ({chosen.description}) on dev; test: {_gain(decision)}")

    promotion: dict[str, Any] | None = None
    with console.stage("promote"):
        if not config.promote:
            promoted, reason = False, "measured only (--no-promote)"
        elif decision.get("refused_on_dev"):
            promoted, reason = False, f"kept the served configuration: no candidate beats it on dev ({decision['dev']})"
        elif not decision["better"]:
            promoted, reason = False, _refusal(decision)
        else:
            alias, source = _promotion_target(engine, config)
            try:
                if new_dense is not None:
                    result = promote(engine, alias, dense=new_dense, evaluation=report, source=source, progress=progress)
                    promotion = result.to_dict()
                    target = result.collection
                else:
                    if source is not None:
                        engine.switch_alias(alias, source)
                    target = engine.resolve(alias)
                    promotion = {"alias": alias, "collection": target, "fusion_only": True}
            except PromotionRefused as error:
                promoted, reason = False, f"refused: {error}"
            else:
                engine.set_fusion_defaults(alias, chosen.fusion)  # the fusion chosen with it is served with it
                promotion["fusion"] = to_plain(chosen.fusion)
                promoted = True
                reason = f"promoted: {alias!r} now serves {target} ({chosen.description}; {_gain(decision)})"
        console.line(f"  chose: {reason}")
    return promoted, reason, decision, promotion, curve


def _dense_train_config(config: AdaptConfig, base_dense: DenseEncoderConfig) -> DenseTrainConfig:
    """The fine-tuning settings adapt uses for the served dense model (its prompts kept, best dev epoch kept)."""
    return DenseTrainConfig(
        base_model=base_dense.model,
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        num_negatives=config.num_negatives,
        max_seq_length=config.max_seq_length,
        query_prompt=base_dense.query_prompt,
        document_prompt=base_dense.document_prompt,
        keep="best-dev",
        device=config.device,
        seed=config.seed,
    )


def _fine_tune_dense(
    engine: Engine,
    served: str,
    config: AdaptConfig,
    data: TrainingData,
    console: _Console,
    base_dense: DenseEncoderConfig,
    runtime: RuntimeConfig,
    progress: bool,
) -> tuple[DenseEncoderConfig, str | None]:
    """Fine-tune the dense model on the train questions with negatives mined
    from the stored vectors; served at the length it was trained at."""
    run_dir = Path(config.run_dir)
    deadline = time.monotonic() + config.budget_s * TRAIN_SHARE - console.elapsed()
    with console.stage("dense", f"(fine-tuning {base_dense.model} at {config.max_seq_length or 'its default'} tokens, best dev epoch kept)"):
        mined_file = data.folder / "train_negatives.jsonl"
        if not mined_file.is_file():
            examples = [e for e in data.training_examples() if e.pos_ids]
            ids, vectors = chunk_vectors(engine, served)
            queries = encoder_for_queries(base_dense, runtime)([e.query for e in examples])
            import random

            negatives = mine_dense_negatives(queries, examples, vectors, ids, {c.id for c in data.chunks("train")}, config.adapter, random.Random(config.seed))
            by_id = data.chunk_by_id()
            for example, found in zip(examples, negatives):
                example.neg_ids = [ids[j] for j in found]
                example.neg = [by_id[cid].text for cid in example.neg_ids]
            write_examples(mined_file, examples)
        dense_config = _dense_train_config(config, base_dense)
        dense = train_dense(data, dense_config, run_dir / "dense", progress=progress,
                            callbacks=_trainer_callbacks(console, time.monotonic() + max(60.0, deadline)), report_to=config.report_to)
        before, after = dense.get("dev_before", {}).get(DEV_METRIC), dense.get("dev_after", {}).get(DEV_METRIC)
        if before is not None and after is not None:
            console.line(f"  dev dense nDCG@10 {before:.4f} -> {after:.4f} (kept: {dense.get('best_checkpoint') or 'last epoch'})")
        curve = _curve(run_dir, dense, console)
    tuned = replace(base_dense, model=str((run_dir / "dense" / "model").resolve()), kind="sentence-transformers",
                    max_length=config.max_seq_length, query_adapter=None)
    return tuned, curve


def _exact_dense_lists(data: TrainingData, queries: list[Any], dense: DenseEncoderConfig, runtime: RuntimeConfig, depth: int) -> dict[str, list[tuple[str, float]]]:
    """The dense path of a collection re-embedded with ``dense`` (exact inner
    product over the same chunk text the engine embeds)."""
    import numpy as np

    from hybrid_search.encoders import load_encoders

    encoders = load_encoders(dense, None, runtime)
    assert encoders.dense is not None
    chunks = data.corpus
    documents = encoders.dense.encode_documents([c.text_for_encoding for c in chunks])
    scores = encoders.dense.encode_queries([q.query for q in queries]) @ np.asarray(documents).T
    out = {}
    for query, row in zip(queries, scores):
        top = np.argsort(-row)[:depth]
        out[query.query_id] = [(chunks[j].id, float(row[j])) for j in top]
    return out


def _dev_score(lists: Any, data: TrainingData, fusion: FusionConfig, available: list[str]) -> float:
    from .served_choice import per_query_ndcg, served_setting

    scores = per_query_ndcg(lists, data.dev, served_setting(fusion, available))
    return round(sum(scores.values()) / max(1, len(scores)), 4)


def _served_report(
    config: AdaptConfig,
    data: TrainingData,
    before: ServedCandidate,
    chosen: ServedCandidate,
    base_dense: DenseEncoderConfig | None,
    chosen_dense: DenseEncoderConfig | None,
    decision: dict[str, Any],
) -> EvaluationReport:
    """The choice as an evaluation report, so ``promote`` gates on what it promotes."""
    systems = [
        {"name": before.name, "dense": plain(base_dense), "fusion": to_plain(before.fusion)},
        {"name": chosen.name, "dense": plain(chosen_dense), "fusion": to_plain(chosen.fusion)},
    ]
    values = {before.name: decision["baseline"]["value"], chosen.name: decision["candidate"]["value"]}
    return EvaluationReport(
        config={"systems": systems, "gate": "served nDCG@10 on the test questions", "candidates": list(config.candidates)},
        queries=len(data.test),
        corpus_chunks=len(data.corpus),
        results={name: {"served": {"ndcg@10": value}} for name, value in values.items()},
        collections={},
        seconds={},
        decision=decision,
    )


def _adapt_dense(
    engine: Engine,
    config: AdaptConfig,
    data: TrainingData,
    console: _Console,
    base_dense: DenseEncoderConfig,
    base_sparse: SparseEncoderConfig | None,
    fusion: FusionConfig,
    progress: bool,
) -> Outcome:
    """Dense fine-tuning: the corpus re-embedded into evaluation collections, then promoted."""
    run_dir = Path(config.run_dir)
    deadline = time.monotonic() + config.budget_s * TRAIN_SHARE
    dense_config = _dense_train_config(config, base_dense)
    with console.stage("dense", f"(fine-tuning {base_dense.model}, best dev epoch kept)"):
        dense = train_dense(
            data, dense_config, run_dir / "dense", progress=progress, callbacks=_trainer_callbacks(console, deadline), report_to=config.report_to
        )
        before, after = dense.get("dev_before", {}).get(DEV_METRIC), dense.get("dev_after", {}).get(DEV_METRIC)
        if before is not None and after is not None:
            console.line(f"  dev nDCG@10 {before:.4f} -> {after:.4f} (kept: {dense.get('best_checkpoint') or 'last epoch'})")
        curve = _curve(run_dir, dense, console)

    tuned_dense = replace(base_dense, model=str(run_dir / "dense" / "model"), kind="sentence-transformers")
    evaluation = EvalConfig(
        systems=(System("before", dense=base_dense, sparse=base_sparse), System("after", dense=tuned_dense, sparse=base_sparse)),
        baseline="before",
        candidate="after",
        fusion=fusion,
        k=config.k,
        depth=config.depth,
        min_gain=config.min_gain,
        max_p_value=config.max_p_value,
        max_queries=config.max_eval_queries,
        device=config.device,
    )
    with console.stage("evaluate", f"(served before vs after on {len(data.test)} held-out questions)"):
        report: EvaluationReport = evaluate_systems(data, evaluation, run_dir / "evaluation", progress=progress)
        console.line((run_dir / "evaluation" / "evaluation.md").read_text(encoding="utf-8"))

    decision = report.decision
    promotion: dict[str, Any] | None = None
    with console.stage("promote"):
        if not config.promote:
            promoted, reason = False, "measured only (--no-promote)"
        elif not report.candidate_is_better:
            promoted, reason = False, _refusal(decision)
        else:
            alias, source = _promotion_target(engine, config)
            try:
                result = promote(engine, alias, dense=tuned_dense, evaluation=report, source=source, progress=progress)
            except PromotionRefused as error:
                promoted, reason = False, f"refused: {error}"
            else:
                promotion = result.to_dict()
                promoted = True
                reason = f"promoted: {alias!r} now serves {result.collection} (fine-tuned dense, {_gain(decision)})"
        console.line(f"  chose: {reason}")
    return promoted, reason, decision, promotion, curve


def _gain(decision: dict[str, Any]) -> str:
    p_value = decision.get("p_value")
    p_text = f", p = {p_value:.4f}" if p_value is not None else ""
    return f"{decision['metric']} {decision['baseline']['value']:.4f} -> {decision['candidate']['value']:.4f}{p_text}"


def _refusal(decision: dict[str, Any]) -> str:
    required = f"gain > {decision['min_gain']}"
    if decision.get("max_p_value") is not None:
        required += f" with p <= {decision['max_p_value']}"
    return f"kept the served configuration: {_gain(decision)} does not pass the gate ({required})"
