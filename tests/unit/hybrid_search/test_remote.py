"""The serve record and the request a CLI search sends to a running server:
keyed by the store however it is spelled, stale records recognised, the plan
the server would run compared with this process's, options sent whole, and
the server's answer read back as the result the CLI renders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hybrid_search import SearchOptions, StoreConfig
from hybrid_search.config import RerankConfig
from hybrid_search.filters import FilterCondition
from hybrid_search.remote import (
    find_server,
    plan_difference,
    record_path,
    remove_record,
    request_body,
    result_from_dict,
    store_key,
    write_record,
)
from hybrid_search.types import FoldedCopy, Hit, PathScore, SearchResult, Snippet

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def record_folder(tmp_path, monkeypatch):
    folder = tmp_path / "runtime"
    monkeypatch.setenv("HYBRID_SEARCH_RUNTIME_DIR", str(folder))
    return folder


def _write(store: StoreConfig, **changes):
    values = {"host": "127.0.0.1", "port": 8123, "device": "auto", "fp16": None, "reranker": None, "needs_key": False}
    values.update(changes)
    return write_record(store, **values)


def test_a_lite_file_is_one_store_however_it_is_spelled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store_key(StoreConfig(uri="kb.db")) == store_key(StoreConfig(uri=str(tmp_path / "kb.db")))
    assert record_path(StoreConfig(uri="kb.db")) == record_path(StoreConfig(uri=str(tmp_path / "sub" / ".." / "kb.db")))
    assert store_key(StoreConfig(uri="other.db")) != store_key(StoreConfig(uri="kb.db"))
    assert store_key(StoreConfig(uri="http://h:19530/")) == store_key(StoreConfig(uri="http://h:19530"))
    assert store_key(StoreConfig(uri="http://h:19530", db_name="a")) != store_key(StoreConfig(uri="http://h:19530", db_name="b"))


def test_a_written_record_is_found_and_removed_only_by_its_writer(tmp_path, record_folder):
    store = StoreConfig(uri=str(tmp_path / "kb.db"))
    path = _write(store, host="0.0.0.0", reranker=RerankConfig(model="rr"))
    assert path.parent == record_folder and oct(path.stat().st_mode & 0o777) == "0o600"
    record, reason = find_server(store)
    assert reason == "" and record is not None
    assert (record.url, record.pid, record.reranker["model"]) == ("http://127.0.0.1:8123", os.getpid(), "rr")
    other = dict(json.loads(path.read_text()), pid=os.getppid())
    path.write_text(json.dumps(other))
    remove_record(store)  # another process's record stays
    assert path.exists()
    path.write_text(json.dumps(dict(other, pid=os.getpid())))
    remove_record(store)
    assert not path.exists()
    assert find_server(store)[1].startswith("no running `hybrid-search serve` is recorded")


def test_stale_and_broken_records_are_ignored_with_the_reason(tmp_path):
    store = StoreConfig(uri=str(tmp_path / "kb.db"))
    path = _write(store)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    path.write_text(json.dumps(dict(json.loads(path.read_text()), pid=int(gone.stdout))))
    record, reason = find_server(store)
    assert record is None and f"stale: process {int(gone.stdout)} is gone" in reason
    path.write_text("{not json")
    assert "cannot be read" in find_server(store)[1]
    path.write_text(json.dumps({"format": "hybrid-search/serve-record/1", "store": store_key(store)}))
    assert "malformed" in find_server(store)[1]
    path.write_text(json.dumps(dict(json.loads(_write(StoreConfig(uri=str(tmp_path / "other.db"))).read_text()))))
    assert "another format or store" in find_server(store)[1]


def test_the_server_is_used_only_when_it_would_run_the_same_plan(tmp_path):
    store = StoreConfig(uri=str(tmp_path / "kb.db"))
    reranker = RerankConfig(model="rr", top_n=20)
    _write(store, device="cpu", reranker=reranker)
    record, _ = find_server(store)
    assert plan_difference(record, device="cpu", fp16=None, reranker=reranker) is None
    assert "device 'cpu'" in plan_difference(record, device="cuda", fp16=None, reranker=reranker)
    assert "fp16" in plan_difference(record, device="cpu", fp16=True, reranker=reranker)
    assert "another reranker" in plan_difference(record, device="cpu", fp16=None, reranker=None)
    assert "another reranker" in plan_difference(record, device="cpu", fp16=None, reranker=RerankConfig(model="rr", top_n=50))
    _write(store, device="cpu", reranker=reranker, needs_key=True)
    assert "needs an API key" in plan_difference(find_server(store)[0], device="cpu", fp16=None, reranker=reranker)


def test_request_body_sends_every_option():
    options = SearchOptions(
        k=7,
        paths=("bm25", "dense"),
        depth={"dense": 50},
        fusion_method="weighted",
        rrf_k=30,
        normalization="z-score",
        weights={"bm25": 1.0, "dense": 0.5},
        filters=(FilterCondition("page", ">=", 3), FilterCondition("metadata.lang", "in", ("en", "de"))),
        rerank=False,
        rerank_top_n=9,
        min_rerank_score=0.2,
        rerank_first_stage_weight=0.3,
        collapse=False,
    )
    body = request_body("cats", options)
    assert body == {
        "query": "cats",
        "k": 7,
        "paths": ["bm25", "dense"],
        "depth": {"dense": 50},
        "fusion": "weighted",
        "rrf_k": 30,
        "normalization": "z-score",
        "weights": {"bm25": 1.0, "dense": 0.5},
        "filters": [{"field": "page", "op": ">=", "value": 3}, {"field": "metadata.lang", "op": "in", "value": ["en", "de"]}],
        "rerank": False,
        "rerank_top_n": 9,
        "min_rerank_score": 0.2,
        "rerank_first_stage_weight": 0.3,
        "collapse": False,
        "explain": True,
    }
    # Every SearchOptions field is either sent or refused: a new one must be added here.
    sent = {"k", "paths", "depth", "fusion_method", "rrf_k", "normalization", "weights", "filters", "rerank", "rerank_top_n",
            "min_rerank_score", "rerank_first_stage_weight", "collapse"}
    assert set(SearchOptions.__dataclass_fields__) == sent | {"fusion", "highlight"}


def test_the_answer_reads_back_as_the_result_that_made_it():
    hit = Hit(
        rank=1,
        chunk_id="a#0",
        doc_id="a",
        text="Cats sit on mats.",
        title="Pets",
        source="pets.md",
        page=2,
        heading_path=("Animals", "Cats"),
        metadata={"team": "x"},
        paths={"bm25": PathScore(1, 2.5), "dense": PathScore(3, 0.4)},
        fused_score=0.031,
        rerank_score=0.9,
        matched_terms=("Cats",),
        fusion_weights={"bm25": 0.6, "dense": 0.4},
        combined_score=0.8,
        snippet=Snippet("Cats sit on mats.", 0, 17),
        folded=(FoldedCopy("b#0", "b", "copy.md", None, 1.0),),
    )
    result = SearchResult(
        query="cats",
        collection="kb_v1",
        hits=[hit],
        paths=("bm25", "dense"),
        fusion="adaptive",
        reranked=True,
        confident=True,
        query_terms=("cat",),
        timings_ms={"bm25": 1.5, "total": 3.0},
        rerank_first_stage_weight=0.2,
        fusion_weights={"bm25": 0.6, "dense": 0.4},
    )
    body = json.loads(json.dumps(result.to_dict()))
    assert result_from_dict(body) == result
