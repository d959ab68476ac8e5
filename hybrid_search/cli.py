"""`hybrid-search`: the command line, a thin shell over ``Engine``.

Settings come from flags, then a config file (``--config`` or
``HYBRID_SEARCH_CONFIG``), then ``HYBRID_SEARCH_*`` environment variables,
then defaults. Errors print one line to stderr and exit non-zero.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .cli_exit import run_app
from .cli_search import (
    SearchFlags,
    ServerOutcome,
    collection_name,
    print_answer,
    print_note,
    print_result,
    search_request,
    server_answer,
)
from .config import (
    AnalyzerConfig,
    CollectionConfig,
    DenseEncoderConfig,
    RerankConfig,
    RuntimeConfig,
    SparseEncoderConfig,
    StoreConfig,
)
from .errors import ConfigError, HybridSearchError, InputError
from .profiles import load_model_profile
from .settings import LayeredSettings

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["app", "main"]

app = typer.Typer(
    name="hybrid-search",
    help="Hybrid retrieval over Milvus: BM25, learned-sparse and dense search, fused and reranked.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
collections_app = typer.Typer(help="List, inspect and drop collections.", no_args_is_help=True)
documents_app = typer.Typer(help="List, show and delete indexed documents.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")
app.add_typer(documents_app, name="documents")
profile_app = typer.Typer(help="The model profile: which models are used when none is named.", no_args_is_help=True)
app.add_typer(profile_app, name="profile")


def _register_shells() -> None:
    """The HTTP service and training live in their own modules; the CLI only
    names them (imported lazily inside the commands they define)."""
    from .api.server import serve_command

    app.command("serve", help="Run the HTTP search service (FastAPI + uvicorn).")(serve_command)
    try:
        from training.cli import adapt_command, train_app
    except ImportError:  # an install without the training package
        return
    app.add_typer(train_app, name="train")
    app.command("adapt", help="Adapt a collection to its own text in one command (train, measure, promote if better).")(adapt_command)


console = Console()
err_console = Console(stderr=True)


class _State:
    settings: LayeredSettings = LayeredSettings()
    # Run as the `hybrid-search` program (main), not called as a library (tests).
    entry_point: bool = False
    # What the running server already said to this search (the quick entry
    # point asked it first, cli_entry): not asked again.
    asked: ServerOutcome | None = None


state = _State()


@app.callback()
def _global_options(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file (see README).")] = None,
    uri: Annotated[Optional[str], typer.Option(help="Milvus URI: a .db file (Milvus Lite) or http(s)://host:19530.")] = None,
    token: Annotated[Optional[str], typer.Option(help="Milvus token (user:password or API key).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps.")] = None,
    backend: Annotated[Optional[str], typer.Option(help="torch, onnx or openvino for every model (default: as the collection records).")] = None,
    quantize: Annotated[Optional[str], typer.Option(help="none, int8 or int8-smooth (with --backend onnx or openvino) or bf16 (with --backend openvino).")] = None,
) -> None:
    # A search may be sent to a running server without pymilvus ever loading:
    # it is quietened when the search opens the store (_engine). Every other
    # command opens the store, here or in its own module.
    if state.entry_point and ctx.invoked_subcommand != "search":
        _quiet_pymilvus()
    # The subcommands (serve, train ...) read the same settings through ctx.obj.
    try:
        state.settings = ctx.obj = LayeredSettings.load(config, uri=uri, token=token, device=device, backend=backend, quantize=quantize)
    except ConfigError as error:
        _fail(error)


def _store_config() -> StoreConfig:
    return state.settings.store_config()


def _runtime_config(batch_size: int | None = None) -> RuntimeConfig:
    return state.settings.runtime_config(batch_size=batch_size)


def _collection_name(flag: str | None) -> str:
    return collection_name(state.settings, flag)


def _quiet_pymilvus() -> None:
    """pymilvus configures its logger on import; adjust it after (an application
    entry point may set library verbosity, importing the package must not)."""
    import logging

    import pymilvus  # noqa: F401

    logging.getLogger("pymilvus").setLevel(logging.ERROR)


def _engine(reranker: RerankConfig | None = None, batch_size: int | None = None) -> Engine:
    # Imported here: a search sent to a running server never needs the engine
    # (nor numpy, pymilvus or the model libraries behind it).
    from .engine import Engine

    if state.entry_point:
        _quiet_pymilvus()
    return Engine(_store_config(), runtime=_runtime_config(batch_size), reranker=reranker)


def _fail(error: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2 if isinstance(error, (InputError, ConfigError)) else 1)


# --- index ------------------------------------------------------------------------------


def _new_collection_config(
    name: str,
    dense_model: str | None,
    dense_kind: str | None,
    query_prompt: str | None,
    document_prompt: str | None,
    sparse_model: str | None,
    sparse_kind: str | None,
    language: str | None,
    user_dict: str | None,
    no_dense: bool | None,
    no_sparse: bool | None,
) -> CollectionConfig:
    s = state.settings
    dense = None
    if not s.get("collection", "no_dense", no_dense):
        choice = s.model_choice("dense", dense_model)
        dense = DenseEncoderConfig(
            model=choice.model,
            kind=s.get("collection", "dense_kind", dense_kind, choice.kind),
            query_prompt=s.get("collection", "query_prompt", query_prompt, choice.query_prompt),
            document_prompt=s.get("collection", "document_prompt", document_prompt, choice.document_prompt),
        )
    sparse = None
    if not s.get("collection", "no_sparse", no_sparse):
        choice = s.model_choice("sparse", sparse_model)
        sparse = SparseEncoderConfig(model=choice.model, kind=s.get("collection", "sparse_kind", sparse_kind, choice.kind))
    analyzer = AnalyzerConfig(
        language=s.get("collection", "language", language),
        user_dict=s.get("collection", "user_dict", user_dict),
    )
    return CollectionConfig(name=name, dense=dense, sparse=sparse, analyzer=analyzer)


class _RichProgress:
    """Files/s, chunks/s and ETA for an ingest run."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.files = bar.add_task("files", total=None, rate="")
        self.chunks = bar.add_task("chunks", total=0, rate="")

    def _rate(self, task_id: Any, unit: str) -> None:
        speed = self.bar.tasks[task_id].speed
        self.bar.update(task_id, rate=f"{speed:.1f} {unit}/s" if speed else "")

    def files_planned(self, total: int) -> None:
        self.bar.update(self.files, total=total)

    def file_done(self, source: str, status: str) -> None:
        self.bar.advance(self.files, 1)
        self._rate(self.files, "files")

    def chunks_planned(self, more: int) -> None:
        self.bar.update(self.chunks, total=(self.bar.tasks[self.chunks].total or 0) + more)

    def chunks_written(self, count: int) -> None:
        self.bar.advance(self.chunks, count)
        self._rate(self.chunks, "chunks")


