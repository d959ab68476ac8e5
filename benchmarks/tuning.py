"""Tune fusion (method, RRF k, normalisation, per-path weights) on held-out
queries, never on the queries a score is reported for.

Per-path candidate lists are computed once per query through ``Engine.search``
(one path at a time, depth 100) and fused offline with the engine's own
``hybrid_search.fusion.fuse``, so a grid of hundreds of settings costs no new
searches; a test checks that this offline fusion equals what ``Engine.search``
returns for the same settings.

The grid: RRF with k in {10, 30, 60, 100} and weighted fusion with min-max or
z-score normalisation, each over per-path weights in {0, 0.25, 0.5, 1, 2}
(normalised to sum 1; duplicates by ratio removed). A weight of 0 drops a path
(it is then not searched at all), so every single path is in the grid and the
selected setting is never worse than the best single path on the tuning queries.

Where a set has a train split, a deterministic share of its train queries is
the dev split. Where it has none (cranfield), k-fold cross-validation over the
test queries: each fold is scored with the setting tuned on the other folds.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybrid_search.config import FusionConfig, to_plain
from hybrid_search.fusion import fuse

from .metrics import fast_ndcg
from .runs import doc_of

__all__ = [
    "Setting",
    "WEIGHT_LEVELS",
    "RRF_KS",
    "NORMALIZATIONS",
    "grid",
    "fused_list",
    "score_matrix",
    "select",
    "cross_validate",
    "setting_from_plain",
]

WEIGHT_LEVELS = (0.0, 0.25, 0.5, 1.0, 2.0)
RRF_KS = (10, 30, 60, 100)
NORMALIZATIONS = ("min-max", "z-score")

Candidates = Mapping[str, Mapping[str, Sequence[tuple[str, float]]]]  # path -> qid -> [(chunk_id, score)]


@dataclass(frozen=True)
class Setting:
    """What a query is searched with: the paths (those with weight > 0) and,
    for more than one path, the fusion. ``fusion.weights`` names every path
    available (0 for a dropped one), so it can be stored as a collection default."""

    paths: tuple[str, ...]
    fusion: FusionConfig | None
    label: str = field(default="", compare=False)

    def describe(self) -> str:
        if self.fusion is None:
            return f"{self.paths[0]} only"
        f = self.fusion
        weights = ", ".join(f"{p}={f.weights[p]:.3g}" for p in self.paths)
        how = f"rrf k={f.rrf_k}" if f.method == "rrf" else f"weighted {f.normalization}"
        return f"{how}; {weights}"

    def to_plain(self) -> dict[str, Any]:
        return {"paths": list(self.paths), "fusion": to_plain(self.fusion), "description": self.describe()}

    def default_fusion(self, available: Sequence[str]) -> FusionConfig:
        """A FusionConfig to store as the collection default (weights for every path)."""
        if self.fusion is not None:
            return self.fusion
        return FusionConfig(method="rrf", rrf_k=60, weights={p: (1.0 if p in self.paths else 0.0) for p in available})


def setting_from_plain(data: Mapping[str, Any]) -> Setting:
    fusion = data.get("fusion")
    return Setting(
        paths=tuple(data["paths"]),
        fusion=FusionConfig(**fusion) if fusion else None,
    )


def _weight_vectors(paths: Sequence[str]) -> list[dict[str, float]]:
    seen: set[tuple[float, ...]] = set()
    vectors = []
    for combo in itertools.product(WEIGHT_LEVELS, repeat=len(paths)):
        total = sum(combo)
        if total == 0:
            continue
        normalised = tuple(round(w / total, 6) for w in combo)
        if normalised in seen:
            continue
        seen.add(normalised)
        vectors.append(dict(zip(paths, normalised)))
    return vectors


def grid(paths: Sequence[str]) -> list[Setting]:
    """Every setting to try over the available ``paths`` (single paths first)."""
    settings: list[Setting] = []
    singles = [Setting((p,), None) for p in paths]
    settings.extend(singles)
    for weights in _weight_vectors(paths):
        used = tuple(p for p in paths if weights[p] > 0)
        if len(used) < 2:
            continue
        for k in RRF_KS:
            settings.append(Setting(used, FusionConfig(method="rrf", rrf_k=k, weights=dict(weights))))
        for norm in NORMALIZATIONS:
            settings.append(Setting(used, FusionConfig(method="weighted", normalization=norm, weights=dict(weights))))  # type: ignore[arg-type]
    return settings


def fused_list(candidates: Candidates, qid: str, setting: Setting, k: int = 100) -> list[tuple[str, float]]:
    """The top-``k`` (chunk_id, score) Engine.search returns for ``setting``."""
    if setting.fusion is None:
        return list(candidates[setting.paths[0]][qid])[:k]
    ranked = {p: candidates[p][qid] for p in setting.paths}
    return fuse(ranked, setting.fusion)[:k]


def score_matrix(
    candidates: Candidates, qrels: Mapping[str, Mapping[str, int]], qids: Sequence[str], settings: Sequence[Setting], k: int = 10
) -> np.ndarray:
    """nDCG@k of every setting (rows) on every query (columns)."""
    matrix = np.zeros((len(settings), len(qids)))
    for i, setting in enumerate(settings):
        for j, qid in enumerate(qids):
            ranking = [doc_of(cid) for cid, _ in fused_list(candidates, qid, setting, k=k)]
            matrix[i, j] = fast_ndcg(qrels[qid], ranking, k)
    return matrix


def _order_key(settings: Sequence[Setting], means: np.ndarray) -> list[int]:
    # Best mean first; on a tie prefer fewer paths (cheaper), then RRF, then grid order.
    return sorted(
        range(len(settings)),
        key=lambda i: (
            -round(float(means[i]), 10),
            len(settings[i].paths),
            0 if settings[i].fusion is None or settings[i].fusion.method == "rrf" else 1,
            i,
        ),
    )


def select(settings: Sequence[Setting], matrix: np.ndarray, columns: Sequence[int] | None = None) -> tuple[int, np.ndarray]:
    """Index of the best setting on the given query columns, and the means."""
    sub = matrix if columns is None else matrix[:, list(columns)]
    means = sub.mean(axis=1)
    return _order_key(settings, means)[0], means


def top_table(settings: Sequence[Setting], means: np.ndarray, n: int = 10) -> list[dict[str, Any]]:
    return [
        {"setting": settings[i].describe(), "paths": list(settings[i].paths), "ndcg@10": float(means[i])}
        for i in _order_key(settings, means)[:n]
    ]


def cross_validate(
    settings: Sequence[Setting], matrix: np.ndarray, qids: Sequence[str], folds: Sequence[Sequence[str]]
) -> list[dict[str, Any]]:
    """For each fold, the setting tuned on the other folds (scored on this one)."""
    position = {qid: j for j, qid in enumerate(qids)}
    out = []
    for fold in folds:
        held = set(fold)
        train_cols = [position[q] for q in qids if q not in held]
        test_cols = [position[q] for q in fold]
        best, means = select(settings, matrix, train_cols)
        out.append(
            {
                "queries": list(fold),
                "setting": settings[best],
                "tuning_ndcg@10": float(means[best]),
                "held_out_ndcg@10": float(matrix[best, test_cols].mean()),
            }
        )
    return out


# --- the `tune` command ------------------------------------------------------------


def run_tuning(
    spec: Any,
    preset: Any,
    *,
    cache: Any,
    runtime: Any,
    out_dir: Any,
    tune_split: str | None,
    dev_fraction: float = 0.5,
    folds: int = 5,
    seed: int = 13,
    depth: int = 100,
    store_default: bool = True,
    store_uri: str | None = None,
) -> dict[str, Any]:
    from pathlib import Path

    from hybrid_search.config import FusionConfig as _FusionConfig

    from .beir import kfold, split_queries
    from .indexes import open_index
    from .report import environment, write_json, write_text
    from .runs import path_candidates

    dataset = spec.dataset
    opened = open_index(spec, cache=Path(cache), runtime=runtime, store_uri=store_uri)
    available = list(opened.engine.open_collection(opened.collection).paths)
    settings = grid(available)
    default_rrf = Setting(tuple(available), _FusionConfig(method="rrf", rrf_k=60, weights={p: 1.0 for p in available}))
    if len(available) > 1:
        settings.append(default_rrf)  # duplicates a grid point; kept for the baseline figure

    result: dict[str, Any] = {
        "benchmark": "tune",
        "dataset": {"name": dataset.name, "path": str(dataset.root)},
        "index": {"key": spec.key(), "uri": opened.uri, "collection": opened.collection},
        "models": {"dense": to_plain(spec.dense), "sparse": to_plain(spec.sparse), "analyzer": to_plain(spec.analyzer)},
        "paths": available,
        "grid": {
            "weight_levels": list(WEIGHT_LEVELS),
            "rrf_k": list(RRF_KS),
            "normalizations": list(NORMALIZATIONS),
            "settings": len(settings),
            "depth": depth,
            "selection": "mean nDCG@10 on the tuning queries; ties: fewer paths, then RRF",
        },
    }
    if tune_split is not None:
        queries, qrels = dataset.split(tune_split)
        dev_ids, _rest = split_queries(sorted(queries), dev_fraction, seed)
        dev_queries = {q: queries[q] for q in dev_ids}
        candidates = {
            p: path_candidates(opened, dev_queries, p, split=tune_split, depth=depth, cache=Path(cache)) for p in available
        }
        matrix = score_matrix(candidates, qrels, dev_ids, settings)
        best, means = select(settings[:-1] if len(available) > 1 else settings, matrix[:-1] if len(available) > 1 else matrix)
        chosen = settings[best]
        single_scores = {p: float(means[i]) for i, p in enumerate(available)}
        best_single = max(single_scores, key=single_scores.__getitem__)
        result.update(
            {
                "method": "dev",
                "tune_split": tune_split,
                "dev_fraction": dev_fraction,
                "seed": seed,
                "dev_queries": len(dev_ids),
                "blank_queries_left_out": dataset.blank_queries(tune_split),
                "dev_query_ids": dev_ids,
                "selected": {**chosen.to_plain(), "dev_ndcg@10": float(means[best])},
                "dev_baselines": {
                    **{f"{p} only": v for p, v in single_scores.items()},
                    "rrf k=60, equal weights": float(matrix[-1].mean()) if len(available) > 1 else None,
                },
                "dev_best_single": {"path": best_single, "ndcg@10": single_scores[best_single]},
                "dev_top": top_table(settings[:-1] if len(available) > 1 else settings, means),
                "note": preset.note,
            }
        )
    else:
        queries, qrels = dataset.split("test")
        ids = sorted(queries)
        parts = kfold(ids, folds, seed)
        candidates = {p: path_candidates(opened, queries, p, split="test", depth=depth, cache=Path(cache)) for p in available}
        matrix = score_matrix(candidates, qrels, ids, settings)
        core = settings[:-1] if len(available) > 1 else settings
        core_matrix = matrix[:-1] if len(available) > 1 else matrix
        cv = cross_validate(core, core_matrix, ids, parts)
        position = {q: j for j, q in enumerate(ids)}
        held_out = np.zeros(len(ids))
        for fold in cv:
            row = core.index(fold["setting"])
            for q in fold["queries"]:
                held_out[position[q]] = core_matrix[row, position[q]]
        best_all, means_all = select(core, core_matrix)
        chosen = core[best_all]
        single_scores = {p: float(core_matrix[i].mean()) for i, p in enumerate(available)}
        result.update(
            {
                "method": "kfold",
                "folds_k": folds,
                "seed": seed,
                "folds": [
                    {
                        "queries": f["queries"],
                        **f["setting"].to_plain(),
                        "tuning_ndcg@10": f["tuning_ndcg@10"],
                        "held_out_ndcg@10": f["held_out_ndcg@10"],
                    }
                    for f in cv
                ],
                "cross_validated_ndcg@10": float(held_out.mean()),
                "test_baselines": {
                    **{f"{p} only": v for p, v in single_scores.items()},
                    "rrf k=60, equal weights": float(matrix[-1].mean()) if len(available) > 1 else None,
                },
                "selected": {
                    **chosen.to_plain(),
                    "all_queries_ndcg@10": float(means_all[best_all]),
                    "caveat": "tuned on every test query: stored as the collection default for users, "
                    "never reported as a test score (the cross-validated figure is)",
                },
                "note": preset.note,
            }
        )
    if store_default:
        fusion = chosen.default_fusion(available)
        opened.engine.set_fusion_defaults(opened.collection, fusion)
        result["stored_default"] = {"collection": opened.collection, "uri": opened.uri, "fusion": to_plain(fusion)}
    result["environment"] = environment()
    out = Path(out_dir)
    write_json(out / "tuning.json", result)
    write_text(out / "tuning.md", tuning_markdown(result))
    return result


def tuning_markdown(result: Mapping[str, Any]) -> str:
    from .report import fmt, markdown_table

    lines = [f"# Fusion tuning: {result['dataset']['name']}", ""]
    if result["method"] == "dev":
        lines += [
            f"Tuned on {result['dev_queries']} dev queries: {result['dev_fraction']:.0%} of the `{result['tune_split']}` split "
            f"(seed {result['seed']}); no test query was used. Grid: {result['grid']['settings']} settings.",
            "",
            f"**Selected**: {result['selected']['description']} (dev nDCG@10 {fmt(result['selected']['dev_ndcg@10'])}; "
            f"best single path on dev: {result['dev_best_single']['path']} {fmt(result['dev_best_single']['ndcg@10'])}).",
            "",
            markdown_table(["dev baseline", "nDCG@10"], [[k, v] for k, v in result["dev_baselines"].items()]),
            "",
            "Top settings on dev:",
            "",
            markdown_table(["setting", "nDCG@10"], [[r["setting"], r["ndcg@10"]] for r in result["dev_top"]]),
        ]
    else:
        lines += [
            f"No train split: {result['folds_k']}-fold cross-validation over the test queries (seed {result['seed']}). "
            "Each fold is scored with the setting tuned on the other folds, so no query is tuned and reported on.",
            "",
            f"**Cross-validated nDCG@10**: {fmt(result['cross_validated_ndcg@10'])}",
            "",
            markdown_table(
                ["fold", "queries", "setting (tuned on the other folds)", "tuning nDCG@10", "held-out nDCG@10"],
                [
                    [i + 1, len(f["queries"]), f["description"], f["tuning_ndcg@10"], f["held_out_ndcg@10"]]
                    for i, f in enumerate(result["folds"])
                ],
                ["r", "r", "l", "r", "r"],
            ),
            "",
            markdown_table(["test baseline (untuned)", "nDCG@10"], [[k, v] for k, v in result["test_baselines"].items()]),
            "",
            f"Stored as the collection default: {result['selected']['description']} ({result['selected']['caveat']}).",
        ]
    if result.get("note"):
        lines += ["", f"Note: {result['note']}."]
    lines += ["", f"Command: `{result['environment']['command']}`"]
    return "\n".join(lines)
