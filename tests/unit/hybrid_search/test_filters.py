import pytest

from hybrid_search.errors import FilterError
from hybrid_search.filters import FilterCondition, compile_filters, parse_filter
from hybrid_search.types import doc_key_for

pytestmark = pytest.mark.unit


def test_compiles_typed_literals_and_ands_conditions():
    expression = compile_filters(
        [
            FilterCondition("source", "==", "a.pdf"),
            FilterCondition("page", ">=", 3),
            FilterCondition("metadata.lang", "in", ["en", "zh"]),
            FilterCondition("metadata.score", "<", 0.5),
            FilterCondition("metadata.public", "==", True),
        ]
    )
    assert expression == (
        '(source == "a.pdf") and (page >= 3) and (metadata["lang"] in ["en", "zh"]) '
        'and (metadata["score"] < 0.5) and (metadata["public"] == true)'
    )


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ('" or doc_id != "', '"\\" or doc_id != \\""'),
        ("back\\slash", '"back\\\\slash"'),
        ('\\" or 1 == 1 or "\\', '"\\\\\\" or 1 == 1 or \\"\\\\"'),
        ("数据 ünïcode 🚀", '"数据 ünïcode 🚀"'),
    ],
)
def test_hostile_values_stay_inside_one_string_literal(value, literal):
    assert compile_filters([FilterCondition("source", "==", value)]) == f"(source == {literal})"
    assert compile_filters([FilterCondition("doc_id", "like", value)]) == f"(doc_id like {literal})"


@pytest.mark.parametrize("op", ["==", "!=", "in", "not in"])
def test_doc_id_equality_compiles_to_the_digest_of_any_text(op):
    # Control characters have no escape in Milvus expressions; the digest needs none.
    ids = ['" or doc_id != "', "new\nline\x01", "back\\"]
    value = ids if op in ("in", "not in") else ids[0]
    keys = [f'"{doc_key_for(i)}"' for i in (ids if op in ("in", "not in") else ids[:1])]
    rendered = f"[{', '.join(keys)}]" if op in ("in", "not in") else keys[0]
    assert compile_filters([FilterCondition("doc_id", op, value)]) == f"(doc_key {op} {rendered})"
    assert all(len(k) == 34 and k.strip('"').isalnum() for k in keys)


def test_metadata_keys_are_quoted_too():
    assert compile_filters([FilterCondition('metadata.a"]) or (1', "==", 1)]) == '(metadata["a\\"]) or (1"] == 1)'


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (lambda: FilterCondition("text", "==", "x"), "unknown filter field"),
        (lambda: FilterCondition("doc_id", "~", "x"), "operator"),
        (lambda: compile_filters([FilterCondition("page", "==", "3")]), "integer"),
        (lambda: compile_filters([FilterCondition("doc_id", "==", 3)]), "string"),
        (lambda: compile_filters([FilterCondition("doc_id", "in", "abc")]), "list"),
        (lambda: compile_filters([FilterCondition("doc_id", "in", [])]), "at least one"),
        (lambda: compile_filters([FilterCondition("source", "==", "a\nb")]), "control"),
        (lambda: compile_filters([FilterCondition("metadata.x", "==", float("nan"))]), "finite"),
        (lambda: compile_filters([FilterCondition("metadata.x", "==", {"a": 1})]), "string, number or boolean"),
        (lambda: compile_filters([FilterCondition("page", "like", "3%")]), "numeric"),
        (lambda: compile_filters([FilterCondition("metadata.x", "in", ["a", 1])]), "mixes value types"),
        (lambda: compile_filters([FilterCondition("metadata.x", "in", [True, 1])]), "mixes value types"),
    ],
)
def test_bad_conditions_are_refused(condition, message):
    with pytest.raises(FilterError, match=message):
        condition()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("page >= 3", FilterCondition("page", ">=", 3)),
        ("source = a.pdf", FilterCondition("source", "==", "a.pdf")),
        ('metadata.lang in ["en","zh"]', FilterCondition("metadata.lang", "in", ["en", "zh"])),
        ("metadata.lang in en, zh", FilterCondition("metadata.lang", "in", ["en", "zh"])),
        ('title like "Intro%"', FilterCondition("title", "like", "Intro%")),
        ("doc_id == 42", FilterCondition("doc_id", "==", "42")),
        ("doc_id not in a,b", FilterCondition("doc_id", "not in", ["a", "b"])),
    ],
)
def test_parse_filter(text, expected):
    assert parse_filter(text) == expected


def test_parse_filter_rejects_garbage():
    with pytest.raises(FilterError, match="FIELD OP VALUE"):
        parse_filter("just words")


def test_in_lists_of_ints_and_floats_become_floats():
    assert compile_filters([FilterCondition("metadata.x", "in", [1, 2.5])]) == '(metadata["x"] in [1.0, 2.5])'
