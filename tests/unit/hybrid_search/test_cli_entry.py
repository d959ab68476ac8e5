"""The `hybrid-search` entry point (hybrid_search.cli_entry): it reads a plainly
spelled search the way the full command line (Typer) does and leaves every
other spelling to it; a search a running server answers prints the same
output, exit code and --verbose note as the full command line; everything else
(no server, another plan, a refusal, an unreachable server, --local, a bad
config) falls back to the full command line, which asks the server at most
once between the two. The server here is a stdlib fake answering with a real
result's plain form; the local search is a stub engine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import typer.main

from hybrid_search import StoreConfig, cli, cli_entry
from hybrid_search.cli_entry import (
    GLOBAL_VALUE_OPTIONS,
    SEARCH_FLAG_OPTIONS,
    SEARCH_VALUE_OPTIONS,
    read_search_argv,
)
from hybrid_search.cli_search import SearchFlags
from hybrid_search.remote import write_record
from hybrid_search.settings import LayeredSettings
from hybrid_search.types import FoldedCopy, Hit, PathScore, SearchResult, Snippet

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]


def _result(query: str = "cats") -> SearchResult:
    hits = [
        Hit(
            rank=1, chunk_id="a#0", doc_id="a", text="Intro.\n\nCats sit on mats [all day].\n\nThe end.", title="Pets", source="pets.md",
            page=2, heading_path=("Animals", "Cats"), metadata={"team": "x"}, paths={"bm25": PathScore(1, 2.5), "dense": PathScore(3, 0.4)},
            fused_score=0.031, matched_terms=("Cats",), fusion_weights={"bm25": 0.6, "dense": 0.4},
            snippet=Snippet("Cats sit on mats [all day].", 8, 35), folded=(FoldedCopy("b#0", "b", "copy.md", None, 1.0),),
        ),
        Hit(
            rank=2, chunk_id="c#1", doc_id="c", text="Dogs chase cats.", title="", source="dogs.md", page=None, heading_path=(),
            metadata={}, paths={"dense": PathScore(1, 0.7)}, fused_score=0.016, matched_terms=("cats",),
        ),
    ]  # fmt: skip
    return SearchResult(
        query=query, collection="docs", hits=hits, paths=("bm25", "dense"), fusion="adaptive", reranked=False, confident=True,
        query_terms=("cat",), timings_ms={"bm25": 1.5, "total": 3.0}, fusion_weights={"bm25": 0.6, "dense": 0.4},
    )  # fmt: skip


class FakeServer:
    """Answers POST .../search with ``status`` and ``body`` (default: the result's API form)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.body: dict | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, **request})
                body = fake.body
                if body is None:
                    body = _result(request["query"]).to_dict()
                    for item in body["hits"]:
                        item["source_url"] = None  # the API's own addition
                data = json.dumps(body).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class StubEngine:
    searches: ClassVar[list[tuple]] = []

    def search(self, name, query, options):
        StubEngine.searches.append((name, query, options))
        return _result(query)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_SEARCH_RUNTIME_DIR", str(tmp_path / "runtime"))
    for name in ("HYBRID_SEARCH_CONFIG", "HYBRID_SEARCH_URI", "HYBRID_SEARCH_COLLECTION", "HYBRID_SEARCH_DEVICE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    # What cli.main sets for the process, set here so the test restores it.
    for name, value in (("GRPC_VERBOSITY", "NONE"), ("TRANSFORMERS_VERBOSITY", "error"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli.state, "entry_point", False)
    monkeypatch.setattr(cli.state, "asked", None)
    monkeypatch.setattr(cli.state, "settings", LayeredSettings())
    # rich quiets a console for good when its reader goes away: restored here,
    # or every later CLI test in this process would print nothing to stdout.
    monkeypatch.setattr(cli.console, "quiet", False)
    monkeypatch.setattr(cli, "_engine", lambda reranker=None, batch_size=None: StubEngine())
    StubEngine.searches = []
    server = FakeServer()
    yield tmp_path, server
    server.close()


def _record(tmp_path: Path, port: int, device: str = "auto") -> None:
    write_record(StoreConfig(uri=str(tmp_path / "kb.db")), host="127.0.0.1", port=port, device=device, fp16=None, reranker=None, needs_key=False)


def _run(entry, argv: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["hybrid-search", *argv])
    code = 0
    try:
        entry()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _both(tmp_path: Path, server: FakeServer, argv: list[str], capsys, monkeypatch) -> tuple[tuple, tuple, int, int]:
    """(quick entry's code, out, err), (the full command line's), and the server
    requests each made."""
    full_argv = ["--uri", str(tmp_path / "kb.db"), *argv]
    before = len(server.requests)
    quick = _run(cli_entry.main, full_argv, capsys, monkeypatch)
    quick_requests = len(server.requests) - before
    monkeypatch.setattr(cli.state, "asked", None)
    before = len(server.requests)
    full = _run(cli.main, full_argv, capsys, monkeypatch)
    return quick, full, quick_requests, len(server.requests) - before


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "cats", "-C", "docs", "-v"],
        ["search", "-C", "docs", "cats", "--json", "--verbose"],
        ["search", "cats", "-C", "docs", "--explain", "-k", "2", "--paths=bm25,dense", "-f", "page >= 1", "--filter", "doc_id in a,c"],
    ],
)
def test_an_answered_search_prints_what_the_full_command_line_prints(env, argv, capsys, monkeypatch):
    tmp_path, server = env
    _record(tmp_path, server.port)
    quick, full, quick_requests, full_requests = _both(tmp_path, server, argv, capsys, monkeypatch)
    assert quick == full
    assert quick[0] == 0 and quick[1].strip()
    assert quick_requests == full_requests == 1
    assert server.requests[-1] == server.requests[-2]
    assert not StubEngine.searches
    if "-v" in argv or "--verbose" in argv:
        assert f"searched through the server at http://127.0.0.1:{server.port}" in quick[2]
    else:
        assert quick[2] == ""


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (422, {"error": {"message": "k: must be at most 100", "field": "k"}}, 2),
        (404, {"error": {"message": "no collection 'docs'"}}, 1),
        (503, {"error": {"message": "busy"}}, 1),
    ],
)
def test_a_refusal_is_reported_as_the_full_command_line_reports_it_and_asked_once(env, status, body, code, capsys, monkeypatch):
    tmp_path, server = env
    _record(tmp_path, server.port)
    server.status, server.body = status, body
    quick, full, quick_requests, full_requests = _both(tmp_path, server, ["search", "cats", "-C", "docs", "-v"], capsys, monkeypatch)
    assert quick == full
    assert quick[0] == code and f"refused the search ({status})" in quick[2]
    assert quick_requests == full_requests == 1  # the full command line took the quick entry's answer


