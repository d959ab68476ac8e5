"""The ingest-throughput benchmark's pure parts: which corpus ``--docs`` names,
the record subset it indexes, the refusals, and the Markdown of a result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.ingest_throughput import _record_corpus, _subset, markdown, run

pytestmark = pytest.mark.unit


def _corpus(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"_id": str(i), "text": f"record {i}"}) + "\n\n" for i in range(n)), encoding="utf-8")
    return path


def test_record_corpus_is_a_beir_folder_or_a_jsonl_file(tmp_path):
    (tmp_path / "beir").mkdir()
    corpus = _corpus(tmp_path / "beir" / "corpus.jsonl", 3)
    assert _record_corpus(tmp_path / "beir") == corpus
    assert _record_corpus(corpus) == corpus
    (tmp_path / "docs").mkdir()
    assert _record_corpus(tmp_path / "docs") is None


@pytest.mark.parametrize(("max_docs", "kept"), [(2, 2), (None, 5), (9, 5)])
def test_subset_keeps_the_first_records_as_a_beir_folder(tmp_path, max_docs, kept):
    folder = _subset(_corpus(tmp_path / "corpus.jsonl", 5), max_docs, tmp_path / "subset" / "set")
    lines = (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["_id"] for line in lines] == [str(i) for i in range(kept)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conditions": ("parallel",)}, "--conditions"),
        ({"max_docs": 3}, "--max-docs applies to a record corpus"),
        ({"dense_model": None}, "--dense-model"),
    ],
)
def test_bad_settings_are_refused_before_any_model_loads(tmp_path, kwargs, message):
    settings = {"dense_model": "unused"} | kwargs
    with pytest.raises(SystemExit, match=message):
        run(tmp_path, **settings)


def test_markdown_shows_each_condition_against_the_encoders():
    def stage_pass(condition: str, seconds: float) -> dict:
        return {"condition": condition, "seconds": seconds, "cpu_seconds": seconds, "stage_seconds": {"encode": seconds - 1}}

    result = {
        "command": "python -m benchmarks ingest-throughput --docs x",
        "machine": {"cpu": "cpu", "cpu_usable": 2, "cpu_count": 2, "torch_threads": 2, "platform": "linux", "python": "3.11"},
        "settings": {
            "docs": "x", "files": ["corpus.jsonl"], "dense_model": "d", "dense_kind": "st", "sparse_model": None, "sparse_kind": None,
            "batch_size": 64, "encoder_batch_size": 32, "max_tokens": 256, "device": "cpu",
        },
        "chunks": 100,
        "documents": 50,
        "encoders": {"passes": [{"seconds": 10.0, "cpu_seconds": 10.0}] * 3, "docs_per_s": 5.0},
        "pipeline": {
            "passes": [stage_pass("sequential", 12.5), stage_pass("overlapped", 10.0)],
            "sequential": {"docs_per_s": 4.0, "ratio_to_encoders": 0.8, "ratio_to_encoders_cpu": 0.8, "share_outside_encode": 0.08},
            "overlapped": {"docs_per_s": 5.0, "ratio_to_encoders": 1.0, "ratio_to_encoders_cpu": 1.0, "share_outside_encode": 0.1},
        },
        "overlapped_over_sequential": 1.25,
        "load_average": {"before": [1.0], "after": [2.0]},
        "packages": {"torch": "2"},
        "git_revision": "abc",
        "date": "today",
    }
    text = markdown(result)
    assert "| sequential | 4.00 | 5.00 | **0.80** |" in text
    assert "| overlapped | 5.00 | 5.00 | **1.00** |" in text
    assert "**1.25x**" in text and "| pipeline, overlapped | 10.0 |" in text
