"""Roll a trained model out: re-embed the served collection into a new version
and switch the alias, while searches keep hitting the old version until then.

``<alias>_v<N>`` is created with the new models (other settings copied from
the collection in service), filled from the old version's rows (read through
``engine.store.iterate``, written through ``Engine.index``), checked for a
complete copy, and only then is the alias switched in one atomic step
(``Engine.switch_alias``: a Milvus alias on a server, the settings pointer on
Milvus Lite). The old version stays until ``retire_version`` removes it.

Promotion refuses a model the evaluation did not find better than the one in
service, unless forced.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hybrid_search.config import DenseEncoderConfig, SparseEncoderConfig
from hybrid_search.engine import Engine
from hybrid_search.errors import CollectionExistsError, ConfigError, HybridSearchError, InputError
from hybrid_search.types import Chunk

from .evaluate import EvaluationReport, read_report

__all__ = ["PromotionRefused", "PromotionResult", "promote", "retire_version", "next_version_name"]


class PromotionRefused(HybridSearchError):
    """The evaluation does not show the new model is better (use force to override)."""


@dataclass(frozen=True)
class PromotionResult:
    alias: str
    previous: str | None
    collection: str
    chunks: int
    forced: bool
    gain: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "previous": self.previous,
            "collection": self.collection,
            "chunks": self.chunks,
            "forced": self.forced,
            "gain": self.gain,
        }


def next_version_name(engine: Engine, alias: str) -> str:
    pattern = re.compile(rf"^{re.escape(alias)}_v(\d+)$")
    versions = [int(m.group(1)) for name in engine.list_collections() if (m := pattern.match(name))]
    return f"{alias}_v{max(versions, default=0) + 1}"


def _rows_as_chunks(engine: Engine, collection: str) -> Iterator[Chunk]:
    from hybrid_search.engine import _chunk_from_row  # the engine's own row -> Chunk mapping
    from hybrid_search.store import OUTPUT_FIELDS

    for row in engine.store.iterate(collection, "", OUTPUT_FIELDS):
        yield _chunk_from_row(row)


def _gate(
    evaluation: EvaluationReport | Path | None,
    force: bool,
    dense: DenseEncoderConfig | None,
    sparse: SparseEncoderConfig | None,
) -> float | None:
    if evaluation is None:
        if not force:
            raise PromotionRefused("no evaluation was given: run `hybrid-search train evaluate` first, or force the promotion")
        return None
    report = evaluation if isinstance(evaluation, EvaluationReport) else read_report(Path(evaluation))
    decision = report.decision
    if not decision:
        raise InputError("the evaluation report holds no decision")
    # The verdict must be about the models being promoted, not some other run.
    evaluated = next(s for s in report.config["systems"] if s["name"] == decision["candidate"]["system"])
    for kind, given in (("dense", dense), ("sparse", sparse)):
        if given is not None and (evaluated.get(kind) or {}).get("model") != given.model and not force:
            raise PromotionRefused(
                f"the evaluation's candidate used {kind} model {(evaluated.get(kind) or {}).get('model')!r}, "
                f"not {given.model!r}: evaluate the model being promoted"
            )
    if not decision["better"] and not force:
        significance = ""
        if decision.get("max_p_value") is not None:
            significance = f", p = {decision['p_value']:.4f}, required <= {decision['max_p_value']}"
        raise PromotionRefused(
            f"the new model is not better than the one in service: {decision['metric']} "
            f"{decision['candidate']['value']:.4f} vs {decision['baseline']['value']:.4f} "
            f"(gain {decision['gain']:+.4f}, required > {decision['min_gain']}{significance}); pass force to promote anyway"
        )
    return float(decision["gain"])


def promote(
    engine: Engine,
    alias: str,
    *,
    dense: DenseEncoderConfig | None = None,
    sparse: SparseEncoderConfig | None = None,
    evaluation: EvaluationReport | Path | None = None,
    source: str | None = None,
    force: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> PromotionResult:
    """Re-embed the collection behind ``alias`` (or ``source`` for a first
    promotion) with the new ``dense``/``sparse`` models and switch the alias.
    Models not given are kept as they are."""
    from tqdm.auto import tqdm

    if dense is None and sparse is None:
        raise ConfigError("promote needs a new dense and/or sparse model")
    gain = _gate(evaluation, force, dense, sparse)
    current = engine.resolve(alias)
    if current == alias:
        if engine.store.has_collection(alias):
            raise InputError(
                f"{alias!r} is a collection, not an alias: serve it through an alias of another name "
                f"(promote with alias='{alias}_live' and source='{alias}')"
            )
        if source is None:
            raise InputError(f"{alias!r} points at no collection yet: name the collection in service as source")
        current = engine.resolve(source)
    elif source is not None and engine.resolve(source) != current:
        raise InputError(f"alias {alias!r} serves {current!r}, not {source!r}")
    served = engine.open_collection(current)
    target = next_version_name(engine, alias)
    if engine.store.has_collection(target):
        raise CollectionExistsError(f"collection {target!r} exists already")
    config = replace(
        served,
        name=target,
        dense=dense if dense is not None else served.dense,
        sparse=sparse if sparse is not None else served.sparse,
        description=f"{alias} version promoted from {current}",
    )
    engine.create_collection(config)
    try:
        expected = engine.store.count(current)
        bar = tqdm(total=expected, desc=f"re-embed into {target}", unit="chunk", disable=not progress)
        report = engine.index(target, _rows_as_chunks(engine, current), batch_size=batch_size, progress=bar.update)
        bar.close()
        written = engine.store.count(target)
        if written != expected:
            raise HybridSearchError(f"re-embedding copied {written} of {expected} chunks from {current!r}; the alias was not switched")
    except BaseException:
        # Nothing serves the half-built version: drop it so a retry starts clean.
        engine.drop_collection(target)
        raise
    previous = engine.switch_alias(alias, target)
    return PromotionResult(alias, previous or current, target, report.chunks_written, force, gain)


def retire_version(engine: Engine, alias: str, collection: str) -> None:
    """Drop an old version; the one the alias serves is refused."""
    if engine.resolve(alias) == collection:
        raise InputError(f"{collection!r} is what {alias!r} serves now; promote another version first")
    engine.drop_collection(collection)
