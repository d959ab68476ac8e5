"""The chunk tokenizer is recognised by what it does, not where it lives: a
promoted model that ships its base's tokenizer keeps the sync fingerprint."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from indexers.sync import tokenizer_identity

pytestmark = pytest.mark.unit


def test_same_tokenizer_from_two_folders_is_one_identity(tiny_models, tmp_path):
    first = AutoTokenizer.from_pretrained(str(tiny_models.dense))
    second = AutoTokenizer.from_pretrained(str(tiny_models.m3))
    assert first.name_or_path != second.name_or_path
    assert tokenizer_identity(first) == tokenizer_identity(second)
    first("a long text " * 50, truncation=True, max_length=8)  # per-call state is not behaviour
    assert tokenizer_identity(first) == tokenizer_identity(second)


def test_a_tokenizer_that_splits_differently_is_another_identity(tiny_models, tmp_path):
    base = AutoTokenizer.from_pretrained(str(tiny_models.dense))
    base.add_tokens(["hybridsearch"])
    changed = tmp_path / "changed"
    base.save_pretrained(str(changed))
    assert tokenizer_identity(AutoTokenizer.from_pretrained(str(changed))) != tokenizer_identity(
        AutoTokenizer.from_pretrained(str(tiny_models.dense))
    )
