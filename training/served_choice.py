"""What ``adapt`` serves: candidate served configurations scored on the
held-out questions of the live collection, chosen on dev, gated on test.

A candidate is a set of per-path candidate lists plus a fusion. The lists
are searched once per question on the collection in service, each path on
its own, exactly as ``Engine.search`` searches that path (query analysed and
encoded as there, the store asked for the top ``depth`` ids), and fused
offline with the engine's own ``hybrid_search.fusion`` (the ``python -m
benchmarks tune`` machinery), so a grid of hundreds of fusion settings costs
no new searches. A query adapter changes only the dense query vectors, so
its candidate's dense lists come from the same stored chunk vectors the
promoted version will hold.

Choice: each candidate's fusion is tuned on the dev questions (the grid of
``benchmarks.tuning`` plus the fusion in service), the candidate with the
best dev nDCG@10 is chosen, and only then is it compared with the served
configuration on the test questions, with a paired randomization test: the
gate. Test questions never choose anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hybrid_search.config import FusionConfig, to_plain
from hybrid_search.evaluation import fast_ndcg, paired_comparison

from .data import EvalQuery

if TYPE_CHECKING:
    from benchmarks.tuning import Setting
    from hybrid_search.engine import Engine

__all__ = ["Candidate", "PathLists", "gate", "path_lists", "per_query_ndcg", "served_setting", "tune_fusion"]

PathLists = dict[str, dict[str, list[tuple[str, float]]]]  # path -> query id -> [(chunk id, score)], best first
GATE_METRIC = "ndcg@10"


def path_lists(
    engine: Engine,
    collection: str,
    queries: Sequence[EvalQuery],
    paths: Sequence[str],
    *,
    depth: int,
    dense_encode: Callable[[list[str]], np.ndarray] | None = None,
    batch: int = 64,
) -> PathLists:
    """Each path's top ``depth`` per query, as Engine.search ranks that path
    alone; ``dense_encode`` replaces the collection's dense query encoder."""
    name = engine.resolve(collection)
    texts = [q.query for q in queries]
    out: PathLists = {}
    for path in paths:
        vectors: list[Any]
        if path == "bm25":
            analyzer = engine.analyzer(name)
            vectors = [" ".join(terms) if (terms := analyzer.tokenize(text)) else None for text in texts]
        elif path == "sparse":
            sparse = engine.encoders(name).encode_queries(texts, dense=False)[1] or []
            vectors = [v if v else None for v in sparse]
        else:
            encoded = dense_encode(texts) if dense_encode is not None else engine.encoders(name).encode_queries(texts, sparse=False)[0]
            vectors = [[float(x) for x in row] for row in np.asarray(encoded)]
        lists: dict[str, list[tuple[str, float]]] = {q.query_id: [] for q in queries}
        searchable = [i for i, v in enumerate(vectors) if v is not None]
        for start in range(0, len(searchable), batch):
            part = searchable[start : start + batch]
            found = engine.store.search(name, path, [vectors[i] for i in part], limit=depth, output_fields=("id",))  # type: ignore[arg-type]
            for i, hits in zip(part, found):
                lists[queries[i].query_id] = [(str(row["id"]), float(score)) for row, score in hits]
        out[path] = lists
    return out


def per_query_ndcg(lists: PathLists, queries: Sequence[EvalQuery], setting: Setting, k: int = 10) -> dict[str, float]:
    from benchmarks.tuning import fused_list

    return {q.query_id: fast_ndcg(q.relevant, [cid for cid, _ in fused_list(lists, q.query_id, setting, k=k)], k) for q in queries}


def served_setting(fusion: FusionConfig, available: Sequence[str]) -> Setting:
    """The Setting Engine.search uses for ``fusion`` as the collection default
    (paths with weight 0 are not searched)."""
    from benchmarks.tuning import Setting

    used = tuple(p for p in available if fusion.weight(p) > 0) or tuple(available)
    return Setting(used, fusion if len(used) > 1 else None, label="served")


def tune_fusion(lists: PathLists, dev: Sequence[EvalQuery], available: Sequence[str], current: FusionConfig) -> tuple[FusionConfig, float, str]:
    """(fusion to store as the default, its dev nDCG@10, description): the best
    of the tuning grid and the fusion in service on the dev questions (a tie
    keeps the fusion in service)."""
    from benchmarks.tuning import grid, select

    settings = [served_setting(current, available), *grid(available)]
    matrix = np.array([[v for v in per_query_ndcg(lists, dev, s).values()] for s in settings])
    best, means = select(settings, matrix)
    if means[best] <= means[0] + 1e-12:
        best = 0
    chosen = settings[best]
    fusion = current if best == 0 else chosen.default_fusion(available)
    return fusion, round(float(means[best]), 4), ("the fusion in service" if best == 0 else chosen.describe())


@dataclass(frozen=True)
class Candidate:
    """One served configuration to choose among."""

    name: str
    lists: PathLists
    fusion: FusionConfig
    dev: float
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fusion": to_plain(self.fusion), "dev_ndcg@10": self.dev, "description": self.description}


def gate(
    before: Candidate, after: Candidate, test: Sequence[EvalQuery], available: Sequence[str], *, min_gain: float, max_p_value: float | None
) -> dict[str, Any]:
    """The decision in ``training.evaluate``'s shape: served nDCG@10 on the test
    questions, after vs before, with the paired randomization test."""
    base = per_query_ndcg(before.lists, test, served_setting(before.fusion, available))
    cand = per_query_ndcg(after.lists, test, served_setting(after.fusion, available))
    compared = paired_comparison(cand, base)
    significant = max_p_value is None or compared["p_value"] <= max_p_value
    gain = round(compared["candidate"] - compared["baseline"], 4)
    return {
        "metric": GATE_METRIC,
        "baseline": {"system": before.name, "row": "served", "value": compared["baseline"]},
        "candidate": {"system": after.name, "row": "served", "value": compared["candidate"]},
        "gain": gain,
        "min_gain": min_gain,
        "p_value": compared["p_value"],
        "max_p_value": max_p_value,
        "queries": compared["queries"],
        "better": gain > min_gain and significant,
    }
