"""Hostile and malformed input: every case gets the right 4xx in the one error
shape, never a 500 or a stack trace, and nothing reaches Milvus unescaped."""

from __future__ import annotations

import io

import pytest

pytestmark = pytest.mark.integration

SEARCH = "/v1/collections/docs/search"


# --- k, query, body ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "cat", "k": 10**12}, "k"),
        ({"query": "cat", "k": 1001}, "k"),
        ({"query": "cat", "k": 101}, "k"),  # over the server's max_k (100)
        ({"query": "cat", "k": 0}, "k"),
        ({"query": "cat", "k": -5}, "k"),
        ({"query": "cat", "k": "ten"}, "k"),
        ({"query": "cat", "k": 2.5}, "k"),
        ({"query": "cat", "k": None}, "k"),
        ({"query": ""}, "query"),
        ({"query": "   \n\t "}, "query"),
        ({"query": None}, "query"),
        ({"query": ["cat"]}, "query"),
        ({"query": "x" * 1025}, "query"),  # over max_query_chars (1024)
        ({"query": "x" * 5000}, "query"),  # over the engine's ceiling
        ({}, "query"),
        ({"query": "cat", "paths": []}, "paths"),
        ({"query": "cat", "paths": ["bm25", "bm25"]}, "paths"),
        ({"query": "cat", "paths": ["colbert"]}, "paths.0"),
        ({"query": "cat", "depth": 10**9}, "depth"),
        ({"query": "cat", "depth": 1001}, "depth"),
        ({"query": "cat", "depth": {"colbert": 5}}, "depth"),
        ({"query": "cat", "weights": {"bm25": -1}}, "weights.bm25"),
        ({"query": "cat", "fusion": "max"}, "fusion"),
        ({"query": "cat", "rerank_top_n": 10**6}, "rerank_top_n"),
        ({"query": "cat", "min_rerank_score": 2}, "min_rerank_score"),
        ({"query": "cat", "rerank_first_stage_weight": 1.5}, "rerank_first_stage_weight"),
        ({"query": "cat", "rerank_first_stage_weight": -0.1}, "rerank_first_stage_weight"),
        ({"query": "cat", "rerank_first_stage_weight": "half"}, "rerank_first_stage_weight"),
        ({"query": "cat", "filter": []}, "filter"),  # a typo is an error, not ignored
        ({"query": "cat", "filters": [{}] * 17}, None),
    ],
)
def test_bad_search_fields_are_422_naming_the_field(client, helpers, body, field):
    error = helpers.assert_error(client.post(SEARCH, json=body), 422)
    if field is not None:
        assert error["field"] == field or error["field"].startswith(field), error


def test_megabyte_queries(client, helpers):
    # Under the 1 MiB body limit: parsed, then refused by the query length limit.
    helpers.assert_error(client.post(SEARCH, json={"query": "a" * 1_000_000}), 422, field="query")
    # Over it: refused from Content-Length, before any parsing.
    helpers.assert_error(client.post(SEARCH, json={"query": "a" * 2_000_000}), 413, "payload_too_large")


def test_streamed_body_over_the_limit(client, helpers):
    def chunks():
        yield b'{"query": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    helpers.assert_error(client.post(SEARCH, content=chunks(), headers={"content-type": "application/json"}), 413)


@pytest.mark.parametrize(
    "text",
    ['{"query": "cat"', "{bad json}", "", "null", "[]", '"just a string"', '{"query": "cat",}', "\ufeff{}", '{"query": NaN}'],
)
def test_malformed_json(client, helpers, text):
    response = helpers.raw_json(client, SEARCH, text)
    assert response.status_code in (400, 422), response.text
    helpers.assert_error(response, response.status_code)


def test_deeply_nested_json(client, helpers):
    deep = '{"query": "cat", "filters": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = helpers.raw_json(client, SEARCH, deep)
    assert response.status_code in (400, 422), response.text
    helpers.assert_error(response, response.status_code)


def test_invented_methods_do_not_grow_metric_labels(client):
    client.request("FOOBAR", SEARCH)
    text = client.get("/metrics").text
    assert 'method="FOOBAR"' not in text and 'method="OTHER"' in text


