"""Start-up matches the work: a BM25-only search in a fresh process never
imports torch or the model libraries; a dense search does (so the check can fail)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "sentence_transformers", "transformers", "FlagEmbedding")

# Runs the `hybrid-search` program's entry point, then reports which heavy modules it imported.
PROBE = f"""
import json, sys
from hybrid_search.cli_entry import main
sys.argv = ["hybrid-search", *json.loads(sys.argv[1])]
code = 0
try:
    main()
except SystemExit as exit_:
    code = exit_.code or 0
print("HEAVY=" + json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]), file=sys.stderr)
sys.exit(code)
"""


# Builds the store in its own process: Milvus Lite lets one process open a file.
BUILD = """
import sys
from hybrid_search import Chunk, CollectionConfig, DenseEncoderConfig, Engine, RuntimeConfig, SparseEncoderConfig, StoreConfig
path, dense, splade = sys.argv[1:4]
with Engine(StoreConfig(uri=path), runtime=RuntimeConfig(device="cpu")) as engine:
    engine.create_collection(CollectionConfig(
        name="docs",
        dense=DenseEncoderConfig(model=dense, kind="sentence-transformers"),
        sparse=SparseEncoderConfig(model=splade, kind="splade"),
    ))
    engine.create_collection(CollectionConfig(name="words", dense=None, sparse=None))
    for name in ("docs", "words"):
        engine.index(name, [
            Chunk(doc_id="cats", chunk_index=0, text="The cat sat on the mat."),
            Chunk(doc_id="dogs", chunk_index=0, text="Dogs chase cats in the garden."),
        ])
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1")


@pytest.fixture(scope="module")
def store(tiny_models, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lazy") / "kb.db"
    argv = [sys.executable, "-c", BUILD, str(path), str(tiny_models.dense), str(tiny_models.splade)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return path


def run_search(store: Path, *args: str) -> tuple[dict, list[str]]:
    env = _env()
    argv = ["--uri", str(store), "--device", "cpu", "search", *args, "--json"]
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], check=False, capture_output=True, text=True, env=env, cwd=store.parent, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    heavy_line = [line for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    assert heavy_line, done.stderr[-3000:]
    return json.loads(done.stdout), json.loads(heavy_line[-1][len("HEAVY="):])


def test_bm25_only_search_of_a_collection_with_models_imports_no_model_library(store):
    result, heavy = run_search(store, "cat on the mat", "-C", "docs", "--paths", "bm25")
    assert result["hits"][0]["doc_id"] == "cats"
    assert heavy == []


def test_search_of_a_bm25_only_collection_imports_no_model_library(store):
    result, heavy = run_search(store, "dogs garden", "-C", "words")
    assert result["hits"][0]["doc_id"] == "dogs"
    assert heavy == []


@pytest.mark.slow  # ~20 s: the positive case of the BM25-only check beside it
def test_a_dense_search_does_load_torch(store):
    result, heavy = run_search(store, "cat on the mat", "-C", "docs", "--paths", "dense")
    assert result["hits"]
    assert "torch" in heavy and "sentence_transformers" in heavy
