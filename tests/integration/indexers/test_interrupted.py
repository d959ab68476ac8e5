"""Kill a real `hybrid-search index` process midway, run it again, and get
exactly the index a clean run builds: no duplicate chunks, no missing ones, no
chunk of an old file version left behind.

The sequence, on one Milvus Lite file:

1. a complete run indexes version 1 of a folder (40 Markdown files and a JSONL
   file of records);
2. the folder becomes version 2 (files rewritten to fewer or more chunks,
   files deleted and added, records dropped, edited and added), and a real
   CLI process indexing it is killed with SIGKILL (its whole process group,
   Milvus Lite's server included) once its progress bar shows some, not all,
   chunks written: old and new versions of documents are then mixed;
3. a CLI process re-runs and is killed in the delete phase, after it has
   removed some, not all, of the documents whose files are gone (the process
   is the real CLI with ``Engine.delete_documents`` slowed to one document at
   a time, so that the kill can land there);
4. a run to completion; every row (id, document, position, text, title,
   source, page, heading, all metadata with the sync stamps, and the dense
   vector) must equal a clean run of version 2 into another file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hybrid_search import Engine, StoreConfig
from hybrid_search.cli import app
from indexers.sync import DOC_HASH_KEY, FILE_HASH_KEY, StoredDocument
from tests.processes import CliProcess as _CliProcess
from tests.processes import release_milvus_lite as _release

pytestmark = pytest.mark.integration

INDEX_ARGS = ["--batch-size", "4", "--max-tokens", "48", "--id-field", "id"]
SENTENCES = [
    "The cat sat on the mat.",
    "A dog chased the cat around the garden.",
    "Milvus is an open source vector database built for similarity search.",
    "Hybrid search combines dense retrieval with sparse lexical retrieval.",
    "The company reported record revenue and profit in the fourth quarter.",
    "Quarterly revenue grew twelve percent while operating costs fell.",
    "Large language models answer questions using retrieved documents.",
]
# Run 2 slows the writes down so that a kill lands mid-run on any machine
# (unpaced, a fast one wrote 72 of 74 chunks between two refreshes of the bar).
PACED_WRITES = """
import sys, time
from hybrid_search.store import MilvusStore
original = MilvusStore.upsert
def paced(self, name, rows):
    original(self, name, rows)
    print(f"WROTE {len(rows)}", file=sys.stderr, flush=True)
    time.sleep(0.2)
MilvusStore.upsert = paced
from hybrid_search.cli import main
sys.argv = ["hybrid-search", *sys.argv[1:]]
main()
"""
# Run 3 slows the delete phase down so that a kill lands inside it.
PACED_DELETES = """
import sys, time
from hybrid_search.engine import Engine
original = Engine.delete_documents
def paced(self, name, doc_ids):
    removed = 0
    for doc_id in doc_ids:
        removed += original(self, name, [doc_id])
        print("DELETED " + doc_id, file=sys.stderr, flush=True)
        time.sleep(0.4)
    return removed
