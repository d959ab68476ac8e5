"""Service settings: one pydantic-settings model, read from ``HYBRID_SEARCH_*``
environment variables (or given directly), checked once at startup.

Deployment rules live here as validators so that every way of starting the
service (``hybrid-search serve``, ``uvicorn --factory``, tests) refuses the same
unsafe or impossible setups with the same message.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..config import (
    Backend,
    Quantize,
    DEFAULT_DENSE_MODEL,
    DEFAULT_RERANK_MODEL,
    DEFAULT_STORE_URI,
    DenseEncoderConfig,
    DenseKind,
    Device,
    LongPassages,
    RerankConfig,
    RerankKind,
    RuntimeConfig,
    SparseEncoderConfig,
    SparseKind,
    StoreConfig,
)
from ..engine import MAX_DEPTH, MAX_K, MAX_QUERY_CHARS

__all__ = ["DEFAULT_UPLOAD_CONTENT_TYPES", "DEFAULT_UPLOAD_EXTENSIONS", "SETTINGS_ENV_VAR", "ApiSettings", "is_loopback"]

#: `serve` hands the full settings to uvicorn worker processes through this
#: variable (workers are separate processes and cannot receive Python objects).
SETTINGS_ENV_VAR = "_HYBRID_SEARCH_API_SETTINGS_JSON"

DEFAULT_UPLOAD_EXTENSIONS = (".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt", ".jsonl", ".csv")
# application/octet-stream is what curl and many clients send for .md/.jsonl;
# the extension allowlist and a magic-byte check for PDF/DOCX are the real gate.
DEFAULT_UPLOAD_CONTENT_TYPES = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/html",
    "application/xhtml+xml",
    "text/markdown",
    "text/x-markdown",
    "text/plain",
    "text/csv",
    "application/jsonl",
    "application/x-ndjson",
    "application/json",
    "application/octet-stream",
)
_MIN_KEY_CHARS = 16



def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_list(value: Any) -> Any:
    """Env vars hold lists as JSON (``["a","b"]``) or comma-separated text."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class ApiSettings(BaseSettings):
    """Everything the HTTP service needs. Every field can be set as
    ``HYBRID_SEARCH_<FIELD>`` (lists as comma-separated text or JSON)."""

    model_config = SettingsConfigDict(env_prefix="HYBRID_SEARCH_", extra="ignore", validate_default=True)

    # --- store ----------------------------------------------------------------------
    # HYBRID_SEARCH_URI / HYBRID_SEARCH_TOKEN are the names the CLI reads too,
    # so one environment configures both shells.
    store_uri: str = Field(
        DEFAULT_STORE_URI,
        validation_alias=AliasChoices("store_uri", "HYBRID_SEARCH_STORE_URI", "HYBRID_SEARCH_URI"),
        description="Milvus Lite file (kb.db) or server URI (http://host:19530)",
    )
    store_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("store_token", "HYBRID_SEARCH_STORE_TOKEN", "HYBRID_SEARCH_TOKEN")
    )
    store_db_name: str | None = Field(
        None, validation_alias=AliasChoices("store_db_name", "HYBRID_SEARCH_STORE_DB_NAME", "HYBRID_SEARCH_DB_NAME")
    )
    store_timeout_s: float = Field(
        30.0, gt=0, le=600, validation_alias=AliasChoices("store_timeout_s", "HYBRID_SEARCH_STORE_TIMEOUT_S", "HYBRID_SEARCH_TIMEOUT_S")
    )

    # --- network ----------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    allow_insecure: bool = Field(False, description="bind a non-loopback address without any API key")

    # --- API keys ---------------------------------------------------------------------
    # A write key can also read. With no key at all the service is open, which is
    # why it then refuses to bind anything but loopback (unless allow_insecure).
    read_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    write_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    public_read: bool = Field(False, description="with keys configured, still allow reads without a key")

    # --- limits -----------------------------------------------------------------------
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1024, le=4 * 1024 * 1024 * 1024)
    max_upload_files: int = Field(20, ge=1, le=10000)
    max_k: int = Field(100, ge=1, le=MAX_K)
    max_query_chars: int = Field(1024, ge=1, le=MAX_QUERY_CHARS)
    max_depth: int = Field(1000, ge=1, le=MAX_DEPTH)
    max_rerank_top_n: int = Field(200, ge=1, le=MAX_DEPTH)
    max_filters: int = Field(16, ge=0, le=256)
    max_records_per_request: int = Field(1000, ge=1, le=100000)
    max_files_per_path_job: int = Field(10000, ge=1)
    max_queued_jobs: int = Field(32, ge=1, le=10000)
    engine_concurrency: int = Field(
        1, ge=1, le=64, description="engine calls that encode at once in one process (tokenizers are not thread-safe)"
    )
    busy_timeout_s: float = Field(30.0, gt=0, le=600, description="wait this long for the engine, then answer 503")
    query_batch_size: int = Field(
        32, ge=1, le=1024, description="queries encoded together in one model call (1: off, searches take turns)"
    )
    query_batch_wait_ms: float = Field(
        2.0, ge=0, le=1000, description="longest a query waits for others to join its batch"
    )
    switch_interval_ms: float = Field(
        1.0,
        gt=0,
        le=100,
        description=(
            "the serving process's GIL switch interval (Python's default is 5): each torch op of a model call gives up "
            "the GIL and may wait this long to get it back from a thread building another search's results"
        ),
    )

    # --- files ------------------------------------------------------------------------
    upload_dir: Path | None = Field(None, description="where uploads are staged (a private temp dir when unset)")
    upload_extensions: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_UPLOAD_EXTENSIONS))
    upload_content_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_UPLOAD_CONTENT_TYPES)
    )
    document_roots: Annotated[dict[str, Path], NoDecode] = Field(
        default_factory=dict, description="server folders the paths endpoint may read: name=path,name2=path2"
    )
    jobs_dir: Path | None = Field(None, description="job status files, shared by workers (in memory when unset)")
    job_history: int = Field(1000, ge=1, le=1_000_000)
    chunk_max_tokens: int = Field(256, ge=8, le=8192)
    chunk_overlap_tokens: int = Field(32, ge=0, le=4096)

    # --- models -----------------------------------------------------------------------
    dense_model: str | None = DEFAULT_DENSE_MODEL
    dense_kind: DenseKind = "bge-m3"
    sparse_model: str | None = DEFAULT_DENSE_MODEL
    sparse_kind: SparseKind = "bge-m3"
    allowed_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="further models a create-collection request may name"
    )
    rerank_model: str | None = Field(None, description=f"cross-encoder to rerank with, e.g. {DEFAULT_RERANK_MODEL}")
    rerank_kind: RerankKind = "flag"
    rerank_top_n: int = Field(50, ge=1, le=MAX_DEPTH)
    rerank_min_score: float | None = Field(None, ge=0.0, le=1.0)
    rerank_max_length: int = Field(512, ge=16)
    rerank_long_passages: LongPassages = "truncate"
    rerank_first_stage_weight: float = Field(
        0.0, ge=0.0, le=1.0, description="mix the fused score into the rerank order (0: pure rerank; tune on held-out queries)"
    )
    rerank_int8_calibration: str | None = Field(
        None, description="JSONL of (query, text) pairs calibrating the cross-encoder's static int8 (needs backend openvino, quantize int8)"
    )
    device: Device = "auto"
    fp16: bool | None = Field(None, description="half precision (unset: on CUDA only)")
    backend: Backend | None = Field(None, description="torch, onnx or openvino for every model (unset: as each collection records)")
    quantize: Quantize | None = Field(None, description="none, int8 or int8-smooth (need backend onnx or openvino) or bf16 (needs backend openvino)")
    preload: bool = Field(True, description="load every collection's models at startup")

    # --- misc -------------------------------------------------------------------------
    docs: bool = Field(True, description="serve /docs, /redoc and /openapi.json")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("read_api_keys", "write_api_keys", "upload_extensions", "upload_content_types", "allowed_models", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("document_roots", mode="before")
    @classmethod
    def _roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                return json.loads(text)
            roots: dict[str, str] = {}
            for part in _split_list(text):
                name, sep, path = part.partition("=")
                if not sep:
                    raise ValueError(f"document root {part!r}: write NAME=PATH")
                roots[name.strip()] = path.strip()
            return roots
        return value

    @field_validator("document_roots")
    @classmethod
    def _roots_exist(cls, value: dict[str, Path]) -> dict[str, Path]:
        checked = {}
        for name, path in value.items():
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"document root name {name!r} must be a plain name")
            resolved = Path(os.path.expanduser(str(path))).resolve()
            if not resolved.is_dir():
                raise ValueError(f"document root {name!r}: {resolved} is not a folder")
            checked[name] = resolved
        return checked

    @field_validator("read_api_keys", "write_api_keys")
    @classmethod
    def _key_strength(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            if len(key.get_secret_value()) < _MIN_KEY_CHARS:
                raise ValueError(f"API keys must be at least {_MIN_KEY_CHARS} characters (use e.g. `openssl rand -hex 24`)")
        return value

    @field_validator("upload_extensions")
    @classmethod
    def _extensions(cls, value: list[str]) -> list[str]:
        return sorted({("." + ext.lower().lstrip(".")) for ext in value if ext.strip(". ")})

    @field_validator("upload_content_types")
    @classmethod
    def _content_types(cls, value: list[str]) -> list[str]:
        return sorted({ct.split(";")[0].strip().lower() for ct in value if ct.strip()})

    @field_validator("dense_model", "sparse_model", "rerank_model", mode="before")
    @classmethod
    def _optional_model(cls, value: Any) -> Any:
        # "" or "none" in the environment switches a default path off.
        if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        return value

    @model_validator(mode="after")
    def _deployment(self) -> ApiSettings:
        if self.workers > 1 and self.store_is_lite:
            raise ValueError(
                f"workers={self.workers} with store_uri={self.store_uri!r}: Milvus Lite keeps its data in one local file "
                "that only one process may open, so several workers cannot share it. Run one worker (it serves "
                "concurrent requests with threads), or point store_uri at a Milvus server (http://host:19530) to run "
                "several workers"
            )
        if not self.auth_enabled and not is_loopback(self.host) and not self.allow_insecure:
            raise ValueError(
                f"host={self.host!r} would expose an API with no key to the network. Set read/write API keys "
                "(HYBRID_SEARCH_READ_API_KEYS / HYBRID_SEARCH_WRITE_API_KEYS), bind 127.0.0.1, or set allow_insecure"
            )
        if self.chunk_overlap_tokens > self.chunk_max_tokens // 2:
            raise ValueError("chunk_overlap_tokens must be at most chunk_max_tokens // 2")
        return self

    # --- derived ----------------------------------------------------------------------

    @property
    def store_is_lite(self) -> bool:
        return "://" not in self.store_uri

    @property
    def auth_enabled(self) -> bool:
        return bool(self.read_api_keys or self.write_api_keys)

    def store_config(self) -> StoreConfig:
        return StoreConfig(
            uri=self.store_uri,
            token=self.store_token.get_secret_value() if self.store_token else None,
            db_name=self.store_db_name,
            timeout_s=self.store_timeout_s,
        )

    def runtime_config(self) -> RuntimeConfig:
        return RuntimeConfig(
            device=self.device,
            fp16=self.fp16,
            backend=self.backend,
            quantize=self.quantize,
            query_batch_size=self.query_batch_size,
            query_batch_wait_ms=self.query_batch_wait_ms,
        )

    def rerank_config(self) -> RerankConfig | None:
        if self.rerank_model is None:
            return None
        return RerankConfig(
            model=self.rerank_model,
            kind=self.rerank_kind,
            top_n=self.rerank_top_n,
            min_score=self.rerank_min_score,
            max_length=self.rerank_max_length,
            long_passages=self.rerank_long_passages,
            first_stage_weight=self.rerank_first_stage_weight,
            int8_calibration=self.rerank_int8_calibration,
        )

    def default_dense(self) -> DenseEncoderConfig | None:
        return DenseEncoderConfig(model=self.dense_model, kind=self.dense_kind) if self.dense_model else None

    def default_sparse(self) -> SparseEncoderConfig | None:
        return SparseEncoderConfig(model=self.sparse_model, kind=self.sparse_kind) if self.sparse_model else None

    def model_allowed(self, model: str) -> bool:
        """A client may only name models the operator listed: a model name is also
        a filesystem path to the loader, so free choice would let a request make
        the server read (and execute pickles from) arbitrary folders."""
        allowed = {m for m in (self.dense_model, self.sparse_model, *self.allowed_models) if m}
        return model in allowed

    def to_env_json(self) -> str:
        """The settings as JSON with secrets revealed, for worker processes."""
        data = self.model_dump(mode="json")
        for name in ("read_api_keys", "write_api_keys"):
            data[name] = [key.get_secret_value() for key in getattr(self, name)]
        data["store_token"] = self.store_token.get_secret_value() if self.store_token else None
        return json.dumps(data)

    @classmethod
    def from_env_json(cls, text: str) -> ApiSettings:
        return cls(**json.loads(text))

    def describe(self) -> str:
        """One line for the startup log (no secrets)."""
        auth = (
            f"API keys: {len(self.read_api_keys)} read, {len(self.write_api_keys)} write"
            + (", reads public" if self.public_read else "")
            if self.auth_enabled
            else "no API key configured: the API is open to anyone who can reach it"
        )
        return f"store={StoreConfig(uri=self.store_uri).display_uri} workers={self.workers} {auth}"
