"""Documents indexed through the API while a promotion runs (real threads, real
Milvus Lite): after the switch, every document whose job succeeded is found by
id and by search through the alias; every other job failed with the promotion
error (at submission, 409, or in the job). Nothing is lost silently."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from hybrid_search import Chunk, CollectionConfig, DenseEncoderConfig, Engine, RuntimeConfig, StoreConfig
from hybrid_search.api import ApiSettings, create_app
from training import promote as promote_module

pytestmark = pytest.mark.integration

WORDS = ["cat", "mat", "garden", "vector", "search", "revenue", "profit", "quarter", "milvus", "retrieval"]


def test_writes_during_a_promotion_are_kept_or_refused(tiny_models, tmp_path, helpers, monkeypatch):
    old = DenseEncoderConfig(model=str(tiny_models.dense), kind="sentence-transformers")
    new = DenseEncoderConfig(model=str(tiny_models.m3), kind="sentence-transformers")
    engine = Engine(StoreConfig(uri=str(tmp_path / "kb.db"), timeout_s=30), runtime=RuntimeConfig(device="cpu"))
    engine.create_collection(CollectionConfig(name="kb_v1", dense=old, sparse=None))
    seed = [Chunk(doc_id=f"seed{i}", chunk_index=0, text=" ".join(WORDS[(i + j) % len(WORDS)] for j in range(6))) for i in range(120)]
    engine.index("kb_v1", seed)
    engine.switch_alias("kb", "kb_v1")

    # Stretch the copy so that jobs land before, during and after it.
    original = promote_module._Copier._write

    def paced(self, rows, progress):
        time.sleep(0.05)
        return original(self, rows, progress)

    monkeypatch.setattr(promote_module._Copier, "_write", paced)
    settings = ApiSettings(dense_model=str(tiny_models.dense), dense_kind="sentence-transformers", sparse_model=None, device="cpu", busy_timeout_s=60.0)
    outcome: dict[str, object] = {}

    def run_promotion() -> None:
        try:
            outcome["result"] = promote_module.promote(engine, "kb", dense=new, force=True, batch_size=4, progress=False)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = error

    jobs: list[tuple[str, dict]] = []
    refused_at_submit: list[str] = []
    with TestClient(create_app(settings, engine=engine)) as client:

        def submit(n: int) -> None:
            doc_id = f"late{n}"
            record = {"id": doc_id, "text": f"zebra{n}x grazes near the river in the evening light."}
            response = client.post("/v1/collections/kb/documents", json={"records": [record]})
            if response.status_code == 409:  # refused at once: the collection is being promoted
                error = helpers.assert_error(response, 409, "promotion_in_progress")
                assert "being promoted" in error["message"]
                refused_at_submit.append(doc_id)
                return
            assert response.status_code == 202, response.text
            jobs.append((doc_id, response.json()))

        for n in range(3):  # before the promotion
            submit(n)
        promotion = threading.Thread(target=run_promotion)
        promotion.start()
        n = 3
        while promotion.is_alive():
            submit(n)
            n += 1
            time.sleep(0.15)
        promotion.join()
        for _ in range(3):  # after the switch
            submit(n)
            n += 1
        assert "error" not in outcome, outcome.get("error")
        assert engine.resolve("kb") == "kb_v2"

        kept, refused = [], list(refused_at_submit)
        for doc_id, job in jobs:
            done = helpers.wait_for_job(client, job, timeout=120)
            if done["state"] == "succeeded":
                kept.append(doc_id)
            else:
                assert "promot" in (done.get("error") or ""), done
                refused.append(doc_id)
        assert kept and refused, f"kept {kept}, refused {refused}: the jobs did not straddle the promotion"
        for doc_id in kept:
            document = client.get(f"/v1/collections/kb/documents/{doc_id}")
            assert document.status_code == 200, f"{doc_id}: {document.text}"
            assert document.json()["collection"] == "kb_v2"
            word = f"zebra{doc_id.removeprefix('late')}x"
            found = client.post("/v1/collections/kb/search", json={"query": word, "paths": ["bm25"], "k": 3}).json()
            assert found["hits"] and found["hits"][0]["doc_id"] == doc_id, (doc_id, found)
        for doc_id in refused:  # a refused job wrote nothing anywhere
            assert client.get(f"/v1/collections/kb/documents/{doc_id}").status_code == 404
            assert not engine.get_document("kb_v1", doc_id)
    assert engine.store.count("kb_v2") == len(seed) + len(kept)
    engine.close()