def test_nan_and_infinity_are_refused(client, helpers):
    helpers.assert_error(helpers.raw_json(client, SEARCH, '{"query": "cat", "weights": {"bm25": NaN}}'), 422, field="weights.bm25")
    helpers.assert_error(helpers.raw_json(client, SEARCH, '{"query": "cat", "min_rerank_score": Infinity}'), 422)
    filters = '{"query": "cat", "filters": [{"field": "metadata.n", "op": ">", "value": -Infinity}]}'
    helpers.assert_error(helpers.raw_json(client, SEARCH, filters), 422)


def test_wrong_content_type_and_method(client, helpers):
    helpers.assert_error(client.post(SEARCH, content=b"query=cat", headers={"content-type": "application/x-www-form-urlencoded"}), 422)
    helpers.assert_error(client.get(SEARCH), 405, "method_not_allowed")
    helpers.assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    helpers.assert_error(client.post(SEARCH, content=b"{}", headers={"content-type": "application/json", "content-length": "abc"}), 400)


# --- unicode ---------------------------------------------------------------------------------------


def test_lone_surrogates_are_refused(client, helpers):
    helpers.assert_error(helpers.raw_json(client, SEARCH, '{"query": "cat \\ud800"}'), 422, field="query")
    records = '{"records": [{"id": "\\udfff", "text": "x"}]}'
    helpers.assert_error(helpers.raw_json(client, "/v1/collections/docs/documents", records), 422)
    filters = '{"query": "cat", "filters": [{"field": "title", "op": "==", "value": "\\ud83d"}]}'
    helpers.assert_error(helpers.raw_json(client, SEARCH, filters), 422)


@pytest.mark.parametrize(
    "query",
    [
        "😀🐈‍⬛ cat",  # emoji, ZWJ sequence
        "cat\u200b\u200d\ufeff",  # zero-width characters
        "\u202ecat\u202c",  # right-to-left override
        "ca\u0301t",  # combining accent
        "ｃａｔ",  # full-width letters (NFKC folds them to "cat")
        "猫在睡觉 数据库",
        "مرحبا بالعالم",
        "cat\x00dog",  # NUL in a query is harmless: it never reaches an expression
        "\U0010ffff",  # highest code point
        "!!! ??? ...",  # no terms at all
        "the and of",  # only stopwords
        "a" * 1024,  # exactly the limit
    ],
)
def test_unicode_edge_cases_search_fine(client, query):
    response = client.post(SEARCH, json={"query": query, "rerank": False, "explain": True})
    assert response.status_code == 200, response.text


def test_full_width_query_matches_ascii_text(client):
    body = client.post(SEARCH, json={"query": "ｃａｔ", "paths": ["bm25"], "rerank": False}).json()
    assert body["hits"] and body["hits"][0]["doc_id"] == "cats"


# --- filter injection ---------------------------------------------------------------------------------

