"""Roll a trained model out: copy the served collection into a new version
with the new model's vectors and switch the alias, while searches keep hitting
the old version until then.

``<alias>_v<N>`` is created with the new models (other settings copied from
the collection in service) and filled by copying the old version's rows:
every stored field (text, BM25 text, title, page, heading, user metadata and
the bookkeeping the sync runs rely on) is copied as it is, and only the
vectors of the changed model are computed again, from exactly the text the
old model embedded (rebuilt from the prefix the engine stores with each
chunk). The vectors of the unchanged model are copied too, and so are the
dense vectors when only a query adapter changes (it acts on queries only).

While a promotion runs, the collection in service takes no writes: a write
lock in the settings collection (seen by every CLI run and API worker) makes
``Engine.index`` and ``Engine.delete_documents`` refuse with "collection is
being promoted", so nothing written meanwhile can vanish at the switch. Just
before the switch the new version is compared with the live one row by row
(ids and every stored field) and brought level; only then is the alias
switched in one atomic step (``Engine.switch_alias``). The old version stays,
read-only, until ``retire_version`` removes it; switching the alias back to it
(a rollback) makes it writable again.

A promotion that is interrupted (even by kill -9) leaves the alias on the old,
complete version and the lock in place; running the same promotion again
finishes it, copying only what is still missing. ``abort_promotion`` gives up
instead (drops the unfinished version, lifts the lock).

Promotion refuses a model configuration the evaluation did not find better
than the one in service, unless forced.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hybrid_search.config import DenseEncoderConfig, SparseEncoderConfig, to_plain
from hybrid_search.engine import WRITE_LOCK_SETTING, Engine
from hybrid_search.errors import (
    CollectionExistsError,
    ConfigError,
    HybridSearchError,
    InputError,
)
from hybrid_search.filters import FilterCondition, compile_filters
from hybrid_search.rows import chunk_from_row

from .evaluate import EvaluationReport, read_report

__all__ = [
    "PromotionRefused",
    "PromotionResult",
    "abort_promotion",
    "evaluated_encoder",
    "next_version_name",
    "promote",
    "promoted_encoders",
    "retire_version",
]

_VECTOR_FIELDS = ("dense", "sparse")
_MAX_LEVELLING_ROUNDS = 5


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
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "previous": self.previous,
            "collection": self.collection,
            "chunks": self.chunks,
            "forced": self.forced,
            "gain": self.gain,
            "resumed": self.resumed,
        }


def next_version_name(engine: Engine, alias: str) -> str:
    pattern = re.compile(rf"^{re.escape(alias)}_v(\d+)$")
    versions = [int(m.group(1)) for name in engine.list_collections() if (m := pattern.match(name))]
    return f"{alias}_v{max(versions, default=0) + 1}"


# --- the gate ------------------------------------------------------------------------------


def _report(evaluation: EvaluationReport | Path) -> EvaluationReport:
    return evaluation if isinstance(evaluation, EvaluationReport) else read_report(Path(evaluation))


def _candidate(report: EvaluationReport) -> dict[str, Any]:
    decision = report.decision
    if not decision:
        raise InputError("the evaluation report holds no decision")
    return next(s for s in report.config["systems"] if s["name"] == decision["candidate"]["system"])


def evaluated_encoder(evaluation: EvaluationReport | Path, kind: str) -> DenseEncoderConfig | SparseEncoderConfig | None:
    """The full ``dense`` or ``sparse`` configuration (model, kind, prompts,
    max_length) the evaluation's candidate was measured with: what to serve."""
    plain = _candidate(_report(evaluation)).get(kind)
    if not plain:
        return None
    cls = DenseEncoderConfig if kind == "dense" else SparseEncoderConfig
    known = set(cls.__dataclass_fields__)
    return cls(**{k: v for k, v in plain.items() if k in known})


