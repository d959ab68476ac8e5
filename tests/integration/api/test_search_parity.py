"""Same request, same hits, whichever shell: a table of searches run through
`hybrid-search search --json` and `POST /v1/collections/{name}/search` against
one Milvus Lite collection must give identical hits and the same plan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hybrid_search import Chunk, Engine, RerankConfig, RuntimeConfig, StoreConfig
from hybrid_search.api import ApiSettings, create_app
from hybrid_search.cli import app as cli_app

pytestmark = pytest.mark.integration

TOPICS = ["garden", "mat", "database", "revenue", "weather", "vector", "morning", "search"]
ANIMALS = ["cats", "dogs", "birds"]


def corpus() -> list[Chunk]:
    # Over 100 chunks that share terms, so that k > 100 has something to return.
    chunks = []
    for i in range(150):
        animal, topic, other = ANIMALS[i % 3], TOPICS[i % len(TOPICS)], TOPICS[(i * 5 + 3) % len(TOPICS)]
        text = f"Note {i}: the {animal} near the {topic} and the {other}."
        chunks.append(Chunk(doc_id=f"n{i:03d}", chunk_index=0, text=text, title=f"Note {i}", metadata={"n": i, "animal": animal}))
    return chunks


@pytest.fixture(scope="module")
def shells(tiny_models, tmp_path_factory) -> Iterator[tuple[TestClient, Path]]:
    root = tmp_path_factory.mktemp("parity")
    uri = str(root / "parity.db")
    rerank = {"model": str(tiny_models.cross_encoder), "kind": "cross-encoder", "top_n": 20}
    with Engine(StoreConfig(uri=uri), runtime=RuntimeConfig(device="cpu")) as builder:
        builder.create_collection(tiny_models.hybrid_collection("notes"))
        builder.index("notes", corpus())
    # Written and closed first: every engine below (the API's, each CLI run's) reads the same stored state.
    engine = Engine(StoreConfig(uri=uri), runtime=RuntimeConfig(device="cpu"), reranker=RerankConfig(**rerank))  # type: ignore[arg-type]
    config = root / "hs.toml"
    config.write_text(
        f'[store]\nuri = "{uri}"\n[runtime]\ndevice = "cpu"\n[collection]\nname = "notes"\n'
        f'[rerank]\nmodel = "{rerank["model"]}"\nkind = "cross-encoder"\ntop_n = 20\n',
        encoding="utf-8",
    )
    settings = ApiSettings(device="cpu", max_k=1000, busy_timeout_s=60.0)  # type: ignore[call-arg]
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client, config
    engine.close()


# (API request body, the same request as CLI arguments)
REQUESTS: list[tuple[dict[str, Any], list[str]]] = [
    ({"query": "cats garden"}, []),
    ({"query": "note cats", "k": 120, "paths": ["bm25"], "rerank": False}, ["-k", "120", "--paths", "bm25", "--no-rerank"]),
    ({"query": "note mat", "k": 130, "rerank": False}, ["-k", "130", "--no-rerank"]),
    (
        {"query": "vector database", "paths": ["sparse", "dense"], "fusion": "weighted", "normalization": "z-score", "rerank": False},
        ["--paths", "sparse,dense", "--fusion", "weighted", "--normalization", "z-score", "--no-rerank"],
    ),
    (
        {"query": "dogs morning", "fusion": "weighted", "weights": {"bm25": 2, "sparse": 0, "dense": 1}, "rerank": False},
        ["--fusion", "weighted", "--weights", "bm25=2,sparse=0,dense=1", "--no-rerank"],
    ),
    ({"query": "birds", "rrf_k": 10, "depth": 7, "k": 5, "rerank": False}, ["--rrf-k", "10", "--depth", "7", "-k", "5", "--no-rerank"]),
    (
        {"query": "cats", "filters": [{"field": "metadata.n", "op": ">=", "value": 100}, {"field": "metadata.animal", "op": "==", "value": "cats"}], "rerank": False},
        ["--filter", "metadata.n >= 100", "--filter", "metadata.animal == cats", "--no-rerank"],
    ),
    (
        {"query": "cats weather", "rerank": True, "rerank_top_n": 5, "rerank_first_stage_weight": 0.3},
        ["--rerank", "--rerank-top-n", "5", "--rerank-first-stage-weight", "0.3"],
    ),
    ({"query": "dogs search", "min_rerank_score": 0.99}, ["--min-rerank-score", "0.99"]),
]

COMPARED = ("collection", "paths", "fusion", "reranked", "rerank_first_stage_weight", "confident", "query_terms", "plan", "hits")


@pytest.mark.parametrize("body, args", REQUESTS, ids=[" ".join(args) or "defaults" for _, args in REQUESTS])
def test_cli_and_api_serve_the_same_hits(shells, body, args):
    client, config = shells
    response = client.post("/v1/collections/notes/search", json={**body, "explain": True})
    assert response.status_code == 200, response.text
    api = response.json()
    ran = CliRunner().invoke(cli_app, ["--config", str(config), "search", body["query"], *args, "--json"])
    assert ran.exit_code == 0, ran.output
    cli = json.loads(ran.stdout)
    assert {key: cli[key] for key in COMPARED if key != "hits"} == {key: api[key] for key in COMPARED if key != "hits"}
    assert len(cli["hits"]) == len(api["hits"])
    for from_cli, from_api in zip(cli["hits"], api["hits"]):
        differing = {key: (from_cli.get(key), from_api.get(key)) for key in from_cli.keys() | from_api.keys() if from_cli.get(key) != from_api.get(key)}
        assert not differing, (from_cli["rank"], differing)
    if body.get("k", 10) > 100:
        assert len(api["hits"]) == body["k"]  # the default depth covers k in both shells


@pytest.mark.parametrize(
    "body, args, message",
    [
        ({"query": "cats", "paths": ["bm25", "bm25"]}, ["--paths", "bm25,bm25"], "must not repeat a path"),
        ({"query": "cats", "paths": ["bm25", "dense"], "weights": {"bm25": 0, "dense": 0}}, ["--paths", "bm25,dense", "--weights", "bm25=0,dense=0"], "weight 0"),
        ({"query": " "}, [], "non-empty"),
    ],
)
def test_cli_and_api_refuse_the_same_requests(shells, body, args, message):
    client, config = shells
    response = client.post("/v1/collections/notes/search", json=body)
    assert response.status_code == 422 and message in response.json()["error"]["message"], response.text
    ran = CliRunner().invoke(cli_app, ["--config", str(config), "search", body["query"], *args])
    assert ran.exit_code == 2 and message in ran.output, ran.output
