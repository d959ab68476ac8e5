"""Hits worth reading over the API: duplicates folded (switchable per request)
and a snippet around the best-matching passage."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

NOTICE = "Quarterly parrots inspection: every parrot cage is cleaned and the parrots weighed on Mondays."


@pytest.fixture()
def copies(client, helpers):
    records = [{"id": f"copy{i}", "text": NOTICE if i < 2 else NOTICE.upper() + "  ", "title": f"Copy {i}", "source": f"copy{i}.txt"} for i in range(3)]
    job = helpers.wait_for_job(client, client.post("/v1/collections/docs/documents", json={"records": records}).json())
    assert job["state"] == "succeeded", job
    yield [r["id"] for r in records]
    for record in records:
        client.delete(f"/v1/collections/docs/documents/{record['id']}")


def _search(client, **extra):
    response = client.post("/v1/collections/docs/search", json={"query": "parrots cage", "k": 5, "paths": ["bm25"], "rerank": False, **extra})
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def test_duplicates_fold_by_default_and_come_back_when_asked(client, copies):
    hits = _search(client)
    parrots = [hit for hit in hits if hit["doc_id"] in copies]
    assert len(parrots) == 1
    folded = parrots[0]["folded"]
    assert sorted(c["doc_id"] for c in folded + [parrots[0]]) == sorted(copies)
    assert {c["source"] for c in folded} <= {"copy0.txt", "copy1.txt", "copy2.txt"} and all(c["similarity"] == 1.0 for c in folded)

    every = _search(client, collapse=False)
    assert sorted(hit["doc_id"] for hit in every if hit["doc_id"] in copies) == sorted(copies)
    assert all(hit["folded"] == [] for hit in every)


def test_collapse_must_be_a_boolean(client, helpers):
    response = client.post("/v1/collections/docs/search", json={"query": "cat", "collapse": "sometimes"})
    helpers.assert_error(response, 422, field="collapse")


def test_every_hit_has_a_snippet_within_its_text(client):
    hits = client.post("/v1/collections/docs/search", json={"query": "cat mat", "k": 3, "rerank": False}).json()["hits"]
    assert hits
    for hit in hits:
        snippet = hit["snippet"]
        assert hit["text"][snippet["start"] : snippet["end"]] == snippet["text"] and snippet["text"]
