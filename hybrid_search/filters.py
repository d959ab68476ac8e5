"""Metadata filters: structured conditions in, a Milvus boolean expression out.

Users never write expression text. Field names come from a fixed set (or are
quoted as JSON keys of ``metadata``), operators from a fixed set, and every
value is rendered as a typed literal with escaping, so no value can change the
meaning of the expression (``" or doc_id != "`` is just a string that matches
nothing).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from .errors import FilterError
from .types import doc_key_for

__all__ = ["FilterCondition", "FilterOperator", "compile_filters", "parse_filter", "FILTERABLE_FIELDS"]

FilterOperator = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in", "like"]
_OPERATORS: tuple[str, ...] = get_args(FilterOperator)

# Top-level scalar fields of a chunk row and the Python type their values take.
FILTERABLE_FIELDS: dict[str, type] = {
    "doc_id": str,
    "source": str,
    "title": str,
    "heading": str,
    "page": int,
    "chunk_index": int,
}
_METADATA_PREFIX = "metadata."
_MAX_IN_VALUES = 1024
_MAX_VALUE_CHARS = 4096


@dataclass(frozen=True)
class FilterCondition:
    """``field op value``. ``field`` is a chunk field (``doc_id``, ``source``,
    ``title``, ``heading``, ``page``, ``chunk_index``) or ``metadata.KEY`` for a
    user metadata field."""

    field: str
    op: FilterOperator
    value: Any

    def __post_init__(self) -> None:
        if self.op not in _OPERATORS:
            raise FilterError(f"filter operator must be one of {', '.join(_OPERATORS)}; got {self.op!r}")
        if self.field not in FILTERABLE_FIELDS and not (
            self.field.startswith(_METADATA_PREFIX) and len(self.field) > len(_METADATA_PREFIX)
        ):
            raise FilterError(
                f"unknown filter field {self.field!r}: use one of {', '.join(FILTERABLE_FIELDS)} "
                "or metadata.KEY for a user metadata field"
            )


def _string_literal(value: str) -> str:
    if len(value) > _MAX_VALUE_CHARS:
        raise FilterError(f"filter value longer than {_MAX_VALUE_CHARS} characters")
    if any(ord(ch) < 0x20 for ch in value):
        # The expression grammar has no escape for raw control characters.
        raise FilterError("filter values may not contain control characters")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: Any, expected: type | None, field: str) -> str:
    if isinstance(value, bool):
        if expected not in (None, bool):
            raise FilterError(f"filter on {field!r} needs a {expected.__name__}, got a boolean")
        return "true" if value else "false"
    if isinstance(value, int):
        if expected is str:
            raise FilterError(f"filter on {field!r} needs a string, got {value!r}")
        return str(value)
    if isinstance(value, float):
        if expected in (str, int) or not math.isfinite(value):
            raise FilterError(f"filter on {field!r} needs a {'finite number' if expected is None else expected.__name__}, got {value!r}")
        return repr(value)
    if isinstance(value, str):
        if expected is int:
            raise FilterError(f"filter on {field!r} needs an integer, got {value!r}")
        return _string_literal(value)
    raise FilterError(f"filter value for {field!r} must be a string, number or boolean; got {type(value).__name__}")


def _uniform(values: list[Any], field: str) -> list[Any]:
    """Milvus needs one type per list: integers mixed with floats become floats;
    other mixes (text with numbers, booleans with numbers) are refused."""
    kinds = {bool if isinstance(v, bool) else float if isinstance(v, (int, float)) else type(v) for v in values}
    if len(kinds) > 1:
        raise FilterError(f"filter list for {field!r} mixes value types; use one type (all text, all numbers or all booleans)")
    if kinds == {float} and any(isinstance(v, float) for v in values):
        return [float(v) for v in values]
    return values


def _field_expression(field: str) -> tuple[str, type | None]:
    if field in FILTERABLE_FIELDS:
        return field, FILTERABLE_FIELDS[field]
    key = field[len(_METADATA_PREFIX):]
    return f"metadata[{_string_literal(key)}]", None


def _doc_key_condition(condition: FilterCondition) -> str:
    """``doc_id`` (in)equality compiled against the digest of the id, the
    field the store looks documents up by: any id text works, control
    characters included, which no expression literal can carry."""
    values = condition.value if condition.op in ("in", "not in") else [condition.value]
    if not all(isinstance(v, str) for v in values):
        raise FilterError(f"filter on 'doc_id' needs a string, got {condition.value!r}")
    if any(len(v) > _MAX_VALUE_CHARS for v in values):
        raise FilterError(f"filter value longer than {_MAX_VALUE_CHARS} characters")
    keys = [f'"{doc_key_for(v)}"' if _encodable(v) else '""' for v in values]
    if condition.op in ("in", "not in"):
        return f"doc_key {condition.op} [{', '.join(keys)}]"
    return f"doc_key {condition.op} {keys[0]}"


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False  # no stored id holds a lone surrogate: matches nothing
    return True


def _check_list(condition: FilterCondition) -> None:
    values = condition.value
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise FilterError(f"filter {condition.op!r} on {condition.field!r} needs a list of values")
    if not values:
        raise FilterError(f"filter {condition.op!r} on {condition.field!r} needs at least one value")
    if len(values) > _MAX_IN_VALUES:
        raise FilterError(f"filter {condition.op!r} takes at most {_MAX_IN_VALUES} values")


def _compile_one(condition: FilterCondition) -> str:
    if condition.field == "doc_id" and condition.op in ("==", "!=", "in", "not in"):
        if condition.op in ("in", "not in"):
            _check_list(condition)
        return _doc_key_condition(condition)
    target, expected = _field_expression(condition.field)
    if condition.op in ("in", "not in"):
        _check_list(condition)
        values = _uniform(list(condition.value), condition.field)
        rendered = ", ".join(_literal(v, expected, condition.field) for v in values)
        return f"{target} {condition.op} [{rendered}]"
    if condition.op == "like":
        if not isinstance(condition.value, str):
            raise FilterError(f"filter 'like' on {condition.field!r} needs a string pattern")
        if expected is int:
            raise FilterError(f"filter 'like' needs a text field; {condition.field!r} is numeric")
        return f"{target} like {_string_literal(condition.value)}"
    return f"{target} {condition.op} {_literal(condition.value, expected, condition.field)}"


def compile_filters(conditions: Iterable[FilterCondition] | None) -> str:
    """AND of all conditions as a Milvus expression ("" when there are none)."""
    parts = [f"({_compile_one(c)})" for c in conditions or ()]
    return " and ".join(parts)


_PARSE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(==|!=|<=|>=|<|>|=|\bnot in\b|\bin\b|\blike\b)\s*(.*?)\s*$", re.S)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_filter(text: str) -> FilterCondition:
    """Parse the command-line form ``FIELD OP VALUE`` (``source == a.pdf``,
    ``page >= 3``, ``metadata.lang in ["en","zh"]``, ``title like "Intro%"``).
    The value is read as JSON when it parses, else as a plain string."""
    match = _PARSE.match(text)
    if not match:
        raise FilterError(
            f"cannot read filter {text!r}: write FIELD OP VALUE with OP one of "
            f"{', '.join(_OPERATORS)} (for example: page >= 3)"
        )
    field, op, raw = match.groups()
    op = "==" if op == "=" else op
    value = _parse_value(raw)
    if op in ("in", "not in") and not isinstance(value, list):
        value = [_parse_value(part.strip()) for part in raw.split(",") if part.strip()]
    if FILTERABLE_FIELDS.get(field) is str and not isinstance(value, (str, list)):
        value = raw  # "doc_id == 42" means the string "42" for a text field
    return FilterCondition(field=field, op=op, value=value)  # type: ignore[arg-type]