@pytest.mark.parametrize("case", ["no record", "unreachable", "another device", "local", "unplain spelling"])
def test_a_search_the_server_does_not_answer_runs_here_as_before(env, case, capsys, monkeypatch):
    tmp_path, server = env
    argv = ["search", "cats", "-C", "docs", "-v"]
    if case == "unreachable":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        _record(tmp_path, closed_port)
    elif case == "another device":
        _record(tmp_path, server.port, device="cpu")
    elif case == "local":
        _record(tmp_path, server.port)
        argv.append("--local")
    elif case == "unplain spelling":
        _record(tmp_path, server.port)
        argv = ["search", "cats", "-C", "docs", "-v", "-k5"]  # joined short option: left to Typer
    quick, full, quick_requests, full_requests = _both(tmp_path, server, argv, capsys, monkeypatch)
    assert quick == full
    assert quick[0] == 0
    expected_note = {
        "no record": "searching in this process: no running `hybrid-search serve` is recorded",
        "unreachable": "is stale: nothing answered at",
        "another device": "runs its models on device 'cpu', this search asks for 'auto'",
        "local": None,
        "unplain spelling": "searched through the server",
    }[case]
    if expected_note:
        assert expected_note in quick[2]
    assert quick_requests == full_requests == (1 if case == "unplain spelling" else 0)
    assert len(StubEngine.searches) == (0 if case == "unplain spelling" else 2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config", "missing.toml", "search", "cats", "-C", "docs"], "missing.toml"),
        (["search", "cats", "--fusion", "nonsense"], "name a collection"),  # the first problem is named, as before
        (["search", "cats", "-C", "docs", "--weights", "bm25"], "--weights"),
        (["search", "cats", "-C", "docs", "-f", "page"], "page"),
    ],
)
def test_bad_input_is_reported_by_the_full_command_line(env, argv, message, capsys, monkeypatch):
    tmp_path, server = env
    _record(tmp_path, server.port)
    monkeypatch.chdir(tmp_path)
    quick, full, quick_requests, full_requests = _both(tmp_path, server, argv, capsys, monkeypatch)
    assert quick == full and quick[0] == 2 and message in quick[2], quick
    assert quick_requests == full_requests == 0


