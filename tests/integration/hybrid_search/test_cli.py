"""The command line over a real Milvus Lite file and tiny models."""

import json
import re

import pytest
from typer.testing import CliRunner

from hybrid_search.cli import app

pytestmark = pytest.mark.integration

RECORDS = [
    {"_id": "a", "title": "Cats", "text": "The cat sat on the mat.", "dept": "pets", "year": 2021},
    {"_id": "b", "title": "Dogs", "text": "Dogs chase cats in the garden.", "dept": "pets", "year": 2023},
    {"_id": "c", "title": "Milvus", "text": "Milvus stores vectors for retrieval.", "dept": "eng", "year": 2023},
]


@pytest.fixture(scope="module")
def cli_env(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "beir"
    corpus.mkdir()
    (corpus / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n", encoding="utf-8")
    config = root / "hs.toml"
    config.write_text(
        f'[store]\nuri = "kb.db"\n[runtime]\ndevice = "cpu"\n[collection]\nname = "docs"\n'
        f'dense_model = "{tiny_models.dense}"\ndense_kind = "sentence-transformers"\n'
        f'sparse_model = "{tiny_models.splade}"\nsparse_kind = "splade"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "index", str(corpus)])
    assert result.exit_code == 0, result.output
    return runner, config, root


def invoke(cli_env, *args):
    runner, config, _ = cli_env
    return runner.invoke(app, ["--config", str(config), *args])


def test_index_reports_and_is_idempotent(cli_env):
    _, _, root = cli_env
    result = invoke(cli_env, "index", str(root / "beir"))
    assert result.exit_code == 0, result.output
    # the second run finds every record unchanged and writes nothing
    assert re.search(r"chunks written\s*│\s*0 │", result.output), result.output
    assert re.search(r"chunks unchanged\s*│\s*3 │", result.output), result.output
    listing = invoke(cli_env, "collections", "list", "--json")
    data = json.loads(listing.stdout)
    assert [(c["name"], c["chunks"]) for c in data["collections"]] == [("docs", 3)]


def test_search_json_explains_every_path(cli_env):
    result = invoke(cli_env, "search", "cat on the mat", "-k", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["paths"] == ["bm25", "sparse", "dense"] and data["fusion"] == "adaptive"
    top = data["hits"][0]
    assert top["doc_id"] == "a" and set(top["paths"]) == {"bm25", "sparse", "dense"}
    assert top["metadata"] == {"dept": "pets", "year": 2021}
    assert {"rank", "score"} <= set(top["paths"]["bm25"])


def test_search_text_output_filters_and_weights(cli_env):
    result = invoke(cli_env, "search", "cats", "--filter", "metadata.year >= 2023", "--fusion", "weighted", "--weights", "bm25=2,dense=1,sparse=0")
    assert result.exit_code == 0, result.output
    assert "fusion weighted" in result.output
    json_result = invoke(cli_env, "search", "cats", "--filter", "metadata.year >= 2023", "--json")
    assert {h["doc_id"] for h in json.loads(json_result.stdout)["hits"]} <= {"b", "c"}


def test_documents_get_and_delete(cli_env):
    got = invoke(cli_env, "documents", "get", "c")
    assert got.exit_code == 0 and json.loads(got.stdout.splitlines()[0])["text"].startswith("Milvus")
    deleted = invoke(cli_env, "documents", "delete", "c")
    assert deleted.exit_code == 0 and "removed 1 chunks" in deleted.output
    missing = invoke(cli_env, "documents", "get", "c")
    assert missing.exit_code == 2 and "no document 'c'" in missing.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "cats", "--paths", "bm25,colbert"], "unknown path"),
        (["search", "cats", "-k", "0"], "k must be"),
        (["search", "cats", "--filter", "nonsense"], "FIELD OP VALUE"),
        (["search", "cats", "--filter", 'title == "x" or 1==1'], None),
        (["search", "cats", "--collection", "nope"], "no collection 'nope'"),
        (["search", "cats", "--weights", "bm25=lots"], "PATH=NUMBER"),
        (["index", "pyproject.toml"], "unsupported file type"),
        # one behaviour for both shells: the engine refuses, nothing is fetched from the hub
        (["search", "cats", "--rerank"], "no reranker is configured"),
        (["search", "cats", "--paths", "bm25,bm25"], "must not repeat"),
        (["search", "cats", "--rerank", "--rerank-model", "/nonexistent/reranker"], "could not load"),
    ],
)
def test_bad_input_is_a_clear_error_with_nonzero_exit(cli_env, args, message):
    result = invoke(cli_env, *args)
    if message is None:
        # a hostile filter value is just a string: it matches nothing, it does not fail
        assert result.exit_code == 0, result.output
        assert "no results" in result.output
        return
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_mismatched_model_for_existing_collection_is_refused(cli_env, tiny_models):
    _, _, root = cli_env
    result = invoke(cli_env, "index", str(root / "beir"), "--dense-model", str(tiny_models.m3), "--dense-kind", "bge-m3")
    assert result.exit_code == 1
    assert "different configuration" in result.output