INJECTIONS = [
    '" or doc_id != "',
    '") or (1 == 1',
    'cats" || "1" == "1',
    "cats\\",
    "cats\\\" or true or \\\"",
    "%",
    "' or '1'='1",
    "]) or ([",
    '" and metadata["lang"] == "en',
    "\u2028\u2029",
    "\x7f",
    "\\u0022 or true",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_filter_values_cannot_alter_the_expression(client, value):
    for op in ("==", "!=", "like", "in"):
        filters = [{"field": "doc_id", "op": op, "value": [value] if op == "in" else value}]
        response = client.post(SEARCH, json={"query": "cat dog", "k": 50, "filters": filters, "paths": ["bm25"], "rerank": False})
        assert response.status_code == 200, (op, response.text)
        ids = {h["doc_id"] for h in response.json()["hits"]}
        if op == "!=":
            assert "cats" in ids  # != a literal string: everything still matches
        elif op == "like" and value == "%":
            pass  # a legitimate like pattern (Milvus Lite matches nothing with a bare "%")
        else:
            assert ids == set(), (op, value, ids)  # the value matched literally: no document has that id


@pytest.mark.parametrize(
    ("condition", "status"),
    [
        ({"field": 'doc_id == "x" or 1 == 1 or doc_id', "op": "==", "value": "x"}, 422),
        ({"field": "doc_id", "op": "== 1 or", "value": "x"}, 422),
        ({"field": "text", "op": "==", "value": "x"}, 422),  # not a filterable field
        ({"field": "metadata.", "op": "==", "value": "x"}, 422),
        ({"field": "page", "op": "==", "value": "3 or 1==1"}, 422),  # ints only on page
        ({"field": "page", "op": "==", "value": True}, 422),
        ({"field": "page", "op": ">", "value": 1e308}, 422),
        ({"field": "metadata.n", "op": "in", "value": [1, "a"]}, 422),  # mixed list types break Milvus
        ({"field": "metadata.n", "op": "in", "value": "cats"}, 422),
        ({"field": "metadata.n", "op": "==", "value": [1]}, 422),
        ({"field": "metadata.n", "op": "in", "value": []}, 422),
        ({"field": "page", "op": "==", "value": 2**70}, 422),
        ({"field": "source", "op": "==", "value": "line\nbreak"}, 422),
        ({"field": "doc_id", "op": "==", "value": {"$ne": 1}}, 422),
        ({"field": "doc_id", "op": "==", "value": "x" * 5000}, 422),
    ],
)
def test_bad_filters_are_422(client, helpers, condition, status):
    error = helpers.assert_error(client.post(SEARCH, json={"query": "cat", "filters": [condition]}), status)
    assert error["field"].startswith("filters"), error


def test_doc_id_equality_takes_any_text(client):
    # doc_id ==/in compile to a digest of the id: control characters are fine there.
    for op in ("==", "in"):
        value = "line\nbreak\x01" if op == "==" else ["line\nbreak", "cats"]
        response = client.post(SEARCH, json={"query": "cat", "filters": [{"field": "doc_id", "op": op, "value": value}], "paths": ["bm25"], "rerank": False})
        assert response.status_code == 200, response.text
        assert {h["doc_id"] for h in response.json()["hits"]} == (set() if op == "==" else {"cats"})


def test_metadata_keys_are_escaped(client):
    for key in ('a"] == 1 or metadata["b', "tag\\", "ключ", "a.b"):
        response = client.post(SEARCH, json={"query": "cat", "filters": [{"field": f"metadata.{key}", "op": "==", "value": "x"}], "rerank": False})
        assert response.status_code == 200, response.text
        assert response.json()["hits"] == []


def test_mixed_int_float_lists_work(client):
    response = client.post(SEARCH, json={"query": "cat dog", "filters": [{"field": "metadata.n", "op": "in", "value": [0, 1.0]}], "rerank": False})
    assert response.status_code == 200, response.text


# --- uploads and paths ----------------------------------------------------------------------------------

UPLOAD = "/v1/collections/docs/documents/upload"


def _raw_upload(client, filename: bytes, content: bytes = b"hello world"):
    """A multipart body built by hand: httpx would percent-escape control
    characters in the file name, and the server must cope with raw ones."""
    boundary = b"hostileboundary1234"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="files"; filename="' + filename + b'"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + content + b"\r\n--" + boundary + b"--\r\n"
    )
    return client.post(UPLOAD, content=body, headers={"content-type": "multipart/form-data; boundary=" + boundary.decode()})


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.txt",
        "..\\..\\windows\\win.txt",
        "/etc/passwd.txt",
        "notes/../../x.md",
        "..",
        ".txt",
        ".bashrc.md",
        "bad\u202etxt.md",
        "a\x00b.txt",
        "a\x1bb.txt",
        "a\rb.txt",
    ],
)
def test_upload_names_with_paths_or_control_characters_are_refused(client, helpers, upload_root, tmp_path, name):
    before = set(upload_root.rglob("*"))
    response = _raw_upload(client, name.encode("utf-8"))
    assert response.status_code in (400, 422), response.text
    helpers.assert_error(response, response.status_code)
    assert set(upload_root.rglob("*")) == before
    assert not (tmp_path.parent / "passwd.txt").exists()


def test_upload_odd_but_plain_names_are_sanitised(client, helpers):
    response = client.post(UPLOAD, files=[("files", ("we;rd|name<>.txt", io.BytesIO(b"sanitised name text"), "text/plain"))])
    assert response.status_code == 202, response.text
    assert helpers.wait_for_job(client, response.json())["state"] == "succeeded"
    assert client.get("/v1/collections/docs/documents/upload/we_rd_name_.txt").status_code == 200
    client.delete("/v1/collections/docs/documents/upload/we_rd_name_.txt")


