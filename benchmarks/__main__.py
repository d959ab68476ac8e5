"""``python -m benchmarks ...``: quality, conditions, tune, fusion-study, collapse-effect, speed, overhead, coldstart, bm25, scale, load, ingest-throughput, backends,
and the training-run measurements (training-run, training-fusion, rerank-offload, rerank-weights: ``training_commands``).

Each subcommand lives in its own module and is imported only when it runs, so
``--help`` is instant and a missing optional dependency only affects the
command that needs it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Benchmarks of hybrid-search: retrieval quality on BEIR sets, speed, BM25 implementations, scale.",
)


@app.callback()
def _root(
    threads: int | None = typer.Option(
        None, help="torch CPU threads (default: torch's choice); 1 avoids thread oversubscription on a shared, loaded machine"
    ),
) -> None:
    """Benchmarks of hybrid-search (run from the repository root)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


CACHE_HELP = "cache folder for indexes and candidate runs (git-ignored)"
DEVICE_HELP = "device for the encoders: cpu, cuda or auto"


def _runtime(device: str, batch_size: int, fp16: bool):
    from hybrid_search.config import RuntimeConfig

    return RuntimeConfig(device=device, batch_size=batch_size, fp16=fp16)  # type: ignore[arg-type]


def _spec(
    dataset: str, dense: str | None, sparse: str | None, language: str | None, dense_kind: str | None, sparse_kind: str | None
):
    from .beir import load_beir
    from .indexes import IndexSpec
    from .presets import (
        analyzer_config,
        dataset_path,
        dense_config,
        preset_for,
        require_model_folder,
        sparse_config,
    )

    name, folder = dataset_path(dataset)
    preset = preset_for(name)
    dense_model = dense_config(dense if dense is not None else preset.dense, dense_kind)
    sparse_model = sparse_config(sparse if sparse is not None else preset.sparse, sparse_kind)
    require_model_folder(dense_model.model if dense_model else None, "--dense")
    require_model_folder(sparse_model.model if sparse_model else None, "--sparse")
    data = load_beir(folder, name)
    return IndexSpec(dataset=data, dense=dense_model, sparse=sparse_model, analyzer=analyzer_config(language or preset.language)), preset


@app.command()
def index(
    dataset: str = typer.Argument(..., help="preset name (nvidia_sec_10k, scifact, cranfield, cmrc2018) or BEIR folder"),
    dense: str | None = typer.Option(None, help="dense model alias/folder/hub id, or 'none' (default: the preset's)"),
    sparse: str | None = typer.Option(None, help="sparse model alias/folder/hub id, or 'none' (default: the preset's)"),
    language: str | None = typer.Option(None, help="BM25 analyzer language: en or zh (default: the preset's)"),
    dense_kind: str | None = typer.Option(None, help="sentence-transformers or bge-m3"),
    sparse_kind: str | None = typer.Option(None, help="splade or bge-m3"),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    batch_size: int = typer.Option(32, help="encoder batch size"),
    fp16: bool = typer.Option(False, help="half precision on GPU (off: same vectors as a CPU run)"),
    cache: Path = typer.Option(Path("runs"), help=CACHE_HELP),
    uri: str | None = typer.Option(None, help="Milvus server URI instead of a cached Milvus Lite file"),
    rebuild: bool = typer.Option(False, help="drop and rebuild the cached index"),
) -> None:
    """Index a BEIR set once (cached under runs/index/; every other command reuses it)."""
    from .indexes import open_index

    spec, _ = _spec(dataset, dense, sparse, language, dense_kind, sparse_kind)
    opened = open_index(spec, cache=cache, runtime=_runtime(device, batch_size, fp16), store_uri=uri, rebuild=rebuild)
    typer.echo(f"{opened.uri} ({opened.collection}): {opened.meta.get('chunks')} chunks, key {spec.key()}")