class _ScriptedReranker:
    """A reranker with fixed opinions (no model): the shorter the text, the better."""

    def __init__(self, config):
        self.config = config

    def score(self, query, texts):
        return [1.0 / len(text) for text in texts]


def test_search_rerank_first_stage_weight_flag_and_config(cli_env, monkeypatch):
    monkeypatch.setattr("hybrid_search.engine.load_reranker", lambda config, runtime: _ScriptedReranker(config))
    result = invoke(cli_env, "search", "cats", "--rerank", "--rerank-model", "scripted", "--rerank-first-stage-weight", "0.5", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reranked"] and data["rerank_first_stage_weight"] == 0.5
    fused = [h["fused_score"] for h in data["hits"]]
    for hit in data["hits"]:  # every hit is in the reranked head (top_n 50)
        norm = (hit["fused_score"] - min(fused)) / (max(fused) - min(fused))
        assert hit["combined_score"] == pytest.approx(0.5 * hit["rerank_score"] + 0.5 * norm, abs=1e-9)
    text = invoke(cli_env, "search", "cats", "--rerank", "--rerank-model", "scripted", "--rerank-first-stage-weight", "0.5")
    assert text.exit_code == 0, text.output
    # (rich wraps lines at the terminal width)
    assert re.search(r"rerank\s+\d\.\d{4}\s+\|\s+combined\s+\d\.\d{4}\s+\(w=0\.5\)", text.output), text.output
    # w = 0 (the default): the combined score equals the rerank score and is not shown
    pure = invoke(cli_env, "search", "cats", "--rerank", "--rerank-model", "scripted")
    assert pure.exit_code == 0 and re.search(r"rerank\s+0\.", pure.output) and "combined" not in pure.output, pure.output
    # [rerank] first_stage_weight in the config file
    _, config, root = cli_env
    weighted = root / "weighted.toml"
    weighted.write_text(config.read_text(encoding="utf-8") + "[rerank]\nmodel = \"scripted\"\nfirst_stage_weight = 1.0\n", encoding="utf-8")
    runner = cli_env[0]
    from_file = runner.invoke(app, ["--config", str(weighted), "search", "cats", "--rerank", "--json"])
    assert from_file.exit_code == 0, from_file.output
    hits = json.loads(from_file.stdout)["hits"]
    assert json.loads(from_file.stdout)["rerank_first_stage_weight"] == 1.0
    assert [h["fused_score"] for h in hits] == sorted((h["fused_score"] for h in hits), reverse=True)
    bad = invoke(cli_env, "search", "cats", "--rerank", "--rerank-model", "scripted", "--rerank-first-stage-weight", "1.5")
    assert bad.exit_code == 2 and "first_stage_weight must lie in [0, 1]" in bad.output, bad.output