@pytest.mark.parametrize(
    ("name", "content", "ctype", "status"),
    [
        ("tool.exe", b"MZ\x90\x00", "application/octet-stream", 415),
        ("script.py", b"print(1)", "text/x-python", 415),
        ("noext", b"hello", "text/plain", 415),
        ("image.txt", b"hello", "image/png", 415),
        ("fake.pdf", b"MZ not a pdf", "application/pdf", 415),
        ("fake.docx", b"plain text", "application/octet-stream", 415),
    ],
)
def test_upload_type_allowlist(client, helpers, name, content, ctype, status):
    helpers.assert_error(client.post(UPLOAD, files=[("files", (name, io.BytesIO(content), ctype))]), status, "unsupported_media_type", field="files")


def test_upload_limits(client, helpers, upload_root):
    big = b"word " * (60 * 1024)  # 300 KiB > the 256 KiB test limit
    helpers.assert_error(client.post(UPLOAD, files=[("files", ("big.txt", io.BytesIO(big), "text/plain"))]), 413)
    helpers.assert_error(client.post(UPLOAD, files=[("files", ("empty.txt", io.BytesIO(b""), "text/plain"))]), 422, field="files")
    twice = [("files", ("a.txt", io.BytesIO(b"one"), "text/plain")), ("files", ("a.txt", io.BytesIO(b"two"), "text/plain"))]
    helpers.assert_error(client.post(UPLOAD, files=twice), 422, field="files")
    helpers.assert_error(client.post(UPLOAD, data={"files": "not a file"}), 422)
    helpers.assert_error(client.post(UPLOAD, json={"files": []}), 422)
    assert list(upload_root.iterdir()) == []


def test_record_limits(client, make_client, helpers):
    docs = "/v1/collections/docs/documents"
    helpers.assert_error(client.post(docs, json={"records": []}), 422, field="records")
    helpers.assert_error(client.post(docs, json={"records": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}), 422)
    helpers.assert_error(client.post(docs, json={"records": [{"id": "a", "text": "   "}]}), 422)
    helpers.assert_error(client.post(docs, json={"records": [{"id": "a\x00", "text": "x"}]}), 422, field="records.0.id")
    helpers.assert_error(client.post(docs, json={"records": [{"id": "é" * 4097, "text": "x"}]}), 422)
    helpers.assert_error(client.post(docs, json={"records": [{"id": "a", "text": "x" * 70000}], "chunk": False}), 422)
    nested: dict = {}
    inner = nested
    for _ in range(12):
        inner["k"] = {}
        inner = inner["k"]
    helpers.assert_error(client.post(docs, json={"records": [{"id": "a", "text": "x", "metadata": nested}]}), 422)
    small = make_client(max_records_per_request=2)
    records = [{"id": str(i), "text": "x"} for i in range(3)]
    helpers.assert_error(small.post(docs, json={"records": records}), 422, field="records")
    helpers.assert_error(client.post("/v1/collections/nope/documents", json={"records": [{"id": "a", "text": "x"}]}), 404)


def test_path_parameters(client, helpers):
    helpers.assert_error(client.post("/v1/collections/bad-name!/search", json={"query": "x"}), 422, field="name")
    helpers.assert_error(client.post("/v1/collections/" + "a" * 300 + "/search", json={"query": "x"}), 422)
    helpers.assert_error(client.get("/v1/collections/docs/documents/..%2F..%2Fetc%2Fpasswd"), 404, "document_not_found")
    helpers.assert_error(client.get("/v1/collections/docs/documents/" + "d" * 1000), 404, "document_not_found")
    helpers.assert_error(client.get("/v1/collections/docs/documents/" + "d" * 4097), 422)
    helpers.assert_error(client.get("/v1/collections/docs/documents", params={"limit": 0}), 422, field="limit")


@pytest.mark.parametrize(
    "url", ["/ui/../settings.py", "/ui/..%2Fsettings.py", "/ui/%2e%2e/%2e%2e/engine.py", "/ui/static/../../app.py", "/ui//etc/passwd"]
)
def test_the_page_serves_nothing_outside_its_folder(client, url):
    response = client.get(url)
    assert response.status_code == 404 or (response.status_code == 200 and "search-form" in response.text), url
    assert "import" not in response.text and "root:" not in response.text


def test_unexpected_errors_are_a_bare_500(make_client, helpers, monkeypatch):
    other = make_client(raise_server_exceptions=False)
    engine = other.app.state.services.engine()

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail /srv/path")

    monkeypatch.setattr(engine, "list_collections", boom)
    response = other.get("/v1/collections")
    error = helpers.assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and error["request_id"] in error["message"]