def _out(out: Path | None, dataset_name: str) -> Path:
    return out if out is not None else Path("benchmarks") / "results" / dataset_name


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@app.command()
def quality(
    dataset: str = typer.Argument(..., help="preset name (nvidia_sec_10k, scifact, cranfield, cmrc2018) or BEIR folder"),
    split: str = typer.Option("test", help="qrels split to score"),
    conditions: str = typer.Option(
        "all", help="'all', or comma-separated: bm25,dense,bm25+dense,bm25+sparse+dense,default,tuned,bm25+dense>rerank"
    ),
    keep_others: bool = typer.Option(
        False,
        "--keep-others",
        help="keep the conditions of the earlier OUT/quality.json (same index and queries) that this run does not re-run",
    ),
    highlight: bool = typer.Option(
        True, help="matched-term highlighting on every hit (off: no ranking change, less CPU per query; latency then excludes it)"
    ),
    dense: str | None = typer.Option(None, help="dense model alias/folder/hub id, or 'none' (default: the preset's)"),
    sparse: str | None = typer.Option(None, help="sparse model alias/folder/hub id, or 'none' (default: the preset's)"),
    language: str | None = typer.Option(None, help="BM25 analyzer language: en or zh (default: the preset's)"),
    dense_kind: str | None = typer.Option(None, help="sentence-transformers or bge-m3"),
    sparse_kind: str | None = typer.Option(None, help="splade or bge-m3"),
    fusion: str = typer.Option("rrf", help="fusion of the combined conditions: rrf or weighted"),
    rrf_k: int = typer.Option(60, help="RRF k"),
    normalization: str = typer.Option("min-max", help="weighted fusion: min-max, z-score or none"),
    reranker: str | None = typer.Option(None, help="reranker checkpoint (folder or hub id): adds '>rerank' conditions"),
    rerank_kind: str = typer.Option("cross-encoder", help="cross-encoder or flag"),
    rerank_top_n: int = typer.Option(50, help="candidates reranked per query"),
    rerank_max_length: int = typer.Option(512, help="reranker input tokens (query + passage)"),
    rerank_long_passages: str = typer.Option("truncate", help="truncate, or max-window: score overlapping windows, keep the best"),
    tuning: Path | None = typer.Option(
        None, help="tuning.json for the 'tuned' condition (default: OUT/tuning.json when present)"
    ),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    batch_size: int = typer.Option(32, help="encoder batch size (indexing)"),
    fp16: bool = typer.Option(False, help="half precision on GPU (off: same vectors as a CPU run)"),
    k: int = typer.Option(100, help="results kept per query (Recall@100 needs 100)"),
    depth: int = typer.Option(100, help="candidates per path"),
    max_queries: int | None = typer.Option(None, help="score only the first N queries (smoke runs)"),
    sample: int | None = typer.Option(None, help="score a deterministic random sample of N queries (large query sets)"),
    sample_seed: int = typer.Option(13, help="seed of --sample"),
    cache: Path = typer.Option(Path("runs"), help=CACHE_HELP),
    uri: str | None = typer.Option(None, help="Milvus server URI instead of a cached Milvus Lite file"),
    out: Path | None = typer.Option(None, help="output folder (default benchmarks/results/DATASET)"),
) -> None:
    """Score bm25, sparse, dense, every fusion of them (and reranked) on a BEIR set: JSON, Markdown, PNG."""
    from hybrid_search.config import FusionConfig, RerankConfig

    from .presets import require_model_folder
    from .quality import run_quality

    if tuning is not None and not tuning.is_file():
        raise FileNotFoundError(f"--tuning: no such file {str(tuning)!r} (`python -m benchmarks tune` writes it)")
    require_model_folder(reranker, "--reranker")
    spec, preset = _spec(dataset, dense, sparse, language, dense_kind, sparse_kind)
    out_dir = _out(out, spec.dataset.name)
    tuning_file = tuning if tuning is not None else out_dir / "tuning.json"
    rerank_config = (
        RerankConfig(model=reranker, kind=rerank_kind, top_n=rerank_top_n, max_length=rerank_max_length, long_passages=rerank_long_passages)  # type: ignore[arg-type]
        if reranker
        else None
    )
    data = run_quality(
        spec,
        split=split,
        conditions=conditions,
        fusion=FusionConfig(method=fusion, rrf_k=rrf_k, normalization=normalization),  # type: ignore[arg-type]
        reranker=rerank_config,
        rerank_top_n=rerank_top_n if reranker else None,
        runtime=_runtime(device, batch_size, fp16),
        cache=cache,
        out_dir=out_dir,
        tuning_file=tuning_file,
        k=k,
        depth=depth,
        max_queries=max_queries,
        sample=sample,
        sample_seed=sample_seed,
        store_uri=uri,
        note=preset.note,
        keep_others=keep_others,
        highlight=highlight,
        log=_log,
    )
    from .quality import quality_markdown

    typer.echo(quality_markdown(data))


