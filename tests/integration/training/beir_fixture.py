"""A small BEIR-layout collection built from the tiny models' own corpus, so
the tiny tokenizer knows every word (no [UNK] soup)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.tiny_models import CORPUS

_STOP = {"the", "a", "an", "and", "or", "of", "to", "in", "on", "is", "are", "was", "with", "by", "for", "my", "its", "it"}


def _keywords(sentence: str, n: int) -> str:
    words = [w for w in re.findall(r"[a-z]+", sentence.lower()) if w not in _STOP]
    return " ".join(words[:n])


def make_beir(folder: Path, *, docs: int = 18, test_docs: int = 6) -> Path:
    """``docs`` documents of three English sentences each; two queries per
    document (keywords of its first and second sentence). Documents
    ``docs - test_docs ..`` are judged in the test split, the rest in train."""
    english = [s for s in CORPUS if s.isascii()]
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    corpus, queries, train, test = [], [], [], []
    for i in range(docs):
        sentences = [english[(i + offset) % len(english)] for offset in (0, docs, 2 * docs)]
        doc_id = f"d{i}"
        corpus.append({"_id": doc_id, "title": "", "text": " ".join(sentences)})
        for j in range(2):
            query_id = f"q{i}_{j}"
            queries.append({"_id": query_id, "text": _keywords(sentences[j], 5)})
            (test if i >= docs - test_docs else train).append((query_id, doc_id))
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in corpus)
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in queries)
    for name, rows in (("train", train), ("test", test)):
        with (folder / "qrels" / f"{name}.tsv").open("w", encoding="utf-8") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            handle.writelines(f"{q}\t{d}\t1\n" for q, d in rows)
    return folder