def promoted_encoders(
    evaluation: EvaluationReport | Path | None,
    *,
    dense: str | None,
    sparse: str | None,
    dense_overrides: dict[str, Any] | None = None,
    sparse_overrides: dict[str, Any] | None = None,
) -> tuple[DenseEncoderConfig | None, SparseEncoderConfig | None]:
    """The encoder configurations to serve for the model folders given: the
    evaluation's candidate configuration when it measured that model (kind,
    prompts, max_length as measured), else the model with default settings;
    overrides that are not None replace single fields (the gate then checks
    the result against the evaluation)."""
    report = _report(evaluation) if evaluation is not None else None
    built: list[Any] = []
    for kind, model, overrides, default_kind in (
        ("dense", dense, dense_overrides, "sentence-transformers"),
        ("sparse", sparse, sparse_overrides, "bge-m3"),
    ):
        if not model:
            built.append(None)
            continue
        measured = evaluated_encoder(report, kind) if report is not None else None
        cls = DenseEncoderConfig if kind == "dense" else SparseEncoderConfig
        config = measured if measured is not None and measured.model == model else cls(model=model, kind=default_kind)
        changes = {k: v for k, v in (overrides or {}).items() if v is not None}
        built.append(replace(config, **changes) if changes else config)
    return built[0], built[1]


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
    report = _report(evaluation)
    decision = report.decision
    evaluated = _candidate(report)
    # The verdict must be about the configuration being promoted (model,
    # kind, prompts, max_length), not about some other run or setting.
    for kind, given in (("dense", dense), ("sparse", sparse)):
        if given is None or force:
            continue
        measured = evaluated.get(kind) or {}
        wanted = to_plain(given)
        differences = [f"{key} {measured.get(key)!r} (evaluated) vs {value!r}" for key, value in wanted.items() if measured.get(key) != value]
        if differences:
            raise PromotionRefused(
                f"the evaluation's candidate used another {kind} configuration: {'; '.join(differences)}: "
                "evaluate the configuration being promoted"
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


# --- copying rows ----------------------------------------------------------------------------


def _stored_fields(engine: Engine, collection: str) -> list[str]:
    """Every field a row holds and a write takes (function outputs such as the
    BM25 vector are computed by Milvus from bm25_text)."""
    with engine.store._lock:
        description = engine.store.client.describe_collection(collection, timeout=engine.store.timeout_s)
    return [f["name"] for f in description["fields"] if not f.get("is_function_output")]


def _row_digest(row: dict[str, Any], fields: Iterable[str]) -> str:
    payload = json.dumps({f: row.get(f) for f in fields}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class _Copier:
    """Brings ``target`` level with ``source``: rows missing or different in
    the target are copied (the changed model's vectors computed again), rows
    the source no longer has are deleted."""

    def __init__(self, engine: Engine, source: str, target: str, reembed: tuple[str, ...], batch_size: int) -> None:
        self.engine, self.source, self.target, self.batch_size = engine, source, target, batch_size
        self.reembed = reembed
        self.fields = _stored_fields(engine, source)
        target_fields = set(_stored_fields(engine, target))
        missing = [f for f in self.fields if f not in target_fields and f not in _VECTOR_FIELDS]
        if missing:
            raise HybridSearchError(f"{target!r} has no field(s) {', '.join(missing)} of {source!r}: cannot copy its rows")
        self.write_fields = [f for f in self.fields if f in target_fields]
        # Everything but the vectors decides whether a row needs copying.
        self.compared = [f for f in self.fields if f not in _VECTOR_FIELDS]
        self.encoders = engine.encoders(target)

    def level(self, progress: Callable[[int], None] | None = None) -> int:
        """One pass; returns the rows written or deleted in the target."""
        have: dict[str, str] = {}
        where: dict[str, tuple[str, int]] = {}
        for row in self.engine.store.iterate(self.target, "", self.compared):
            have[row["id"]] = _row_digest(row, self.compared)
            where[row["id"]] = (row["doc_id"], int(row["chunk_index"]))
        seen: set[str] = set()
        pending: list[dict[str, Any]] = []
        changed = 0
        for row in self.engine.store.iterate(self.source, "", self.fields):
            seen.add(row["id"])
            if have.get(row["id"]) == _row_digest(row, self.compared):
                continue
            pending.append(row)
            if len(pending) >= self.batch_size:
                changed += self._write(pending, progress)
        changed += self._write(pending, progress)
        extra = sorted(set(have) - seen)
        positions: dict[str, list[int]] = {}
        for chunk_id in extra:
            doc_id, chunk_index = where[chunk_id]
            positions.setdefault(doc_id, []).append(chunk_index)
        for doc_id, indexes in positions.items():
            expression = compile_filters([FilterCondition("doc_id", "==", doc_id), FilterCondition("chunk_index", "in", indexes)])
            self.engine.store.delete_where(self.target, expression)
        return changed + len(extra)

    def _write(self, rows: list[dict[str, Any]], progress: Callable[[int], None] | None) -> int:
        if not rows:
            return 0
        texts = [chunk_from_row(row).text_for_encoding for row in rows]  # what the old model embedded
        dense = sparse = None
        if set(self.reembed) == {"dense", "sparse"}:
            dense, sparse = self.encoders.encode_documents(texts)
        elif "dense" in self.reembed and self.encoders.dense is not None:
            dense = self.encoders.dense.encode_documents(texts)
        elif "sparse" in self.reembed and self.encoders.sparse is not None:
            sparse = self.encoders.sparse.encode_documents(texts)
        out = []
        for i, row in enumerate(rows):
            copied = {f: row[f] for f in self.write_fields if f in row}
            if dense is not None:
                copied["dense"] = [float(x) for x in dense[i]]
            if sparse is not None:
                copied["sparse"] = sparse[i]
            out.append(copied)
        self.engine.store.upsert(self.target, out)
        if progress is not None:
            progress(len(out))
        count = len(rows)
        rows.clear()
        return count


# --- promotion -------------------------------------------------------------------------------


def _served_collection(engine: Engine, alias: str, source: str | None) -> str:
    current = engine.resolve(alias)
    if current == alias:
        if engine.store.has_collection(alias):
            raise InputError(
                f"{alias!r} is a collection, not an alias: serve it through an alias of another name "
                f"(promote with alias='{alias}_live' and source='{alias}')"
            )
        if source is None:
            raise InputError(f"{alias!r} points at no collection yet: name the collection in service as source")
        return engine.resolve(source)
    if source is not None and engine.resolve(source) != current:
        raise InputError(f"alias {alias!r} serves {current!r}, not {source!r}")
    return current


def _unfinished(engine: Engine, alias: str) -> tuple[str, dict[str, Any]] | None:
    """(source, lock) of a promotion behind ``alias`` that has not finished."""
    for collection, lock in engine.settings.all_named(WRITE_LOCK_SETTING).items():
        if isinstance(lock, dict) and lock.get("reason") == "promoting" and lock.get("alias") == alias:
            return collection, lock
    return None


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
    """Copy the collection behind ``alias`` (or ``source`` for a first
    promotion) into a new version with the new ``dense``/``sparse`` models and
    switch the alias. Models not given are kept as they are (their vectors are
    copied). Running it again after an interruption finishes it."""
    from tqdm.auto import tqdm

    if dense is None and sparse is None:
        raise ConfigError("promote needs a new dense and/or sparse model")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
    gain = _gate(evaluation, force, dense, sparse)
    unfinished = _unfinished(engine, alias)
    resumed = unfinished is not None
    if unfinished is not None:
        current, lock = unfinished
        target = str(lock["target"])
        if engine.resolve(alias) == target:
            # Killed after the switch, before the old version was marked: finish that step.
            engine.lock_writes(current, {"reason": "replaced", "alias": alias, "target": target})
            return PromotionResult(alias, current, target, engine.store.count(target), force, gain, resumed=True)
        if source is not None and engine.resolve(source) != current:
            raise InputError(f"an unfinished promotion of {current!r} to {target!r} holds alias {alias!r}: finish or abort it first")
    else:
        current = _served_collection(engine, alias, source)
        target = next_version_name(engine, alias)
        if engine.store.has_collection(target):
            raise CollectionExistsError(f"collection {target!r} exists already")
    served = engine.open_collection(current)
    config = replace(
        served,
        name=target,
        dense=dense if dense is not None else served.dense,
        sparse=sparse if sparse is not None else served.sparse,
        description=f"{alias} version promoted from {current}",
    )
    if resumed and engine.store.has_collection(target):
        built = engine.open_collection(target)
        if (built.dense, built.sparse) != (config.dense, config.sparse):
            raise InputError(
                f"an unfinished promotion of {current!r} to {target!r} used other models "
                f"(dense {to_plain(built.dense)}, sparse {to_plain(built.sparse)}): run it again with those, "
                "or abort it (`hybrid-search train promote --abort`)"
            )
    # The lock first, the new version second: a crash in between leaves a lock
    # that a re-run resumes from (it creates the version).
    engine.lock_writes(current, {"reason": "promoting", "alias": alias, "target": target})
    try:
        if not engine.store.has_collection(target):
            engine.create_collection(config)
        _carry_settings(engine, current, target)
        reembed = tuple(
            kind for kind, given, old in (("dense", dense, served.dense), ("sparse", sparse, served.sparse)) if given is not None and not _same_documents(given, old)
        )
        copier = _Copier(engine, current, target, reembed, batch_size)
        bar = tqdm(total=engine.store.count(current), desc=f"copy into {target}", unit="chunk", disable=not progress)
        written = copier.level(bar.update)
        bar.close()
        # At switch time: the new version must hold exactly the live rows.
        for _ in range(_MAX_LEVELLING_ROUNDS):
            if copier.level() == 0:
                break
        else:
            raise HybridSearchError(f"{current!r} kept changing while it was being promoted; the alias was not switched")
    except Exception:
        # An error (not a kill or ^C, which leave the lock for a re-run to
        # finish): nothing serves the half-built version, so drop it and take
        # writes again; a retry starts clean.
        abort_promotion(engine, alias)
        raise
    previous = engine.switch_alias(alias, target)
    engine.lock_writes(current, {"reason": "replaced", "alias": alias, "target": target})
    return PromotionResult(alias, previous or current, target, written, force, gain, resumed=resumed)


def _same_documents(given: DenseEncoderConfig | SparseEncoderConfig, served: DenseEncoderConfig | SparseEncoderConfig | None) -> bool:
    """A change that leaves the chunk vectors as they are (a query adapter acts
    on queries only): the stored vectors are copied, not computed again."""
    if not isinstance(given, DenseEncoderConfig) or not isinstance(served, DenseEncoderConfig):
        return False
    return replace(given, query_adapter=None) == replace(served, query_adapter=None)


def _carry_settings(engine: Engine, source: str, target: str) -> None:
    """Per-collection settings that describe the rows (not the models) travel
    with them: how the chunks were cut (so sync runs see them unchanged)."""
    from indexers.sync import CHUNK_TOKENIZER_SETTING

    value = engine.settings.get(source, CHUNK_TOKENIZER_SETTING)
    if value is not None:
        engine.settings.put(target, CHUNK_TOKENIZER_SETTING, value)


def abort_promotion(engine: Engine, alias: str) -> str | None:
    """Give up an unfinished promotion behind ``alias``: drop the version it was
    building and take writes again. Returns the dropped version (None if none)."""
    unfinished = _unfinished(engine, alias)
    if unfinished is None:
        return None
    current, lock = unfinished
    target = str(lock["target"])
    if engine.resolve(alias) == target:
        raise InputError(f"the promotion of {current!r} to {target!r} has switched alias {alias!r} already; run it again to finish")
    if engine.store.has_collection(target):
        engine.drop_collection(target)
    engine.unlock_writes(current)
    return target


def retire_version(engine: Engine, alias: str, collection: str) -> None:
    """Drop an old version; the one the alias serves is refused."""
    if engine.resolve(alias) == collection:
        raise InputError(f"{collection!r} is what {alias!r} serves now; promote another version first")
    engine.drop_collection(collection)

