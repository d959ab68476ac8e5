"""Load a BEIR-layout folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/SPLIT.tsv``.

Each document becomes one chunk (``doc_id`` = the BEIR ``_id``) whose text is
``title + "\\n" + text``: BM25 and the encoders both see the title, as in the
BEIR and Pyserini baselines. Documents with neither title nor text are skipped
(and counted) because the engine refuses empty chunks; they can never be
retrieved by any path, so every condition loses them alike.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hybrid_search.types import Chunk

__all__ = ["BeirDataset", "load_beir", "document_text", "split_queries", "kfold"]

#: Bump when the way a document is turned into a chunk changes: it is part of
#: every index cache key, so old indexes are never reused for the new layout.
CHUNK_LAYOUT = "title-newline-text/v1"

Qrels = dict[str, dict[str, int]]


def document_text(title: str, text: str) -> str:
    title, text = (title or "").strip(), (text or "").strip()
    if title and text:
        return f"{title}\n{text}"
    return title or text


@dataclass
class BeirDataset:
    name: str
    root: Path
    corpus: dict[str, tuple[str, str]]  # _id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, Qrels] = field(default_factory=dict)  # split -> qid -> doc -> grade

    @property
    def splits(self) -> list[str]:
        return sorted(self.qrels)

    def split(self, split: str) -> tuple[dict[str, str], Qrels]:
        """Queries of a split that have at least one relevant (grade > 0) document
        and some text, and their qrels (see ``blank_queries`` for those left out)."""
        if split not in self.qrels:
            raise KeyError(f"{self.name} has no qrels/{split}.tsv (splits: {', '.join(self.splits) or 'none'})")
        qrels = {qid: docs for qid, docs in self.qrels[split].items() if any(g > 0 for g in docs.values())}
        missing = [qid for qid in qrels if qid not in self.queries]
        if missing:
            raise ValueError(f"{self.name}/{split}: {len(missing)} judged queries are not in queries.jsonl (e.g. {missing[0]!r})")
        qrels = {qid: docs for qid, docs in qrels.items() if self.queries[qid].strip()}
        return {qid: self.queries[qid] for qid in qrels}, qrels

    def blank_queries(self, split: str) -> list[str]:
        """Judged queries of ``split`` whose text is empty: no system can search them, so they are left out."""
        return sorted(qid for qid in self.qrels.get(split, {}) if qid in self.queries and not self.queries[qid].strip())

    def chunks(self) -> Iterator[Chunk]:
        for doc_id, (title, text) in self.corpus.items():
            body = document_text(title, text)
            if body:
                yield Chunk(doc_id=doc_id, chunk_index=0, text=body, title=title or "")

    @property
    def empty_documents(self) -> list[str]:
        return [doc_id for doc_id, (title, text) in self.corpus.items() if not document_text(title, text)]

    def fingerprint(self) -> str:
        """SHA-256 of corpus.jsonl: part of the index cache key."""
        digest = hashlib.sha256()
        with open(self.root / "corpus.jsonl", "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def _read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error})") from error


def load_beir(root: str | Path, name: str | None = None) -> BeirDataset:
    root = Path(root).expanduser()
    for required in ("corpus.jsonl", "queries.jsonl"):
        if not (root / required).is_file():
            raise FileNotFoundError(f"{root} is not a BEIR folder: {required} is missing")
    corpus: dict[str, tuple[str, str]] = {}
    for row in _read_jsonl(root / "corpus.jsonl"):
        corpus[str(row["_id"])] = (str(row.get("title") or ""), str(row.get("text") or ""))
    queries = {str(row["_id"]): str(row["text"]) for row in _read_jsonl(root / "queries.jsonl")}
    qrels: dict[str, Qrels] = {}
    qrels_dir = root / "qrels"
    if qrels_dir.is_dir():
        for path in sorted(qrels_dir.glob("*.tsv")):
            split: Qrels = {}
            with open(path, encoding="utf-8", newline="") as handle:
                reader = csv.reader(handle, delimiter="\t")
                for i, row in enumerate(reader):
                    if not row or (i == 0 and row[0] == "query-id"):
                        continue
                    qid, doc_id, grade = row[0], row[1], int(float(row[2]))
                    split.setdefault(qid, {})[doc_id] = grade
            qrels[path.stem] = split
    if not qrels:
        raise FileNotFoundError(f"{root}: no qrels/*.tsv")
    return BeirDataset(name=name or root.name, root=root, corpus=corpus, queries=queries, qrels=qrels)


def _stable_order(ids: Sequence[str], seed: int) -> list[str]:
    ordered = sorted(ids)
    random.Random(seed).shuffle(ordered)
    return ordered


def split_queries(ids: Sequence[str], fraction: float, seed: int = 13) -> tuple[list[str], list[str]]:
    """Deterministic (held_out, rest): ``fraction`` of ``ids`` held out, the same on every machine."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1]; got {fraction}")
    ordered = _stable_order(ids, seed)
    cut = max(1, round(len(ordered) * fraction))
    return sorted(ordered[:cut]), sorted(ordered[cut:])


def kfold(ids: Sequence[str], folds: int, seed: int = 13) -> list[list[str]]:
    """Deterministic k-fold partition of query ids (every id in exactly one fold)."""
    if folds < 2:
        raise ValueError("k-fold needs at least 2 folds")
    ordered = _stable_order(ids, seed)
    return [sorted(ordered[i::folds]) for i in range(folds)]