@app.command()
def tune(
    dataset: str = typer.Argument(..., help="preset name or BEIR folder"),
    split: str | None = typer.Option(
        None, help="split whose held-out part tunes fusion (default: the preset's, 'train'; 'none': k-fold CV over test)"
    ),
    dev_fraction: float = typer.Option(0.5, help="share of the tuning split's queries held out as dev"),
    folds: int = typer.Option(5, help="folds when there is no train split"),
    seed: int = typer.Option(13, help="seed of the dev split and folds"),
    store_default: bool = typer.Option(
        True, help="store the tuned fusion as the collection's default (Engine.set_fusion_defaults)"
    ),
    dense: str | None = typer.Option(None, help="dense model (default: the preset's)"),
    sparse: str | None = typer.Option(None, help="sparse model (default: the preset's)"),
    language: str | None = typer.Option(None, help="en or zh (default: the preset's)"),
    dense_kind: str | None = typer.Option(None),
    sparse_kind: str | None = typer.Option(None),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    batch_size: int = typer.Option(32),
    fp16: bool = typer.Option(False),
    cache: Path = typer.Option(Path("runs"), help=CACHE_HELP),
    uri: str | None = typer.Option(None, help="Milvus server URI instead of a cached Milvus Lite file"),
    out: Path | None = typer.Option(None, help="output folder (default benchmarks/results/DATASET)"),
) -> None:
    """Tune fusion weights, method and RRF k on a dev split (or k-fold CV): never on reported queries."""
    from .tuning import run_tuning, tuning_markdown

    spec, preset = _spec(dataset, dense, sparse, language, dense_kind, sparse_kind)
    tune_split = preset.tune_split if split is None else (None if split.lower() == "none" else split)
    if tune_split is not None and tune_split not in spec.dataset.splits:
        _log(f"{spec.dataset.name} has no {tune_split!r} split: using {folds}-fold cross-validation over test")
        tune_split = None
    result = run_tuning(
        spec,
        preset,
        cache=cache,
        runtime=_runtime(device, batch_size, fp16),
        out_dir=_out(out, spec.dataset.name),
        tune_split=tune_split,
        dev_fraction=dev_fraction,
        folds=folds,
        seed=seed,
        store_default=store_default,
        store_uri=uri,
    )
    typer.echo(tuning_markdown(result))


