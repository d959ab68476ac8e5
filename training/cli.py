"""``hybrid-search train ...``: one subcommand per stage, and ``all``.

Thin: each command turns its options into a typed config and calls the stage's
function; every check lives in the configs. Also runnable on its own as
``python -m training.cli``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from hybrid_search.errors import HybridSearchError
from hybrid_search.settings import LayeredSettings, parse_weights

__all__ = ["adapt_command", "train_app"]

train_app = typer.Typer(
    name="train",
    help="Fine-tune the dense embedder, the learned-sparse head and the reranker on your own data, evaluate, promote.",
    no_args_is_help=True,
    add_completion=False,
)

DataDir = Annotated[Path, typer.Option("--data", help="Data folder written by `train data`.")]
Device = Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps (default: --device, [runtime] device, HYBRID_SEARCH_DEVICE, auto).")]
# The same --uri/--token as every hybrid-search command (--store kept for old scripts).
Uri = Annotated[Optional[str], typer.Option("--uri", "--store", help="Milvus URI (default: --uri, [store] uri, HYBRID_SEARCH_URI, hybrid_search.db).")]
Token = Annotated[Optional[str], typer.Option("--token", help="Milvus token (default: --token, [store] token, HYBRID_SEARCH_TOKEN).")]
# LLM questions (train data, adapt): an OpenAI-compatible endpoint.
LlmBaseUrl = Annotated[Optional[str], typer.Option(help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1: LLM questions.")]
LlmModel = Annotated[Optional[str], typer.Option(help="Model name at the LLM endpoint.")]
LlmKeyEnv = Annotated[str, typer.Option(help="Environment variable holding the API key.")]
LlmConcurrency = Annotated[int, typer.Option(help="Requests in flight at once.")]
QuestionsPerChunk = Annotated[int, typer.Option(help="LLM questions per chunk.")]


def _llm_config(base_url: Optional[str], model: Optional[str], key_env: str, concurrency: int, per_chunk: int):  # noqa: ANN202
    """The LLM settings when an endpoint or model is named, else None (no LLM)."""
    from .llm_questions import LLMConfig

    if not (base_url or model):
        return None
    return LLMConfig(base_url=base_url or "", model=model or "", api_key_env=key_env, concurrency=concurrency, questions_per_chunk=per_chunk)


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2 if isinstance(error, (ValueError, ImportError)) else 1)


def _device(ctx: typer.Context, device: Optional[str]) -> str:
    return LayeredSettings.of(ctx).get("runtime", "device", device)


def _engine(ctx: typer.Context, uri: Optional[str], token: Optional[str]):  # noqa: ANN202
    from hybrid_search.engine import Engine

    settings = LayeredSettings.of(ctx)
    return Engine(settings.store_config(uri, token), runtime=settings.runtime_config())


def _dense_config(model: Optional[str], kind: str, query_prompt: Optional[str] = None, document_prompt: Optional[str] = None):  # noqa: ANN202
    from hybrid_search.config import DenseEncoderConfig

    return None if not model else DenseEncoderConfig(model=model, kind=kind, query_prompt=query_prompt, document_prompt=document_prompt)  # type: ignore[arg-type]


def _sparse_config(model: Optional[str], kind: str):  # noqa: ANN202
    from hybrid_search.config import SparseEncoderConfig

    return None if not model else SparseEncoderConfig(model=model, kind=kind)  # type: ignore[arg-type]


@train_app.command("data")
def data_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder to write the data into.")],
    beir: Annotated[Optional[Path], typer.Option(help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/).")] = None,
    pairs: Annotated[Optional[Path], typer.Option(help="JSONL of {query, pos, neg} pairs or triplets.")] = None,
    collection: Annotated[Optional[str], typer.Option(help="An indexed collection to make questions from.")] = None,
    uri: Uri = None,
    token: Token = None,
    train_split: Annotated[str, typer.Option(help="BEIR qrels split to train on.")] = "train",
    test_split: Annotated[str, typer.Option(help="BEIR qrels split held back for the report.")] = "test",
    labels: Annotated[bool, typer.Option("--labels/--no-labels", help="Train on the given labels.")] = True,
    pseudo: Annotated[str, typer.Option(help="Offline pseudo-queries: none, or a comma list of inverse-cloze, keywords, title.")] = "none",
    pseudo_per_chunk: Annotated[int, typer.Option(help="Pseudo-queries of each kind per chunk.")] = 2,
    max_pseudo_chunks: Annotated[Optional[int], typer.Option(help="Make pseudo-queries from at most this many chunks.")] = None,
    language: Annotated[str, typer.Option(help="en or zh (keyword extraction).")] = "en",
    llm_base_url: LlmBaseUrl = None,
    llm_model: LlmModel = None,
    llm_api_key_env: LlmKeyEnv = "OPENAI_API_KEY",
    llm_concurrency: LlmConcurrency = 4,
    questions_per_chunk: QuestionsPerChunk = 2,
    split: Annotated[str, typer.Option(help="labels (BEIR test split = test documents) or random.")] = "labels",
    test_fraction: Annotated[float, typer.Option(help="Share of documents held out for test (split=random).")] = 0.2,
    dev_fraction: Annotated[float, typer.Option(help="Share of the remaining documents held out for dev.")] = 0.1,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Build a data folder: corpus, document-level split, training examples, held-out queries."""
    try:
        from .data import DataConfig, build_training_data
        from .pseudo_queries import PseudoQueryConfig

        sources = [name for name, value in (("beir", beir), ("jsonl", pairs), ("collection", collection)) if value]
        if len(sources) != 1:
            raise HybridSearchError("give exactly one of --beir, --pairs, --collection")
        kinds = tuple(k.strip() for k in pseudo.split(",") if k.strip() and k.strip() != "none")
        llm = _llm_config(llm_base_url, llm_model, llm_api_key_env, llm_concurrency, questions_per_chunk)
        config = DataConfig(
            source=sources[0],  # type: ignore[arg-type]
            path=str(beir or pairs) if (beir or pairs) else None,
            collection=collection,
            train_split=train_split,
            test_split=test_split if beir else None,
            use_labels=labels,
            pseudo=PseudoQueryConfig(kinds=kinds, per_chunk=pseudo_per_chunk, language=language, seed=seed) if kinds else None,  # type: ignore[arg-type]
            llm=llm,
            split=split if beir else "random",  # type: ignore[arg-type]
            test_fraction=test_fraction,
            dev_fraction=dev_fraction,
            max_pseudo_chunks=max_pseudo_chunks,
            seed=seed,
        )
        engine = _engine(ctx, uri, token) if collection else None
        data = build_training_data(config, out, engine=engine)
        typer.echo(json.dumps(data.manifest["stats"], indent=2))
    except HybridSearchError as error:
        _fail(error)


