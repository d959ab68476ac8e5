"""Promotion copies rows: a collection built by `hybrid-search index` from a
folder is promoted to a new dense model; the new version holds the same rows
(sync state included), only the dense vectors are recomputed, from exactly the
text the old model embedded, and `index` keeps syncing the promoted version.
A promotion killed midway (a real process, SIGKILL) leaves the alias on the
old, complete version, and running it again finishes it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hybrid_search import Engine, RuntimeConfig, StoreConfig
from hybrid_search.cli import app
from hybrid_search.config import DenseEncoderConfig
from hybrid_search.errors import PromotionInProgressError
from hybrid_search.types import Chunk
from tests.processes import CliProcess, release_milvus_lite
from training.promote import promote

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_hybrid_search_env")]

SENTENCES = [
    "Rotate the backup keys every ninety days.",
    "The cat sleeps on the warm mat by the door.",
    "Restore a snapshot before upgrading the cluster.",
    "Invoices are due within thirty days of delivery.",
    "Hybrid retrieval mixes exact terms with meaning.",
]
# Fields every promoted row must keep exactly (all but the re-embedded dense vector).
KEPT = ["id", "doc_id", "chunk_index", "text", "bm25_text", "title", "source", "page", "heading", "metadata", "sparse"]
# The promotion process, its copy slowed to one batch at a time so that a kill lands midway.
PACED_PROMOTION = """
import sys, time
from training import promote as module
original = module._Copier._write
def paced(self, rows, progress):
    written = original(self, rows, progress)
    if written:
        print(f"COPIED {written}", file=sys.stderr, flush=True)
        time.sleep(0.3)
    return written
module._Copier._write = paced
from hybrid_search.cli import main
sys.argv = ["hybrid-search", *sys.argv[1:]]
main()
"""


def _folder(root: Path) -> Path:
    folder = root / "docs"
    folder.mkdir()
    for i in range(6):
        parts = [f"# Guide {i}"]
        for p in range(3):
            parts += [f"## Section {p}", " ".join(SENTENCES[(i + p + j) % len(SENTENCES)] for j in range(4))]
        (folder / f"guide{i}.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return folder


def _config(root: Path, tiny_models) -> Path:
    config = root / "hs.toml"
    config.write_text(
        f'[runtime]\ndevice = "cpu"\n[collection]\ndense_model = "{tiny_models.dense}"\n'
        f'dense_kind = "sentence-transformers"\nsparse_model = "{tiny_models.splade}"\nsparse_kind = "splade"\n',
        encoding="utf-8",
    )
    return config


def _index(config: Path, db: Path, folder: Path, collection: str) -> dict[str, int]:
    result = CliRunner().invoke(app, ["--config", str(config), "--uri", str(db), "index", str(folder), "-C", collection, "--max-tokens", "40"])
    assert result.exit_code == 0, result.output
    counts = {}
    for label in ("chunks written", "chunks removed", "files unchanged"):
        found = re.search(rf"{label}\D+(\d+)", result.output)
        assert found, result.output
        counts[label] = int(found.group(1))
    return counts


def _rows(engine: Engine, collection: str) -> dict[str, dict]:
    return {r["id"]: r for r in engine.store.iterate(collection, "", [*KEPT, "dense"])}


def _assert_copied(engine: Engine, old: str, new: str, new_model: DenseEncoderConfig) -> None:
    """Every row of ``new`` equals ``old``'s but for the dense vector, which is
    the new model's embedding of exactly the text the old model embedded."""
    before, after = _rows(engine, old), _rows(engine, new)
    assert sorted(after) == sorted(before) and before
    for chunk_id, row in before.items():
        assert {f: after[chunk_id].get(f) for f in KEPT} == {f: row.get(f) for f in KEPT}, chunk_id
    from hybrid_search.rows import chunk_from_row

    chunks = [chunk_from_row(row) for row in before.values()]
    assert all(c.embed_text and c.embed_text.endswith(c.text) and c.embed_text != c.text for c in chunks)  # title/heading prefix
    expected = engine.encoders(new).dense.encode_documents([c.embed_text for c in chunks])
    got = np.asarray([after[c.id]["dense"] for c in chunks])
    old_vectors = np.asarray([before[c.id]["dense"] for c in chunks])
    assert np.allclose(got, expected, atol=1e-4)
    assert not np.allclose(got, old_vectors, atol=1e-3)  # the dense vectors really are the new model's
    assert engine.open_collection(new).dense == new_model