@app.command()
def bm25(
    dataset: str = typer.Argument(..., help="preset name or BEIR folder"),
    split: str = typer.Option("test", help="queries of this qrels split"),
    language: str | None = typer.Option(None, help="en or zh (default: the preset's)"),
    k1: float = typer.Option(1.2),
    b: float = typer.Option(0.75),
    top_k: int = typer.Option(100, help="results per query"),
    max_queries: int | None = typer.Option(None, help="only the first N queries"),
    uri: str | None = typer.Option(None, help="Milvus server URI (default: a temporary Milvus Lite file)"),
    out: Path | None = typer.Option(None, help="output folder (default benchmarks/results/DATASET)"),
) -> None:
    """The engine's BM25 path vs rank-bm25 vs bm25s: indexing docs/s, queries/s and their ratios, in one run."""
    from .beir import load_beir
    from .bm25_compare import bm25_markdown, run_bm25_compare
    from .presets import dataset_path, preset_for

    name, folder = dataset_path(dataset)
    data = run_bm25_compare(
        load_beir(folder, name),
        language=language or preset_for(name).language,
        split=split,
        k1=k1,
        b=b,
        top_k=top_k,
        max_queries=max_queries,
        out_dir=_out(out, name),
        store_uri=uri,
    )
    typer.echo(bm25_markdown(data))


@app.command()
def overhead(
    dataset: str = typer.Argument("scifact", help="preset name or BEIR folder"),
    split: str = typer.Option("test", help="queries of this qrels split"),
    max_queries: int | None = typer.Option(None, help="only the first N queries"),
    rounds: int = typer.Option(2, help="passes over the queries"),
    out: Path = typer.Option(Path("benchmarks") / "results" / "speed", help="output folder"),
) -> None:
    """BM25-only Engine.search q/s against the bare MilvusClient.search it makes, alternating, one run (ratio)."""
    from .beir import load_beir
    from .engine_overhead import overhead_markdown, run_overhead
    from .presets import dataset_path

    name, folder = dataset_path(dataset)
    data = run_overhead(load_beir(folder, name), split=split, max_queries=max_queries, rounds=rounds, out_dir=out, log=_log)
    typer.echo(overhead_markdown(data))


@app.command()
def speed(
    dataset: str = typer.Argument(..., help="preset name or BEIR folder (its queries and documents are timed)"),
    models: str | None = typer.Option(
        None, help="comma-separated encoder aliases/folders to time alone (default: the preset's dense and sparse)"
    ),
    device: list[str] = typer.Option(["cpu"], help="device(s): cpu, cuda; repeat the option for several"),
    queries: int = typer.Option(200, help="queries timed"),
    docs: int = typer.Option(256, help="documents encoded / indexed for throughput"),
    batch_size: int = typer.Option(32),
    fp16: bool | None = typer.Option(None, help="half precision (default: on for cuda, off for cpu)"),
    encoders_only: bool = typer.Option(False, help="time the encoders alone (no Milvus needed)"),
    dense: str | None = typer.Option(None, help="dense model of the pipeline (default: the preset's)"),
    sparse: str | None = typer.Option(None, help="sparse model of the pipeline (default: the preset's)"),
    language: str | None = typer.Option(None),
    reranker: str | None = typer.Option(None, help="reranker checkpoint: adds a reranked condition"),
    rerank_kind: str = typer.Option("cross-encoder"),
    rerank_top_n: int = typer.Option(50),
    cache: Path = typer.Option(Path("runs"), help=CACHE_HELP),
    uri: str | None = typer.Option(None, help="Milvus server URI"),
    out: Path | None = typer.Option(None, help="output folder (default benchmarks/results/speed)"),
) -> None:
    """Query latency per stage (p50/p95) per model and device; pipeline vs bare-encoder indexing throughput."""
    from hybrid_search.config import RerankConfig

    from .speed import run_speed, speed_markdown

    spec, preset = _spec(dataset, dense, sparse, language, None, None)
    model_list = (
        [m.strip() for m in models.split(",")]
        if models
        else [m for m in (dense or preset.dense, sparse or preset.sparse) if m and m != "none"]
    )
    from .presets import require_model_folder

    for model in [*model_list, reranker]:
        require_model_folder(model, "--models" if model != reranker else "--reranker")
    rerank_config = RerankConfig(model=reranker, kind=rerank_kind, top_n=rerank_top_n) if reranker else None  # type: ignore[arg-type]
    stem = f"speed-{spec.dataset.name}-{'-'.join(device)}"
    data = run_speed(
        spec.dataset,
        None if encoders_only else spec,
        models=model_list,
        devices=device,
        queries=queries,
        docs=docs,
        batch_size=batch_size,
        fp16=fp16,
        encoders_only=encoders_only,
        reranker=rerank_config,
        rerank_top_n=rerank_top_n,
        cache=cache,
        store_uri=uri,
        out_dir=out if out is not None else Path("benchmarks") / "results" / "speed",
        stem=stem,
        log=_log,
    )
    typer.echo(speed_markdown(data))


