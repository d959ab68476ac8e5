"""Questions about chunks, written by an LLM behind an OpenAI-compatible endpoint.

Any server that speaks ``POST {base_url}/chat/completions`` works (OpenAI,
vLLM, llama.cpp, Ollama's /v1, LM Studio). Requests run on a bounded thread
pool; 429 and 5xx answers and dropped connections are retried with exponential
backoff (honouring ``Retry-After``); every answer is cached on disk under a key
of (model, prompt, chunk hash), so a re-run, or a run that failed half way,
never pays for a chunk twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from hybrid_search.errors import ConfigError, HybridSearchError
from hybrid_search.types import Chunk

from .runs import write_json

__all__ = ["LLMConfig", "LLMError", "GeneratedQuestions", "QuestionGenerator", "DEFAULT_PROMPT", "parse_questions"]

DEFAULT_PROMPT = (
    "Below is a passage from a document collection.\n\n"
    "---\n{text}\n---\n\n"
    "Write {n} different questions that a user of this collection might ask and that this passage answers. "
    "Use the passage's own domain vocabulary, do not mention 'the passage' or 'the text', and make each question "
    "understandable on its own. Answer with the questions only, one per line."
)

_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\(?\d{1,2}[.):]|Q\d{1,2}[.:)]?)\s*")


class LLMError(HybridSearchError):
    """The LLM endpoint failed for good (after retries) or answered nonsense."""


@dataclass(frozen=True)
class LLMConfig:
    """Where the LLM is and how to ask it. The key is read from the environment
    variable ``api_key_env`` so it never lands in a saved config."""

    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    questions_per_chunk: int = 2
    prompt: str = DEFAULT_PROMPT
    concurrency: int = 4
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    timeout_s: float = 60.0
    temperature: float = 0.7
    max_tokens: int = 300
    cache_dir: str | None = None  # default: <data folder>/llm_cache

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"LLMConfig.base_url must be an http(s) URL; got {self.base_url!r}")
        if not self.model:
            raise ConfigError("LLMConfig.model must name a model")
        if "{text}" not in self.prompt or "{n}" not in self.prompt:
            raise ConfigError("LLMConfig.prompt must contain the placeholders {text} and {n}")
        for name in ("questions_per_chunk", "concurrency", "max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"LLMConfig.{name} must be >= 1; got {getattr(self, name)!r}")
        if self.max_retries < 0:
            raise ConfigError("LLMConfig.max_retries must be >= 0")
        for name in ("backoff_s", "max_backoff_s", "timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"LLMConfig.{name} must be > 0")

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


@dataclass
class GeneratedQuestions:
    """Questions per chunk id, and what producing them cost."""

    questions: dict[str, list[str]] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    cache_hits: int = 0
    failures: dict[str, str] = field(default_factory=dict)


def parse_questions(content: str, limit: int) -> list[str]:
    """One question per line; list markers and numbering are stripped."""
    found: list[str] = []
    for line in content.splitlines():
        line = _NUMBERING.sub("", line).strip().strip('"').strip()
        if len(line) < 8 or line.lower().startswith(("here are", "sure", "questions:")):
            continue
        if line not in found:
            found.append(line)
    return found[:limit]


class QuestionGenerator:
    """Generates questions for chunks with retries, concurrency and a disk cache."""

    def __init__(self, config: LLMConfig, cache_dir: Path, *, sleep: Callable[[float], None] = time.sleep) -> None:
        import httpx

        self.config = config
        self.cache_dir = Path(config.cache_dir) if config.cache_dir else Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._sleep = sleep
        self._stats_lock = threading.Lock()  # counters are bumped from the pool's threads
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        # One client for all threads: httpx.Client is thread-safe and pools connections.
        self._client = httpx.Client(headers=headers, timeout=config.timeout_s)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> QuestionGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def prompt_for(self, chunk: Chunk) -> str:
        return self.config.prompt.format(text=chunk.text, n=self.config.questions_per_chunk)

    def cache_key(self, chunk: Chunk) -> str:
        chunk_hash = hashlib.sha256(chunk.text.encode("utf-8")).hexdigest()
        material = json.dumps(
            [self.config.model, self.config.prompt, self.config.questions_per_chunk, self.config.temperature, chunk_hash]
        )
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _ask(self, prompt: str, stats: GeneratedQuestions) -> str:
        import httpx

        body = {
            "model": self.config.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        last_error = "no attempt made"
        for attempt in range(self.config.max_retries + 1):
            with self._stats_lock:
                stats.requests += 1
                stats.retries += 1 if attempt else 0
            retry_after: float | None = None
            try:
                response = self._client.post(self.config.endpoint, json=body)
            except httpx.TransportError as error:  # connection refused/reset, timeouts
                last_error = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 200:
                    try:
                        return str(response.json()["choices"][0]["message"]["content"])
                    except (ValueError, KeyError, IndexError, TypeError) as error:
                        raise LLMError(f"{self.config.endpoint} answered 200 without choices[0].message.content: {error}") from error
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in _RETRYABLE:
                    raise LLMError(f"{self.config.endpoint} refused the request ({last_error}); check base_url, model and key")
                header = response.headers.get("Retry-After")
                if header is not None:
                    try:
                        retry_after = float(header)
                    except ValueError:
                        retry_after = None
            if attempt < self.config.max_retries:
                # Full jitter: threads that failed together do not retry together.
                delay = min(self.config.max_backoff_s, self.config.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
                self._sleep(max(delay, retry_after or 0.0))
        raise LLMError(f"{self.config.endpoint} failed {self.config.max_retries + 1} times; last: {last_error}")

    def _one(self, chunk: Chunk, stats: GeneratedQuestions) -> list[str]:
        key = self.cache_key(chunk)
        path = self._cache_path(key)
        if path.is_file():
            with self._stats_lock:
                stats.cache_hits += 1
            return list(json.loads(path.read_text(encoding="utf-8"))["questions"])
        content = self._ask(self.prompt_for(chunk), stats)
        questions = parse_questions(content, self.config.questions_per_chunk)
        write_json(path, {"model": self.config.model, "chunk_id": chunk.id, "questions": questions, "raw": content})
        return questions

    def generate(self, chunks: Sequence[Chunk], *, progress: bool = True) -> GeneratedQuestions:
        """Questions for every chunk. Chunks that fail for good are listed in
        ``failures``; the caller decides whether that is fatal (answers already
        received stay cached either way)."""
        from tqdm.auto import tqdm

        stats = GeneratedQuestions()
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            futures = {pool.submit(self._one, chunk, stats): chunk for chunk in chunks}
            bar = tqdm(total=len(futures), desc="LLM questions", unit="chunk", disable=not progress)
            for future in as_completed(futures):
                chunk = futures[future]
                try:
                    stats.questions[chunk.id] = future.result()
                except LLMError as error:
                    stats.failures[chunk.id] = str(error)
                bar.update(1)
            bar.close()
        return stats