def test_promoted_collection_keeps_rows_and_sync_state(tiny_models, tmp_path, quiet_pymilvus):
    folder, config, db = _folder(tmp_path), _config(tmp_path, tiny_models), tmp_path / "kb.db"
    first = _index(config, db, folder, "kb_v1")
    assert first["chunks written"] > 10
    new_model = DenseEncoderConfig(model=str(tiny_models.m3), kind="sentence-transformers")
    with Engine(StoreConfig(uri=str(db)), runtime=RuntimeConfig(device="cpu")) as engine:
        engine.switch_alias("kb", "kb_v1")
        result = promote(engine, "kb", dense=new_model, force=True, batch_size=8, progress=False)
        assert (result.previous, result.collection, result.chunks) == ("kb_v1", "kb_v2", first["chunks written"])
        assert engine.resolve("kb") == "kb_v2"
        _assert_copied(engine, "kb_v1", "kb_v2", new_model)
        # The old version is kept read-only for rollback: a write there would be lost to the alias.
        with pytest.raises(PromotionInProgressError, match="write through the alias 'kb'"):
            engine.index("kb_v1", [Chunk(doc_id="late", chunk_index=0, text="written to the old version")])
    release_milvus_lite(db)

    # `index` on the same folder, through the alias: the promoted rows are in sync.
    again = _index(config, db, folder, "kb")
    assert again["chunks written"] == 0 and again["files unchanged"] == 6
    # A file deleted: its chunks leave the promoted version.
    (folder / "guide3.md").unlink()
    removed = _index(config, db, folder, "kb")
    assert removed["chunks written"] == 0 and removed["chunks removed"] > 0
    with Engine(StoreConfig(uri=str(db))) as engine:
        documents = [doc_id for doc_id, _ in engine.list_documents("kb")]
        assert len(documents) == 5 and not any(d.endswith("guide3.md") for d in documents)
        assert engine.store.count("kb_v2") == first["chunks written"] - removed["chunks removed"]
        assert any(d.endswith("guide3.md") for d, _ in engine.list_documents("kb_v1"))  # the old version untouched
    release_milvus_lite(db)


def test_a_killed_promotion_leaves_the_old_version_and_a_rerun_finishes(tiny_models, tmp_path, quiet_pymilvus):
    folder, config, db = _folder(tmp_path), _config(tmp_path, tiny_models), tmp_path / "kb.db"
    first = _index(config, db, folder, "kb_v1")
    with Engine(StoreConfig(uri=str(db))) as engine:
        engine.switch_alias("kb", "kb_v1")
        live = _rows(engine, "kb_v1")
    release_milvus_lite(db)

    promote_args = ["--uri", str(db), "--device", "cpu", "train", "promote", "--alias", "kb", "--dense", str(tiny_models.m3),
                    "--dense-kind", "sentence-transformers", "--force", "--batch-size", "4"]  # fmt: skip
    killed = CliProcess([sys.executable, "-c", PACED_PROMOTION, *promote_args]).kill_when(lambda err: err.count("COPIED") >= 3)
    copied = sum(int(n) for n in re.findall(r"COPIED (\d+)", killed))
    assert 0 < copied < first["chunks written"], killed[-2000:]

    new_model = DenseEncoderConfig(model=str(tiny_models.m3), kind="sentence-transformers")
    with Engine(StoreConfig(uri=str(db)), runtime=RuntimeConfig(device="cpu")) as engine:
        # The alias still serves the old version, complete and unchanged.
        assert engine.resolve("kb") == "kb_v1"
        assert _rows(engine, "kb_v1") == live
        assert engine.search("kb", "cat mat").collection == "kb_v1"
        assert 0 < engine.store.count("kb_v2") < first["chunks written"]
        # Writes wait for the promotion, with a clear error.
        with pytest.raises(PromotionInProgressError, match="is being promoted"):
            engine.index("kb", [Chunk(doc_id="late", chunk_index=0, text="written during the promotion")])
        # Running it again finishes it, copying only what was missing.
        result = promote(engine, "kb", dense=new_model, force=True, batch_size=8, progress=False)
        assert result.resumed and result.collection == "kb_v2" and engine.resolve("kb") == "kb_v2"
        assert 0 < result.chunks <= first["chunks written"] - copied  # only what the killed run had not copied
        _assert_copied(engine, "kb_v1", "kb_v2", new_model)
        engine.index("kb", [Chunk(doc_id="late", chunk_index=0, text="written after the promotion")])
        assert engine.get_document("kb_v2", "late")
    release_milvus_lite(db)
