"""LLM question generation against a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hybrid_search.errors import ConfigError
from hybrid_search.types import Chunk
from training.data import DataConfig, build_training_data
from training.llm_questions import LLMConfig, LLMError, QuestionGenerator, parse_questions

pytestmark = pytest.mark.unit


class FakeLLM:
    """Answers /v1/chat/completions; can fail the first requests for a passage."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_first: dict[str, list[int]] = {}  # passage marker -> status codes to answer first
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                with fake.lock:
                    fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                    status = 200
                    for marker, codes in fake.fail_first.items():
                        if marker in prompt and codes:
                            status = codes.pop(0)
                if status != 200:
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "try again"}')
                    return
                subject = prompt.split("---\n")[1].split(".")[0]
                content = f"1. What is said about {subject}?\n2. Why does {subject} matter?\n"
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture()
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _chunks(n: int) -> list[Chunk]:
    return [Chunk(doc_id=f"d{i}", chunk_index=0, text=f"Topic{i} is described here. More words follow.") for i in range(n)]


def _config(fake: FakeLLM, cache: Path, **overrides: object) -> LLMConfig:
    values: dict = {"base_url": fake.base_url, "model": "fake-model", "concurrency": 3, "backoff_s": 0.001, "max_backoff_s": 0.01, "cache_dir": str(cache)}
    values.update(overrides)
    return LLMConfig(**values)


def test_generates_with_key_and_caches(fake_llm: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "sekret")
    config = _config(fake_llm, tmp_path / "cache", api_key_env="FAKE_KEY")
    with QuestionGenerator(config, tmp_path) as generator:
        first = generator.generate(_chunks(5), progress=False)
    assert first.requests == 5 and first.cache_hits == 0 and not first.failures
    assert first.questions["d3#0"] == ["What is said about Topic3 is described here?", "Why does Topic3 is described here matter?"]
    assert fake_llm.requests[0]["path"] == "/v1/chat/completions"
    assert fake_llm.requests[0]["auth"] == "Bearer sekret"
    assert fake_llm.requests[0]["body"]["model"] == "fake-model"
    # A re-run pays nothing: every chunk comes from the cache.
    with QuestionGenerator(config, tmp_path) as generator:
        second = generator.generate(_chunks(5), progress=False)
    assert second.requests == 0 and second.cache_hits == 5
    assert second.questions == first.questions
    assert len(fake_llm.requests) == 5
    # Another model (or prompt) is another cache key.
    with QuestionGenerator(_config(fake_llm, tmp_path / "cache", model="other"), tmp_path) as generator:
        assert generator.generate(_chunks(1), progress=False).requests == 1


def test_retries_500_and_429(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.fail_first = {"Topic0 ": [500, 429, 503], "Topic1 ": [429]}
    with QuestionGenerator(_config(fake_llm, tmp_path / "cache"), tmp_path) as generator:
        result = generator.generate(_chunks(3), progress=False)
    assert not result.failures
    assert result.retries == 4 and result.requests == 7
    assert set(result.questions) == {"d0#0", "d1#0", "d2#0"}


def test_gives_up_after_max_retries_and_keeps_the_rest(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.fail_first = {"Topic1 ": [500] * 10}
    with QuestionGenerator(_config(fake_llm, tmp_path / "cache", max_retries=2), tmp_path) as generator:
        result = generator.generate(_chunks(3), progress=False)
    assert set(result.failures) == {"d1#0"} and "failed 3 times" in result.failures["d1#0"]
    assert set(result.questions) == {"d0#0", "d2#0"}  # cached: a re-run only asks for d1


def test_client_errors_are_not_retried(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.fail_first = {"Topic0 ": [401]}
    with QuestionGenerator(_config(fake_llm, tmp_path / "cache"), tmp_path) as generator:
        result = generator.generate(_chunks(1), progress=False)
    assert "refused" in result.failures["d0#0"] and result.requests == 1


def test_unreachable_endpoint_fails_cleanly(tmp_path: Path) -> None:
    config = LLMConfig(base_url="http://127.0.0.1:9/v1", model="m", max_retries=1, backoff_s=0.001, timeout_s=2)
    with QuestionGenerator(config, tmp_path) as generator:
        result = generator.generate(_chunks(1), progress=False)
    assert "failed 2 times" in result.failures["d0#0"]


def test_data_folder_from_llm_questions(fake_llm: FakeLLM, tiny_beir: Path, tmp_path: Path) -> None:
    llm = _config(fake_llm, tmp_path / "cache")
    config = DataConfig(source="beir", path=str(tiny_beir), use_labels=False, llm=llm, dev_fraction=0.2)
    data = build_training_data(config, tmp_path / "data", progress=False)
    train_docs = set(data.split.train)
    assert data.train and {e.source for e in data.train} == {"llm"}
    assert all(e.pos_ids[0].split("#")[0] in train_docs for e in data.train)
    assert data.dev and {q.source for q in data.dev} == {"llm"}
    asked = len(fake_llm.requests)
    build_training_data(config, tmp_path / "data", progress=False)
    assert len(fake_llm.requests) == asked  # the second build is all cache hits


def test_parse_questions_strips_numbering() -> None:
    content = "Here are two questions:\n1) What grew?\n- Why did costs fall?\n\nQ3: Who reported record revenue?"
    assert parse_questions(content, 5) == ["What grew?", "Why did costs fall?", "Who reported record revenue?"]
    assert parse_questions(content, 1) == ["What grew?"]


def test_llm_config_validation() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        LLMConfig(base_url="localhost:8000", model="m")
    with pytest.raises(ConfigError, match="placeholders"):
        LLMConfig(base_url="http://x/v1", model="m", prompt="no placeholders")
    with pytest.raises(LLMError.__mro__[1]):  # HybridSearchError family
        raise LLMError("x")
