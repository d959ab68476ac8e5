"""candidate_rows: which rows are read, in how many fetches, and what happens
to candidates whose rows are gone (deleted between their search and the read)."""

from __future__ import annotations

from typing import Any

from hybrid_search.candidate_rows import TEXT_FIELDS, fill_rows, read_ranked, read_shown
from hybrid_search.store import OUTPUT_FIELDS
from hybrid_search.types import chunk_id_for, primary_key_for


class Store:
    """Rows by primary key, and a log of the fetches asked for."""

    def __init__(self, doc_ids: list[str]) -> None:
        self.rows = {
            primary_key_for(d, 0): {"id": chunk_id_for(d, 0), "doc_id": d, "chunk_index": 0, "text": f"text of {d}", "title": d.upper()}
            for d in doc_ids
        }
        self.fetches: list[tuple[list[str], tuple[str, ...]]] = []

    def fetch(self, keys: list[str], fields: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        self.fetches.append((keys, fields))
        return {key: {f: self.rows[key][f] for f in ("id", "doc_id", "chunk_index", *fields) if f in self.rows[key]} for key in keys if key in self.rows}


def id_rows(doc_ids: list[str]) -> dict[str, dict[str, Any]]:
    return {chunk_id_for(d, 0): {"id": chunk_id_for(d, 0), "doc_id": d, "chunk_index": 0} for d in doc_ids}


def ranked(doc_ids: list[str]) -> list[tuple[str, float]]:
    return [(chunk_id_for(d, 0), 1.0 / (i + 1)) for i, d in enumerate(doc_ids)]


def test_reads_only_rows_lacking_the_fields_in_one_fetch():
    store = Store(["a", "b", "c"])
    rows = id_rows(["a", "b", "c"])
    rows["b#0"]["text"] = "text of b"
    assert fill_rows(rows, ["a#0", "b#0", "c#0", "a#0"], TEXT_FIELDS, store.fetch) == set()
    assert store.fetches == [([primary_key_for("a", 0), primary_key_for("c", 0)], ("text",))]
    assert rows["a#0"]["text"] == "text of a" and rows["c#0"]["text"] == "text of c"
    assert fill_rows(rows, ["a#0", "b#0", "c#0"], TEXT_FIELDS, store.fetch) == set()
    assert len(store.fetches) == 1, "rows holding the fields were read again"


def test_a_gone_candidate_is_dropped_and_the_next_one_read_in_its_place():
    store = Store(["a", "c", "d"])  # "b" was deleted after the search found it
    rows = id_rows(["a", "b", "c", "d"])
    kept = read_ranked(rows, ranked(["a", "b", "c", "d"]), 2, TEXT_FIELDS, store.fetch)
    assert [cid for cid, _ in kept] == ["a#0", "c#0", "d#0"]
    assert "text" in rows["c#0"] and "text" not in rows["d#0"]
    assert len(store.fetches) == 2  # "c" moved into the first two: read then


def test_all_candidates_are_read_when_count_is_none():
    store = Store(["a", "b", "c"])
    rows = id_rows(["a", "b", "c"])
    assert read_ranked(rows, ranked(["a", "b", "c"]), None, TEXT_FIELDS, store.fetch) == ranked(["a", "b", "c"])
    assert all("text" in row for row in rows.values()) and len(store.fetches) == 1


def test_shown_rows_and_folded_copies_are_read_and_gone_ones_left_out():
    store = Store(["a", "b", "c", "e"])  # "d", a folded copy, was deleted
    rows = id_rows(["a", "b", "c", "d", "e"])
    ordered = ranked(["a", "c", "e"])
    folded = {"a#0": [("b#0", 1.0), ("d#0", 1.0)], "c#0": [], "e#0": []}
    shown, copies = read_shown(rows, ordered, folded, 2, OUTPUT_FIELDS, store.fetch)
    assert shown == ordered
    assert copies["a#0"] == [("b#0", 1.0)]
    assert [keys for keys, _ in store.fetches] == [[primary_key_for(d, 0) for d in ("a", "c", "b", "d")]]
    assert rows["b#0"]["title"] == "B" and "title" not in rows["e#0"]  # "e" is not shown at k=2

    store = Store(["c"])  # the first hit itself is gone
    rows = id_rows(["a", "c"])
    shown, copies = read_shown(rows, ranked(["a", "c"]), {"a#0": [], "c#0": []}, 2, OUTPUT_FIELDS, store.fetch)
    assert [cid for cid, _ in shown] == ["c#0"] and "a#0" not in copies
