"""The BEIR loader, dev splits and folds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.beir import document_text, kfold, load_beir, split_queries

pytestmark = pytest.mark.unit


def _write(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Title one", "text": "Body one."},
        {"_id": "d2", "title": "", "text": "Body two."},
        {"_id": "d3", "title": "", "text": ""},
        {"_id": 4, "title": "Only a title", "text": ""},
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n\n")
    queries = [{"_id": "q1", "text": "one"}, {"_id": "q2", "text": "two"}, {"_id": "q3", "text": "unjudged"}]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td2\t2\nq3\td1\t0\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\t4\t1\n")
    return folder


def test_load_beir(tmp_path: Path) -> None:
    data = load_beir(_write(tmp_path / "set"))
    assert data.name == "set"
    assert data.splits == ["test", "train"]
    assert data.corpus["4"] == ("Only a title", "")
    queries, qrels = data.split("test")
    assert queries == {"q1": "one", "q2": "two"}  # q3 has no relevant document
    assert qrels["q1"] == {"d1": 1, "d2": 0}
    chunks = list(data.chunks())
    assert [c.doc_id for c in chunks] == ["d1", "d2", "4"]
    assert chunks[0].text == "Title one\nBody one." and chunks[0].title == "Title one"
    assert chunks[0].id == "d1#0"
    assert data.empty_documents == ["d3"]
    assert len(data.fingerprint()) == 64
    with pytest.raises(KeyError, match="dev"):
        data.split("dev")


def test_not_a_beir_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        load_beir(tmp_path)


def test_document_text() -> None:
    assert document_text(" T ", " x ") == "T\nx"
    assert document_text("", "x") == "x"
    assert document_text("T", "") == "T"
    assert document_text("", " ") == ""


def test_split_queries_is_deterministic_and_disjoint() -> None:
    ids = [f"q{i}" for i in range(101)]
    dev, rest = split_queries(ids, 0.3)
    assert len(dev) == 30 and len(rest) == 71
    assert not set(dev) & set(rest) and set(dev) | set(rest) == set(ids)
    assert split_queries(list(reversed(ids)), 0.3) == (dev, rest)  # order of input does not matter
    assert split_queries(ids, 0.3, seed=1) != (dev, rest)


def test_kfold_partitions() -> None:
    ids = [str(i) for i in range(23)]
    folds = kfold(ids, 5)
    assert len(folds) == 5
    assert sorted(q for fold in folds for q in fold) == sorted(ids)
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    with pytest.raises(ValueError):
        kfold(ids, 1)