@train_app.command("negatives")
def negatives_command(
    ctx: typer.Context,
    data: DataDir,
    dense_model: Annotated[Optional[str], typer.Option(help="Dense model of the mining collection (the base model).")] = None,
    dense_kind: Annotated[str, typer.Option(help="sentence-transformers or bge-m3.")] = "sentence-transformers",
    sparse_model: Annotated[Optional[str], typer.Option(help="Learned-sparse model of the mining collection.")] = None,
    sparse_kind: Annotated[str, typer.Option(help="splade or bge-m3.")] = "splade",
    depth: Annotated[int, typer.Option(help="Candidates per path.")] = 50,
    max_rank: Annotated[int, typer.Option(help="Look at fused ranks 1..max-rank.")] = 30,
    skip_top: Annotated[int, typer.Option(help="Skip this many top non-positive candidates.")] = 0,
    margin: Annotated[float, typer.Option(help="Drop candidates scoring above margin x the positive (dense); 1 disables.")] = 0.95,
    num_negatives: Annotated[int, typer.Option(help="Negatives kept per query.")] = 7,
    cross_encoder: Annotated[Optional[str], typer.Option(help="Cross-encoder that vetoes candidates it scores above the positive.")] = None,
    language: Annotated[str, typer.Option(help="en or zh (BM25 analyzer).")] = "en",
    device: Device = None,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Mine hard negatives for the train examples with the engine's hybrid search."""
    try:
        from hybrid_search.config import RerankConfig

        from .data import load_training_data
        from .negatives import MiningConfig, mine_negatives

        config = MiningConfig(
            dense=_dense_config(dense_model, dense_kind),
            sparse=_sparse_config(sparse_model, sparse_kind),
            language=language,
            depth=depth,
            max_rank=max_rank,
            skip_top=skip_top,
            margin=min(margin, 1.0),
            margin_check=margin < 1.0,
            num_negatives=num_negatives,
            cross_encoder=RerankConfig(model=cross_encoder, kind="cross-encoder") if cross_encoder else None,
            device=_device(ctx, device),  # type: ignore[arg-type]
            seed=seed,
        )
        stats = mine_negatives(load_training_data(data), config, force=True)
        typer.echo(stats.summary())
    except HybridSearchError as error:
        _fail(error)


@train_app.command("dense")
def dense_command(
    ctx: typer.Context,
    data: DataDir,
    base_model: Annotated[str, typer.Option(help="Model to start from (folder or hub id).")],
    out: Annotated[Path, typer.Option(help="Run folder.")],
    loss: Annotated[str, typer.Option(help="mnrl or cached-mnrl.")] = "mnrl",
    epochs: Annotated[float, typer.Option()] = 3.0,
    batch_size: Annotated[int, typer.Option()] = 32,
    mini_batch_size: Annotated[int, typer.Option(help="cached-mnrl: texts per forward pass.")] = 16,
    learning_rate: Annotated[float, typer.Option()] = 2e-5,
    warmup_ratio: Annotated[float, typer.Option()] = 0.1,
    max_seq_length: Annotated[int, typer.Option()] = 256,
    num_negatives: Annotated[int, typer.Option(help="Hard negatives per example.")] = 3,
    matryoshka: Annotated[str, typer.Option(help="Comma list of Matryoshka dimensions, largest first.")] = "",
    query_prompt: Annotated[Optional[str], typer.Option(help="Prompt before queries, saved with the model.")] = None,
    document_prompt: Annotated[Optional[str], typer.Option(help="Prompt before documents.")] = None,
    keep: Annotated[str, typer.Option(help="Saved weights: last (epoch) or best-dev (best dev nDCG@10).")] = "last",
    device: Device = None,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Fine-tune a sentence-transformers embedder (MNRL, in-batch + hard negatives)."""
    try:
        from .data import load_training_data
        from .embedder import DenseTrainConfig, train_dense

        config = DenseTrainConfig(
            base_model=base_model,
            loss=loss,  # type: ignore[arg-type]
            matryoshka_dims=tuple(int(d) for d in matryoshka.split(",") if d.strip()),
            epochs=epochs,
            batch_size=batch_size,
            mini_batch_size=mini_batch_size,
            learning_rate=learning_rate,
            warmup_ratio=warmup_ratio,
            max_seq_length=max_seq_length,
            num_negatives=num_negatives,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
            keep=keep,  # type: ignore[arg-type] - checked on construction
            device=_device(ctx, device),  # type: ignore[arg-type]
            seed=seed,
        )
        metrics = train_dense(load_training_data(data), config, out)
        typer.echo(json.dumps(metrics, indent=2))
    except HybridSearchError as error:
        _fail(error)


@train_app.command("sparse")
def sparse_command(
    ctx: typer.Context,
    data: DataDir,
    base_model: Annotated[str, typer.Option(help="BGE-M3, or any encoder (its sparse head starts untrained).")],
    out: Annotated[Path, typer.Option(help="Run folder.")],
    epochs: Annotated[float, typer.Option()] = 2.0,
    batch_size: Annotated[int, typer.Option()] = 8,
    group_size: Annotated[int, typer.Option(help="1 positive + group-size - 1 negatives.")] = 4,
    learning_rate: Annotated[float, typer.Option()] = 2e-5,
    passage_max_len: Annotated[int, typer.Option()] = 256,
    query_max_len: Annotated[int, typer.Option()] = 64,
    colbert: Annotated[bool, typer.Option("--colbert/--no-colbert", help="Train the colbert head too.")] = True,
    train_encoder: Annotated[bool, typer.Option("--train-encoder/--heads-only", help="Also update the encoder.")] = True,
    mode: Annotated[str, typer.Option(help="in-process or subprocess.")] = "in-process",
    objective: Annotated[
        str, typer.Option(help="unified (FlagEmbedding's dense + sparse + colbert loss) or sparse-only (the sparse head alone on its own loss; needs --heads-only).")
    ] = "unified",
    temperature: Annotated[float, typer.Option(help="Softmax temperature of the contrastive loss.")] = 0.02,
    device: Device = None,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """BGE-M3-style fine-tuning of the learned-sparse head (unified or sparse-only) with a collapse check."""
    try:
        from .data import load_training_data
        from .sparse import SparseTrainConfig, train_sparse

        config = SparseTrainConfig(
            base_model=base_model,
            epochs=epochs,
            batch_size=batch_size,
            group_size=group_size,
            learning_rate=learning_rate,
            passage_max_len=passage_max_len,
            query_max_len=query_max_len,
            colbert=colbert,
            train_encoder=train_encoder,
            mode=mode,  # type: ignore[arg-type]
            objective=objective,  # type: ignore[arg-type]
            temperature=temperature,
            device=_device(ctx, device),  # type: ignore[arg-type]
            seed=seed,
        )
        metrics = train_sparse(load_training_data(data), config, out)
        typer.echo(json.dumps(metrics, indent=2))
    except HybridSearchError as error:
        _fail(error)


@train_app.command("reranker")
def reranker_command(
    ctx: typer.Context,
    data: DataDir,
    base_model: Annotated[str, typer.Option(help="A reranker, or an encoder (new classification head).")],
    out: Annotated[Path, typer.Option(help="Run folder.")],
    loss: Annotated[str, typer.Option(help="bce or listwise.")] = "bce",
    num_negatives: Annotated[int, typer.Option()] = 7,
    epochs: Annotated[float, typer.Option()] = 3.0,
    batch_size: Annotated[int, typer.Option()] = 32,
    learning_rate: Annotated[float, typer.Option()] = 3e-5,
    max_length: Annotated[int, typer.Option()] = 384,
    long_passages: Annotated[str, typer.Option(help="truncate, or max-window: train on each passage's best window.")] = "truncate",
    language: Annotated[str, typer.Option(help="en or zh: the analyzer that picks the best window.")] = "en",
    device: Device = None,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Fine-tune a cross-encoder reranker on the mined hard negatives."""
    try:
        from .data import load_training_data
        from .reranker import RerankerTrainConfig, train_reranker

        config = RerankerTrainConfig(
            base_model=base_model,
            loss=loss,  # type: ignore[arg-type]
            num_negatives=num_negatives,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_length=max_length,
            long_passages=long_passages,  # type: ignore[arg-type]
            language=language,  # type: ignore[arg-type]
            device=_device(ctx, device),  # type: ignore[arg-type]
            seed=seed,
        )
        metrics = train_reranker(load_training_data(data), config, out)
        typer.echo(json.dumps(metrics, indent=2))
    except HybridSearchError as error:
        _fail(error)


@train_app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    data: DataDir,
    out: Annotated[Path, typer.Option(help="Folder for evaluation.json / evaluation.md.")],
    base_dense: Annotated[Optional[str], typer.Option(help="Dense model in service (baseline).")] = None,
    base_sparse: Annotated[Optional[str], typer.Option(help="Sparse model in service (baseline).")] = None,
    base_sparse_kind: Annotated[str, typer.Option(help="splade or bge-m3.")] = "splade",
    dense: Annotated[Optional[str], typer.Option(help="Trained dense model folder.")] = None,
    sparse: Annotated[Optional[str], typer.Option(help="Trained M3 sparse model folder.")] = None,
    reranker: Annotated[Optional[str], typer.Option(help="Trained cross-encoder folder.")] = None,
    scope: Annotated[str, typer.Option(help="all (index every chunk) or test (held-out documents only).")] = "all",
    rerank_top_n: Annotated[int, typer.Option()] = 30,
    rerank_max_length: Annotated[int, typer.Option(help="Reranker input length (as trained).")] = 512,
    rerank_long_passages: Annotated[str, typer.Option(help="truncate or max-window (as trained).")] = "truncate",
    rerank_first_stage_weight: Annotated[
        float, typer.Option(help="Weight of the first-stage score in the reranked order (0: rerank score alone); choose it on dev queries.")
    ] = 0.0,
    tune_first_stage_weight: Annotated[
        bool, typer.Option("--tune-first-stage-weight", help="Choose the first-stage weight on the dev queries (w = 0, 0.1, ..., 1).")
    ] = False,
    max_queries: Annotated[Optional[int], typer.Option()] = None,
    language: Annotated[str, typer.Option(help="en or zh (BM25 analyzer).")] = "en",
    fusion: Annotated[str, typer.Option(help="Hybrid fusion: rrf or weighted (tuned on a dev split, as served).")] = "rrf",
    normalization: Annotated[str, typer.Option(help="weighted fusion: min-max, z-score or none.")] = "min-max",
    weights: Annotated[Optional[str], typer.Option(help="Per-path weights, e.g. bm25=0.8,dense=0.2.")] = None,
    k: Annotated[int, typer.Option(help="Hits scored per query.")] = 100,
    tuned_rows: Annotated[Optional[str], typer.Option(help="Only these rows for the tuned system, e.g. hybrid+rerank (the rest as base).")] = None,
    min_gain: Annotated[float, typer.Option(help="The gate needs the served row's gain above this.")] = 0.0,
    max_p_value: Annotated[
        Optional[float], typer.Option(help="The gate also needs the paired randomization test's p-value at most this (e.g. 0.05).")
    ] = None,
    device: Device = None,
) -> None:
    """Before/after through the engine on the held-out split: each path, hybrid, hybrid + rerank."""
    try:
        from hybrid_search.config import FusionConfig, RerankConfig

        from .data import load_training_data
        from .evaluate import EvalConfig, System, evaluate_systems

        base_dense_config = _dense_config(base_dense, "sentence-transformers")
        base_sparse_config = _sparse_config(base_sparse, base_sparse_kind)
        rerank_config = (
            RerankConfig(
                model=reranker,
                kind="cross-encoder",
                top_n=rerank_top_n,
                max_length=rerank_max_length,
                long_passages=rerank_long_passages,  # type: ignore[arg-type] - checked on construction
                first_stage_weight=rerank_first_stage_weight,
            )
            if reranker
            else None
        )
        systems = [
            System("base", dense=base_dense_config, sparse=base_sparse_config),
            System(
                "tuned",
                dense=_dense_config(dense, "sentence-transformers") or base_dense_config,
                sparse=_sparse_config(sparse, "bge-m3") or base_sparse_config,
                reranker=rerank_config,
                rows=tuple(r.strip() for r in tuned_rows.split(",")) if tuned_rows else None,
            ),
        ]
        config = EvalConfig(
            systems=tuple(systems),
            baseline="base",
            candidate="tuned",
            scope=scope,  # type: ignore[arg-type]
            rerank_top_n=rerank_top_n,
            max_queries=max_queries,
            k=k,
            fusion=FusionConfig(method=fusion, normalization=normalization, weights=parse_weights(weights) or {}),  # type: ignore[arg-type]
            language=language,  # type: ignore[arg-type]
            device=_device(ctx, device),  # type: ignore[arg-type]
            tune_first_stage_weight=tune_first_stage_weight,
            min_gain=min_gain,
            max_p_value=max_p_value,
        )
        report = evaluate_systems(load_training_data(data), config, out)
        typer.echo((out / "evaluation.md").read_text(encoding="utf-8"))
        if not report.candidate_is_better:
            typer.secho("the tuned system is not better than the base: promotion will refuse it unless forced", fg=typer.colors.YELLOW)
    except HybridSearchError as error:
        _fail(error)


@train_app.command("promote")
def promote_command(
    ctx: typer.Context,
    alias: Annotated[str, typer.Option(help="The name searches use; it will point at <alias>_v<N>.")],
    uri: Uri = None,
    token: Token = None,
    source: Annotated[Optional[str], typer.Option(help="Collection in service, for a first promotion.")] = None,
    dense: Annotated[Optional[str], typer.Option(help="New dense model folder; served as the evaluation measured it (kind, prompts, max_length).")] = None,
    sparse: Annotated[Optional[str], typer.Option(help="New sparse model folder; served as the evaluation measured it.")] = None,
    dense_kind: Annotated[Optional[str], typer.Option(help="Override: sentence-transformers or bge-m3 (default: as evaluated, else sentence-transformers).")] = None,
    sparse_kind: Annotated[Optional[str], typer.Option(help="Override: bge-m3 or splade (default: as evaluated, else bge-m3).")] = None,
    query_prompt: Annotated[Optional[str], typer.Option(help="Override the dense query prompt (default: as evaluated).")] = None,
    document_prompt: Annotated[Optional[str], typer.Option(help="Override the dense document prompt (default: as evaluated).")] = None,
    evaluation: Annotated[Optional[Path], typer.Option(help="evaluation.json that must find the new configuration better.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Promote even if not better (or not evaluated).")] = False,
    abort: Annotated[bool, typer.Option("--abort", help="Give up an unfinished promotion behind the alias (drops the half-built version).")] = False,
    batch_size: Annotated[int, typer.Option(help="Chunks re-embedded per batch.")] = 64,
) -> None:
    """Copy the served collection into a new version with the new model's vectors and switch the alias atomically.
    An interrupted promotion is finished by running the same command again."""
    try:
        from .promote import abort_promotion, promote, promoted_encoders

        with _engine(ctx, uri, token) as engine:
            if abort:
                dropped = abort_promotion(engine, alias)
                typer.echo(json.dumps({"alias": alias, "aborted": dropped is not None, "dropped": dropped}, indent=2))
                return
            dense_config, sparse_config = promoted_encoders(
                evaluation,
                dense=dense,
                sparse=sparse,
                dense_overrides={"kind": dense_kind, "query_prompt": query_prompt, "document_prompt": document_prompt},
                sparse_overrides={"kind": sparse_kind},
            )
            result = promote(
                engine, alias, dense=dense_config, sparse=sparse_config, evaluation=evaluation, source=source, force=force, batch_size=batch_size
            )
        typer.echo(json.dumps(result.to_dict(), indent=2))
    except HybridSearchError as error:
        _fail(error)


@train_app.command("retire")
def retire_command(
    ctx: typer.Context,
    alias: Annotated[str, typer.Option(help="The alias whose old version to drop.")],
    collection: Annotated[str, typer.Option(help="The old version to drop.")],
    uri: Uri = None,
    token: Token = None,
) -> None:
    """Drop an old version (never the one the alias serves)."""
    try:
        from .promote import retire_version

        with _engine(ctx, uri, token) as engine:
            retire_version(engine, alias, collection)
        typer.echo(f"dropped {collection}")
    except HybridSearchError as error:
        _fail(error)


@train_app.command("all")
def all_command(
    config: Annotated[Path, typer.Option("--config", help="Pipeline config (TOML or JSON).")],
    out: Annotated[Optional[str], typer.Option(help="Override the config's output folder.")] = None,
    data_path: Annotated[Optional[Path], typer.Option(help="The training data (BEIR folder or JSONL), instead of the config's [data] path.")] = None,
) -> None:
    """Chain every stage from one config file; re-running resumes where it stopped."""
    try:
        from .pipeline import load_pipeline_config, run_pipeline

        run_pipeline(load_pipeline_config(config, out=out, data_path=data_path))
    except HybridSearchError as error:
        _fail(error)


if __name__ == "__main__":  # pragma: no cover
    train_app()


def adapt_command(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option("--collection", "-C", help="The collection or alias to adapt (its chunks are the training corpus).")],
    questions: Annotated[
        Optional[Path], typer.Option(help="Labelled questions: JSONL of {query, chunk_ids|doc_ids}, or a BEIR folder (queries.jsonl, qrels/) naming doc ids.")
    ] = None,
    budget: Annotated[str, typer.Option(help="Time budget, e.g. 15m, 900s, 1h; training stops when its share is spent.")] = "15m",
    run_dir: Annotated[Optional[Path], typer.Option(help="Run folder (re-run the same command to resume). Default: adapt-runs/<collection>.")] = None,
    alias: Annotated[Optional[str], typer.Option(help="Alias to serve the adapted version under, when --collection is a plain collection.")] = None,
    promote: Annotated[bool, typer.Option("--promote/--no-promote", help="Promote when the gate passes (--no-promote: measure only).")] = True,
    candidates: Annotated[
        str,
        typer.Option(
            help="What may change, comma-separated: fusion (re-tuned on dev), adapter (linear query adapter, no re-embedding); "
            "or dense alone (fine-tunes the dense model and re-embeds). The best on dev is gated on test."
        ),
    ] = "fusion,adapter",
    dev_fraction: Annotated[float, typer.Option(help="Share of documents (after test) whose questions choose on dev.")] = 0.1,
    test_fraction: Annotated[float, typer.Option(help="Share of documents whose questions the gate judges on.")] = 0.2,
    adapter_epochs: Annotated[int, typer.Option(help="Query adapter epochs (the best dev epoch is kept; 0 = identity).")] = 20,
    epochs: Annotated[float, typer.Option(help="Dense fine-tuning epochs (the best dev epoch is kept).")] = 3.0,
    max_seq_length: Annotated[int, typer.Option(help="Dense fine-tuning: tokens per text (the tuned model is served at this length).")] = 256,
    batch_size: Annotated[int, typer.Option(help="Training batch size (in-batch negatives).")] = 32,
    num_negatives: Annotated[int, typer.Option(help="Hard negatives per training question.")] = 3,
    learning_rate: Annotated[float, typer.Option(help="Dense fine-tuning learning rate.")] = 2e-5,
    max_p_value: Annotated[float, typer.Option(help="The gate needs the paired test's p-value <= this.")] = 0.05,
    min_gain: Annotated[float, typer.Option(help="The gate needs nDCG@10 to rise by more than this.")] = 0.0,
    max_eval_queries: Annotated[Optional[int], typer.Option(help="Evaluate on at most this many held-out questions.")] = None,
    report_to: Annotated[str, typer.Option(help="none, tensorboard or wandb (when installed): training logs there too.")] = "none",
    llm_base_url: LlmBaseUrl = None,
    llm_model: LlmModel = None,
    llm_api_key_env: LlmKeyEnv = "OPENAI_API_KEY",
    llm_concurrency: LlmConcurrency = 4,
    questions_per_chunk: QuestionsPerChunk = 2,
    device: Device = None,
    uri: Uri = None,
    token: Token = None,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Adapt a collection to its own text in one command: training data (your questions, an LLM's, or
    pseudo-queries), hard negatives, a query adapter and/or fusion re-tuned on dev (or dense fine-tuning),
    served before/after on held-out questions with a paired test, and promotion only when the gate passes.
    Re-run to resume."""
    try:
        from .adapt import AdaptConfig, parse_budget, run_adapt
        from .adapter import AdapterTrainConfig

        llm = _llm_config(llm_base_url, llm_model, llm_api_key_env, llm_concurrency, questions_per_chunk)
        if questions is not None and llm is not None:
            raise HybridSearchError("give --questions or an LLM endpoint, not both")
        config = AdaptConfig(
            collection=collection,
            run_dir=str(run_dir or Path("adapt-runs") / collection),
            questions=str(questions) if questions is not None else None,
            llm=llm,
            alias=alias,
            promote=promote,
            budget_s=parse_budget(budget),
            candidates=tuple(c.strip() for c in candidates.split(",") if c.strip()),  # type: ignore[arg-type]
            dev_fraction=dev_fraction,
            test_fraction=test_fraction,
            adapter=AdapterTrainConfig(epochs=adapter_epochs, batch_size=batch_size, num_negatives=num_negatives),
            epochs=epochs,
            max_seq_length=max_seq_length,
            num_negatives=num_negatives,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_p_value=max_p_value,
            min_gain=min_gain,
            max_eval_queries=max_eval_queries,
            report_to=report_to,  # type: ignore[arg-type]
            device=_device(ctx, device),  # type: ignore[arg-type]
            seed=seed,
        )
        with _engine(ctx, uri, token) as engine:
            result = run_adapt(engine, config)
        typer.echo(result.reason)
    except HybridSearchError as error:
        _fail(error)
