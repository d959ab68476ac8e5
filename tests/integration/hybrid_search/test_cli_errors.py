"""`hybrid-search` with a missing file, folder or model: a message naming it,
a non-zero exit, no traceback (through ``main``, and once in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_search import cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]

CASES = [
    (["--config", "$WORK/missing.toml", "collections", "list"], 2, "config file '$WORK/missing.toml' does not exist"),
    (["--uri", "$WORK/no/such/dir/kb.db", "collections", "list"], 1, "cannot open Milvus"),
    (["index", "$WORK/no-such-folder", "-C", "docs"], 2, "does not exist"),
    (
        ["index", "$DOCS", "-C", "docs", "--dense-model", "$WORK/no-model", "--dense-kind", "sentence-transformers", "--no-sparse"],
        1,
        "there is no model folder at '$WORK/no-model'",
    ),
    (["index", "$DOCS", "-C", "docs", "--no-dense", "--no-sparse", "--language", "zh", "--user-dict", "$WORK/terms.txt"], 2, "no such file"),
    (["search", "cats", "-C", "missing"], 1, "no collection 'missing'"),
    (["profile", "write-local", "$WORK/no-models"], 2, "no dense model in"),
]


@pytest.mark.parametrize("args, code, message", CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_missing_inputs_are_clear_errors(tmp_path, monkeypatch, capsys, args, code, message):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Cats sit on mats.\n", encoding="utf-8")
    subst = {"$WORK": str(tmp_path), "$DOCS": str(docs)}

    def fill(text: str) -> str:
        for key, value in subst.items():
            text = text.replace(key, value)
        return text

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "400")
    store = [] if args[0] in ("--uri", "--config") else ["--uri", str(tmp_path / "kb.db")]
    # main(), as the console script runs it (its error handling included)
    monkeypatch.setattr(sys, "argv", ["hybrid-search", *store, *map(fill, args)])
    with pytest.raises(SystemExit) as caught:
        cli.main()
    printed = capsys.readouterr()
    assert caught.value.code == code, printed.out + printed.err
    assert "Traceback" not in printed.out + printed.err
    assert fill(message) in " ".join((printed.out + printed.err).split())


def test_a_missing_model_profile_file_is_named(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYBRID_SEARCH_MODEL_PROFILE": str(tmp_path / "models.toml"), "COLUMNS": "400"}
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("text\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "hybrid_search.cli", "--uri", str(tmp_path / "kb.db"), "index", str(tmp_path / "docs"), "-C", "docs"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no such profile file" in " ".join(done.stderr.split())