# --- reading the command line ---------------------------------------------------------------


def _typer_reads(argv: list[str], monkeypatch) -> tuple[dict, SearchFlags]:
    """What the Typer command line passes on: the global options to
    LayeredSettings.load, the search's flags to search_request."""
    seen: dict = {}

    def load(path=None, **given):
        seen["globals"] = {"config": str(path) if path is not None else None, **given}
        return LayeredSettings()

    def search_request(settings, flags):
        seen["flags"] = flags
        raise SystemExit(0)

    monkeypatch.setattr(cli.LayeredSettings, "load", staticmethod(load))
    monkeypatch.setattr(cli, "search_request", search_request)
    monkeypatch.setattr(cli.state, "entry_point", False)
    monkeypatch.setattr(sys, "argv", ["hybrid-search", *argv])
    with pytest.raises(SystemExit):
        cli.run_app(cli.app, "hybrid-search")
    return seen["globals"], seen["flags"]


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "cats"],
        ["search", ""],
        ["search", "search", "-C", "search"],
        ["--uri", "kb.db", "-c", "hs.toml", "--token=u:p", "--device", "cpu", "--backend", "onnx", "--quantize", "int8", "search", "cats"],
        [
            "search", "-C", "docs", "what is it", "-k", "3", "--paths=bm25,dense", "-f", "page >= 3", "--filter", "doc_id in a,b",
            "--no-collapse", "--json", "-v", "--rerank", "--min-rerank-score", "0.5", "--rerank-first-stage-weight", ".3",
            "--depth=50", "--rrf-k", "60", "--weights", "bm25=1,dense=0.5", "--fusion", "rrf", "--normalization", "z-score",
            "--rerank-model", "m", "--rerank-kind", "flag", "--rerank-top-n", "20", "--explain", "--no-rerank", "--local",
            "--no-explain", "-k", "007", "--collapse", "--min-rerank-score=1.25",
        ],
    ],
)  # fmt: skip
def test_a_plain_search_is_read_as_typer_reads_it(argv, monkeypatch):
    read = read_search_argv(argv)
    assert read is not None
    global_values, values = read
    typer_globals, typer_flags = _typer_reads(argv, monkeypatch)
    assert {name: global_values.get(name) for name in typer_globals} == typer_globals
    assert SearchFlags(**values) == typer_flags


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["search", "--help"],
        ["search", "cats", "-h"],
        ["collections", "list"],
        ["-v", "search", "cats"],
        ["search", "cats", "--uri", "kb.db"],
        ["search"],
        ["search", "cats", "dogs"],
        ["search", "-k5", "cats"],
        ["search", "-vk", "5", "cats"],
        ["search", "cats", "--", "-x"],
        ["search", "-"],
        ["search", "cats", "-k", "-1"],
        ["search", "cats", "-k", "1.5"],
        ["search", "cats", "-k", " 5"],
        ["search", "cats", "-k", "1_0"],
        ["search", "cats", "--min-rerank-score", "1e-3"],
        ["search", "cats", "--min-rerank-score", "-0.5"],
        ["search", "cats", "--json=1"],
        ["search", "cats", "-C"],
        ["search", "cats", "-C", "--json"],
        ["--uri", "search", "cats"],
        ["-c=hs.toml", "search", "cats"],
    ],
)
def test_every_other_spelling_is_left_to_typer(argv):
    assert read_search_argv(argv) is None


