"""README snippets are executed, so the documentation stays true."""

import re
from pathlib import Path

import pytest

from hybrid_search.settings import LayeredSettings

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_python_snippets_run(tiny_models, tmp_path, monkeypatch, capsys):
    snippets = blocks("python")
    assert snippets, "README has no python snippet"
    monkeypatch.chdir(tmp_path)
    # The README names the real offline models; the test runs the same code on tiny ones.
    replacements = {
        "~/.cache/hybrid-search-models/all-MiniLM-L6-v2": str(tiny_models.dense),
        "~/.cache/hybrid-search-models/splade-tiny": str(tiny_models.splade),
    }
    for snippet in snippets:
        for old, new in replacements.items():
            snippet = snippet.replace(old, new)
        exec(compile(snippet, str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert printed.startswith("1 memo ")


def test_toml_snippets_are_valid_config(tmp_path):
    for snippet in blocks("toml"):
        config = tmp_path / "hs.toml"
        config.write_text(snippet, encoding="utf-8")
        LayeredSettings.load(config)  # raises on an unknown table or key


def test_commands_named_in_the_quickstart_exist():
    root = README.parent
    quickstart = blocks("bash")[0]
    for script in re.findall(r"bash (\S+\.sh)", quickstart):
        assert (root / script).is_file(), script
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    test_command = re.search(r"^(\.venv/bin/python -m pytest)\s", quickstart, flags=re.M).group(1)
    assert test_command in ci
