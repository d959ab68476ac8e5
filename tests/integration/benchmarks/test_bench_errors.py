"""`python -m benchmarks` with a missing file, folder or model: one line naming
it, a non-zero exit, no traceback (through ``main``, and once in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("bench_errors")
    beir = work / "tiny"
    beir.mkdir()
    (beir / "corpus.jsonl").write_text('{"_id": "d1", "text": "a document"}\n', encoding="utf-8")
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "document"}\n', encoding="utf-8")
    (beir / "qrels").mkdir()
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HYBRID_SEARCH_DATASETS": str(work / "no-datasets-here"),
        "HYBRID_SEARCH_MODELS": str(work / "no-models-here"),
        "WORK": str(work),
        "BEIR": str(beir),
    }


CASES = [
    # the case from the issue: a preset name without the datasets folder
    (["tune", "nvidia_sec_10k"], 2, "no BEIR folder 'nvidia_sec_10k'"),
    (["quality", "nvidia_sec_10k", "--conditions", "bm25"], 2, "no BEIR folder"),
    (["bm25", "scifact"], 2, "no BEIR folder 'scifact'"),
    (["index", "$BEIR", "--dense", "e5-small", "--sparse", "none"], 1, "--dense: no model folder at '$WORK/no-models-here/multilingual-e5-small'"),
    (["index", "$BEIR", "--dense", "none", "--sparse", "/no/such/splade"], 1, "--sparse: no model folder at '/no/such/splade'"),
    (["quality", "$BEIR", "--dense", "none", "--sparse", "none", "--tuning", "$WORK/tuning.json"], 2, "--tuning: no such file"),
    (["quality", "$BEIR", "--dense", "none", "--sparse", "none", "--reranker", "./no-reranker"], 1, "--reranker: no model folder"),
    (["speed", "$BEIR", "--dense", "none", "--sparse", "none", "--models", "minilm"], 1, "--models: no model folder"),
    (["conditions", "list", "--file", "$WORK/conditions.toml"], 2, "No such file or directory"),
    (["conditions", "freeze", "$WORK/quality.json", "--file", "$WORK/c.toml"], 2, "No such file or directory"),
    (["summary", "--results", "$WORK/results"], 2, "--results: no such folder"),
]


@pytest.mark.parametrize("args, code, message", CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_missing_inputs_are_one_line_errors(env, monkeypatch, capsys, args, code, message):
    from benchmarks.__main__ import main

    for key in ("HYBRID_SEARCH_DATASETS", "HYBRID_SEARCH_MODELS"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.chdir(env["WORK"])
    args = [a.replace("$BEIR", env["BEIR"]).replace("$WORK", env["WORK"]) for a in args]
    monkeypatch.setattr(sys, "argv", ["benchmarks", *args])
    with pytest.raises(SystemExit) as caught:
        main()  # what `python -m benchmarks` runs
    printed = capsys.readouterr()
    _check(caught.value.code, printed.out, printed.err, code, message.replace("$WORK", env["WORK"]))
    assert not (Path(env["WORK"]) / "results").exists()  # nothing half-written


def _check(returncode, out, err, code, message):
    assert returncode == code, err
    assert "Traceback" not in err and "Traceback" not in out
    error_lines = [line for line in err.splitlines() if line.startswith("python -m benchmarks: error: ")]
    assert len(error_lines) == 1, err
    assert message in error_lines[0]


def test_the_issue_case_in_a_subprocess(env):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "tune", "nvidia_sec_10k"], cwd=env["WORK"], env=env, capture_output=True, text=True, timeout=120
    )
    _check(done.returncode, done.stdout, done.stderr, 2, "no BEIR folder 'nvidia_sec_10k'")


def test_pdf_text_benchmark_on_a_small_table_pdf(tmp_path, capsys, monkeypatch):
    import json

    from fpdf import FPDF

    from benchmarks.__main__ import main

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    pdf.add_page()
    for y, row in ((30, ("Segment", "2023", "2022")), (35, ("Graphics", "11,906", "15,868"))):
        for x, cell in zip((20, 90, 130), row):
            pdf.text(x, y, cell)
    (tmp_path / "t.pdf").write_bytes(bytes(pdf.output()))
    monkeypatch.setattr(sys, "argv", ["benchmarks", "pdf-text", str(tmp_path / "t.pdf"), "--repeats", "1", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    result = json.loads((tmp_path / "out" / "pdf-text-t.json").read_text())
    assert result["pages"] == 1 and result["pages_with_different_words"] == [] and result["lines_with_cells"] == 2
    assert "layout / plain" in capsys.readouterr().out
