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


def test_hits_from_a_document_root_link_to_their_file_and_only_it_is_served(client, helpers, document_root):
    job = helpers.wait_for_job(client, client.post("/v1/collections/docs/documents/paths", json={"root": "files", "paths": ["notes"]}).json())
    assert job["state"] == "succeeded", job
    try:
        hits = client.post("/v1/collections/docs/search", json={"query": "alpha note gardens", "paths": ["bm25"], "rerank": False}).json()["hits"]
        alpha = next(hit for hit in hits if hit["doc_id"] == "files/notes/alpha.md")
        assert alpha["source_url"] == "/v1/sources/files/notes/alpha.md"
        # Records sent as JSON have no file.
        assert all(hit["source_url"] is None for hit in hits if not hit["doc_id"].startswith("files/"))

        served = client.get(alpha["source_url"])
        assert served.status_code == 200
        assert served.text == (document_root / "notes" / "alpha.md").read_text(encoding="utf-8")
        assert served.headers["content-type"].startswith("text/plain")
        assert "sandbox" in served.headers["content-security-policy"]
        assert served.headers["x-content-type-options"] == "nosniff"
    finally:
        for doc_id in ("files/notes/alpha.md", "files/notes/beta.txt"):
            client.delete(f"/v1/collections/docs/documents/{doc_id}")


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/v1/sources/files/%2E%2E/secret.txt", 403),
        ("/v1/sources/files/notes/..%2F..%2Fsecret.txt", 403),
        ("/v1/sources/files/%2Fetc%2Fpasswd", 403),
        ("/v1/sources/files/link-out.txt", 403),
        ("/v1/sources/files/notes/skip.bin", 403),
        ("/v1/sources/elsewhere/notes/alpha.md", 403),
        ("/v1/sources/files/notes/missing.md", 404),
    ],
)
def test_source_route_refuses_paths_out_of_the_root(client, helpers, url, status):
    helpers.assert_error(client.get(url), status)


def test_source_route_needs_a_read_key_when_keys_are_set(make_client, helpers, document_root):
    secured = make_client(read_api_keys=["r" * 24], document_roots={"files": document_root})
    helpers.assert_error(secured.get("/v1/sources/files/notes/alpha.md"), 401)
    assert secured.get("/v1/sources/files/notes/alpha.md", headers={"Authorization": "Bearer " + "r" * 24}).status_code == 200
