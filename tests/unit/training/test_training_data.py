"""Data folders: the split is by document and never leaks into training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_search.errors import ConfigError, InputError
from training.data import (
    DataConfig,
    DocumentSplit,
    Example,
    build_training_data,
    load_training_data,
    split_documents,
)
from training.pseudo_queries import PseudoQueryConfig

pytestmark = pytest.mark.unit

PSEUDO = PseudoQueryConfig(kinds=("inverse-cloze", "keywords"), per_chunk=1, min_sentence_words=3, min_rest_words=5)


def _doc(chunk_id: str) -> str:
    return chunk_id.rsplit("#", 1)[0]


def test_random_split_partitions_documents_deterministically() -> None:
    docs = [f"d{i}" for i in range(50)]
    split = split_documents(docs, seed=7, dev_fraction=0.1, test_fraction=0.2)
    parts = [set(split.train), set(split.dev), set(split.test)]
    assert set().union(*parts) == set(docs)
    assert sum(len(p) for p in parts) == len(docs)  # disjoint
    assert len(split.test) == 10 and len(split.dev) == 4
    assert split == split_documents(list(reversed(docs)), seed=7, dev_fraction=0.1, test_fraction=0.2)
    assert split != split_documents(docs, seed=8, dev_fraction=0.1, test_fraction=0.2)


def test_split_with_given_test_documents() -> None:
    split = split_documents([f"d{i}" for i in range(10)], seed=1, dev_fraction=0.25, test_docs={"d1", "d2", "zz"})
    assert split.test == ("d1", "d2")
    assert not {"d1", "d2"} & set(split.train + split.dev)
    assert split.method == "labels"


def test_document_split_refuses_overlap() -> None:
    with pytest.raises(InputError, match="both"):
        DocumentSplit(train=("a",), dev=(), test=("a",), method="random", seed=0)


def test_beir_split_by_document_never_leaks(tiny_beir: Path, tmp_path: Path) -> None:
    config = DataConfig(source="beir", path=str(tiny_beir), pseudo=PSEUDO, dev_fraction=0.2)
    data = build_training_data(config, tmp_path / "data", progress=False)
    part_of = data.split.part_of()
    # The split is saved beside the data and reloads identically.
    saved = json.loads((tmp_path / "data" / "split.json").read_text())
    assert DocumentSplit.from_dict(saved) == data.split
    assert set(data.split.test) == {f"d{i}" for i in range(12, 18)}  # judged in the test qrels
    assert data.train, "expected training examples"
    for example in data.train:
        assert example.pos_ids
        assert all(part_of[_doc(cid)] == "train" for cid in example.pos_ids), example
        assert all(part_of[_doc(cid)] == "train" for cid in example.neg_ids)
    test_texts = {c.text for c in data.chunks("test")}
    assert not any(p in test_texts for e in data.train for p in e.pos)
    assert {e.source for e in data.train} == {"labels", "inverse-cloze", "keywords"}
    assert all(part_of[_doc(cid)] == "test" for q in data.test for cid in q.relevant)
    assert all(part_of[_doc(cid)] == "dev" for q in data.dev for cid in q.relevant)
    assert len(data.test) == 12 and all(q.source == "labels" for q in data.test)
    reloaded = load_training_data(tmp_path / "data")
    assert reloaded.split == data.split and len(reloaded.train) == len(data.train)
    assert data.manifest["sha256"] and data.manifest["config"]["seed"] == 42


def test_label_free_uses_generated_dev_queries(tiny_beir: Path, tmp_path: Path) -> None:
    config = DataConfig(source="beir", path=str(tiny_beir), use_labels=False, pseudo=PSEUDO, dev_fraction=0.2)
    data = build_training_data(config, tmp_path / "data", progress=False)
    assert {e.source for e in data.train} <= {"inverse-cloze", "keywords"}
    assert data.dev and all(q.source != "labels" for q in data.dev)
    assert data.test and all(q.source == "labels" for q in data.test)  # the report stays labelled


def test_pairs_source_splits_by_passage(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = []
    for i in range(30):
        # Two queries share each positive: they must land in the same part.
        for j in range(2):
            rows.append({"query": f"question {i} variant {j}", "pos": [f"passage number {i}"], "neg": [f"passage number {(i + 1) % 30}"]})
    pairs.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = DataConfig(source="jsonl", path=str(pairs), split="random", test_fraction=0.2, dev_fraction=0.1)
    data = build_training_data(config, tmp_path / "data", progress=False)
    part_of = data.split.part_of()
    for example in data.train:
        assert {part_of[_doc(c)] for c in example.pos_ids + example.neg_ids} == {"train"}
    assert len(data.test) == 2 * len(data.split.test)  # every test passage keeps both its queries
    held_out = {q.query for q in data.test + data.dev}
    assert not held_out & {e.query for e in data.train}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "beir"}, "path"),
        ({"source": "web", "path": "x"}, "source"),
        ({"source": "collection"}, "collection"),
        ({"source": "jsonl", "path": "x"}, "split='labels'"),
        ({"source": "beir", "path": "x", "dev_fraction": 1.5}, "dev_fraction"),
        ({"source": "beir", "path": "x", "use_labels": False}, "no training signal"),
    ],
)
def test_data_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DataConfig(**kwargs)


def test_example_from_dict_checks_shape() -> None:
    assert Example.from_dict({"query": "q", "pos": "p"}).pos == ["p"]
    with pytest.raises(InputError, match="pos"):
        Example.from_dict({"query": "q", "pos": []})
    with pytest.raises(InputError, match="query"):
        Example.from_dict({"query": " ", "pos": ["p"]})
