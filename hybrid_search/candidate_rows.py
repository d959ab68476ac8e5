"""Rows of a fused search's candidates: what ranking and collapse read from
each path's search, the rest only for the hits shown.

A fused search ranks every candidate of every path (100 per path by default)
but shows k hits. Having each path's Milvus search return full rows (text,
title, source, page, heading, metadata JSON) made pymilvus build Python rows
for all of them: py-spy --gil put a third of the API server's GIL time there
under load. So a fused plan's path searches return the score and what the
stages before hit assembly read:

- the chunk id's parts (doc_id, chunk_index): fusion ranks by chunk id;
- with collapsing, the text too: collapse.py reads the text of every
  candidate (those after the k-th kept hit are checked for exact copies), and
  having each path return it cost less than reading it afterwards in a call
  of its own (measured: 3.8 against 4.3 ms of CPU per search alone, 2.9
  against 3.1 with 8 searching threads, ``ID_FIELDS`` only and ``text`` read
  by key);
- without collapsing, the ids only; rerank's head has its text read by
  primary key.

Then one query by primary key (shared between concurrent searches, see
batching.py) reads the full rows (``store.OUTPUT_FIELDS``) of the hits shown
and of the copies folded into them. Rerank, collapse and hit assembly read the
same fields of the same rows as with full rows from the searches, so the hits
are the same. A candidate whose row is gone when it is read (deleted since its
search found it) is dropped.

Single-path plans keep one search with full rows: a BM25 search of 100 ids
(1.2 ms) and a read of 10 rows (1.0 ms) took longer than one search with full
rows (1.7 ms), and collapse needs every candidate's text anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .types import primary_key_for

__all__ = ["ID_FIELDS", "TEXT_FIELDS", "Fetch", "fill_rows", "path_fields", "read_ranked", "read_shown"]

#: The chunk id (rebuilt from doc_id and chunk_index; fusion breaks ties by it).
ID_FIELDS: tuple[str, ...] = ("id",)
TEXT_FIELDS: tuple[str, ...] = ("text",)

#: fetch(primary keys, fields) -> {primary key: row}; a key with no row is absent.
Fetch = Callable[[list[str], tuple[str, ...]], Mapping[str, Mapping[str, Any]]]


def path_fields(collapse: bool) -> tuple[str, ...]:
    """What each path search of a fused plan returns besides the score."""
    return ID_FIELDS + TEXT_FIELDS if collapse else ID_FIELDS


def fill_rows(rows: Mapping[str, dict[str, Any]], cids: Iterable[str], fields: Sequence[str], fetch: Fetch) -> set[str]:
    """Read ``fields`` into ``rows[cid]`` for each of ``cids`` whose row lacks
    one of them (one fetch); returns the cids whose rows are gone."""
    keys: dict[str, str] = {}
    for cid in cids:
        row = rows[cid]
        if cid not in keys and not all(name in row for name in fields):
            keys[cid] = primary_key_for(row["doc_id"], int(row["chunk_index"]))
    if not keys:
        return set()
    found = fetch(list(keys.values()), tuple(fields))
    gone = set()
    for cid, key in keys.items():
        fetched = found.get(key)
        if fetched is None:
            gone.add(cid)
        else:
            # Copied into this search's own row: a fetched row may be shared
            # with the other searches of a batched fetch.
            rows[cid].update(fetched)
    return gone


def read_ranked(
    rows: Mapping[str, dict[str, Any]],
    ranked: list[tuple[str, float]],
    count: int | None,
    fields: Sequence[str],
    fetch: Fetch,
) -> list[tuple[str, float]]:
    """``ranked`` without the candidates whose rows are gone, ``fields`` read
    for the first ``count`` of the rest (all: None). A gone candidate moves
    the next one into the first ``count``, so that one is read too."""
    while True:
        gone = fill_rows(rows, [cid for cid, _ in ranked[:count]], fields, fetch)
        if not gone:
            return ranked
        ranked = [item for item in ranked if item[0] not in gone]


def read_shown(
    rows: Mapping[str, dict[str, Any]],
    ordered: list[tuple[str, float]],
    folded: Mapping[str, list[tuple[str, float]]],
    k: int,
    fields: Sequence[str],
    fetch: Fetch,
) -> tuple[list[tuple[str, float]], dict[str, list[tuple[str, float]]]]:
    """Full rows for the first ``k`` of ``ordered`` and the copies folded into
    them (one fetch). A hit or copy whose row is gone is left out: collapse has
    run already, so a gone hit leaves one hit fewer (only when a delete races
    the search)."""
    shown = ordered[:k]
    wanted = [cid for cid, _ in shown] + [copy for cid, _ in shown for copy, _ in folded.get(cid, ())]
    gone = fill_rows(rows, wanted, fields, fetch)
    if not gone:
        return ordered, dict(folded)
    kept = [item for item in ordered if item[0] not in gone]
    return kept, {cid: [copy for copy in copies if copy[0] not in gone] for cid, copies in folded.items() if cid not in gone}