def test_the_tables_name_every_option_of_the_typer_command_and_its_defaults():
    group = typer.main.get_command(cli.app)
    global_options = {opt: param.name for param in group.params if param.name != "help" for opt in param.opts}
    assert global_options == GLOBAL_VALUE_OPTIONS
    search = group.commands["search"]
    values, flags = {}, {}
    defaults = {f: v for f, v in SearchFlags.__dataclass_fields__.items()}
    for param in search.params:
        assert param.envvar is None, param.name  # a value from the environment would be missed
        if param.name in ("help", "query"):
            continue
        expected_default = () if param.multiple else param.default
        assert defaults[param.name].default == expected_default, param.name
        if param.is_flag:
            for opt in param.opts:
                flags[opt] = (param.name, True)
            for opt in param.secondary_opts:
                flags[opt] = (param.name, False)
        else:
            for opt in param.opts:
                values[opt] = param.name
    assert flags == SEARCH_FLAG_OPTIONS
    assert values == {opt: name for opt, (name, _) in SEARCH_VALUE_OPTIONS.items()}
    assert set(defaults) == {p.name for p in search.params if p.name != "help"}


def test_the_quick_entry_imports_neither_typer_nor_pydantic_nor_the_engine(env):
    tmp_path, server = env
    _record(tmp_path, server.port)
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['hybrid-search', *sys.argv[1:]]\n"
        "from hybrid_search.cli_entry import main\n"
        "main()\n"
        "print('LOADED=' + ','.join(m for m in ('typer', 'pydantic', 'hybrid_search.engine', 'hybrid_search.cli', 'pymilvus') if m in sys.modules), file=sys.stderr)\n"
    )
    argv = ["--uri", str(tmp_path / "kb.db"), "search", "cats", "-C", "docs", "-v"]
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-c", probe, *argv], check=False, capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "searched through the server" in done.stderr
    assert "LOADED=\n" in done.stderr, done.stderr
    # The same command through the full command line, in its own process, prints the same.
    full = subprocess.run(
        [sys.executable, "-m", "hybrid_search.cli", *argv], check=False, capture_output=True, text=True, env=environment, timeout=120
    )
    assert (full.returncode, full.stdout) == (0, done.stdout)
    assert full.stderr == done.stderr.replace("LOADED=\n", "")


class _GoneReader:
    """A stdout whose reader has gone (``| head`` after one line); its file
    descriptor is a devnull one, which what ends on a broken pipe may replace."""

    def __init__(self) -> None:
        self.fd = os.open(os.devnull, os.O_WRONLY)

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fd


@pytest.mark.parametrize("output", [[], ["--json"]])
def test_a_reader_that_goes_away_ends_both_paths_alike(env, output, capsys, monkeypatch):
    tmp_path, server = env
    _record(tmp_path, server.port)
    argv = ["--uri", str(tmp_path / "kb.db"), "search", "cats", "-C", "docs", *output]
    codes = []
    for entry in (cli_entry.main, cli.main):
        gone = _GoneReader()
        monkeypatch.setattr(sys, "stdout", gone)
        try:
            codes.append(_run(entry, argv, capsys, monkeypatch)[0])
        finally:
            os.close(gone.fd)
    assert codes == [1, 1]


def test_ctrl_c_ends_both_paths_alike(env, capsys, monkeypatch):
    tmp_path, server = env
    _record(tmp_path, server.port)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("hybrid_search.cli_search.ask_server", interrupted)
    quick, full, _, _ = _both(tmp_path, server, ["search", "cats", "-C", "docs"], capsys, monkeypatch)
    assert quick == full == (130, "", "")