@app.command()
def coldstart(
    dataset: str = typer.Argument("scifact", help="preset name or BEIR folder: the documents of the collection"),
    docs: int = typer.Option(500, help="documents in the collection"),
    runs: int = typer.Option(5, help="fresh processes per case (the median is reported)"),
    dense_model: Path = typer.Option(Path("~/.cache/hybrid-search-models/all-MiniLM-L6-v2"), help="dense model folder"),
    sparse_model: str = typer.Option("~/.cache/hybrid-search-models/splade-tiny", help="SPLADE model folder, or 'none'"),
    query: str = typer.Option("what causes inflammation of the lung", help="the query searched"),
    out: Path = typer.Option(Path("benchmarks") / "results" / "speed", help="output folder"),
) -> None:
    """Wall time of a cold `hybrid-search search` (fresh process): hybrid and BM25-only, median of --runs."""
    from .coldstart import coldstart_markdown, run_coldstart
    from .presets import dataset_path
    from .report import environment, write_json, write_text

    name, folder = dataset_path(dataset)
    result = run_coldstart(
        folder,
        name,
        dense_model=dense_model.expanduser(),
        sparse_model=None if sparse_model == "none" else Path(sparse_model).expanduser(),
        docs=docs,
        runs=runs,
        query=query,
        log=_log,
    )
    result["environment"] = environment()
    stem = f"coldstart-{name}"
    write_json(out / f"{stem}.json", result)
    write_text(out / f"{stem}.md", coldstart_markdown(result))
    typer.echo(coldstart_markdown(result))


@app.command()
def scale(
    sizes: str = typer.Option("10000,100000", help="comma-separated corpus sizes"),
    with_1m: bool = typer.Option(
        False, "--with-1m", help="add a 1,000,000-row corpus (long: about 10 minutes of inserts or more)"
    ),
    dim: int = typer.Option(384, help="dense dimension (the encoder's)"),
    queries: int = typer.Option(100, help="queries per size"),
    depth: int = typer.Option(100, help="candidates per path"),
    vocab: int = typer.Option(50000, help="text vocabulary size"),
    zipf: float = typer.Option(1.1, help="Zipf exponent of word frequencies"),
    doc_terms: int = typer.Option(120, help="mean words per row"),
    sparse_nnz: int = typer.Option(64, help="non-zero sparse terms per row"),
    uri: str | None = typer.Option(None, help="Milvus server URI (default: Milvus Lite files under --work-dir)"),
    work_dir: Path = typer.Option(Path("runs/scale"), help="where the Milvus Lite files go"),
    keep: bool = typer.Option(False, help="keep the Milvus Lite files"),
    out: Path | None = typer.Option(None, help="output folder (default benchmarks/results/scale)"),
) -> None:
    """Synthetic 10k/100k(/1M) corpora: insert rate, per-path and hybrid latency, memory, disk, and their growth."""
    from .scale import run_scale, scale_markdown

    size_list = [int(s.replace("_", "")) for s in sizes.split(",") if s.strip()]
    if with_1m and 1_000_000 not in size_list:
        size_list.append(1_000_000)
    data = run_scale(
        size_list,
        out_dir=out if out is not None else Path("benchmarks") / "results" / "scale",
        work_dir=work_dir,
        store_uri=uri,
        dim=dim,
        queries=queries,
        depth=depth,
        keep=keep,
        corpus_options={"vocab": vocab, "zipf": zipf, "doc_terms": doc_terms, "sparse_nnz": sparse_nnz},
        log=_log,
    )
    typer.echo(scale_markdown(data))


