"""``hybrid-search serve``: run the API with uvicorn.

The CLI registers :func:`serve_command`; ``python -m hybrid_search.api.server``
runs it directly. API keys are read from the environment only
(``HYBRID_SEARCH_READ_API_KEYS``, ``HYBRID_SEARCH_WRITE_API_KEYS``): a key on
the command line would show in ``ps`` and shell history.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import typer

__all__ = ["build_settings", "run_server", "serve_command"]


# Settings of the shared layer (hybrid_search.settings) that serve also reads:
# a flag or the config file sets them above the environment.
_LAYERED_FIELDS = {
    "store_uri": ("store", "uri"),
    "store_token": ("store", "token"),
    "store_db_name": ("store", "db_name"),
    "store_timeout_s": ("store", "timeout_s"),
    "device": ("runtime", "device"),
    "fp16": ("runtime", "fp16"),
    "dense_model": ("collection", "dense_model"),
    "dense_kind": ("collection", "dense_kind"),
    "sparse_model": ("collection", "sparse_model"),
    "sparse_kind": ("collection", "sparse_kind"),
    "rerank_model": ("rerank", "model"),
    "rerank_kind": ("rerank", "kind"),
    "rerank_top_n": ("rerank", "top_n"),
    "rerank_min_score": ("rerank", "min_score"),
    "rerank_max_length": ("rerank", "max_length"),
    "rerank_long_passages": ("rerank", "long_passages"),
    "rerank_first_stage_weight": ("rerank", "first_stage_weight"),
}


def _where(field: str, given: dict[str, Any]) -> str:
    """A refused setting named as the user set it: the variable when the value
    came from the environment."""
    from .settings import ApiSettings

    if field in given:
        return field
    info = ApiSettings.model_fields.get(field)
    names = [f"HYBRID_SEARCH_{field.upper()}"]
    alias = getattr(info, "validation_alias", None) if info is not None else None
    if alias is not None and hasattr(alias, "choices"):
        names = [str(c) for c in alias.choices if str(c).startswith("HYBRID_SEARCH_")] or names
    set_names = [name for name in names if name in os.environ]
    return f"{field} (environment variable {set_names[0]})" if set_names else field


def build_settings(overrides: dict[str, Any], layered: Any = None) -> Any:
    """ApiSettings from flags (``overrides``), then the shared settings' global
    flags and config file (``layered``), then the environment; a readable error
    (exit 2) instead of a pydantic dump when they are refused."""
    from pydantic import ValidationError

    from .settings import ApiSettings

    given = {k: v for k, v in overrides.items() if v is not None}
    if layered is not None:
        for field, (section, key) in _LAYERED_FIELDS.items():
            value = layered.above_environment(section, key)
            if field not in given and value is not None:
                given[field] = value
    try:
        return ApiSettings(**given)
    except ValidationError as error:
        lines = []
        for item in error.errors():
            loc = [str(p) for p in item.get("loc", ())]
            where = _where(loc[0], given) if len(loc) == 1 else ".".join(loc) or "settings"
            lines.append(f"  {where}: {str(item.get('msg', '')).removeprefix('Value error, ')}")
        typer.echo("hybrid-search serve: refused:\n" + "\n".join(lines), err=True)
        raise typer.Exit(2) from None


def _log_config(level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["hybrid_search"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def run_server(settings: Any) -> None:
    """Start uvicorn with ``settings`` (one process, or several workers)."""
    import uvicorn

    # torch's OpenMP threads spin between operators while they wait for work
    # (libgomp's default). A server shares its cores with Milvus Lite, the
    # event loop and request threads, and spinning threads starve them: one
    # MiniLM query took 10-11 ms waiting passively, against 6.5 ms spinning on
    # an idle machine but 68-419 ms spinning on a contended one. Read when
    # libgomp loads, so set before torch is imported (serve imports it only
    # when a model loads); workers inherit it, and a user's own value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from .settings import SETTINGS_ENV_VAR

    log_config = _log_config(settings.log_level)
    if settings.workers == 1:
        from .app import create_app

        uvicorn.run(create_app(settings, record_serving=True), host=settings.host, port=settings.port, log_level=settings.log_level, log_config=log_config)
        return
    # Several workers are separate processes: jobs, staged uploads and metrics
    # must live where all of them can see them.
    shared = Path(tempfile.mkdtemp(prefix="hybrid-search-serve-"))
    updates: dict[str, Any] = {}
    if settings.jobs_dir is None:
        updates["jobs_dir"] = shared / "jobs"
    if settings.upload_dir is None:
        updates["upload_dir"] = shared / "uploads"
    if updates:
        settings = settings.model_copy(update=updates)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = shared / "metrics"
        metrics_dir.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    os.environ[SETTINGS_ENV_VAR] = settings.to_env_json()
    uvicorn.run(
        "hybrid_search.api.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=log_config,
    )


def serve_command(
    ctx: typer.Context,
    store_uri: str | None = typer.Option(
        None, "--uri", "--store-uri", help="Milvus Lite file (kb.db) or server URI (http://host:19530); as the global --uri"
    ),
    store_token: str | None = typer.Option(None, "--token", help="Milvus token (user:password or API key); as the global --token"),
    host: str | None = typer.Option(None, "--host", help="address to bind (default 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", help="port (default 8000)"),
    workers: int | None = typer.Option(None, "--workers", help="worker processes (needs a Milvus server URI when > 1)"),
    dense_model: str | None = typer.Option(None, "--dense-model", help="default dense model for new collections ('none' for no dense path)"),
    dense_kind: str | None = typer.Option(None, "--dense-kind", help="sentence-transformers | bge-m3"),
    sparse_model: str | None = typer.Option(None, "--sparse-model", help="default sparse model for new collections ('none' for no sparse path)"),
    sparse_kind: str | None = typer.Option(None, "--sparse-kind", help="splade | bge-m3"),
    allowed_models: str | None = typer.Option(None, "--allowed-models", help="further models clients may name, comma-separated"),
    rerank_model: str | None = typer.Option(None, "--rerank-model", help="cross-encoder for reranking (off when unset)"),
    rerank_kind: str | None = typer.Option(None, "--rerank-kind", help="flag | cross-encoder"),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda | mps"),
    document_roots: str | None = typer.Option(None, "--document-roots", help="server folders clients may index, and whose files hits link to: NAME=PATH,..."),
    upload_dir: Path | None = typer.Option(None, "--upload-dir", help="where uploads are staged (a private temp dir by default)"),
    allow_insecure: bool | None = typer.Option(None, "--allow-insecure", help="allow a non-loopback host without API keys"),
    preload: bool | None = typer.Option(None, "--preload/--no-preload", help="load every collection's models at startup"),
    log_level: str | None = typer.Option(None, "--log-level", help="critical | error | warning | info | debug"),
) -> None:
    """Serve the search API and the search page (http://HOST:PORT/ui/).

    Every option can also be set as HYBRID_SEARCH_<OPTION> in the environment;
    API keys only there (HYBRID_SEARCH_READ_API_KEYS, HYBRID_SEARCH_WRITE_API_KEYS).
    `hybrid-search --uri/--token/--device/--config ... serve` mean what they mean
    for every other command."""
    from ..errors import ConfigError
    from ..settings import LayeredSettings

    try:
        layered = LayeredSettings.of(ctx)
    except ConfigError as error:
        typer.echo(f"hybrid-search serve: refused: {error}", err=True)
        raise typer.Exit(2) from None
    settings = build_settings(
        {
            "store_uri": store_uri,
            "store_token": store_token,
            "host": host,
            "port": port,
            "workers": workers,
            "dense_model": dense_model,
            "dense_kind": dense_kind,
            "sparse_model": sparse_model,
            "sparse_kind": sparse_kind,
            "allowed_models": allowed_models,
            "rerank_model": rerank_model,
            "rerank_kind": rerank_kind,
            "device": device,
            "document_roots": document_roots,
            "upload_dir": upload_dir,
            "allow_insecure": allow_insecure,
            "preload": preload,
            "log_level": log_level,
        },
        layered,
    )
    typer.echo(f"hybrid-search serve: http://{settings.host}:{settings.port}/ui/  ({settings.describe()})", err=True)
    if not settings.auth_enabled:
        from .settings import is_loopback

        if is_loopback(settings.host):
            typer.echo(
                "hybrid-search serve: no API key configured, so the API only listens on loopback "
                "(set HYBRID_SEARCH_READ_API_KEYS / HYBRID_SEARCH_WRITE_API_KEYS to serve other machines)",
                err=True,
            )
        else:
            typer.echo(f"hybrid-search serve: WARNING: no API key and bound to {settings.host}: anyone who can reach it can write", err=True)
    run_server(settings)


if __name__ == "__main__":  # python -m hybrid_search.api.server
    typer.run(serve_command)
    sys.exit(0)