def _summary_table(summary: Any) -> Table:
    table = Table(title="index summary", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("files seen", summary.files_seen),
        ("files indexed (new or changed)", summary.files_indexed),
        ("files unchanged", summary.files_unchanged),
        ("files or records skipped", len(summary.skipped)),
        ("documents written", summary.documents_written),
        ("documents unchanged", summary.documents_unchanged),
        ("documents removed", summary.documents_removed),
        ("chunks written", summary.chunks_written),
        ("chunks unchanged", summary.chunks_unchanged),
        ("chunks removed", summary.chunks_removed),
    ]
    for label, value in rows:
        table.add_row(label, str(value))
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in summary.stage_seconds.items())
    table.add_row("time", f"{summary.seconds:.1f}s ({stages})")
    rate = summary.chunks_written / summary.seconds if summary.seconds else 0.0
    table.add_row("throughput", f"{rate:.1f} chunks/s")
    return table


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help="Folders, files (pdf, docx, html, md, txt, jsonl, csv) or BEIR folders.", exists=True)],
    collection: Annotated[Optional[str], typer.Option("--collection", "-C", help="Collection to write to (created if missing).")] = None,
    dense_model: Annotated[Optional[str], typer.Option(help="Dense model: hub name or local folder (new collections).")] = None,
    dense_kind: Annotated[Optional[str], typer.Option(help="sentence-transformers or bge-m3.")] = None,
    query_prompt: Annotated[Optional[str], typer.Option(help="Prompt prepended to queries for the dense model.")] = None,
    document_prompt: Annotated[Optional[str], typer.Option(help="Prompt prepended to documents for the dense model.")] = None,
    sparse_model: Annotated[Optional[str], typer.Option(help="Learned sparse model: hub name or local folder.")] = None,
    sparse_kind: Annotated[Optional[str], typer.Option(help="bge-m3 or splade.")] = None,
    no_dense: Annotated[Optional[bool], typer.Option("--no-dense", help="Build the collection without a dense path.")] = None,
    no_sparse: Annotated[Optional[bool], typer.Option("--no-sparse", help="Build the collection without a learned-sparse path.")] = None,
    language: Annotated[Optional[str], typer.Option(help="BM25 analyzer: en or zh (jieba).")] = None,
    user_dict: Annotated[Optional[str], typer.Option(help="jieba user dictionary file for domain terms.")] = None,
    include: Annotated[Optional[list[str]], typer.Option(help="Glob of files to include (gitignore syntax; repeatable).")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(help="Glob of files or folders to leave out (repeatable).")] = None,
    max_tokens: Annotated[int, typer.Option(help="Chunk budget in the encoder's tokens.")] = 256,
    overlap_tokens: Annotated[Optional[int], typer.Option(help="Tokens of whole sentences shared by neighbouring chunks (default max/8).")] = None,
    no_headings: Annotated[bool, typer.Option("--no-headings", help="Do not prepend title and heading path to the embedded text.")] = False,
    root_label: Annotated[Optional[str], typer.Option(help="Name of this ingest root in the collection (default: the folder name).")] = None,
    text_field: Annotated[str, typer.Option(help="Record field holding the text (JSONL/CSV).")] = "text",
    id_field: Annotated[Optional[str], typer.Option(help="Record field holding the id (default: _id, id or doc_id).")] = None,
    title_field: Annotated[str, typer.Option(help="Record field holding the title.")] = "title",
    metadata_field: Annotated[Optional[list[str]], typer.Option(help="Record field(s) kept as metadata (default: all scalar fields).")] = None,
    max_file_mb: Annotated[float, typer.Option(help="Skip files larger than this.")] = 100.0,
    batch_size: Annotated[Optional[int], typer.Option(help="Chunks encoded per batch.")] = None,
) -> None:
    """Bring a collection in sync with files: new and changed files are indexed,
    unchanged ones skipped, deleted ones removed. Exit code 3: some files skipped."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from indexers.chunks import ChunkingConfig
    from indexers.documents import ReadOptions, record_fields
    from indexers.files import FileSelection
    from indexers.pipeline import IngestConfig, ingest

    from .engine import check_metadata_keys

    try:
        name = _collection_name(collection)
        for field_name in metadata_field or ():
            check_metadata_keys({field_name: None}, where="--metadata-field")
        record_id, record_metadata = record_fields(paths, id_field, text_field, title_field, metadata_field)
        config = _new_collection_config(
            name, dense_model, dense_kind, query_prompt, document_prompt, sparse_model, sparse_kind, language, user_dict, no_dense, no_sparse
        )
        engine = _engine(batch_size=batch_size)
        explicit = any(v is not None for v in (dense_model, dense_kind, sparse_model, sparse_kind, language, user_dict, no_dense, no_sparse, query_prompt, document_prompt))
        if engine.store.has_collection(engine.resolve(name)):
            # An existing collection keeps its own models; naming others is refused.
            engine.open_collection(name, expected=config if explicit else None)
        else:
            engine.create_collection(config)
            console.print(f"created collection [bold]{name}[/] at {engine.store_config.display_uri}")
        ingest_config = IngestConfig(
            read=ReadOptions(
                max_file_bytes=int(max_file_mb * 1024 * 1024),
                text_fields=(text_field,),
                id_field=record_id,
                title_field=title_field,
                metadata_fields=record_metadata,
            ),
            chunking=ChunkingConfig(max_tokens=max_tokens, overlap_tokens=overlap_tokens, prepend_headings=not no_headings),
            selection=FileSelection(include=tuple(include or ("*",)), exclude=tuple(exclude or ())),
            batch_size=int(batch_size or 64),
            root_label=root_label,
        )
        with Progress(
            TextColumn("[bold]{task.description:>6}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("[cyan]{task.fields[rate]}"), TimeRemainingColumn(),
            console=err_console, transient=False,
        ) as bar:
            summary = ingest(engine, name, paths, ingest_config, progress=_RichProgress(bar))
    except HybridSearchError as error:
        _fail(error)
        return
    console.print(_summary_table(summary))
    for skipped in summary.skipped:
        err_console.print(f"[yellow]skipped[/] {skipped.source}: {skipped.reason}: {skipped.detail}", highlight=False)
    if summary.failed:
        raise typer.Exit(code=3)


# --- search -----------------------------------------------------------------------------


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    collection: Annotated[Optional[str], typer.Option("--collection", "-C")] = None,
    k: Annotated[Optional[int], typer.Option("-k", help="Hits to return.")] = None,
    paths: Annotated[Optional[str], typer.Option(help="Comma-separated subset of bm25,sparse,dense (default: all the collection has).")] = None,
    depth: Annotated[Optional[int], typer.Option(help="Candidates per path before fusion.")] = None,
    fusion: Annotated[Optional[str], typer.Option(help="adaptive, rrf or weighted (default: the collection's).")] = None,
    rrf_k: Annotated[Optional[int], typer.Option(help="RRF constant k.")] = None,
    normalization: Annotated[Optional[str], typer.Option(help="For weighted fusion: min-max, z-score or none.")] = None,
    weights: Annotated[Optional[str], typer.Option(help="Per-path weights, e.g. bm25=1,dense=0.5.")] = None,
    filter: Annotated[Optional[list[str]], typer.Option("--filter", "-f", help='FIELD OP VALUE, e.g. "page >= 3" or "metadata.lang == en" (repeatable, ANDed).')] = None,
    rerank: Annotated[Optional[bool], typer.Option("--rerank/--no-rerank", help="Rerank the fused candidates with a cross-encoder.")] = None,
    rerank_model: Annotated[Optional[str], typer.Option(help="Reranker: hub name or local folder.")] = None,
    rerank_kind: Annotated[Optional[str], typer.Option(help="flag (FlagEmbedding) or cross-encoder (sentence-transformers).")] = None,
    rerank_top_n: Annotated[Optional[int], typer.Option(help="Fused candidates to rerank.")] = None,
    min_rerank_score: Annotated[Optional[float], typer.Option(help="Below this rerank score, answer 'no confident result'.")] = None,
    rerank_first_stage_weight: Annotated[
        Optional[float],
        typer.Option(help="Order the reranked head by (1-w)*rerank + w*normalised fused score; 0 (default): rerank order, 1: fused order."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
    explain: Annotated[bool, typer.Option(help="Show whole chunk texts.")] = False,
    collapse: Annotated[
        bool, typer.Option("--collapse/--no-collapse", help="Fold duplicate and near-duplicate hits into the best-ranked copy.")
    ] = True,
    local: Annotated[
        bool, typer.Option("--local", help="Search in this process even when a running `hybrid-search serve` serves the store.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say where the search ran (a running server, or this process and why).")] = False,
) -> None:
    """Search a collection through any subset of paths, fused and optionally reranked.

    When a `hybrid-search serve` started on the same store is running, the search
    is sent to it (the same engine, the same plan: the same hits, without this
    process loading Milvus or models); --local searches in this process."""
    flags = SearchFlags(
        query=query, collection=collection, k=k, paths=paths, depth=depth, fusion=fusion, rrf_k=rrf_k, normalization=normalization,
        weights=weights, filter=tuple(filter or ()), rerank=rerank, rerank_model=rerank_model, rerank_kind=rerank_kind,
        rerank_top_n=rerank_top_n, min_rerank_score=min_rerank_score, rerank_first_stage_weight=rerank_first_stage_weight,
        as_json=as_json, explain=explain, collapse=collapse, local=local, verbose=verbose,
    )  # fmt: skip
    try:
        request = search_request(state.settings, flags)
        served = None
        if not local:
            answer = server_answer(request, state.asked)
            if verbose:
                print_note(err_console, answer)
            served = answer.body
        if served is None:
            result = _engine(reranker=request.reranker).search(request.collection, query, request.options)
    except HybridSearchError as error:
        _fail(error)
        return
    if served is not None:
        print_answer(console, served, as_json=as_json, explain=explain)
    elif as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        print_result(console, result, explain)


# --- collections and documents ------------------------------------------------------------


@collections_app.command("list")
def collections_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List collections with their chunk counts and models."""
    try:
        engine = _engine()
        infos = [engine.collection_info(name) for name in engine.list_collections()]
        aliases = engine.list_aliases()
    except HybridSearchError as error:
        _fail(error)
        return
    if as_json:
        sys.stdout.write(json.dumps({"collections": [{"name": i.name, "chunks": i.chunks, "manifest": i.manifest} for i in infos], "aliases": aliases}, indent=2) + "\n")
        return
    table = Table(title=f"collections at {engine.store_config.display_uri}")
    for column in ("name", "chunks", "dense", "sparse", "analyzer", "aliases"):
        table.add_column(column)
    for info in infos:
        dense = info.manifest.get("dense")
        sparse = info.manifest.get("sparse")
        table.add_row(
            info.name,
            str(info.chunks),
            f"{dense['model']} ({dense['kind']}, {dense['dim']}d)" if dense else "-",
            f"{sparse['model']} ({sparse['kind']})" if sparse else "-",
            # manifests from before analyzer versions hold version 1's rules
            f"{info.manifest['analyzer']['language']} v{info.manifest['analyzer'].get('version', 1)}",
            ", ".join(a for a, target in aliases.items() if target == info.name),
        )
    console.print(table)


