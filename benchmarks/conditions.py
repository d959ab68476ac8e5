"""Reproducible conditions, in the spirit of Pyserini's reproduction matrix.

``benchmarks/conditions.toml`` names each condition (a dataset, its index
models, the paths and fusion, or a tuning file) with the scores it is expected
to reach and a tolerance. ``python -m benchmarks conditions check`` re-runs them
through the engine (each dataset's index is built once and reused) and exits
with status 1 when any score drifts beyond its tolerance;
``conditions run`` prints the scores without judging them; ``conditions freeze``
rewrites the file from quality result JSONs (after a deliberate change).
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hybrid_search.config import FusionConfig

from .report import environment, markdown_table, write_json

__all__ = ["load_conditions", "run_conditions", "check_results", "freeze", "DEFAULT_FILE"]

DEFAULT_FILE = Path(__file__).resolve().parent / "conditions.toml"
TOLERANCE = {"single-bm25": 0.001, "default": 0.005, "rerank": 0.01}


def load_conditions(path: Path = DEFAULT_FILE) -> dict[str, Any]:
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    data.setdefault("datasets", {})
    data.setdefault("condition", [])
    names = [c["name"] for c in data["condition"]]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"{path}: duplicate condition names {sorted(duplicates)}")
    for c in data["condition"]:
        if c["dataset"] not in data["datasets"]:
            raise ValueError(
                f"{path}: condition {c['name']!r} names dataset {c['dataset']!r}, which has no [datasets.{c['dataset']}] table"
            )
    return data


def _select(data: Mapping[str, Any], names: Sequence[str]) -> list[dict[str, Any]]:
    conditions = list(data["condition"])
    if not names:
        return conditions
    chosen = []
    for name in names:
        matched = [
            c
            for c in conditions
            if c["name"] == name or c["dataset"] == name or (name.endswith("*") and c["name"].startswith(name[:-1]))
        ]
        if not matched:
            raise ValueError(
                f"no condition or dataset {name!r} in the conditions file (see `python -m benchmarks conditions list`)"
            )
        chosen.extend(c for c in matched if c not in chosen)
    return chosen


def run_conditions(
    data: Mapping[str, Any],
    names: Sequence[str],
    *,
    cache: Path,
    runtime: Any,
    root: Path,
    log: Callable[[str], None],
) -> dict[str, dict[str, float]]:
    """{condition name: measured metrics}, each dataset indexed once."""
    from .beir import load_beir
    from .indexes import IndexSpec, open_index
    from .presets import analyzer_config, dataset_path, dense_config, sparse_config
    from .quality import parse_conditions, score_conditions

    selected = _select(data, names)
    measured: dict[str, dict[str, float]] = {}
    for dataset in dict.fromkeys(c["dataset"] for c in selected):
        ds = data["datasets"][dataset]
        name, folder = dataset_path(ds.get("path", dataset))
        spec = IndexSpec(
            dataset=load_beir(folder, name),
            dense=dense_config(ds.get("dense")),
            sparse=sparse_config(ds.get("sparse")),
            analyzer=analyzer_config(ds.get("language", "en")),
        )
        opened = open_index(spec, cache=cache, runtime=runtime, log=log)
        available = list(opened.engine.open_collection(opened.collection).paths)
        for condition in [c for c in selected if c["dataset"] == dataset]:
            split = condition.get("split", data.get("defaults", {}).get("split", "test"))
            queries, qrels = spec.dataset.split(split)
            if condition.get("sample") and condition["sample"] < len(queries):
                from .beir import split_queries

                keep, _ = split_queries(sorted(queries), condition["sample"] / len(queries), seed=condition.get("sample_seed", 13))
                queries, qrels = {q: queries[q] for q in keep}, {q: qrels[q] for q in keep}
            fusion = FusionConfig(**condition["fusion"]) if condition.get("fusion") else FusionConfig(method="rrf")
            tuning = (root / condition["tuning"]) if condition.get("tuning") else None
            parsed = parse_conditions(condition["run"], available, fusion, tuning_file=tuning)
            results, _ = score_conditions(opened, queries, qrels, parsed, split=split, cache=cache, log=log)
            measured[condition["name"]] = results[parsed[0].name]["metrics"]
        opened.engine.close()
    return measured


def check_results(data: Mapping[str, Any], measured: Mapping[str, Mapping[str, float]]) -> tuple[bool, list[list[Any]]]:
    ok = True
    rows = []
    for condition in data["condition"]:
        if condition["name"] not in measured:
            continue
        tolerance = condition.get("tolerance", data.get("defaults", {}).get("tolerance", TOLERANCE["default"]))
        for metric, expected in condition.get("expected", {}).items():
            got = measured[condition["name"]].get(metric)
            drift = None if got is None else got - expected
            passed = drift is not None and abs(drift) <= tolerance + 1e-12
            ok = ok and passed
            rows.append(
                [
                    condition["name"],
                    metric,
                    expected,
                    got,
                    f"{drift:+.4f}" if drift is not None else "missing",
                    tolerance,
                    "ok" if passed else "DRIFT",
                ]
            )
    return ok, rows


def report_check(ok: bool, rows: list[list[Any]], out: Path | None) -> str:
    text = markdown_table(["condition", "metric", "expected", "measured", "drift", "tolerance", "status"], rows)
    if out is not None:
        write_json(out, {"benchmark": "conditions-check", "passed": ok, "rows": rows, "environment": environment()})
    return text


# --- freeze: conditions.toml from quality results -----------------------------------

HEADER = """# Reproducible conditions (generated by `python -m benchmarks conditions freeze`).
#
# Each [[condition]] re-runs one quality condition through the engine and Milvus
# and is expected to reach the scores in `expected` within `tolerance`
# (absolute). Check them all with:
#
#     python -m benchmarks conditions check
#
# or one dataset / one condition:  python -m benchmarks conditions check scifact
#
# [datasets.NAME] gives the index each dataset's conditions share (models and
# analyzer); models are aliases of ~/.cache/hybrid-search-models folders
# (see benchmarks/presets.py), datasets are ../shared/datasets/NAME.
# Tolerances: 0.001 for BM25 alone (exact arithmetic on the same tokens),
# 0.005 where an encoder is involved (float differences between CPUs and
# libraries can swap near-tied documents), 0.01 when reranked.
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(round(value, 4)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return (
            "{ "
            + ", ".join(f"{json.dumps(k) if not str(k).isidentifier() else k} = {_toml_value(v)}" for k, v in value.items())
            + " }"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _alias_for(model: Mapping[str, Any] | None) -> str | None:
    from .presets import MODEL_ALIASES

    if not model:
        return None
    folder = str(model["model"]).rstrip("/").rsplit("/", 1)[-1]
    for alias, spec in MODEL_ALIASES.items():
        if spec.folder == folder:
            return alias
    return str(model["model"])


def freeze(
    quality_files: Iterable[Path],
    out: Path,
    *,
    root: Path,
    metrics: Sequence[str] = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map"),
) -> str:
    datasets: dict[str, dict[str, Any]] = {}
    conditions: list[dict[str, Any]] = []
    for file in quality_files:
        q = json.loads(Path(file).read_text())
        if q.get("dataset", {}).get("max_queries"):
            raise ValueError(f"{file} scored only part of the queries; freeze full runs only")
        name = q["dataset"]["name"]
        from .presets import datasets_dir

        location = Path(q["dataset"]["path"])
        datasets[name] = {} if location.resolve() == (datasets_dir() / name).resolve() else {"path": str(location)}
        datasets[name] |= {
            "dense": _alias_for(q["models"]["dense"]) or "none",
            "sparse": _alias_for(q["models"]["sparse"]) or "none",
            "language": q["models"]["analyzer"]["language"],
        }
        for cname, r in q["conditions"].items():
            entry: dict[str, Any] = {"name": f"{name}/{cname}", "dataset": name, "run": cname, "split": q["dataset"]["split"]}
            if q["dataset"].get("sample"):
                entry["sample"] = q["dataset"]["sample"]["queries"]
                entry["sample_seed"] = q["dataset"]["sample"]["seed"]
            if r["kind"] == "fused" and r.get("fusion"):
                f = r["fusion"]
                entry["fusion"] = {"method": f["method"], "rrf_k": f["rrf_k"], "normalization": f["normalization"]}
            if r["kind"] == "tuned":
                tuning = Path(file).parent / "tuning.json"
                try:
                    entry["tuning"] = str(tuning.resolve().relative_to(root.resolve()))
                except ValueError:
                    entry["tuning"] = str(tuning)
            entry["expected"] = {m: r["metrics"][m] for m in metrics}
            if r["rerank"]:
                entry["tolerance"] = TOLERANCE["rerank"]
            elif r["kind"] == "single" and r["paths"] == ["bm25"]:
                entry["tolerance"] = TOLERANCE["single-bm25"]
            else:
                entry["tolerance"] = TOLERANCE["default"]
            entry["measured_with"] = q["environment"]["command"]
            conditions.append(entry)
    lines = [HEADER, "[defaults]", 'split = "test"', f"tolerance = {TOLERANCE['default']}", ""]
    for name, ds in sorted(datasets.items()):
        lines.append(f"[datasets.{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in ds.items()]
        lines.append("")
    for entry in conditions:
        lines.append("[[condition]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
        lines.append("")
    text = "\n".join(lines)
    tomllib.loads(text)  # refuse to write a file we could not read back
    Path(out).write_text(text, encoding="utf-8")
    return text


def _log_default(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