conditions_app = typer.Typer(
    no_args_is_help=True,
    help="Named reproducible conditions with expected scores (benchmarks/conditions.toml): list, run, check, freeze.",
)
app.add_typer(conditions_app, name="conditions")
CONDITIONS_FILE_HELP = "conditions file (default benchmarks/conditions.toml)"


def _conditions_file(path: Path | None) -> Path:
    from .conditions import DEFAULT_FILE

    return path if path is not None else DEFAULT_FILE


@conditions_app.command("list")
def conditions_list(file: Path | None = typer.Option(None, help=CONDITIONS_FILE_HELP)) -> None:
    """Every condition with its expected nDCG@10 and tolerance."""
    from .conditions import load_conditions
    from .report import markdown_table

    data = load_conditions(_conditions_file(file))
    rows = [
        [c["name"], c["run"], c.get("expected", {}).get("ndcg@10"), c.get("tolerance", data.get("defaults", {}).get("tolerance"))]
        for c in data["condition"]
    ]
    typer.echo(markdown_table(["condition", "run", "expected nDCG@10", "tolerance"], rows))


def _run_conditions(names: list[str], file: Path | None, cache: Path, device: str, check: bool, out: Path | None) -> None:
    from .conditions import check_results, load_conditions, report_check, run_conditions
    from .presets import REPO_ROOT

    data = load_conditions(_conditions_file(file))
    measured = run_conditions(data, names, cache=cache, runtime=_runtime(device, 32, False), root=REPO_ROOT, log=_log)
    ok, rows = check_results(data, measured)
    typer.echo(report_check(ok, rows, out))
    if check:
        typer.echo(f"{'all conditions reproduced' if ok else 'SCORES DRIFTED beyond tolerance'} ({len(measured)} conditions)")
        if not ok:
            raise typer.Exit(1)


@conditions_app.command("run")
def conditions_run(
    names: list[str] = typer.Argument(None, help="condition names, dataset names or prefixes ending in * (default: all)"),
    file: Path | None = typer.Option(None, help=CONDITIONS_FILE_HELP),
    cache: Path = typer.Option(Path("runs"), help=CACHE_HELP),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    out: Path | None = typer.Option(None, help="also write the comparison as JSON here"),
) -> None:
    """Re-run conditions and print measured vs expected scores (never fails on drift)."""
    _run_conditions(names or [], file, cache, device, False, out)


@conditions_app.command("check")
def conditions_check(
    names: list[str] = typer.Argument(None, help="condition names, dataset names or prefixes ending in * (default: all)"),
    file: Path | None = typer.Option(None, help=CONDITIONS_FILE_HELP),
    cache: Path = typer.Option(Path("runs"), help=CACHE_HELP),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    out: Path | None = typer.Option(None, help="also write the comparison as JSON here"),
) -> None:
    """Re-run conditions; exit 1 if any score drifts beyond its tolerance."""
    _run_conditions(names or [], file, cache, device, True, out)


@conditions_app.command("freeze")
def conditions_freeze(
    quality_files: list[Path] = typer.Argument(
        ..., help="quality.json files whose conditions and scores become the expectations"
    ),
    file: Path | None = typer.Option(None, help=CONDITIONS_FILE_HELP),
) -> None:
    """(Re)write the conditions file from quality results, after a deliberate change."""
    from .conditions import freeze
    from .presets import REPO_ROOT

    target = _conditions_file(file)
    freeze(quality_files, target, root=REPO_ROOT)
    typer.echo(f"wrote {target}")


