"""`python -m benchmarks overhead` on a 20-document BEIR set: the BM25-only
engine against the bare Milvus call it makes, timed alternating in one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.__main__ import app
from benchmarks.engine_overhead import CONDITIONS, time_alternating

pytestmark = pytest.mark.integration


def test_overhead_command_times_engine_and_bare_call(beir_set: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["overhead", str(beir_set), "--rounds", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    data = json.loads((tmp_path / "overhead-tinyset.json").read_text())
    assert data["dataset"]["documents"] == 20 and data["dataset"]["queries"] == 10
    assert list(data["conditions"]) == [label for label, *_ in CONDITIONS]
    for condition in data["conditions"].values():
        qps = condition["queries_per_s"]
        assert set(qps) == {"engine", "bare", "bare, hits not read"} and all(v > 0 for v in qps.values())
        assert condition["ratio_engine_to_bare"] == pytest.approx(qps["engine"] / qps["bare"])
        assert condition["latency_ms"]["engine"]["n"] == 10
        # One round: its numbers are the whole run's.
        (only,) = condition["by_round"]
        assert only["queries_per_s"] == pytest.approx(qps) and only["ratio_engine_to_bare"] == pytest.approx(condition["ratio_engine_to_bare"])
    assert "engine / bare" in (tmp_path / "overhead-tinyset.md").read_text()


def test_time_alternating_takes_turns_per_item() -> None:
    order: list[tuple[str, int]] = []
    samples = time_alternating({"a": lambda i: order.append(("a", i)), "b": lambda i: order.append(("b", i))}, 2, rounds=2)
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1)] * 2
    assert [len(v) for v in samples.values()] == [4, 4]


def test_markdown_shows_the_defaults_rounds_apart() -> None:
    from benchmarks.engine_overhead import BY_ROUND, overhead_markdown

    def condition(engine: float, bare: float) -> dict:
        qps = {"engine": engine, "bare": bare, "bare, hits not read": bare * 1.1}
        return {"queries_per_s": qps, "ratio_engine_to_bare": engine / bare, "ratio_engine_to_unread_bare": engine / (bare * 1.1),
                "engine_p50_ms": 1000 / engine, "bare_p50_ms": 1000 / bare}

    whole = condition(75.0, 100.0)
    data = {
        "dataset": {"name": "s", "documents": 1, "queries": 2, "split": "test", "rounds": 2},
        "conditions": {BY_ROUND: {**whole, "latency_ms": {"engine": {"p50": 13.0}, "bare": {"p50": 10.0}},
                                  "by_round": [condition(60.0, 100.0), condition(90.0, 100.0)]}},
        "load_average": {"before": [1.0, 1.0, 1.0], "after": [1.0, 1.0, 1.0]},
        "environment": {"git_revision": "x", "command": "c", "machine": {"cpu": "cpu", "cpu_usable": 2, "ram_gib": 1.0, "platform": "p", "python": "3"}},
    }
    text = overhead_markdown(data)
    assert "| defaults, round 1 (first pass: chunks analysed when first met) | 60.000 | 100.000 | 0.600 |" in text
    assert "| defaults, round 2 (every chunk met before) | 90.000 | 100.000 | 0.900 |" in text