@collections_app.command("info")
def collections_info(name: Annotated[str, typer.Argument()]) -> None:
    """Show a collection's manifest and size as JSON."""
    try:
        info = _engine().collection_info(name)
    except HybridSearchError as error:
        _fail(error)
        return
    sys.stdout.write(json.dumps({"name": info.name, "chunks": info.chunks, "manifest": info.manifest}, indent=2, ensure_ascii=False) + "\n")


@collections_app.command("drop")
def collections_drop(
    name: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    with_aliases: Annotated[bool, typer.Option("--with-aliases", help="Also drop the aliases that serve it (refused otherwise).")] = False,
) -> None:
    """Drop a collection and everything in it (an alias names the collection it serves)."""
    try:
        engine = _engine()
        target = engine.resolve(name)
        engine.store.require(target)
        aliases = sorted(a for a, t in engine.list_aliases().items() if t == target)
        what = f"collection {target!r}" + (f" (served by alias {', '.join(aliases)})" if aliases and with_aliases else "")
        if not (aliases and not with_aliases) and not yes and not typer.confirm(f"drop {what} and all its chunks?"):
            raise typer.Exit(code=1)
        dropped_aliases = engine.drop_collection(target, drop_aliases=with_aliases)
    except HybridSearchError as error:
        _fail(error)
        return
    console.print(f"dropped {target}" + (f" and alias {', '.join(dropped_aliases)}" if dropped_aliases else ""), highlight=False)


