"""Request models: shape checks and the filter rules that keep Milvus expressions safe."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hybrid_search.api.schemas import (
    CreateCollectionRequest,
    FilterSpec,
    RecordIn,
    RecordsRequest,
    SearchRequest,
)
from hybrid_search.filters import compile_filters

pytestmark = pytest.mark.unit


def test_search_defaults():
    request = SearchRequest(query="cat")
    assert request.k == 10 and request.paths is None and request.filters == [] and not request.explain


@pytest.mark.parametrize(
    "data",
    [
        {"query": ""},
        {"query": "x" * 4097},
        {"query": "a\ud800b"},
        {"query": "x", "k": 0},
        {"query": "x", "k": 1001},
        {"query": "x", "paths": ["colbert"]},
        {"query": "x", "weights": {"bm25": float("nan")}},
        {"query": "x", "weights": {"bm25": float("inf")}},
        {"query": "x", "unknown": 1},
        {"query": "x", "depth": 0},
        {"query": "x", "rerank_first_stage_weight": -0.1},
        {"query": "x", "rerank_first_stage_weight": 1.5},
    ],
)
def test_search_request_refuses(data):
    with pytest.raises(ValidationError):
        SearchRequest(**data)


@pytest.mark.parametrize(
    "value",
    ['" or doc_id != "', "a\\", '\\" or true', "' or '1'='1", "%", "]) or ([", "😀", "\u202e"],
)
def test_filter_values_compile_to_one_escaped_literal(value):
    expression = compile_filters([FilterSpec(field="source", op="==", value=value).condition()])
    assert expression.startswith('(source == "') and expression.endswith('")')
    inner = expression[len('(source == "') : -2]
    # Every quote inside is escaped, so the literal cannot end early.
    i = 0
    while i < len(inner):
        if inner[i] == "\\":
            i += 2
            continue
        assert inner[i] != '"', expression
        i += 1


@pytest.mark.parametrize(
    "data",
    [
        {"field": "doc_id", "op": "in", "value": "x"},
        {"field": "doc_id", "op": "==", "value": ["x"]},
        {"field": "metadata.n", "op": "in", "value": [1, "a"]},
        {"field": "metadata.n", "op": "in", "value": [True, 1]},
        {"field": "source", "op": "==", "value": "a\nb"},
        {"field": "page", "op": "==", "value": "1"},
        {"field": "page", "op": "==", "value": 2.5},
        {"field": "text", "op": "==", "value": "x"},
        {"field": "doc_id", "op": "or", "value": "x"},
        {"field": "metadata.n", "op": "==", "value": float("nan")},
        {"field": "doc_id", "op": "==", "value": {"a": 1}},
        {"field": "doc_id", "op": "==", "value": None},
    ],
)
def test_filter_spec_refuses(data):
    with pytest.raises(ValidationError):
        FilterSpec(**data)


def test_int_float_lists_become_floats():
    spec = FilterSpec(field="metadata.n", op="in", value=[1, 2.5])
    assert spec.value == [1.0, 2.5] and all(isinstance(v, float) for v in spec.value)
    assert FilterSpec(field="metadata.n", op="in", value=[1, 2]).value == [1, 2]


def test_records():
    assert RecordIn(id="a/b#1", text="hello", metadata={"k": [1, {"x": "y"}]}).id == "a/b#1"
    for odd in ("o'brien \"q\" \\ #1\n\t", "😀" * 4096):
        assert RecordIn(id=odd, text="x").id == odd
    for bad in ({"id": "a\x00", "text": "x"}, {"id": "é" * 4097, "text": "x"}, {"id": "a", "text": "  "}, {"id": "a", "text": "x", "metadata": {"k": float("inf")}}, {"id": "", "text": "x"}):
        with pytest.raises(ValidationError):
            RecordIn(**bad)
    with pytest.raises(ValidationError, match="repeats"):
        RecordsRequest(records=[{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(ValidationError, match="65535"):
        RecordsRequest(records=[{"id": "a", "text": "é" * 40000}], chunk=False)


def test_create_collection_distinguishes_absent_from_null():
    absent = CreateCollectionRequest(name="c")
    null = CreateCollectionRequest(name="c", dense=None)
    assert "dense" not in absent.model_fields_set and "dense" in null.model_fields_set
    with pytest.raises(ValidationError):
        CreateCollectionRequest(name="1bad")
    with pytest.raises(ValidationError):
        CreateCollectionRequest(name="c", analyzer={"user_dict": "/etc/passwd"})