@app.command(name="fusion-study")
def fusion_study(
    sets: str = typer.Option(
        "nvidia_sec_10k,scifact,cranfield,cmrc2018", help="comma-separated preset names (their preset models)"
    ),
    splits: str | None = typer.Option(None, help="comma-separated splits to read (default: each set's, train and test)"),
    depth: int = typer.Option(100, help="candidates per path"),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    cache: Path = typer.Option(Path("runs"), help=CACHE_HELP),
    out: Path = typer.Option(Path("benchmarks/results/fusion_study"), help="output folder"),
) -> None:
    """Label-free fusion methods on cached candidate lists: chosen on nvidia_sec_10k's train split, checked elsewhere."""
    from .fusion_study import fusion_study_markdown, run_fusion_study
    from .indexes import open_index

    data = run_fusion_study(
        [s.strip() for s in sets.split(",") if s.strip()],
        spec_for=lambda name: _spec(name, None, None, None, None, None)[0],
        open_index_for=lambda spec: open_index(spec, cache=cache, runtime=_runtime(device, 32, False), log=_log),
        cache=cache,
        out_dir=out,
        depth=depth,
        only_splits=[s.strip() for s in splits.split(",")] if splits else None,
        log=_log,
    )
    typer.echo(fusion_study_markdown(data))


@app.command(name="pdf-text")
def pdf_text(
    pdf: Path = typer.Argument(..., help="a PDF, e.g. ../shared/documents/nvidia_10k/nvidia-sec-10k-2022.pdf"),
    repeats: int = typer.Option(3, help="interleaved runs of each extraction (the best is reported)"),
    out: Path = typer.Option(Path("benchmarks") / "results" / "pdf_text", help="output folder"),
) -> None:
    """PDFium plain text vs the layout-aware table rows the PDF reader uses: seconds and same-words check."""
    from .pdf_text import pdf_text_markdown, run_pdf_text

    typer.echo(pdf_text_markdown(run_pdf_text(pdf, repeats=repeats, out_dir=out)))


@app.command(name="collapse-effect")
def collapse_effect(
    sets: list[str] = typer.Argument(None, help="preset names (default: nvidia_sec_10k scifact cranfield)"),
    out: Path = typer.Option(Path("benchmarks") / "results" / "hits", help="output folder"),
) -> None:
    """Duplicate collapsing on vs off through Engine.search (BM25, k=10): scores, folds and the stage's time."""
    from .collapse_effect import SETS, collapse_effect_markdown, run_collapse_effect

    typer.echo(collapse_effect_markdown(run_collapse_effect(sets or list(SETS), out, progress=typer.echo)))


@app.command()
def adapt(
    dataset: str = typer.Argument(..., help="preset name or BEIR folder"),
    label_free: bool = typer.Option(False, help="give adapt no questions (pseudo-queries only)"),
    options: str = typer.Option("--budget 20m", help="options passed to `hybrid-search adapt` as they are (one string)"),
    tuning: Path | None = typer.Option(None, help="fusion tuning.json of the 'before' configuration (default benchmarks/results/DATASET/tuning.json; labelled only)"),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    cache: Path = typer.Option(Path("runs"), help=CACHE_HELP),
    out: Path = typer.Option(Path("benchmarks") / "results" / "adapt", help="output folder"),
) -> None:
    """`hybrid-search adapt` as a user runs it, then the served nDCG@10 on the real test questions before vs after (paired test)."""
    import shlex

    from .adapt_study import adapt_markdown, run_adapt_study

    spec, _ = _spec(dataset, None, None, None, None, None)
    data = run_adapt_study(
        spec,
        label_free=label_free,
        cache=cache,
        runtime=_runtime(device, 32, False),
        out_dir=out,
        tuning_file=tuning or Path("benchmarks") / "results" / spec.dataset.name / "tuning.json",
        adapt_options=shlex.split(options),
        log=_log,
    )
    typer.echo(adapt_markdown(data))