Engine.delete_documents = paced
from hybrid_search.cli import main
sys.argv = ["hybrid-search", *sys.argv[1:]]
main()
"""


def _markdown(seed: int, parts: int, tag: str = "") -> str:
    out = [f"# File {seed}{tag}"]
    for p in range(parts):
        out.append(f"## Part {p}")
        out.append(" ".join(SENTENCES[(seed + p + j) % len(SENTENCES)] for j in range(5)) + f" {tag}")
    return "\n\n".join(out) + "\n"


def _records(ids: list[int], edited: set[int] = frozenset()) -> str:
    return "".join(
        json.dumps({"id": f"rec{i}", "title": f"Record {i}", "text": SENTENCES[i % len(SENTENCES)] + (" Edited." if i in edited else "")})
        + "\n"
        for i in ids
    )


def _version_1(folder: Path) -> None:
    folder.mkdir(parents=True)
    for i in range(40):
        (folder / f"f{i:02d}.md").write_text(_markdown(i, 3), encoding="utf-8")
    (folder / "records.jsonl").write_text(_records(list(range(12))), encoding="utf-8")


DELETED = ["f02.md", "f13.md", "f22.md", "f31.md", "f38.md"]


def _version_2(folder: Path) -> None:
    for n, i in enumerate(range(0, 40, 4)):  # ten files rewritten: shrunk or grown
        (folder / f"f{i:02d}.md").write_text(_markdown(i, 1 if n % 2 else 5, tag=" v2"), encoding="utf-8")
    for name in DELETED:
        (folder / name).unlink()
    for i in (5, 15, 25, 35):
        (folder / f"f{i:02d}b.md").write_text(_markdown(100 + i, 2, tag=" new"), encoding="utf-8")
    # records 3, 7, 11 dropped; 1 and 5 edited; 12 and 13 added
    (folder / "records.jsonl").write_text(_records([0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13], edited={1, 5}), encoding="utf-8")


STALE_DOCS = {f"docs/{name}" for name in DELETED} | {"rec3", "rec7", "rec11"}


def _written(stderr: str) -> tuple[int, int] | None:
    """The last (written, planned) the chunks bar showed."""
    found = re.findall(r"chunks\S*\s+[━╸╺\s]*(\d+)/(\d+)", stderr)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def _state(db: Path) -> dict[str, dict]:
    """Every row of the collection, vectors included, by id."""
    engine = Engine(StoreConfig(uri=str(db)))
    try:
        fields = ["id", "doc_id", "chunk_index", "text", "title", "source", "page", "heading", "bm25_text", "metadata", "dense"]
        return {r["id"]: {f: r.get(f) for f in fields} for r in engine.store.iterate("kb", "", fields)}
    finally:
        engine.close()


def _assert_same(state: dict[str, dict], clean: dict[str, dict]) -> None:
    assert sorted(state) == sorted(clean), (
        f"missing: {sorted(set(clean) - set(state))[:10]}, extra: {sorted(set(state) - set(clean))[:10]}"
    )
    for chunk_id, row in clean.items():
        got = dict(state[chunk_id])
        want = dict(row)
        got_vector, want_vector = np.asarray(got.pop("dense")), np.asarray(want.pop("dense"))
        assert got == want, chunk_id
        # Batches mix other chunks in each run: vectors agree to float noise.
        assert np.allclose(got_vector, want_vector, atol=1e-4), chunk_id


def test_killed_runs_end_exactly_like_a_clean_run(tiny_models, tmp_path, quiet_pymilvus):
    config = tmp_path / "hs.toml"
    config.write_text(
        f'[runtime]\ndevice = "cpu"\n[collection]\nname = "kb"\n'
        f'dense_model = "{tiny_models.dense}"\ndense_kind = "sentence-transformers"\nno_sparse = true\n',
        encoding="utf-8",
    )
    folder = tmp_path / "docs"
    db, clean_db = tmp_path / "kb.db", tmp_path / "clean.db"
    runner = CliRunner()

    def index_here(target: Path) -> None:
        result = runner.invoke(app, ["--config", str(config), "--uri", str(target), "index", str(folder), *INDEX_ARGS])
        assert result.exit_code == 0, result.output

    def cli(*python_args: str) -> _CliProcess:
        return _CliProcess(
            [sys.executable, *python_args, "--config", str(config), "--uri", str(db), "index", str(folder), *INDEX_ARGS]
        )

    # 1. Version 1, indexed completely (in this process, to save a start-up).
    _version_1(folder)
    index_here(db)
    version_1 = _state(db)
    _release(db)

    # 2. Version 2: a real CLI process killed while it writes.
    _version_2(folder)
    killed = cli("-c", PACED_WRITES).kill_when(lambda err: sum(map(int, re.findall(r"WROTE (\d+)", err))) >= 24)
    written = sum(map(int, re.findall(r"WROTE (\d+)", killed)))
    planned = (_written(killed) or (0, "?"))[1]
    after_write_kill = _state(db)  # the file opens fine after a SIGKILL
    _release(db)
    # What the kill left: some rewritten documents done, others still at
    # version 1 or half written, nothing deleted yet.
    stored: dict[str, StoredDocument] = {}
    for row in after_write_kill.values():
        stored.setdefault(row["doc_id"], StoredDocument(row["doc_id"], row["source"])).add_row(
            row["chunk_index"], row["metadata"]
        )
    rewritten = [f"docs/f{i:02d}.md" for i in range(0, 40, 4)]
    old_sha = {d: version_1[f"{d}#0"]["metadata"][DOC_HASH_KEY] for d in rewritten}
    done = [d for d in rewritten if stored[d].complete and stored[d].doc_sha256 != old_sha[d]]
    untouched = [d for d in rewritten if stored[d].complete and stored[d].doc_sha256 == old_sha[d]]
    assert done and untouched, f"{written} of {planned} chunks written at the kill; done: {done}, untouched: {untouched}"
    assert STALE_DOCS <= set(stored), "the killed run got to the delete phase"

    # 3. The re-run is killed in the delete phase, after some deletions.
    killed = cli("-c", PACED_DELETES).kill_when(lambda err: err.count("DELETED ") >= 2)
    deleted_before_kill = set(re.findall(r"DELETED (\S+)", killed))
    after_delete_kill = _state(db)
    _release(db)
    left = {doc for doc in STALE_DOCS if any(r["doc_id"] == doc for r in after_delete_kill.values())}
    assert deleted_before_kill and deleted_before_kill <= STALE_DOCS
    assert left and left < STALE_DOCS, f"expected some stale documents deleted, some left; left: {sorted(left)}"
    assert not (left & deleted_before_kill), "a deletion acknowledged before the kill was lost"

    # 4. A run to completion ends exactly like a clean run of version 2.
    index_here(db)
    index_here(clean_db)
    final, clean = _state(db), _state(clean_db)
    assert len({(r["doc_id"], r["chunk_index"]) for r in clean.values()}) == len(clean)
    assert not any(r["doc_id"] in STALE_DOCS for r in clean.values())
    assert sum(" v2" in r["text"] for r in clean.values()) >= 10
    assert len({r["metadata"][FILE_HASH_KEY] for r in clean.values() if r["source"] == "records.jsonl"}) == 1
    _assert_same(final, clean)
