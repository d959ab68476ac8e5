"""A 20-document BEIR set written to a temporary folder, from the tiny models'
own corpus (so their tokenizer knows every word), and the model options that
point the benchmark commands at the tiny models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

try:
    from tests.tiny_models import CORPUS
except ModuleNotFoundError:  # rootdir-less pytest
    from tiny_models import CORPUS  # type: ignore[no-redef]

_STOP = {"the", "a", "an", "and", "or", "of", "to", "in", "on", "is", "are", "was", "with", "by", "for", "my", "its", "it"}


def write_beir(folder: Path, docs: int = 20) -> Path:
    english = [s for s in CORPUS if s.isascii()]
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    corpus, queries, splits = [], [], {"train": [], "test": []}
    for i in range(docs):
        first, second = english[i % len(english)], english[(i + docs) % len(english)]
        corpus.append({"_id": f"d{i}", "title": "Note" if i % 3 == 0 else "", "text": f"{first} {second}"})
        words = [w for w in re.findall(r"[a-z]+", first.lower()) if w not in _STOP][:4]
        queries.append({"_id": f"q{i}", "text": " ".join(words)})
        splits["test" if i % 2 == 0 else "train"].append((f"q{i}", f"d{i}"))
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    for split, rows in splits.items():
        (folder / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in rows)
        )
    return folder


@pytest.fixture(scope="module")
def beir_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("beir") / "tinyset")


@pytest.fixture(scope="module")
def model_options(tiny_models) -> list[str]:
    return ["--dense", str(tiny_models.dense), "--sparse", str(tiny_models.splade), "--language", "en"]