@app.command()
def summary(
    results: Path = typer.Option(Path("benchmarks/results"), help="results folder"),
    out: Path | None = typer.Option(None, help="output Markdown (default RESULTS/README.md)"),
) -> None:
    """One page over all results: best single path vs fused vs tuned per set, BM25 ratios, speed, scale."""
    from .summary import build_summary

    if not results.is_dir():
        raise FileNotFoundError(f"--results: no such folder {str(results)!r} (run from the repository root, or name the folder)")
    typer.echo(build_summary(results, out))


@app.command()
def backends(
    dataset: str = typer.Argument("nvidia_sec_10k", help="preset name or BEIR folder (test split)"),
    variants: str = typer.Option(
        "torch,onnx,onnx-int8",
        help="comma list of torch, onnx, openvino, each optionally -int8 or -int8-smooth, openvino-bf16, and openvino-int8-static (the cross-encoder's calibrated int8; needs --parts rerank); torch fp32 is the reference",
    ),
    reranker: str | None = typer.Option(None, help="trained cross-encoder folder: adds nDCG@10 of the reranked top 100 (default: a latency-only stand-in)"),
    rerank_queries: int = typer.Option(20, help="queries whose top 100 the stand-in reranks (a trained reranker reranks all)"),
    rerank_max_length: int = typer.Option(256, help="cross-encoder input tokens"),
    cache: Path = typer.Option(Path("runs"), help=CACHE_HELP),
    out: Path = typer.Option(Path("benchmarks/results/backends"), help="results folder"),
    parts: str = typer.Option("all", help="all: encoders and cross-encoder; rerank: the cross-encoder only"),
    calibration_queries: int = typer.Option(30, help="train-split queries whose candidates calibrate openvino-int8-static"),
) -> None:
    """Query encoding speed and nDCG@10 (dense and sparse paths), cross-encoder top-100 latency: torch fp32 vs ONNX Runtime / OpenVINO / int8, in one run."""
    from .backends import parse_variants, run_backends

    run_backends(
        dataset,
        variants=parse_variants(variants),
        reranker=reranker,
        rerank_queries=rerank_queries,
        rerank_max_length=rerank_max_length,
        cache=cache,
        out=out,
        parts=parts,
        calibration_queries=calibration_queries,
    )
    print((out / f"{dataset}.md").read_text(encoding="utf-8"))


def _register_load() -> None:
    """`load` lives in benchmarks/load.py (the API load test); tolerate its absence."""
    try:
        from . import load as load_module
    except ImportError as error:
        missing = str(error)

        @app.command(name="load", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
        def load_unavailable() -> None:
            """Load test of the HTTP API (benchmarks/load.py; not available in this checkout)."""
            typer.echo(f"the load benchmark is not available: benchmarks/load.py could not be imported ({missing})", err=True)
            raise typer.Exit(2)

        return
    command = getattr(load_module, "app", None) or getattr(load_module, "main", None) or getattr(load_module, "load", None)
    if isinstance(command, typer.Typer):
        app.add_typer(command, name="load")
    elif callable(command):
        app.command(name="load")(command)


@app.command(
    name="ingest-throughput",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def ingest_throughput(ctx: typer.Context) -> None:
    """The whole ingestion pipeline (sequential and overlapped) against the bare encoders on the same chunks, in one run (--help: its options)."""
    from .ingest_throughput import main as ingest_throughput_main

    raise typer.Exit(ingest_throughput_main(list(ctx.args)))


def _register_training() -> None:
    """The commands over training runs live in benchmarks/training_commands.py."""
    from .training_commands import register

    register(app)


def main() -> None:
    from hybrid_search.cli_exit import run_app

    run_app(app, "python -m benchmarks", prog_name="python -m benchmarks")


_register_load()
_register_training()

if __name__ == "__main__":
    main()