@documents_app.command("list")
def documents_list(
    collection: Annotated[Optional[str], typer.Option("--collection", "-C")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Show at most this many.")] = None,
) -> None:
    """List indexed documents with their chunk counts."""
    try:
        items = _engine().list_documents(_collection_name(collection), limit=limit)
    except HybridSearchError as error:
        _fail(error)
        return
    for doc_id, count in items:
        console.print(f"{doc_id}\t{count}", highlight=False)


@documents_app.command("get")
def documents_get(
    doc_id: Annotated[str, typer.Argument()],
    collection: Annotated[Optional[str], typer.Option("--collection", "-C")] = None,
) -> None:
    """Print a document's chunks as JSON lines."""
    try:
        chunks = _engine().get_document(_collection_name(collection), doc_id)
        if not chunks:
            raise InputError(f"no document {doc_id!r} in the collection")
    except HybridSearchError as error:
        _fail(error)
        return
    for chunk in chunks:
        sys.stdout.write(json.dumps({"id": chunk.id, "doc_id": chunk.doc_id, "chunk_index": chunk.chunk_index, "page": chunk.page, "heading_path": list(chunk.heading_path), "title": chunk.title, "source": chunk.source, "text": chunk.text, "metadata": chunk.metadata}, ensure_ascii=False) + "\n")


@documents_app.command("delete")
def documents_delete(
    doc_ids: Annotated[list[str], typer.Argument()],
    collection: Annotated[Optional[str], typer.Option("--collection", "-C")] = None,
) -> None:
    """Delete documents (all their chunks)."""
    try:
        removed = _engine().delete_documents(_collection_name(collection), doc_ids)
    except HybridSearchError as error:
        _fail(error)
        return
    console.print(f"removed {removed} chunks of {len(doc_ids)} document(s)")


_register_shells()


# --- model profile ---------------------------------------------------------------------------


@profile_app.command("show")
def profile_show() -> None:
    """Print the model profile in effect and where it comes from."""
    from dataclasses import asdict

    from .profiles import PROFILE_ENV, default_profile_path

    try:
        profile = load_model_profile()
    except HybridSearchError as error:
        _fail(error)
        return
    out = {
        "profile": profile.name,
        "source": str(profile.source) if profile.source else None,
        "default_path": str(default_profile_path()),
        "env": PROFILE_ENV,
        **{table: asdict(profile.choice(table)) for table in ("dense", "sparse", "rerank")},
    }
    sys.stdout.write(json.dumps(out, indent=2) + "\n")


@profile_app.command("write-local")
def profile_write_local(
    models_dir: Annotated[Path, typer.Argument(help="Folder filled by scripts/get-models.sh.")],
    path: Annotated[Optional[Path], typer.Option(help="Where to write (default: ~/.config/hybrid-search/models.toml).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing profile file.")] = False,
) -> None:
    """Write a profile naming the offline models in MODELS_DIR, so index and
    search work without model flags."""
    from .profiles import default_profile_path, local_profile_choices, write_profile

    target = path or default_profile_path()
    try:
        if target.exists() and not force:
            console.print(f"kept the existing model profile {target} (--force replaces it)", highlight=False)
            return
        choices = local_profile_choices(models_dir)
        write_profile(target, choices, note=f"Written by `hybrid-search profile write-local {models_dir}` (scripts/setup.sh).\nModels used when no flag, config file or HYBRID_SEARCH_* variable names one.")
    except HybridSearchError as error:
        _fail(error)
        return
    console.print(f"wrote model profile {target}: dense {choices['dense'].model}, sparse {choices['sparse'].model}", highlight=False, soft_wrap=True)


def main(asked: ServerOutcome | None = None) -> None:
    """The full command line (``cli_entry.main``, the ``hybrid-search``
    program, runs it for everything it does not answer itself)."""
    # An application entry point may set library verbosity (importing the
    # package must not): weight-loading bars, grpc keepalive chatter between
    # pymilvus and Milvus Lite during long encodes, and pymilvus's iterator
    # notice would drown the output.
    import os

    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    # transformers reads these when (if) a model is loaded: importing it here
    # would cost seconds that a BM25-only search never needs.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    state.entry_point = True
    state.asked = asked
    run_app(app, "hybrid-search")


if __name__ == "__main__":
    main()
